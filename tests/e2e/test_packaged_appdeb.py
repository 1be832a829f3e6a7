"""appdeb's own Debian package builds apps: python3-appdeb, installed with apt on a node, has no uv.

`make deb` (scripts/build-self-deb.sh) → publish → `apt-get install python3-appdeb` on a node →
`appdeb build examples/flaskapp` there, vendoring with Debian's pip (and examples/hello, installed
and asked: gunicorn as appdeb's floor resolves it serves there). The node reaches the package index
the way this machine does: pip's configuration is copied in as it is (the node has none), and nothing
else is given to it. The .deb it builds must be the one a pip-installed appdeb with uv builds here,
byte for byte.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from appdeb.build.platforms import GUNICORN_REQUIREMENT
from appdeb.node import harness as nodes
from appdeb.repo import config as repoconfig
from appdeb.repo import publish as repo
from appdeb.repo import serve as reposerve

from .apps import http_get, port_of

ROOT = Path(__file__).resolve().parents[2]
EPOCH = "1767225600"
SOURCE = "appdeb-pk"
# Where pip and uv read their configuration (pip's and uv's documented locations for root).
CONFIG_FILES = ("/etc/pip.conf", "/etc/xdg/pip/pip.conf", "/root/.config/pip/pip.conf", "/root/.pip/pip.conf",
                "/etc/uv/uv.toml", "/etc/xdg/uv/uv.toml", "/root/.config/uv/uv.toml")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(any(shutil.which(t) is None for t in ("aptly", "gpg", "dpkg-deb", "dpkg-buildpackage")),
                       reason="needs aptly, gpg, dpkg-deb and dpkg-buildpackage"),
]


def sh(node: nodes.Node, script: str) -> str:
    result = nodes.run_in(node, ["sh", "-c", script], timeout=1800)
    assert result.returncode == 0, f"in node: {script}\nexit {result.returncode}:\n{result.stdout}"
    return result.stdout


@pytest.fixture
def server(cfg: repoconfig.RepoConfig) -> Iterator[reposerve.RepoServer]:
    with reposerve.serve(cfg) as srv:
        yield srv


def host_index_configuration(node: nodes.Node) -> dict[str, str]:
    """The host's pip and uv configuration, for a node that has none: each configuration file copied to
    the same path unchanged, PIP_*/UV_* variables returned for the command, and the regular files
    either names (a constraints file, the certificate bundle `cert =`/PIP_CERT trusts) copied to their
    paths too, over the node's own: the configuration means this machine's files. Local directories it
    names (find-links, file: indexes) stay on the host; pip says it ignores them and goes on."""
    files = [f for f in (*CONFIG_FILES, os.environ.get("PIP_CONFIG_FILE", ""), os.environ.get("UV_CONFIG_FILE", ""))
             if f and Path(f).is_file()]
    assert not [f for f in files if (node.root / f.lstrip("/")).exists()], "the node has its own configuration"
    variables = {k: v for k, v in os.environ.items() if k.startswith(("PIP_", "UV_"))}
    words = [*variables.values(), *(w for f in files for w in Path(f).read_text().replace("=", " ").split())]
    named = sorted({w for w in words if w.startswith("/") and Path(w).is_file()})
    for name in (*files, *named):
        if (node.root / name.lstrip("/")).is_symlink():  # copying onto it would follow it on the host
            (node.root / name.lstrip("/")).unlink()
        nodes.copy_in(node, name, str(Path(name).parent))
    return variables


def test_the_packaged_appdeb_builds_an_app_without_uv(
    node: nodes.Node, cfg: repoconfig.RepoConfig, server: reposerve.RepoServer, tmp_path: Path,
) -> None:
    env = {**os.environ, "APPDEB_DEB_OUT": str(tmp_path / "self")}
    subprocess.run([str(ROOT / "scripts" / "build-self-deb.sh")], env=env, check=True, capture_output=True)
    [deb] = (tmp_path / "self").glob("python3-appdeb_*_all.deb")
    assert "python3-pip" in subprocess.run(["dpkg-deb", "-f", str(deb), "Depends"], capture_output=True,
                                           text=True, check=True).stdout
    repo.publish(cfg, [deb])
    reposerve.write_client_config(node.root, cfg, server.url, SOURCE)
    sh(node, "apt-get update --error-on=any && apt-get install -y --no-install-recommends python3-appdeb")
    assert nodes.run_in(node, ["sh", "-c", "command -v uv || python3 -c 'import uv'"]).returncode != 0

    app = nodes.copy_in(node, ROOT / "examples" / "flaskapp", "/var/tmp/apps")
    variables = host_index_configuration(node)
    assign = " ".join(shlex.quote(f"{k}={v}") for k, v in sorted(variables.items()))
    out = sh(node, f"env {assign} SOURCE_DATE_EPOCH={EPOCH} appdeb build {app} --instance pk --out /tmp/out --json")
    built = json.loads(out.strip().splitlines()[-1])
    assert built["deb"] == "/tmp/out/notes-pk_2.1.0-1_amd64.deb" and built["architecture"] == "amd64"
    info = sh(node, f"dpkg-deb -I {built['deb']}")
    assert " Package: notes-pk" in info and " Version: 2.1.0-1" in info and " Architecture: amd64" in info
    listing = sh(node, f"dpkg-deb -c {built['deb']}")
    assert "./opt/notes-pk/lib/flask/app.py" in listing and "./opt/notes-pk/lib/markupsafe/_speedups" in listing

    # an app built there runs there: gunicorn as the floor resolves it, under the socket systemd holds
    hello = nodes.copy_in(node, ROOT / "examples" / "hello", "/var/tmp/apps")
    out = sh(node, f"env {assign} appdeb build {hello} --instance pk --out /var/tmp/out --json")
    hello_deb = json.loads(out.strip().splitlines()[-1])
    sh(node, f"apt-get install -y --no-install-recommends {hello_deb['deb']}")
    assert http_get(port_of("hello-pk")) == "Hello from hello (pk, 1.0.0-1)\n"
    [gunicorn] = sh(node, "ls -d /opt/hello-pk/lib/gunicorn-*.dist-info").split()
    assert Requirement(GUNICORN_REQUIREMENT).specifier.contains(gunicorn.removesuffix(".dist-info").split("-")[-1])

    # the same package as appdeb with uv builds here (a cold cache: resolved now, like the node did)
    host = subprocess.run([sys.executable, "-m", "appdeb.cli", "build", str(ROOT / "examples" / "flaskapp"),
                           "--instance", "pk", "--out", str(tmp_path / "host")], capture_output=True, text=True,
                          env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH, "APPDEB_CACHE": str(tmp_path / "cache"),
                               "CI": "1"}, check=True)
    nodes.copy_in(node, Path(host.stdout.strip()), "/var/tmp/host")
    assert sh(node, f"sha256sum < {built['deb']}") == sh(node, "sha256sum < /var/tmp/host/notes-pk_2.1.0-1_amd64.deb")
