"""Vendoring without the index: exact pins whose wheels uv has cached never wait for it.

A real local index (PEP 503 pages and wheels on loopback) serves the first build; then the index is
replaced by a listener that accepts connections and never answers (a stalled index) or by nothing
(a closed port), and the build must come out of uv's cache alone, byte for byte the same.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from appdeb.build.pipeline import BuildOptions, build
from appdeb.build.requirements import pins
from appdeb.errors import AppdebError

APP_YAML = """name: offl
version: "1.0.0"
description: |
  Offline: a test app
  Built from pinned requirements.
maintainer: "appdeb developers <dev@appdeb.invalid>"
platform: [python]
require:
  os: debian
  python: ">=3.11"
  pip: requirements.txt
commands:
  verify: python3 -c "import greetlib"
"""


def wheel(dest: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> None:
    """A minimal pure-Python wheel: one module and its dist-info."""
    files = {f"{name}.py": f"VERSION = {version!r}\n".encode(),
             f"{name}-{version}.dist-info/METADATA": (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                                      + "".join(f"Requires-Dist: {r}\n" for r in requires)).encode(),
             f"{name}-{version}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                                  b"Tag: py3-none-any\n"}
    record = "".join(f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
                     f"{len(data)}\n" for path, data in files.items())
    files[f"{name}-{version}.dist-info/RECORD"] = (record + f"{name}-{version}.dist-info/RECORD,,\n").encode()
    with zipfile.ZipFile(dest / f"{name}-{version}-py3-none-any.whl", "w") as zf:
        for path, data in files.items():
            zf.writestr(zipfile.ZipInfo(path, (2020, 1, 1, 0, 0, 0)), data)


def index_tree(root: Path) -> Path:
    """greetlib 1.0 needs helperlib; helperlib has 2.0 and 2.1 (so an open dependency has a choice)."""
    (root / "files").mkdir(parents=True)
    wheel(root / "files", "greetlib", "1.0", ("helperlib>=2",))
    wheel(root / "files", "helperlib", "2.0")
    wheel(root / "files", "helperlib", "2.1")
    for project in ("greetlib", "helperlib"):
        page = root / "simple" / project
        page.mkdir(parents=True)
        links = "".join(f'<a href="../../files/{w.name}#sha256={hashlib.sha256(w.read_bytes()).hexdigest()}">'
                        f"{w.name}</a>\n" for w in sorted((root / "files").glob(f"{project}-*.whl")))
        (page / "index.html").write_text(f"<html><body>\n{links}</body></html>\n")
    return root


class Quiet(http.server.SimpleHTTPRequestHandler):
    """Pages that must be revalidated each time, as a busy index's soon are: uv asks again."""

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "max-age=0, must-revalidate")
        super().end_headers()

    def log_message(self, *args: object) -> None:
        pass


class Index:
    """A live index on a loopback port until stop()."""

    def __init__(self, root: Path) -> None:
        self.server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), lambda *a: Quiet(*a, directory=str(root)))  # type: ignore[misc]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/simple"
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.server.shutdown()
            self.server.server_close()
            self.running = False


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Index]:
    live = Index(index_tree(tmp_path / "index"))
    yield live
    live.stop()


