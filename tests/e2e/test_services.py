"""Services on a real node: the Django polls example with PostgreSQL, files, nginx, a worker and a timer.

One node carries the whole story, step by step, because each step builds on the data of the last:
install → use through nginx → a failing dump stops the upgrade → the upgrade migrates after a dump →
rollback restores the old rows → a second instance beside it → purge keeps the database.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from appdeb.build.pipeline import BuildOptions, build
from appdeb.build.targets import get_target
from appdeb.node import harness as nodes

from ..conftest import EXAMPLES
from .apps import sh, target_python_env

pytestmark = [pytest.mark.e2e, pytest.mark.private_nodes]
INSTANCES = "instances:\n  sv1: {port: 8301, public_port: 8381}\n  sv2: {port: 8302, public_port: 8382}\n"


def make_versions(tmp: Path) -> dict[str, Path]:
    """v2 is the example as committed; v1 drops migration 0002 and the code marked for it."""
    v2 = tmp / "polls-v2"
    shutil.copytree(EXAMPLES / "polls", v2, ignore=shutil.ignore_patterns(".appdeb", "settings.local.env"))
    text = (v2 / "app.yaml").read_text().replace('schedule: "*:0/1"', 'schedule: "*:*:0/3"')
    (v2 / "app.yaml").write_text(text + INSTANCES)
    v1 = tmp / "polls-v1"
    shutil.copytree(v2, v1)
    for migration in (v1 / "polls" / "migrations").glob("0002_*.py"):
        migration.unlink()
    for py in v1.rglob("*.py"):
        source = py.read_text()
        if "# >>> v2" in source:
            py.write_text(re.sub(r"\n[ \t]*# >>> v2.*?# <<< v2[^\n]*", "", source, flags=re.S))
    (v1 / "app.yaml").write_text((v1 / "app.yaml").read_text().replace('version: "1.0.0"', 'version: "0.9.0"'))
    return {"v1": v1, "v2": v2}


# The PostgreSQL story on both releases (PostgreSQL 15 and 17): the package is built for the node's.
TARGETS = {"bookworm": "debian-12", "trixie": "debian-13"}


@pytest.fixture(scope="module", params=list(TARGETS))
def suite(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory, suite: str) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp(f"polls-{suite}")
    apps = make_versions(tmp)
    out: dict[str, Path] = {}
    target = TARGETS[suite]
    with pytest.MonkeyPatch.context() as mp:  # commands.build (collectstatic) runs with the target's python
        for name, value in target_python_env(get_target(target).python).items():
            mp.setenv(name, value)
        for key, inst, app in (("v1", "sv1", "v1"), ("v2", "sv1", "v2"), ("v2b", "sv2", "v2")):
            out[key] = build(apps[app], BuildOptions(instance=inst, out_dir=tmp / "dist" / key, target=target,
                                                    source_date_epoch=1767225600)).deb
    return out


@pytest.fixture(scope="module")
def node(node_image: Path, suite: str) -> Iterator[nodes.Node]:
    n = nodes.up(f"svc{int(time.time()) % 100000}", suite=suite, network="private")
    try:
        yield n
    finally:
        nodes.down(n.name)


def http(node: nodes.Node, port: int, path: str, host: str, data: dict[str, object] | None = None
         ) -> tuple[int, bytes]:
    """Through the node's nginx on its private address, as a browser would."""
    body = json.dumps(data).encode() if data is not None else None
    req = urllib.request.Request(f"http://{node.address}:{port}{path}", data=body, headers={
        "Host": host, "Content-Type": "application/json"})
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def health(node: nodes.Node, instance: str, port: int) -> dict[str, object]:
    status, body = http(node, port, "/health", f"polls-{instance}.localhost")
    assert status == 200, body
    return dict(json.loads(body))


