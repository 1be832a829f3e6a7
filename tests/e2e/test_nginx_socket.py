"""The nginx site reaches gunicorn over the web socket's unix listener, which the app's user cannot touch.

examples/hello with its site on a private-network node (instance ns1). The socket lives in
/run/appdeb/PKG, a directory only root writes; only root and nginx (www-data) may connect. The app's
user (runuser) tries to replace, redirect, re-own and take over the socket and its directory; every
attempt fails and nginx still reaches the same socket, which still leads to the app.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from appdeb.build.pipeline import BuildResult
from appdeb.node import harness as nodes
from appdeb.node import network

from ..conftest import EXAMPLES
from .apps import build_app, port_of, sh

pytestmark = [pytest.mark.e2e, pytest.mark.private_nodes]
PKG = "hello-ns1"
SOCK = f"/run/appdeb/{PKG}/web.sock"
HOST = f"{PKG}.localhost"
# hello, plus a request that hangs and one that kills its worker: the fail-safe ends hold over the socket;
# and one that answers the client's address as the app sees it
MISBEHAVING = '''

import ctypes
import time

_hello = application


def application(environ, start_response):
    if environ["PATH_INFO"] == "/whoami":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [repr(environ.get("REMOTE_ADDR")).encode()]
    if environ["PATH_INFO"] == "/scheme":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["wsgi.url_scheme"].encode()]
    if environ["PATH_INFO"] == "/wedge":
        time.sleep(120)
    if environ["PATH_INFO"] == "/work":  # an honest request shorter than web.timeout (10 s)
        time.sleep(9)
    if environ["PATH_INFO"] == "/segfault":
        ctypes.string_at(0)
    return _hello(environ, start_response)
'''


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    app = tmp_path_factory.mktemp("nginxsock") / "hello"
    shutil.copytree(EXAMPLES / "hello", app, ignore=shutil.ignore_patterns(".appdeb"))
    spec = yaml.safe_load((app / "app.yaml").read_text())
    spec["web"] = {"nginx": True}
    (app / "app.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (app / "hello.py").write_text((app / "hello.py").read_text() + MISBEHAVING)
    return app


@pytest.fixture(scope="module")
def deb(app_dir: Path) -> BuildResult:
    return build_app(app_dir, app_dir.parent / "dist1", "ns1")


@pytest.fixture(scope="module")
def node(node_image: Path, deb: BuildResult) -> Iterator[nodes.Node]:
    n = nodes.up(f"ns{int(time.time()) % 100000}", network="private")
    try:
        nodes.install(n, [deb.deb])
        yield n
    finally:
        nodes.down(n.name)


def through_nginx(node: nodes.Node, path: str = "/", timeout: float = 10) -> tuple[int, str]:
    """GET through the site (port 80 on the node's private address), as a browser would."""
    req = urllib.request.Request(f"http://{node.address}{path}", headers={"Host": HOST})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def identity(node: nodes.Node, path: str) -> str:
    """Type, mode, owner, group and inode of a path, without following a link."""
    return sh(node, f"stat -c '%F %a %U %G %i' {path}").strip()


def as_user(node: nodes.Node, user: str, script: str) -> subprocess.CompletedProcess[str]:
    return nodes.run_in(node, ["runuser", "-u", user, "--", "sh", "-c", script])


def test_the_site_goes_through_the_unix_socket(node: nodes.Node) -> None:
    assert f"server unix:{SOCK} fail_timeout=0;" in sh(node, f"cat /etc/nginx/sites-enabled/{PKG}.conf")
    assert identity(node, SOCK).rsplit(" ", 1)[0] == "socket 660 root www-data"
    assert identity(node, f"/run/appdeb/{PKG}").rsplit(" ", 1)[0] == "directory 711 root root"
    assert identity(node, "/run/appdeb").split()[2:4] == ["root", "root"]
    status, body = through_nginx(node)
    assert status == 200 and "from hello" in body
    # nginx's user and root connect; the direct port still serves
    for user in ("www-data", "root"):
        out = as_user(node, user, f"curl -s --unix-socket {SOCK} -H 'Host: {HOST}' http://x/")
        assert out.returncode == 0 and "from hello" in out.stdout, (user, out.stdout)
    assert "from hello" in sh(node, f"curl -s http://127.0.0.1:{port_of(PKG)}/")
    # its own unit (an upgrade starts it; the port's socket is never restarted), gunicorn got both
    assert sh(node, f"systemctl show -p Listen --value {PKG}-nginx.socket").split() == [SOCK, "(Stream)"]
    # gunicorn's master (the app's user's) cannot stretch a start, stop or restart job of its unit without end
    assert sh(node, f"systemctl show -p JobRunningTimeoutUSec --value {PKG}.service").strip() == "2min 30s"
    assert "TCP_NODELAY" not in sh(node, f"journalctl -u {PKG}-nginx.socket -o cat --no-pager")


PORT_LOAD = """\
import sys, threading, time, urllib.request
done, stop = [], time.monotonic() + float(sys.argv[2])
def hammer():
    while time.monotonic() < stop:
        with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=10) as r:
            done.append(r.status)
threads = [threading.Thread(target=hammer) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
print(len(done), set(done))
"""


def test_the_app_sees_the_address_nginx_saw_and_never_a_forged_one(node: nodes.Node) -> None:
    """Through the site (the unix socket has no peer address) REMOTE_ADDR is the client's address as nginx
    saw it: the host's on the node network, whatever X-Real-IP or X-Forwarded-For the client sends. On the
    TCP port the peer's own address stays, and a forged X-Real-IP there is never read."""
    forged = {"Host": HOST, "X-Real-IP": "203.0.113.66", "X-Forwarded-For": "203.0.113.66"}
    for headers in ({"Host": HOST}, forged):
        req = urllib.request.Request(f"http://{node.address}/whoami", headers=headers)
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.read().decode() == repr(network.host_address()), headers
    port = port_of(PKG)
    assert sh(node, f"curl -s http://127.0.0.1:{port}/whoami") == "'127.0.0.1'"
    assert sh(node, f"curl -s -H 'X-Real-IP: 203.0.113.66' http://127.0.0.1:{port}/whoami") == "'127.0.0.1'"
    # nor any forwarded header on the port, even from 127.0.0.1 (gunicorn's default believed X-Forwarded-Proto)
    for header in ("X-Forwarded-Proto: https", "X-Forwarded-Ssl: on", "X-Forwarded-Protocol: ssl"):
        assert sh(node, f"curl -s -H '{header}' http://127.0.0.1:{port}/scheme") == "http", header
    # through the site the scheme is nginx's, whatever the client claims: gunicorn reads only the header nginx
    # sets there (X-Forwarded-Ssl and X-Forwarded-Protocol pass nginx as the client sent them)
    for claim in ({"X-Forwarded-Proto": "https"}, {"X-Forwarded-Ssl": "on"}, {"X-Forwarded-Protocol": "ssl"}):
        req = urllib.request.Request(f"http://{node.address}/scheme", headers={"Host": HOST, **claim})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.read() == b"http", claim


def test_a_run_from_roots_terminal_leaves_nothing_on_it(node: nodes.Node) -> None:
    """`PKG run` from root's terminal hands the command that terminal while it runs (an interactive shell
    needs it); what it started in the background must not keep it after it returns and read what root
    types next: everything in the command's scope is stopped when it returns."""
    inner = f"{PKG} run sh -c 'exec 3<&0; (sleep 20; cat <&3 > /var/lib/{PKG}/typed) & sleep 0.5; echo started'"
    out = sh(node, f'script -qec "{inner}" /dev/null < /dev/null')
    assert "started" in out, out
    assert sh(node, f"pgrep -u {PKG} -x sleep || true").strip() == ""
    assert sh(node, f"pgrep -u {PKG} -a | grep -v ' web$' || true").strip() == ""  # the web unit only
    # and the command never had root's terminal: one of its own, which root relays (a descriptor of it passed
    # on to another process of the app's reads a hang-up once the command returns)
    roots, its = sh(node, f'script -qec "tty; {PKG} run tty" /dev/null < /dev/null').split()[:2]
    assert roots.startswith("/dev/pts/") and its.startswith("/dev/pts/") and its != roots, (roots, its)


def test_both_sockets_are_served_and_a_busy_port_does_not_starve_the_site(node: nodes.Node) -> None:
    """appdeb's sync worker class (appdeb_runtime/sync_worker.py) serves each socket as gunicorn serves
    one, taking at most DRAIN requests in a row from one: 8 clients keep the port busy for 6 s, and
    every request through the site meanwhile is answered within a second."""
    assert "Using worker: appdeb_runtime.sync_worker.Worker" in sh(
        node, f"journalctl -u {PKG}.service -o cat --no-pager")
    loader = threading.Thread(target=lambda: results.append(sh(node, f"python3 -c '{PORT_LOAD}' {port_of(PKG)} 6")))
    results: list[str] = []
    loader.start()
    time.sleep(1)
    waits = []
    for _ in range(20):
        started = time.monotonic()
        status, body = through_nginx(node)
        waits.append(time.monotonic() - started)
        assert status == 200 and "from hello" in body
        time.sleep(0.1)
    loader.join(60)
    count, statuses = results[0].split(" ", 1)
    assert int(count) > 200 and statuses.strip() == "{200}"
    assert max(waits) < 1.0, waits


def test_the_app_user_cannot_replace_redirect_or_use_the_socket(node: nodes.Node) -> None:
    before = {p: identity(node, p) for p in (SOCK, f"/run/appdeb/{PKG}", "/run/appdeb")}
    attempts = {
        "connect": f"curl -s --unix-socket {SOCK} http://x/",
        "remove": f"rm -f {SOCK}",
        "rename": f"mv {SOCK} {SOCK}.old",
        "replace by a link": f"ln -sfn /tmp/evil.sock {SOCK}",
        "listen in its place": f"python3 -c \"import socket; socket.socket(socket.AF_UNIX).bind('{SOCK}.x')\"",
        "re-own": f"chgrp {PKG} {SOCK}",
        "re-mode": f"chmod 777 {SOCK}",
        "open the directory": f"chmod 777 /run/appdeb/{PKG}",
        "list the directory": f"ls /run/appdeb/{PKG}",
        "replace the directory": f"mv /run/appdeb/{PKG} /run/appdeb/gone",
        "plant a directory": f"mkdir /run/appdeb/{PKG}.evil",
    }
    for what, script in attempts.items():
        out = as_user(node, PKG, script)
        assert out.returncode != 0, f"the app user could {what}: {out.stdout}"
    # nothing crossed: the same socket (same inode, owner, mode) and it still leads to the app
    assert {p: identity(node, p) for p in before} == before
    assert sh(node, f"ls /run/appdeb/{PKG}").split().count("web.sock") == 1
    assert sh(node, "ls /run/appdeb").split() == [PKG]
    status, body = through_nginx(node)
    assert status == 200 and "from hello" in body


def test_no_process_of_the_app_user_writes_into_the_web_processes(node: nodes.Node) -> None:
    """gunicorn's master runs as the app's user and is the one process its unit hears (NotifyAccess=main):
    another process of that user (a timer, a shell of the app's) writing its memory could stretch every job
    of the unit. The master and its workers are not dumpable: their memory is not the user's to open."""
    master = sh(node, f"systemctl show -p MainPID --value {PKG}.service").strip()
    pids = [master, *sh(node, f"pgrep -P {master}").split()]
    assert len(pids) >= 2, pids
    uid = sh(node, f"id -u {PKG}").strip()
    for pid in pids:
        assert sh(node, f"ps -o uid= -p {pid}").strip() == uid  # the app's user's processes
        opened = as_user(node, PKG, f"python3 -c \"open('/proc/{pid}/mem', 'r+b')\" 2>&1")
        assert opened.returncode != 0 and "Permission denied" in opened.stdout, (pid, opened.stdout)
        environ = as_user(node, PKG, f"cat /proc/{pid}/environ 2>&1")
        assert environ.returncode != 0, (pid, environ.stdout)
    assert through_nginx(node)[0] == 200  # and it serves as before


def test_the_oom_killer_takes_a_worker_and_the_unit_serves_on(node: nodes.Node) -> None:
    """The instance's cgroup reaching MemoryMax before a worker's memory check: the kernel kills the largest
    process, a worker, and systemd leaves the unit running (OOMPolicy=continue). Here a worker is killed as
    the OOM killer would (SIGKILL; the nodes' memory controller cannot be set): the master forks another, the
    unit stays active with the same master, and the site answers."""
    assert sh(node, f"systemctl show -p OOMPolicy --value {PKG}.service").strip() == "continue"
    master = sh(node, f"systemctl show -p MainPID --value {PKG}.service").strip()
    workers = sh(node, f"pgrep -P {master}").split()
    sh(node, f"kill -KILL {workers[0]}")
    deadline = time.monotonic() + 20
    while len(sh(node, f"pgrep -P {master}").split()) < len(workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    now = sh(node, f"pgrep -P {master}").split()
    assert len(now) == len(workers) and workers[0] not in now
    assert sh(node, f"systemctl is-active {PKG}.service").strip() == "active"
    assert sh(node, f"systemctl show -p MainPID --value {PKG}.service").strip() == master
    assert through_nginx(node)[0] == 200


# In the node, as root: wait until every idle worker's heartbeat (gunicorn's temporary file, its mtime set to
# the monotonic clock) is over 1.5 s old, then send three 9 s requests at once to the port.
LATE_IN_THE_WAIT = """
import concurrent.futures, os, socket, sys, time
master, port = int(sys.argv[1]), int(sys.argv[2])
beats = []
for w in open(f"/proc/{master}/task/{master}/children").read().split():
    fds = [f"/proc/{w}/fd/{fd}" for fd in os.listdir(f"/proc/{w}/fd")]
    beats += [fd for fd in fds if "gunicorn" in os.readlink(fd)]
deadline = time.monotonic() + 30
while min(time.monotonic() - os.stat(b).st_mtime for b in beats) < 1.5 and time.monotonic() < deadline:
    time.sleep(0.01)
def ask(_):
    c = socket.create_connection(("127.0.0.1", port), timeout=30)
    c.sendall(b"GET /work HTTP/1.0\\r\\n\\r\\n")
    data = b""
    while d := c.recv(4096):
        data += d
    return data.split(b" ", 2)[1].decode() if data else "closed"
with concurrent.futures.ThreadPoolExecutor(3) as pool:
    print(len(beats), *pool.map(ask, range(3)))
"""


def test_a_request_shorter_than_the_timeout_is_never_killed_as_wedged(node: nodes.Node) -> None:
    """Every request has the whole web.timeout: the heartbeat is touched before each request, not only before
    each wait. An idle worker waits up to timeout/2 (5 s), so a request that woke it late started with a
    heartbeat up to 5 s old: a 9 s request sent when every worker's heartbeat was over 1.5 s old was killed
    as wedged (500)."""
    master = sh(node, f"systemctl show -p MainPID --value {PKG}.service").strip()
    script = f"cat > /tmp/late.py <<'EOF'\n{LATE_IN_THE_WAIT}\nEOF\npython3 /tmp/late.py {master} {port_of(PKG)}"
    workers, *answers = sh(node, script).split()
    assert int(workers) >= 2 and answers == ["200"] * 3, (workers, answers)
    assert "WORKER TIMEOUT" not in sh(node, f"journalctl -u {PKG}.service --since=-40s")


def test_a_restart_keeps_the_socket_and_nginx_answers_after_it(node: nodes.Node) -> None:
    before = identity(node, SOCK)
    sh(node, f"systemctl restart {PKG}.service")
    assert identity(node, SOCK) == before  # systemd holds it: the app never creates or removes it
    deadline = time.monotonic() + 30
    while (result := through_nginx(node))[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert result[0] == 200 and "from hello" in result[1]


def test_a_hung_or_crashing_request_ends_as_an_error_page_and_the_site_serves_on(node: nodes.Node) -> None:
    """A worker stuck past web.timeout (10 s) is killed and answers 500 before nginx's own limit (timeout + 5);
    a crashed worker's closed connection is nginx's 502: as over TCP (docs/failsafe.md)."""
    started = time.monotonic()
    status, _ = through_nginx(node, "/wedge", timeout=40)
    assert status == 500 and 9 < time.monotonic() - started < 15
    assert through_nginx(node, "/segfault")[0] == 502
    status, body = through_nginx(node)
    assert status == 200 and "from hello" in body


def reloads(node: nodes.Node) -> int:
    return sh(node, "journalctl -u nginx.service -o cat --no-pager").count("Reloaded")


def test_an_upgrade_from_a_release_without_the_socket_answers_throughout(node: nodes.Node, app_dir: Path) -> None:
    """The state such a release leaves: nginx on the web port over TCP, no PKG-nginx.socket, the app running.

    The upgrade must not reload nginx into a socket that is not there yet (systemd refuses to start
    it beside the running service): nginx stays on the old process's port until the socket starts
    with the new process and reloads nginx. Requests through nginx during the whole upgrade all succeed.
    """
    site = f"/opt/{PKG}/appdeb/nginx-site.conf"
    old_unit = f"/etc/systemd/system/{PKG}.service"  # the web unit as such a release had it: the port only
    sh(node, f"sed -i 's|server unix:{SOCK}|server 127.0.0.1:{port_of(PKG)}|' {site} && systemctl reload nginx"
             f" && systemctl cat {PKG}.service | grep -v '^# /' | sed 's| {PKG}-nginx.socket||' > {old_unit}"
             f" && systemctl daemon-reload && systemctl stop {PKG}-nginx.socket && systemctl restart {PKG}.service"
             f" && rm {old_unit} && systemctl is-active {PKG}.service")  # removed: systemd reloads it in postinst
    assert not sh(node, f"ls /run/appdeb/{PKG}").split().count("web.sock")
    assert through_nginx(node)[0] == 200
    reloads_before = reloads(node)
    upgrade = build_app(app_dir, app_dir.parent / "dist2", "ns1", build_number=2)
    statuses: list[int] = []
    done = threading.Event()

    def load() -> None:
        while not done.is_set():
            statuses.append(through_nginx(node)[0])
            time.sleep(0.02)

    loader = threading.Thread(target=load)
    loader.start()
    try:
        nodes.install(node, [upgrade.deb])
        time.sleep(1)
    finally:
        done.set()
        loader.join()
    assert len(statuses) > 20 and set(statuses) == {200}, statuses
    assert identity(node, SOCK).rsplit(" ", 1)[0] == "socket 660 root www-data"
    assert f"server unix:{SOCK}" in sh(node, f"cat {site}")
    status, body = through_nginx(node)
    assert status == 200 and "1.0.0-2" in body
    # nginx was reloaded into the site once the socket listened (its ExecStartPost): a reload before
    # it would have shown as 502s above, none would leave nginx on the port
    assert reloads(node) > reloads_before