class Stalled:
    """Accepts connections on a port and never answers: what a hung index looks like to a client."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.accepted.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, index: Index) -> Path:
    """uv against the local index only, in a private appdeb cache; the app directory to build."""
    monkeypatch.setenv("APPDEB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("APPDEB_VENDOR_TOOL", "uv")
    monkeypatch.setenv("UV_INDEX_URL", index.url)
    monkeypatch.setenv("UV_HTTP_TIMEOUT", "600")  # a stalled index would hold the build that long
    for name in ("UV_EXTRA_INDEX_URL", "UV_FIND_LINKS", "UV_INDEX", "UV_DEFAULT_INDEX"):
        monkeypatch.delenv(name, raising=False)
    app = tmp_path / "app"
    app.mkdir()
    (app / "app.yaml").write_text(APP_YAML)
    (app / "main.py").write_text("x = 1\n")
    return app


def deb_bytes(app: Path, out: Path) -> bytes:
    result = build(app, BuildOptions(out_dir=out, source_date_epoch=1767225600))
    assert not result.reused
    return result.deb.read_bytes()


def test_pinned_warm_build_never_contacts_a_stalled_index(env: Path, tmp_path: Path,
                                                          index: Index) -> None:
    (env / "requirements.txt").write_text("greetlib==1.0\nhelperlib==2.0 --hash=sha256:" +
                                          hashlib.sha256((tmp_path / "index/files/helperlib-2.0-py3-none-any.whl")
                                                         .read_bytes()).hexdigest() + "\n")
    first = deb_bytes(env, tmp_path / "out1")
    cache = tmp_path / "cache" / "vendor"
    assert any((d / "lib" / "helperlib-2.0.dist-info").is_dir() for d in cache.iterdir())
    shutil.rmtree(cache)  # the finished tree is gone: uv runs again, from its own cache
    index.stop()  # the index stalls: its port accepts and never answers
    stalled = Stalled(index.port) if _port_free(index.port) else None
    if stalled is None:
        pytest.skip("the index's port was taken over before the stalled listener could bind it")
    try:
        assert deb_bytes(env, tmp_path / "out2") == first
        assert stalled.accepted == [], "the build contacted the index"
    finally:
        stalled.close()


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_an_open_dependency_asks_the_index(env: Path, tmp_path: Path, index: Index) -> None:
    """greetlib pinned, helperlib left to the resolver: offline would pick whatever is cached, so the
    index decides (2.1, the newest), even after a build that cached only 2.0."""
    (env / "requirements.txt").write_text("greetlib==1.0\nhelperlib==2.0\n")
    deb_bytes(env, tmp_path / "out1")
    (env / "requirements.txt").write_text("greetlib==1.0\n")
    deb_bytes(env, tmp_path / "out2")
    libs = [d / "lib" for d in (tmp_path / "cache" / "vendor").iterdir()]
    assert sorted(p.name for lib in libs for p in lib.glob("helperlib-*.dist-info")) == [
        "helperlib-2.0.dist-info", "helperlib-2.1.dist-info"]


def test_cold_build_with_unreachable_index_is_a_clear_error(tmp_path: Path, env: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing cached and the index's port closed: one clear message, exit 1, no traceback."""
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    (env / "requirements.txt").write_text("greetlib==1.0\nhelperlib==2.0\n")
    environ = {**os.environ, "UV_INDEX_URL": f"http://127.0.0.1:{closed}/simple", "PYTHONPATH": os.getcwd()}
    proc = subprocess.run([sys.executable, "-m", "appdeb.cli", "build", str(env), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, env=environ, timeout=300)
    assert proc.returncode == 1
    assert "could not install the Python requirements" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not list((tmp_path / "out").glob("*.deb"))
    with pytest.raises(AppdebError, match="could not install"):
        monkeypatch.setenv("UV_INDEX_URL", f"http://127.0.0.1:{closed}/simple")
        build(env, BuildOptions(out_dir=tmp_path / "out"))


@pytest.mark.parametrize(("lines", "expected"), [
    (("Django==5.0.1", "numpy===2.1.0"), {"django": "5.0.1", "numpy": "2.1.0"}),
    (("a[x]==1 ; python_version >= '3.11' --hash=sha256:00",), {"a": "1"}),
    (("a==1", "--require-hashes"), {"a": "1"}),
    (("a>=1",), None), (("a==1.*",), None), (("a",), None), (("-e ./pkg",), None),
    (("--index-url https://example.invalid/simple", "a==1"), None), (("./pkg",), None),
    (("a @ https://example.invalid/a.whl",), None),
])
def test_pins(tmp_path: Path, lines: tuple[str, ...], expected: dict[str, str] | None) -> None:
    assert pins(tmp_path, lines) == expected


def test_pins_follow_included_files(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("b==2\n-c cons.txt\n")
    (tmp_path / "cons.txt").write_text("c==3\n")
    assert pins(tmp_path, ("-r base.txt", "a==1")) == {"a": "1", "b": "2", "c": "3"}
    (tmp_path / "cons.txt").write_text("c<3\n")
    assert pins(tmp_path, ("-r base.txt", "a==1")) is None
