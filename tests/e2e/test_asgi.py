"""An ASGI app on a real node: examples/chat (FastAPI, uvicorn workers, PostgreSQL) behind nginx.

One private-network node carries the whole story, each step on the data of the last (CI time
matters): install → HTTP, static files and a real WebSocket handshake + echo through nginx → the
upgrade runs a migration after a dump → a downgrade with the backup restored brings the old rows
and schema back → purge removes the instance and keeps its database.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from appdeb.build.pipeline import BuildOptions, build
from appdeb.build.render import WEBSOCKETS_PER_CLIENT
from appdeb.node import harness as nodes
from appdeb.node import network

from ..conftest import EPOCH, EXAMPLES
from ..wsclient import WebSocket, WebSocketError
from .apps import port_of, sh

pytestmark = [pytest.mark.e2e, pytest.mark.private_nodes]
PACKAGE = "chat-a1"
HOST = f"{PACKAGE}.localhost"


# the client's address as the app sees it (the ASGI scope's client)
WHOAMI = """

from fastapi import Request


@app.get("/whoami")
def whoami(request: Request) -> dict[str, object]:
    return {"client": request.client.host if request.client else None, "scheme": request.url.scheme}
"""


def make_versions(tmp: Path) -> dict[str, Path]:
    """1.0.0 is the example as committed; 0.9.0 drops the lines marked for v2 (migration 2, author)."""
    new = tmp / "chat-1.0"
    shutil.copytree(EXAMPLES / "chat", new, ignore=shutil.ignore_patterns(".appdeb", "settings.local.env"))
    with (new / "chat" / "web.py").open("a") as web:
        web.write(WHOAMI)
    old = tmp / "chat-0.9"
    shutil.copytree(new, old)
    for py in old.rglob("*.py"):
        py.write_text(re.sub(r"\n[ \t]*# >>> v2.*?# <<< v2[^\n]*", "", py.read_text(), flags=re.S))
    (old / "app.yaml").write_text((old / "app.yaml").read_text().replace('version: "1.0.0"', 'version: "0.9.0"'))
    return {"0.9": old, "1.0": new}


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("chat")
    return {key: build(app, BuildOptions(instance="a1", out_dir=tmp / key, source_date_epoch=EPOCH)).deb
            for key, app in make_versions(tmp).items()}


@pytest.fixture(scope="module")
def node(node_image: Path) -> Iterator[nodes.Node]:
    n = nodes.up(f"asgi{int(time.time()) % 100000}", network="private")
    try:
        yield n
    finally:
        nodes.down(n.name)


def http(node: nodes.Node, path: str, data: dict[str, object] | None = None) -> tuple[int, bytes]:
    """Through the node's nginx (port 80 on its private address), as a browser would."""
    body = json.dumps(data).encode() if data is not None else None
    req = urllib.request.Request(f"http://{node.address}{path}", data=body,
                                 headers={"Host": HOST, "Content-Type": "application/json"})
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code != 502 or time.monotonic() > deadline:
                return exc.code, exc.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)


def messages(node: nodes.Node) -> list[dict[str, object]]:
    status, body = http(node, "/api/messages")
    assert status == 200, body
    return list(json.loads(body))


def health(node: nodes.Node) -> dict[str, object]:
    status, body = http(node, "/health")
    assert status == 200, body
    return dict(json.loads(body))


def echo_through_nginx(node: nodes.Node, text: str) -> str:
    assert node.address is not None
    ws = WebSocket(node.address, 80, "/ws/echo", host_header=HOST)
    try:
        assert ws.headers.get("upgrade", "").lower() == "websocket"
        ws.send_text(text)
        return ws.receive_text()
    finally:
        ws.close()


