"""`appdeb node exec` and `appdeb node install` through the real command line, on one shared node."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from appdeb.node import harness as nodes
from appdeb.runner import run

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def shared(node_image: Path) -> Iterator[nodes.Node]:
    """One node for the module's tests: they only run commands and install tiny packages."""
    name = f"t{os.getpid()}-{uuid.uuid4().hex[:8]}"
    node = nodes.up(name)
    try:
        yield node
    finally:
        nodes.down(name)


def appdeb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "appdeb.cli", *args], capture_output=True, text=True, timeout=900)


def tiny_deb(tmp_path: Path, name: str, depends: str = "") -> Path:
    root = tmp_path / name
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr/share" / name).mkdir(parents=True)
    (root / "usr/share" / name / "payload").write_text(f"{name}\n")
    (root / "DEBIAN/control").write_text(
        f"Package: {name}\nVersion: 1.0\nArchitecture: all\nMaintainer: e2e <e2e@appdeb.invalid>\n"
        f"{'Depends: ' + depends + chr(10) if depends else ''}Description: tiny package for the node CLI test\n")
    deb = tmp_path / f"{name}_1.0_all.deb"
    run(["dpkg-deb", "--root-owner-group", "--build", root, deb])
    return deb


def no_install_dirs(node: nodes.Node) -> bool:
    return not list((node.root / "var/tmp").glob("appdeb-install*"))


def test_exec_takes_the_usual_separator(shared: nodes.Node) -> None:
    r = appdeb("node", "exec", shared.name, "--", "sh", "-c", "echo $0 \"$1\"; exit 4", "--", "x y")
    assert (r.returncode, r.stdout) == (4, "-- x y\n"), r.stderr  # only the first -- is the separator
    r = appdeb("node", "exec", shared.name, "cat", "/etc/hostname")
    assert (r.returncode, r.stdout) == (0, f"{shared.name}\n")
    r = appdeb("node", "exec", shared.name, "--")
    assert r.returncode == 2 and "no COMMAND after --" in r.stderr


def test_install_prints_lines_and_removes_its_copies(shared: nodes.Node, tmp_path: Path) -> None:
    deb = tiny_deb(tmp_path, "appdeb-e2e-cli")
    r = appdeb("node", "install", shared.name, str(deb))
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert "\r" not in r.stdout
    assert any(ln.startswith("(Reading database ... ") and ln.endswith(" currently installed.)") for ln in lines)
    assert "Setting up appdeb-e2e-cli (1.0) ..." in lines
    assert nodes.run_in(shared, ["cat", "/usr/share/appdeb-e2e-cli/payload"]).stdout == "appdeb-e2e-cli\n"
    assert no_install_dirs(shared)


def test_a_failed_install_removes_its_copies_too(shared: nodes.Node, tmp_path: Path) -> None:
    deb = tiny_deb(tmp_path, "appdeb-e2e-broken", depends="appdeb-no-such-package")
    r = appdeb("node", "install", shared.name, str(deb))
    assert r.returncode == 100 and "appdeb-no-such-package" in r.stdout, r.stdout + r.stderr
    assert nodes.run_in(shared, ["dpkg", "-s", "appdeb-e2e-broken"]).returncode == 1
    assert no_install_dirs(shared)


def test_install_never_writes_through_a_link_planted_in_the_node(shared: nodes.Node, tmp_path: Path) -> None:
    """A node user who plants the old fixed directory with a link to a host path gains nothing."""
    victim = tmp_path / "victim"
    victim.write_text("host file\n")
    victim.chmod(0o600)
    deb = tiny_deb(tmp_path, "appdeb-e2e-link")
    planted = "mkdir /var/tmp/appdeb-install && ln -s \"$0\" /var/tmp/appdeb-install/appdeb-e2e-link_1.0_all.deb"
    r = nodes.run_in(shared, ["runuser", "-u", "nobody", "--", "sh", "-c", planted, str(victim)])
    assert r.returncode == 0, r.stdout
    r = appdeb("node", "install", shared.name, str(deb))
    assert r.returncode == 0, r.stdout + r.stderr
    assert victim.read_text() == "host file\n" and victim.stat().st_mode & 0o777 == 0o600
    assert (shared.root / "var/tmp/appdeb-install/appdeb-e2e-link_1.0_all.deb").is_symlink()
    nodes.run_in(shared, ["rm", "-rf", "/var/tmp/appdeb-install"], check=True)
