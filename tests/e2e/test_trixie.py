"""Debian 13 (trixie) nodes: packages cross-built on this Debian 12 machine for debian-13 install and run.

One trixie node is booted for the module and shared (each test uses its own package names, so their
states do not meet), which keeps the cost of this second release to one boot. It is on the host's
network because apt there fetches Debian dependencies the image did not pre-download (sqlite3) from
the mirror, which a private node cannot reach; the flaskapp instance's nginx listens on 8391, not 80. The
whole suite runs on bookworm nodes; here is the representative subset on trixie (README "Targets"):
a binary-wheel app (examples/flaskapp) cross-built for debian-13, the lifecycle through the repository
(install, upgrade with backup, rollback by pin, purge), and the refusal of a debian-12 package.
test_services.py runs the PostgreSQL story on both releases.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appdeb.node import harness as nodes
from appdeb.repo import config as repoconfig
from appdeb.repo import publish as repo
from appdeb.repo import serve as reposerve

from ..conftest import EXAMPLES
from .apps import build_app, dpkg_status, lifecycle_app, port_of, sh

pytestmark = pytest.mark.e2e
SOURCE = "appdeb-tx"
ONLY_REPO = f"-o Dir::Etc::SourceList=/etc/apt/sources.list.d/{SOURCE}.sources -o Dir::Etc::SourceParts=- " \
            "-o APT::Get::List-Cleanup=0"


@pytest.fixture(scope="module")
def trixie() -> Iterator[nodes.Node]:
    node = nodes.up(f"tx{int(time.time()) % 100000}", suite="trixie")
    try:
        yield node
    finally:
        nodes.down(node.name)


def curl(node: nodes.Node, url: str, *headers: str) -> str:
    """GET from inside the node, retrying while a unit binds."""
    args = " ".join(f"-H '{h}'" for h in headers)
    return sh(node, f"for i in $(seq 40); do curl -sf {args} '{url}' && exit 0; sleep 0.5; done; exit 1")


def test_the_node_is_trixie_with_python_313(trixie: nodes.Node) -> None:
    assert "VERSION_CODENAME=trixie" in sh(trixie, "cat /etc/os-release")
    assert sh(trixie, "python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'").strip() == "3.13"


def test_flaskapp_cross_built_for_debian13_installs_and_serves(trixie: nodes.Node, tmp_path: Path) -> None:
    app = tmp_path / "flaskapp"
    shutil.copytree(EXAMPLES / "flaskapp", app, ignore=shutil.ignore_patterns(".appdeb"))
    text = (app / "app.yaml").read_text().replace("instances:\n", "instances:\n  tx: {public_port: 8391}\n", 1)
    (app / "app.yaml").write_text(text)  # not port 80: other nodes share the host's network
    deb = build_app(app, tmp_path / "dist", "tx", target="debian-13")
    info = subprocess.run(["dpkg-deb", "-I", str(deb.deb)], capture_output=True, text=True, check=True).stdout
    assert " Depends: python3 (>= 3.13), python3 (<< 3.14), " in info
    assert " Architecture: amd64" in info and " Appdeb-Target: debian-13" in info
    listing = subprocess.run(["dpkg-deb", "-c", str(deb.deb)], capture_output=True, text=True, check=True).stdout
    assert "_speedups.cpython-313-x86_64-linux-gnu.so" in listing and ".pyc" not in listing
    assert deb.architecture == "amd64"
    assert nodes.install(trixie, [deb.deb], check=False).returncode == 0
    port = port_of("notes-tx")
    sh(trixie, f"curl -sf -X POST -H 'Content-Type: application/json' -d '{{\"body\": \"<b>tea</b>\"}}' "
               f"http://127.0.0.1:{port}/api/notes")
    page = curl(trixie, f"http://127.0.0.1:{port}/")
    assert "2.1.0-1" in page and "&lt;b&gt;tea&lt;/b&gt;" in page  # escaped by the binary wheel's code
    speedups = sh(trixie, "runuser -u notes-tx -- python3 -I -c 'import sys; sys.path[:0] = [\"/opt/notes-tx/lib\"]; "
                          "import markupsafe._speedups as s; print(s.__file__)'")
    assert speedups.strip().endswith("cpython-313-x86_64-linux-gnu.so")
    assert '"instance":"tx"' in curl(trixie, "http://127.0.0.1:8391/health", "Host: notes-tx.localhost")  # nginx
    assert "2.1.0-1: ok" in sh(trixie, "notes-tx verify")


def test_a_debian12_package_is_refused_by_preinst_naming_both_pythons(trixie: nodes.Node, tmp_path: Path) -> None:
    deb = build_app(lifecycle_app(tmp_path / "app"), tmp_path / "dist", "txold", target="debian-12")
    apt = nodes.install(trixie, [deb.deb], check=False)
    assert apt.returncode != 0 and re.search(r"Depends: python3 \(<<? 3\.12\) but 3\.13", apt.stdout), apt.stdout
    result = nodes.run_in(trixie, ["dpkg", "-i", nodes.copy_in(trixie, deb.deb, "/var/tmp/appdeb-install")])
    assert result.returncode != 0
    assert "built for debian-12 with python 3.11, but this node's python3 is 3.13" in result.stdout
    assert "rebuild it with 'appdeb build --target debian-13'" in result.stdout
    assert dpkg_status(trixie, "hello-txold") == "not-installed"
    assert sh(trixie, "test -e /opt/hello-txold || echo absent").strip() == "absent"


def test_lifecycle_through_the_trixie_distribution(trixie: nodes.Node, cfg: repoconfig.RepoConfig,
                                                  tmp_path: Path) -> None:
    v1, v2 = (build_app(lifecycle_app(tmp_path / f"app{n}", version=f"{n}.0.0"), tmp_path / f"dist{n}", "tx1",
                        target="debian-13") for n in (1, 2))
    pkg, port = "hello-tx1", port_of("hello-tx1")
    assert repo.publish(cfg, [v1.deb]).distribution == "trixie"  # the package's release, not the default
    with reposerve.serve(cfg) as server:
        written = reposerve.write_client_config(trixie.root, cfg, server.url, SOURCE)  # the node's own suite
        assert "Suites: trixie\n" in (trixie.root / f"etc/apt/sources.list.d/{SOURCE}.sources").read_text()
        assert len(written) == 3
        sh(trixie, f"apt-get update --error-on=any {ONLY_REPO} && apt-get install -y {pkg}")
        assert "(tx1, 1.0.0-1)" in curl(trixie, f"http://127.0.0.1:{port}/")
        assert json.loads((trixie.root / f"opt/{pkg}/appdeb/app.json").read_text())["suite"] == "trixie"

        # upgrade: a backup of 1.0.0-1's data first, then update
        repo.publish(cfg, [v2.deb])
        sh(trixie, f"apt-get update --error-on=any {ONLY_REPO} && apt-get upgrade -y {ONLY_REPO}")
        assert "(tx1, 2.0.0-1)" in curl(trixie, f"http://127.0.0.1:{port}/")
        assert sh(trixie, f"cat /var/lib/{pkg}/update-runs").splitlines() == ["1.0.0-1 -> 2.0.0-1"]
        assert "version=1.0.0-1" in sh(trixie, f"{pkg} backups") and "reason=upgrade" in sh(trixie, f"{pkg} backups")

        # rollback by pin: the previous version, installed as a downgrade, held against upgrades
        out = sh(trixie, f"{pkg} pin --previous")
        assert "now at 1.0.0-1" in out and "DOWNGRADED" in out
        assert "(tx1, 1.0.0-1)" in curl(trixie, f"http://127.0.0.1:{port}/")
        sh(trixie, f"apt-get upgrade -y {ONLY_REPO}")
        assert sh(trixie, f"dpkg-query -W -f='${{Version}}' {pkg}") == "1.0.0-1"

    # purge: everything but the backups and the user goes
    sh(trixie, f"{pkg} unpin >/dev/null 2>&1 || true; apt-get purge -y {pkg}")
    assert dpkg_status(trixie, pkg) == "not-installed"
    gone = sh(trixie, f"for p in /opt/{pkg} /etc/{pkg} /var/lib/{pkg} /var/lib/appdeb/{pkg}; do "
                      "[ -e $p ] && echo $p; done; true")
    assert gone.strip() == ""
    assert sh(trixie, f"ls /var/backups/{pkg}").strip()
