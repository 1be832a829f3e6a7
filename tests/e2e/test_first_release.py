"""Servers running packages of the first release (appdeb 0.1.0) upgrade cleanly, and can go back.

The old package is built by the first release's own code, taken from git (tag v0.1.0) into a
temporary directory and run with this project's virtualenv. It is installed and given data, then
upgraded with a package built from this tree, then rolled back by installing the old one again.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from appdeb.build.pipeline import BuildResult
from appdeb.node import harness as nodes
from appdeb.repo import config as repoconfig
from appdeb.repo import publish as repo
from appdeb.repo import serve as reposerve

from ..conftest import EPOCH, ROOT
from .apps import build_app, dpkg_status, http_get, lifecycle_app, port_of, sh

pytestmark = pytest.mark.e2e

FIRST_RELEASE = "a39da7b89e9095ec710ca5638db87550227d88aa"  # tag v0.1.0
PKG = "hello-fr1"
STATE, ETC, BACKUPS, OWN = f"/var/lib/{PKG}", f"/etc/{PKG}", f"/var/backups/{PKG}", f"/var/lib/appdeb/{PKG}"


def first_release_tree(dest: Path) -> Path:
    """The first release's source tree (git archive of the tagged commit)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", FIRST_RELEASE],
                             capture_output=True, check=False)
    if archive.returncode != 0:
        pytest.fail(f"the first release ({FIRST_RELEASE}, tag v0.1.0) is not in this clone's history: "
                    f"{archive.stderr.decode().strip()}")
    dest.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


def build_with_first_release(tree: Path, app_dir: Path, out: Path) -> Path:
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from appdeb.cli import run_cli; "
            "sys.argv = ['appdeb', *sys.argv[2:]]; run_cli()")
    proc = subprocess.run([sys.executable, "-c", code, str(tree), "build", str(app_dir), "--instance", "fr1",
                           "--python", "3.11", "--out", str(out)], capture_output=True, text=True,
                          env={**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH)})
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.strip())


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, BuildResult]:
    tmp = tmp_path_factory.mktemp("first-release")
    old = build_with_first_release(first_release_tree(tmp / "appdeb-0.1.0"), lifecycle_app(tmp / "v1"), tmp / "d1")
    new = build_app(lifecycle_app(tmp / "v2", version="2.0.0"), tmp / "d2", "fr1")
    return old, new


def test_first_release_package_upgrades_to_this_one_and_rolls_back(
    node: nodes.Node, debs: tuple[Path, BuildResult], cfg: repoconfig.RepoConfig,
) -> None:
    old, new = debs
    nodes.install(node, [old])
    sh(node, f"echo GREETING=Bonjour >> {ETC}/settings.env && echo more >> {STATE}/data.txt")
    secret = sh(node, f"cat {ETC}/secret")
    old_backup = sh(node, f"{PKG} backup").strip().rsplit("/", 1)[-1]
    assert sh(node, f"cat {STATE}/.appdeb/configured-version") == "1.0.0-1\n"  # 0.1.0's layout

    out = nodes.install(node, [new.deb]).stdout
    assert "Traceback" not in out
    assert dpkg_status(node, PKG) == "install ok installed"
    # the state moved to appdeb's own place; data, settings, secret and backups are kept
    assert nodes.run_in(node, ["test", "-e", f"{STATE}/.appdeb"]).returncode != 0
    assert sh(node, f"cat {OWN}/configured-version") == "2.0.0-1\n"
    assert sh(node, f"cat {STATE}/data.txt") == f"data of {PKG}\nmore\n"
    assert sh(node, f"cat {STATE}/update-runs") == "1.0.0-1 -> 2.0.0-1\n"
    assert "GREETING=Bonjour" in sh(node, f"cat {ETC}/settings.env")
    assert sh(node, f"cat {ETC}/secret") == secret
    assert http_get(port_of(PKG)) == "Bonjour from hello (fr1, 2.0.0-1)\n"
    listed = sh(node, f"{PKG} backups")
    assert old_backup in listed and "version=1.0.0-1\treason=upgrade" in listed
    # a backup in 0.1.0's format restores with this release
    sh(node, f"echo damaged > {STATE}/data.txt")
    sh(node, f"{PKG} restore {old_backup}")
    assert sh(node, f"cat {STATE}/data.txt") == f"data of {PKG}\nmore\n"

    # `PKG rollback` refuses a release whose scripts keep root's state in the app's directory ...
    repo.publish(cfg, [old, new.deb])
    with reposerve.serve(cfg) as server:
        reposerve.write_client_config(node.root, cfg, server.url, "appdeb-fr")
        sh(node, "apt-get update --error-on=any -o Dir::Etc::SourceList=/etc/apt/sources.list.d/appdeb-fr.sources "
                 "-o Dir::Etc::SourceParts=- -o APT::Get::List-Cleanup=0")
        refused = nodes.run_in(node, [PKG, "rollback", "1.0.0-1"])
    assert refused.returncode == 1 and "built by appdeb 0.1.0" in refused.stdout and "--allow-old-layout" in \
        refused.stdout
    assert sh(node, f"dpkg-query -W -f='${{Version}}' {PKG}") == "2.0.0-1"
    assert nodes.run_in(node, ["test", "-e", f"/etc/apt/preferences.d/{PKG}-appdeb-pin"]).returncode != 0

    # ... but an admin's explicit downgrade works: it finds its marker, so it updates instead of reinstalling
    out = nodes.install(node, [old]).stdout
    assert dpkg_status(node, PKG) == "install ok installed"
    assert sh(node, f"dpkg-query -W -f='${{Version}}' {PKG}") == "1.0.0-1"
    assert sh(node, f"cat {STATE}/install-runs") == "1.0.0-1\n"  # never re-installed over the data
    assert sh(node, f"cat {STATE}/update-runs") == "1.0.0-1 -> 2.0.0-1\n2.0.0-1 -> 1.0.0-1\n"
    assert http_get(port_of(PKG)) == "Bonjour from hello (fr1, 1.0.0-1)\n"
    assert sh(node, f"cat {ETC}/secret") == secret
    # and forward again: the second migration takes over 0.1.0's marker once more
    nodes.install(node, [new.deb])
    assert sh(node, f"cat {OWN}/configured-version") == "2.0.0-1\n"
    assert http_get(port_of(PKG)) == "Bonjour from hello (fr1, 2.0.0-1)\n"
