"""Targets: one Debian release per build decides python, wheel platform, floors, services and suite."""

from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path

import pytest

from appdeb.build import installers, vendor
from appdeb.build.plan import make_plan
from appdeb.build.render import render, runtime_config
from appdeb.build.targets import TARGETS, default_target, resolve
from appdeb.build.validate import load_spec
from appdeb.errors import AppdebError, SpecError
from appdeb.runtime.contract import Contract

from .conftest import EXAMPLES


def _plan(example: str = "flaskapp", **kw: object):  # type: ignore[no-untyped-def]
    return make_plan(load_spec(EXAMPLES / example), source_date_epoch=0, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "python", "suite", "floors", "pg"), [
    ("debian-13", "3.13", "trixie", ("python3 (>= 3.13)", "python3 (<< 3.14)"), "postgresql (>= 17)"),
    ("debian-12", "3.11", "bookworm", ("python3 (>= 3.11)", "python3 (<< 3.12)"), "postgresql (>= 15)"),
])
def test_the_target_decides_python_floors_services_and_suite(
        name: str, python: str, suite: str, floors: tuple[str, str], pg: str) -> None:
    spec = load_spec(EXAMPLES / "flaskapp")
    spec = dataclasses.replace(spec, services=(*spec.services, *load_spec(EXAMPLES / "polls").services))
    plan = make_plan(spec, target=name, source_date_epoch=0)
    assert (plan.python_version, plan.distribution) == (python, suite)
    assert plan.depends[:2] == floors and pg in plan.depends and "postgresql" not in plan.depends
    control = render(plan)["DEBIAN/control"].content.decode()
    assert f"Depends: {floors[0]}, {floors[1]}," in control
    contract = Contract.from_json(runtime_config(plan).to_json())
    assert (contract.target, contract.suite, contract.python_version) == (name, suite, python)
    assert contract.postgres == TARGETS[name].postgres


def test_choice_order_cli_then_app_yaml_then_python_then_default() -> None:
    assert resolve("debian-12", "debian-13", None).name == "debian-13"
    assert resolve("debian-13", None, None).name == "debian-13"
    assert resolve(None, None, "3.13").name == "debian-13"
    assert resolve(None, None, None) == default_target()
    with pytest.raises(AppdebError, match=r"--python 3\.11 does not match target debian-13"):
        resolve(None, "debian-13", "3.11")
    with pytest.raises(AppdebError, match="unknown target 'debian-11'"):
        resolve(None, "debian-11", None)


def test_the_default_is_the_release_of_the_build_machines_python() -> None:
    here = "{}.{}".format(*sys.version_info[:2])
    assert default_target().python == here or (default_target().name == "debian-13"
                                                and here not in {t.python for t in TARGETS.values()})
    assert default_target("3.11").name == "debian-12"
    assert default_target("3.12").name == "debian-13"  # no release has it: the current stable


def test_an_unknown_target_in_app_yaml_is_a_located_problem(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(EXAMPLES / "hello", app)
    text = (app / "app.yaml").read_text()
    (app / "app.yaml").write_text(text + "target: debian-11\n")
    with pytest.raises(SpecError) as err:
        load_spec(app)
    line = len(text.splitlines()) + 1
    assert f"app.yaml:{line}:9:" in str(err.value) and "debian-13, debian-12" in str(err.value)
    (app / "app.yaml").write_text(text + "target: debian-13\n")
    assert load_spec(app).target == "debian-13"
    assert make_plan(load_spec(app), source_date_epoch=0).target.name == "debian-13"


def test_vendoring_asks_for_the_targets_wheels_not_the_build_interpreters() -> None:
    trixie, bookworm = TARGETS["debian-13"], TARGETS["debian-12"]
    argv = installers.uv_argv("uv", trixie.python, trixie.glibc_minor, Path("/cache"))
    assert argv[argv.index("--python-version") + 1] == "3.13"
    assert argv[argv.index("--python-platform") + 1].endswith("-manylinux_2_41")
    assert "--no-compile" in argv  # byte code is never made by the build interpreter
    pip = installers.pip_argv("python3", bookworm.python, bookworm.glibc_minor, Path("/cache"))
    assert pip[pip.index("--abi") + 1] == "cp311" and "--no-compile" in pip
    assert pip[pip.index("--platform") + 1].startswith("manylinux_2_36_")
    keys = {vendor.cache_key(("flask",), t.python, EXAMPLES, "uv", t.glibc_minor) for t in (trixie, bookworm)}
    assert len(keys) == 2


def test_preinst_names_both_pythons_and_the_target_to_rebuild_with() -> None:
    text = render(_plan(target="debian-12"))["DEBIAN/preinst"].content.decode()
    assert "TARGET='debian-12'" in text and "'3.13') fits='debian-13' ;;" in text
    assert "appdeb build --target $fits" in text