def install(node: nodes.Node, deb: Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = nodes.install(node, [deb], check=False)
    assert (result.returncode == 0) == ok, result.stdout[-3000:]
    return result


def test_polls_lifecycle_with_services(node: nodes.Node, debs: dict[str, Path]) -> None:
    # install: the database is provisioned, migrations run, the app answers through nginx
    install(node, debs["v1"])
    info = health(node, "sv1", 8381)
    assert info["db"] == "postgresql" and info["migration"] == "0001_initial" and info["instance"] == "sv1"
    status, body = http(node, 8381, "/api/questions", "polls-sv1.localhost", {"text": "Tea?", "choices": ["yes", "no"]})
    assert status == 201, body
    assert [q["text"] for q in json.loads(http(node, 8381, "/api/questions", "polls-sv1.localhost")[1])] == ["Tea?"]
    assert sh(node, "runuser -u postgres -- psql -tAc \"SELECT count(*) FROM polls_question\" polls-sv1").strip() == "1"
    status, css = http(node, 8381, "/static/polls/style.css", "polls-sv1.localhost")
    assert status == 200 and css == (EXAMPLES / "polls/polls/static/polls/style.css").read_bytes()

    # the secret: root-only on disk, delivered to the service, absent from the .deb, units and journal
    secret = sh(node, "cat /etc/polls-sv1/secret").strip()
    assert len(secret) >= 40
    assert sh(node, "stat -c '%a %U' /etc/polls-sv1/secret").strip() == "600 root"
    for deb in debs.values():
        assert secret.encode() not in subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)],
                                                     capture_output=True, check=True).stdout
    assert secret not in sh(node, "cat /lib/systemd/system/polls-sv1*")
    assert secret not in sh(node, "journalctl --no-pager -o cat")
    assert secret not in sh(node, "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '")
    env = sh(node, "cat /proc/$(systemctl show -p MainPID --value polls-sv1.service)/environ | tr '\\0' '\\n'")
    assert "APPDEB_SECRET_FILE=/run/credentials/polls-sv1.service/secret" in env

    # the worker runs, the timer fires
    sh(node, "for i in $(seq 60); do [ -s /var/lib/polls-sv1/files/worker.heartbeat ] && exit 0; sleep 0.5; done; "
             "exit 1")
    # a tally written before the question was posted does not count: wait for one that has it
    sh(node, "for i in $(seq 60); do grep -q 'Tea?' /var/lib/polls-sv1/files/tally.json 2>/dev/null && exit 0; "
             "sleep 0.5; done; exit 1")
    assert json.loads(sh(node, "cat /var/lib/polls-sv1/files/tally.json"))["questions"][0]["text"] == "Tea?"

    # a failing dump stops the upgrade before anything is migrated
    sh(node, "mv /usr/bin/pg_dump /usr/bin/pg_dump.off")
    failed = install(node, debs["v2"], ok=False)
    assert "backup before the update failed" in failed.stdout
    assert sh(node, "runuser -u postgres -- psql -tAc \"SELECT max(name) FROM django_migrations WHERE app='polls'\" "
                    "polls-sv1").strip() == "0001_initial"
    sh(node, "mv /usr/bin/pg_dump.off /usr/bin/pg_dump && dpkg --configure -a")

    # the upgrade took a dump first (pg_restore can read it), then migrated; the secret survived
    assert health(node, "sv1", 8381)["migration"] == "0002_question_closed_at"
    backups = sh(node, "polls-sv1 backups").splitlines()
    upgrade = [b.split("\t")[0] for b in backups if "version=0.9.0-1" in b and "reason=upgrade" in b]
    assert upgrade, backups
    listing = sh(node, f"pg_restore --list /var/backups/polls-sv1/{upgrade[-1]}/services/postgres/postgres.dump")
    assert "TABLE DATA public polls_question" in listing
    assert sh(node, "cat /etc/polls-sv1/secret").strip() == secret

    # new rows in v2, then rollback to v1 with the backup taken when v1 was left: the old rows return
    http(node, 8381, "/api/questions", "polls-sv1.localhost", {"text": "Coffee?", "choices": ["yes"]})
    assert len(json.loads(http(node, 8381, "/api/questions", "polls-sv1.localhost")[1])) == 2
    result = nodes.run_in(node, ["apt-get", "install", "-y", "--allow-downgrades", nodes.copy_in(node, debs["v1"])])
    assert result.returncode == 0, result.stdout[-2000:]
    sh(node, f"polls-sv1 restore {upgrade[-1]}")
    assert [q["text"] for q in json.loads(http(node, 8381, "/api/questions", "polls-sv1.localhost")[1])] == ["Tea?"]
    assert health(node, "sv1", 8381)["migration"] == "0001_initial"