def install(node: nodes.Node, deb: Path) -> str:
    result = nodes.install(node, [deb], check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    return result.stdout


def test_chat_install_websocket_upgrade_rollback_purge(node: nodes.Node, debs: dict[str, Path]) -> None:
    install(node, debs["0.9"])
    assert health(node) == {"ok": True, "schema": 1, "instance": "a1", "version": "0.9.0-1"}
    assert sh(node, f"systemctl is-active {PACKAGE}.service").strip() == "active"
    assert "Using worker: appdeb_runtime.asgi_worker.Worker" in sh(node, f"journalctl -u {PACKAGE}.service")
    assert http(node, "/api/messages", {"text": "hi"})[0] == 201
    assert messages(node) == [{"id": 1, "text": "hi"}]
    status, css = http(node, "/static/style.css")
    assert status == 200 and css == (EXAMPLES / "chat/static/style.css").read_bytes()
    assert echo_through_nginx(node, "hello over nginx") == "echo: hello over nginx"
    assert echo_through_nginx(node, "x" * 1000) == "echo: " + "x" * 1000
    sh(node, "nginx -t 2>&1")
    # through the site's unix socket the client is the address nginx saw, never one the client claims
    forged = {"Host": HOST, "X-Real-IP": "203.0.113.66", "X-Forwarded-For": "203.0.113.66"}
    with urllib.request.urlopen(urllib.request.Request(f"http://{node.address}/whoami", headers=forged),
                                timeout=10) as resp:
        assert json.loads(resp.read()) == {"client": network.host_address(), "scheme": "http"}
    # on the TCP port (any local process may connect) no forwarded header is believed, not even from 127.0.0.1
    direct = sh(node, f"curl -s -H 'X-Forwarded-For: 203.0.113.66' -H 'X-Forwarded-Proto: https' "
                      f"-H 'X-Real-IP: 203.0.113.66' http://127.0.0.1:{port_of(PACKAGE)}/whoami")
    assert json.loads(direct) == {"client": "127.0.0.1", "scheme": "http"}, direct

    # one client address holds at most WEBSOCKETS_PER_CLIENT WebSockets through the site (429 beyond):
    # hundreds would use up nginx's connections for every site on the node
    held: list[WebSocket] = []
    try:
        for _ in range(WEBSOCKETS_PER_CLIENT):
            held.append(WebSocket(node.address, 80, "/ws/echo", host_header=HOST))
        with pytest.raises(WebSocketError, match=" 429 "):
            WebSocket(node.address, 80, "/ws/echo", host_header=HOST)
        assert http(node, "/health")[0] == 200  # plain requests of the same client are served meanwhile
        held[0].send_text("still open")
        assert held[0].receive_text() == "echo: still open"
    finally:
        for ws in held:
            ws.close()
    deadline = time.monotonic() + 10
    while True:  # nginx counts a WebSocket until it has seen it close
        try:
            assert echo_through_nginx(node, "after the limit") == "echo: after the limit"
            break
        except WebSocketError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)

    # the upgrade dumps the database, then its update command applies migration 2
    out = install(node, debs["1.0"])
    assert "chat: applied migration 2" in out
    assert health(node)["schema"] == 2
    assert messages(node) == [{"id": 1, "text": "hi", "author": "anonymous"}]
    http(node, "/api/messages", {"text": "second", "author": "ann"})
    assert echo_through_nginx(node, "after the upgrade") == "echo: after the upgrade"
    backups = sh(node, f"{PACKAGE} backups").splitlines()
    upgrade = [b.split("\t")[0] for b in backups if "version=0.9.0-1" in b and "reason=upgrade" in b]
    assert upgrade, backups

    # back to 0.9 (it runs on the newer schema), then the backup taken when 0.9 was left: its rows return
    install(node, debs["0.9"])
    assert health(node)["schema"] == 2 and len(messages(node)) == 2
    sh(node, f"{PACKAGE} restore {upgrade[-1]}")
    assert health(node) == {"ok": True, "schema": 1, "instance": "a1", "version": "0.9.0-1"}
    assert messages(node) == [{"id": 1, "text": "hi"}]
    assert echo_through_nginx(node, "after the rollback") == "echo: after the rollback"

    # purge: the instance is gone, nginx no longer serves it, the database stays without the opt-in
    result = nodes.run_in(node, ["apt-get", "purge", "-y", PACKAGE])
    assert result.returncode == 0, result.stdout
    assert f"keeping database {PACKAGE}" in result.stdout
    sh(node, f"test ! -e /etc/{PACKAGE} && test ! -e /opt/{PACKAGE} && test ! -e /var/lib/{PACKAGE}")
    assert sh(node, "ls /etc/nginx/sites-enabled").split() == ["default"]
    assert PACKAGE in sh(node, "runuser -u postgres -- psql -tAc 'SELECT datname FROM pg_database'").split()
