"""Vendoring without uv (the packaged appdeb): pip makes the same library tree, and the same package."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

import pytest

from appdeb.build import vendor
from appdeb.build.plan import make_plan
from appdeb.build.validate import load_spec
from appdeb.errors import AppdebError

from ..conftest import EXAMPLES

pytestmark = pytest.mark.integration


def flaskapp_requirements() -> tuple[str, ...]:
    spec = load_spec(EXAMPLES / "flaskapp")
    return make_plan(spec, python_version="3.11", source_date_epoch=0).requirements


def vendored(tool: str, cache: Path, monkeypatch: pytest.MonkeyPatch) -> vendor.VendorResult:
    monkeypatch.setenv("APPDEB_CACHE", str(cache))  # a cold cache: this tool installs, nothing is reused
    monkeypatch.setenv(vendor.TOOL_ENV, tool)
    return vendor.vendor(flaskapp_requirements(), "3.11", EXAMPLES / "flaskapp")


def differences(cmp: filecmp.dircmp[str]) -> list[str]:
    out = [*cmp.left_only, *cmp.right_only, *cmp.diff_files, *cmp.funny_files]
    for sub in cmp.subdirs.values():
        out.extend(differences(sub))
    return out


def test_pip_gives_the_same_tree_as_uv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uv = vendored("uv", tmp_path / "uv", monkeypatch)
    pip = vendored("pip", tmp_path / "pip", monkeypatch)
    assert pip.dists == uv.dists and pip.binary_dists == uv.binary_dists == tuple(
        d for d in uv.dists if d.startswith("markupsafe=="))
    assert {d.split("==")[0] for d in pip.dists} >= {"flask", "werkzeug", "jinja2", "markupsafe", "gunicorn"}
    assert differences(filecmp.dircmp(uv.lib, pip.lib, ignore=[])) == []


def test_pips_tree_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Flask with MarkupSafe's compiled speedups, imported from the tree alone."""
    lib = vendored("pip", tmp_path / "cache", monkeypatch).lib
    assert not (lib / "bin").exists() and not list(lib.glob("*.dist-info/direct_url.json"))
    code = ("import flask, markupsafe._speedups, gunicorn.app.wsgiapp; app = flask.Flask('t'); "
            "app.route('/')(lambda: str(markupsafe.escape('<b>'))); print(app.test_client().get('/').data.decode())")
    out = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(lib)!r}); {code}"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "&lt;b&gt;"


def test_a_package_built_with_pip_is_the_one_uv_builds(tmp_path: Path) -> None:
    """Through the CLI: the same .deb, byte for byte, whichever installer vendored."""
    debs = []
    for tool in ("uv", "pip"):
        env = {**os.environ, "APPDEB_CACHE": str(tmp_path / f"cache-{tool}"), vendor.TOOL_ENV: tool, "CI": "1",
               "SOURCE_DATE_EPOCH": "1700000000"}
        proc = subprocess.run([sys.executable, "-m", "appdeb.cli", "build", str(EXAMPLES / "flaskapp"), "--out",
                               str(tmp_path / tool)], capture_output=True, text=True, env=env, timeout=600)
        assert proc.returncode == 0, proc.stderr
        debs.append(Path(proc.stdout.strip()))
    assert debs[0].name == debs[1].name and debs[0].read_bytes() == debs[1].read_bytes()


def test_the_installer_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(vendor.TOOL_ENV, "conda")
    with pytest.raises(AppdebError, match=r"APPDEB_VENDOR_TOOL='conda': allowed values are uv, pip"):
        vendor.installer()
    monkeypatch.setenv(vendor.TOOL_ENV, "pip")
    assert vendor.installer() == ("pip", sys.executable)
    monkeypatch.delenv(vendor.TOOL_ENV)
    assert vendor.installer()[0] == "uv"  # the first choice when it is there
    monkeypatch.setattr(vendor, "which", lambda _name: None)
    monkeypatch.setattr(vendor.sys, "executable", "/nonexistent/python3")
    assert vendor.installer() == ("pip", "/nonexistent/python3")  # no uv anywhere: pip
    monkeypatch.setattr(vendor.importlib.util, "find_spec", lambda _name: None)
    with pytest.raises(AppdebError, match=r"uv or pip is needed .*apt-get install python3-pip"):
        vendor.installer()


def test_a_requirement_without_a_wheel_says_why_pip_cannot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPDEB_CACHE", str(tmp_path))
    monkeypatch.setenv(vendor.TOOL_ENV, "pip")
    with pytest.raises(AppdebError, match=r"(?s)could not install the Python requirements.*builds nothing from source"):
        vendor.vendor(("appdeb-no-such-dist-xyz==0.0.1",), "3.11", tmp_path)