def test_web_unit_security_exposure(node: nodes.Node, debs: dict[str, Path]) -> None:
    out = sh(node, "systemd-analyze security --offline=yes /lib/systemd/system/polls-sv1.service 2>&1 | tail -1")
    score = float(re.search(r"exposure level for \S+: ([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    print(f"systemd-analyze security (offline) polls-sv1.service: {score}")
    assert score <= 2.0, out


def test_second_instance_and_purge_with_and_without_opt_in(node: nodes.Node, debs: dict[str, Path]) -> None:
    install(node, debs["v2b"])
    assert health(node, "sv2", 8382)["instance"] == "sv2"
    assert health(node, "sv1", 8381)["instance"] == "sv1"
    dbs = sh(node, "runuser -u postgres -- psql -tAc 'SELECT datname FROM pg_database ORDER BY 1'").split()
    assert "polls-sv1" in dbs and "polls-sv2" in dbs
    # the attacker: one instance's user, peer-authenticated as itself, reaches no other instance's database
    probe = nodes.run_in(node, ["runuser", "-u", "polls-sv2", "--", "psql", "-X", "-d", "polls-sv1", "-tAc",
                                "SELECT count(*) FROM pg_class"])
    assert probe.returncode != 0 and "permission denied for database" in probe.stdout, probe.stdout
    assert sh(node, "runuser -u polls-sv1 -- psql -X -d polls-sv1 -tAc 'SELECT 1'").strip() == "1"
    assert sh(node, "ls /etc/nginx/sites-enabled").split() == ["default", "polls-sv1.conf", "polls-sv2.conf"]
    sh(node, "getent passwd polls-sv1 polls-sv2 >/dev/null")

    result = nodes.run_in(node, ["apt-get", "purge", "-y", "polls-sv2"])
    assert result.returncode == 0, result.stdout
    assert "keeping database polls-sv2" in result.stdout
    assert "polls-sv2" in sh(node, "runuser -u postgres -- psql -tAc 'SELECT datname FROM pg_database'").split()
    assert sh(node, "ls /etc/nginx/sites-enabled").split() == ["default", "polls-sv1.conf"]
    purge_backup = sh(node, "ls /var/backups/polls-sv2").split()
    assert any(b.endswith("-purge") for b in purge_backup)
    sh(node, "test ! -e /etc/polls-sv2 && test ! -e /var/lib/polls-sv2 && test ! -e /opt/polls-sv2")
    assert health(node, "sv1", 8381)["instance"] == "sv1"

    # with the admin's opt-in, purge drops the database and the role; the dump taken first is kept
    sh(node, "echo APPDEB_PURGE_DATABASE=yes >> /etc/polls-sv1/settings.env")
    result = nodes.run_in(node, ["apt-get", "purge", "-y", "polls-sv1"])
    assert result.returncode == 0, result.stdout
    dbs = sh(node, "runuser -u postgres -- psql -tAc 'SELECT datname FROM pg_database'").split()
    assert "polls-sv1" not in dbs and "polls-sv2" in dbs
    assert sh(node, "runuser -u postgres -- psql -tAc \"SELECT count(*) FROM pg_roles WHERE rolname='polls-sv1'\"")\
        .strip() == "0"
    dump = sh(node, "ls -d /var/backups/polls-sv1/*-purge").split()[-1]
    assert "TABLE DATA public polls_question" in sh(node, f"pg_restore --list {dump}/services/postgres/postgres.dump")


REDIS_APP = """\
name: cache
version: "1.0.0"
description: an app that keeps a counter in redis
maintainer: "appdeb developers <dev@appdeb.invalid>"
platform: [python, wsgi]
wsgi:
  app: hello:application
services:
  redis: {}
commands:
  verify: redis-cli -s "$CONFIG_REDIS_SOCKET" ping
"""


def test_redis_is_one_private_server_per_instance(node_factory: object, tmp_path: Path) -> None:
    app = tmp_path / "cache"
    app.mkdir()
    (app / "app.yaml").write_text(REDIS_APP)
    shutil.copy(EXAMPLES / "hello" / "hello.py", app / "hello.py")
    debs = [build(app, BuildOptions(instance=i, out_dir=tmp_path / i, source_date_epoch=1)).deb for i in ("rd1", "rd2")]
    node = node_factory()  # type: ignore[operator]
    install(node, debs[0])
    install(node, debs[1])
    cli = 'redis-cli -s "$CONFIG_REDIS_SOCKET"'
    assert sh(node, f"cache-rd1 run sh -c '{cli} SET counter 41 && {cli} INCR counter'").split() == ["OK", "42"]
    assert sh(node, f"cache-rd2 run sh -c '{cli} GET counter'").strip() == ""  # its own server
    # the other instance's user cannot even open rd1's socket
    denied = nodes.run_in(node, ["runuser", "-u", "cache-rd2", "--", "redis-cli", "-s",
                               "/run/redis-cache-rd1/redis.sock", "PING"])
    assert "PONG" not in denied.stdout
    backup = sh(node, "cache-rd1 backup --reason test").strip().splitlines()[-1]
    assert sh(node, f"test -s {backup}/services/redis/redis.rdb && echo yes").strip() == "yes"
    sh(node, f"cache-rd1 run sh -c '{cli} SET counter 7'")
    sh(node, f"cache-rd1 restore {Path(backup).name}")
    assert sh(node, f"cache-rd1 run sh -c '{cli} GET counter'").strip() == "42"
    result = nodes.run_in(node, ["apt-get", "purge", "-y", "cache-rd1"])
    assert result.returncode == 0, result.stdout
    sh(node, "test ! -e /etc/redis/redis-cache-rd1.conf && test ! -e /var/lib/redis/cache-rd1")
    assert sh(node, "systemctl is-active redis-server@cache-rd1.service", check=False).strip() != "active"
    assert sh(node, f"cache-rd2 run sh -c '{cli} PING'").strip() == "PONG"
    # the app pauses its redis for ten days (one command of its own): root's backup, which asks that redis,
    # ends with an error within its bounds instead of waiting with it (in postinst: holding dpkg's lock)
    paused = nodes.run_in(node, ["runuser", "-u", "cache-rd2", "--", "redis-cli", "-s",
                                 "/run/redis-cache-rd2/redis.sock", "CLIENT", "PAUSE", "864000000", "ALL"])
    assert paused.stdout.strip() == "OK", paused.stdout
    started = time.monotonic()
    held = nodes.run_in(node, ["timeout", "200", "cache-rd2", "backup", "--reason", "paused"])
    assert held.returncode not in (0, 124) and time.monotonic() - started < 90, (held.returncode, held.stdout[-2000:])
    assert "does not answer" in held.stdout, held.stdout[-2000:]
    assert sh(node, "pgrep -u root -x redis-cli || true").strip() == ""  # nothing of root's left waiting
