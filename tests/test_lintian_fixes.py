"""What the package says about itself for Debian's checks: libc6 from the wheels' tags, modes of shared
libraries, a synopsis without the package's name, description lines within 80 columns."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appdeb.build.plan import make_plan, with_vendor
from appdeb.build.render import render, synopsis, wrap_body
from appdeb.build.stage import normalize
from appdeb.build.validate import load_spec
from appdeb.build.wheeltags import glibc_needed, glibc_of_tag
from appdeb.errors import AppdebError

from .conftest import EPOCH, EXAMPLES


def wheel(lib: Path, dist: str, *tags: str, pure: bool = False) -> None:
    info = lib / f"{dist}.dist-info"
    info.mkdir(parents=True)
    lines = ["Wheel-Version: 1.0", f"Root-Is-Purelib: {'true' if pure else 'false'}", *(f"Tag: {t}" for t in tags)]
    (info / "WHEEL").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(("tag", "version"), [
    ("manylinux_2_17_x86_64", "2.17"), ("manylinux_2_28_aarch64", "2.28"), ("manylinux2014_x86_64", "2.17"),
    ("manylinux2010_x86_64", "2.12"), ("manylinux1_x86_64", "2.5"), ("musllinux_1_2_x86_64", ""), ("any", ""),
    ("manylinux_x", ""), ("manylinux_-1_5_x86_64", ""), ("manylinux_2_x86_64", ""), ("manylinux_٢_17_x86_64", ""),
])
def test_glibc_of_a_platform_tag(tag: str, version: str) -> None:
    assert glibc_of_tag(tag) == version


def test_the_package_needs_the_newest_of_each_wheels_oldest_glibc(tmp_path: Path) -> None:
    wheel(tmp_path, "numpy-2.0", "cp311-cp311-manylinux_2_27_x86_64", "cp311-cp311-manylinux_2_28_x86_64")
    wheel(tmp_path, "markupsafe-3.0", "cp311-cp311-manylinux_2_17_x86_64", "cp311-cp311-manylinux2014_x86_64")
    wheel(tmp_path, "flask-3.0", "py3-none-any", pure=True)
    assert glibc_needed(tmp_path) == "2.27"
    assert glibc_needed(tmp_path / "nothing") == ""


def test_a_musl_wheel_is_refused(tmp_path: Path) -> None:
    wheel(tmp_path, "fast-1.0", "cp311-cp311-musllinux_1_2_x86_64")
    with pytest.raises(AppdebError, match=r"fast-1.0.dist-info: a wheel for musl libc"):
        glibc_needed(tmp_path)


def test_libc6_relation_only_with_binary_wheels() -> None:
    plan = make_plan(load_spec(EXAMPLES / "flaskapp"), python_version="3.11", source_date_epoch=EPOCH)
    binary = with_vendor(plan, binary_dists=("markupsafe==3.0.0",), vendored=(), glibc="2.17")
    assert binary.depends[-1] == "libc6 (>= 2.17)" and "init-system-helpers (>= 1.54~)" in binary.depends
    assert not any(d.startswith("libc6") for d in with_vendor(plan, binary_dists=(), vendored=()).depends)


def test_shared_libraries_are_not_executable(tmp_path: Path) -> None:
    files = {"lib/x.libs/libssl-8bd944e8.so.3": 0o755, "lib/ext.cpython-311-x86_64-linux-gnu.so": 0o775,
             "lib/libpq.so.5.17": 0o700, "bin/tool": 0o700, "lib/notes.so.txt": 0o755, "lib/data.so": 0o600}
    for rel, mode in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
        os.chmod(tmp_path / rel, mode)
    normalize(tmp_path, EPOCH, "opt/x/lib")
    modes = {rel: (tmp_path / rel).stat().st_mode & 0o7777 for rel in files}
    assert modes == {"lib/x.libs/libssl-8bd944e8.so.3": 0o644, "lib/ext.cpython-311-x86_64-linux-gnu.so": 0o644,
                     "lib/libpq.so.5.17": 0o644, "bin/tool": 0o755, "lib/notes.so.txt": 0o755, "lib/data.so": 0o644}


@pytest.mark.parametrize(("line", "expected"), [
    ("Notes: a small Flask app", "small Flask app"), ("notes-staging - The notes", "notes"),
    ("NOTES — an app", "app"), ("Notesy: mine", "Notesy: mine"), ("An apple a day", "apple a day"),
    ("notes", "web application packaged by appdeb"), ("  Flask notes  ", "Flask notes"),
])
def test_synopsis_drops_the_name_and_an_article(line: str, expected: str) -> None:
    assert synopsis(line, ("notes", "notes-staging")) == expected


@given(st.lists(st.text(st.sampled_from("ab cdefg-.,"), max_size=200), max_size=8))
def test_wrapped_body_lines_fit_and_keep_every_word(lines: list[str]) -> None:
    lines = [ln.rstrip() for ln in lines]
    out = wrap_body(lines)
    for line in out:
        assert len(line) <= 79 or line.startswith(" ") or " " not in line.strip()
    assert " ".join(out).split() == " ".join(lines).split()
    assert sum(1 for ln in out if not ln.strip()) == sum(1 for ln in lines if not ln.strip())


def test_control_and_overrides_of_a_rendered_package() -> None:
    plan = make_plan(load_spec(EXAMPLES / "polls"), python_version="3.11", source_date_epoch=EPOCH)
    files = render(with_vendor(plan, binary_dists=("psycopg2-binary==2.9",), vendored=(), glibc="2.17"))
    control = files["DEBIAN/control"].content.decode()
    assert "\nDescription: Django's tutorial app packaged by appdeb\n" in control
    assert all(len(line) <= 80 for line in control.split("\nDescription: ", 1)[1].splitlines())
    overrides = files["usr/share/lintian/overrides/polls"].content.decode().splitlines()
    tags = [ln for ln in overrides if ln and not ln.startswith("#")]
    assert "unstripped-binary-or-object [opt/polls/lib/*]" in tags and "dir-or-file-in-opt [opt/polls/*]" in tags
    for i, line in enumerate(overrides):  # every override has its reason in the comment block above it
        if line and not line.startswith("#"):
            assert any(o.startswith("# ") for o in overrides[:i]), line
