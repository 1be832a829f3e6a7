"""A migration that hangs cannot hang dpkg: the upgrade fails at the command's bound, on a real node.

The v2 release's `update` sleeps for ever after forking two children that sleep too (one of them in
a session of its own, as a daemon would). `dpkg --configure` must fail within the bound with a
message naming the command and the time, leave no process of the command behind, free dpkg's lock
and keep the data, so that the previous release installs again at once and serves.
"""

from __future__ import annotations

import os
import re
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from appdeb.node import harness as nodes
from appdeb.runtime.proc import STOP_GRACE

from .apps import build_app, dpkg_status, http_get, lifecycle_app, port_of, sh

pytestmark = pytest.mark.e2e

BOUND = 3
HANGING_UPDATE = "echo migrating; sleep 1001 & setsid sleep 1002 & echo waiting on a lock; sleep 1003"
LOCK_FREE = ("import fcntl, os; fd = os.open('/var/lib/dpkg/lock', os.O_RDWR); "
             "fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB); print('free')")


# The app's PATH names a directory its user writes (an honest choice for tools it installs itself):
# root's systemd-run and setpriv must never be looked up there.
APP_PATH = "${APPDEB_STATE_DIR}/bin:/usr/local/bin:/usr/bin:/bin"
PLANT = ("mkdir -p $D/bin && for p in systemd-run setpriv; do printf '#!/bin/sh\\nid -u > $D/ran-$p-as\\n' "
         "> $D/bin/$p && chmod 755 $D/bin/$p; done")


def _app(tmp: Path, version: str, update: object | None = None) -> Path:
    app = lifecycle_app(tmp, version=version)
    spec = yaml.safe_load((app / "app.yaml").read_text())
    spec.setdefault("env", {})["PATH"] = {"default": APP_PATH}
    if update is not None:
        spec["commands"]["update"] = update
    (app / "app.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return app


def _hanging_v2(tmp: Path) -> Path:
    return _app(tmp / "v2", "2.0.0", {"command": HANGING_UPDATE, "timeout": BOUND})


@pytest.fixture(params=[("bookworm", "debian-12", "tmo1"), ("trixie", "debian-13", "tmo2")],
                ids=["bookworm", "trixie"])
def release(request: pytest.FixtureRequest, node_image: Path) -> Iterator[tuple[nodes.Node, str, str]]:
    """A node of each Debian release (their systemd differ: 252, 257), with the target and instance to build."""
    suite, target, instance = request.param
    node = nodes.up(f"tmo{os.getpid() % 100000}{suite[0]}", suite=suite)
    try:
        yield node, target, instance
    finally:
        nodes.down(node.name)


def test_a_hanging_update_fails_the_upgrade_at_its_bound_and_the_previous_release_serves(
        release: tuple[nodes.Node, str, str], tmp_path: Path) -> None:
    node, target, instance = release
    pkg = f"hello-{instance}"
    v1 = build_app(_app(tmp_path / "v1", "1.0.0"), tmp_path / "debs1", instance, target=target)
    v2 = build_app(_hanging_v2(tmp_path), tmp_path / "debs2", instance, target=target)
    nodes.install(node, [v1.deb])
    assert http_get(port_of(pkg)) == f"Hello from hello ({instance}, 1.0.0-1)\n"
    sh(node, f"runuser -u {pkg} -- sh -c {shlex.quote(PLANT.replace('$D', f'/var/lib/{pkg}'))}")  # the attacker

    started = time.monotonic()
    result = nodes.install(node, [v2.deb], check=False)
    took = time.monotonic() - started
    assert result.returncode != 0, result.stdout
    assert "migrating" in result.stdout and "waiting on a lock" in result.stdout  # its output reached the admin
    assert f"the app's 'update' command timed out after {BOUND}s and was stopped" in result.stdout
    assert f"the app's 'update' command failed (exit 124): {HANGING_UPDATE}" in result.stdout  # as any failure
    assert took < 60 + BOUND + STOP_GRACE, took  # the install with its backup, then the bound: never for ever
    assert dpkg_status(node, pkg) == "install ok half-configured"

    # nothing of the command is left: not the shell, not its children, not the one in its own session
    assert "sleep 100" not in sh(node, f"ps -u {pkg} -o pid=,args=")
    assert sh(node, "systemctl list-units --all --no-legend 'appdeb-*.scope'").strip() == ""
    assert sh(node, f"cat /var/lib/appdeb/{pkg}/configured-version").strip() == "1.0.0-1"  # not migrated
    assert sh(node, "python3 -c " + repr(LOCK_FREE)).strip() == "free"
    assert sh(node, f"ls /var/lib/{pkg}/ | grep ^ran- || echo none").strip() == "none"  # root ran neither

    # the data is the previous release's: it installs again at once (no update to run) and serves
    nodes.install(node, [v1.deb])
    assert dpkg_status(node, pkg) == "install ok installed"
    assert http_get(port_of(pkg)) == f"Hello from hello ({instance}, 1.0.0-1)\n"
    assert sh(node, f"cat /var/lib/{pkg}/data.txt") == f"data of {pkg}\n"
    assert sh(node, f"test -e /var/lib/{pkg}/update-runs || echo none").strip() == "none"


# The app's verify asks the web, which is broken (every answer a 500): here it waits as such a command
# would on a web that never answers, with children of its own (one in a session of its own).
WAITING_VERIFY = ('date +%s > "$APPDEB_STATE_DIR/verify-started"; '
                  'echo "verify: asking the web, with $APPDEB_SECRET_FILE"; sleep 1201 & setsid sleep 1202 & sleep 120')
BROKEN_WEB = '''\
def application(environ, start_response):
    start_response("500 Internal Server Error", [("Content-Length", "0")])
    return [b""]
'''


def test_the_apps_verify_is_stopped_once_appdebs_own_checks_failed(node: nodes.Node, tmp_path: Path) -> None:
    """appdeb's own checks find the web broken: the app's verify command, still waiting, is stopped at
    once (its scope and every process in it, its secret copy), and the install fails saying both."""
    app = lifecycle_app(tmp_path / "app", verify=WAITING_VERIFY)
    (app / "hello.py").write_text(BROKEN_WEB)
    deb = build_app(app, tmp_path / "debs", "tmo3")
    pkg = deb.package

    result = nodes.install(node, [deb.deb], check=False)
    ended = time.time()
    # the units' round and the web's 20 s, then the stop: not the command's 120 s (nor its 300 s bound)
    took = ended - int(sh(node, f"cat /var/lib/{pkg}/verify-started"))
    assert took < 60, took
    assert result.returncode != 0, result.stdout
    assert dpkg_status(node, pkg) == "install ok half-configured"
    copy = re.search(r"verify: asking the web, with (/run/appdeb/\S+/secret-\S+)", result.stdout)
    assert copy, result.stdout  # it ran (from the start of verify's checks), with its copy of the secret
    assert f"the web process does not answer GET / on 127.0.0.1:{port_of(pkg)}: HTTP 500" in result.stdout
    assert "the app's verify command was stopped: appdeb's own checks above failed" in result.stdout

    assert sh(node, f"pgrep -u {pkg} -a sleep || echo none").strip() == "none"
    assert sh(node, "systemctl list-units --all --no-legend 'appdeb-*.scope'").strip() == ""
    assert sh(node, f"test -e {copy[1]} || echo gone").strip() == "gone"
    assert sh(node, "python3 -c " + repr(LOCK_FREE)).strip() == "free"
