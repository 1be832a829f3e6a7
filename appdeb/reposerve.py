"""How nodes consume the repository: a small HTTP server for ROOT/public and apt client files.

The server is for tests, demos and small setups (`appdeb repo serve`); a real
deployment serves ROOT/public with any static web server (see repo/README.md).
"""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Callable
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from .repoconfig import RepoConfig, check_name


class _Handler(SimpleHTTPRequestHandler):
    """Static files, except that index files under dists/ are never answered 304.

    apt revalidates InRelease with If-Modified-Since, which has 1 s resolution: a
    publish in the same second as the client's previous fetch leaves the mtime
    "not newer", and a plain static server would answer 304 with stale metadata.
    Index files are small, so we always send them whole, marked no-cache. Pool
    files (.deb) are immutable and keep normal conditional-GET behaviour.
    """

    quiet = True

    def _is_index(self) -> bool:
        return urlsplit(self.path).path.startswith("/dists/")

    def send_head(self) -> io.BytesIO | BinaryIO | None:
        if self._is_index():
            del self.headers["If-Modified-Since"]
            del self.headers["If-None-Match"]
        return super().send_head()

    def end_headers(self) -> None:
        if self._is_index():
            self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        if not self.quiet:
            super().log_message(format, *args)


class RepoServer:
    """A running HTTP server for ROOT/public; close() it (or use `with`)."""

    def __init__(self, httpd: ThreadingHTTPServer, thread: threading.Thread | None) -> None:
        self.httpd = httpd
        self.thread = thread
        host, port = httpd.server_address[:2]
        self.url = f"http://{host!s}:{port}/"

    def close(self) -> None:
        """Stop serving and release the port."""
        if self.thread is not None:
            self.httpd.shutdown()
            self.thread.join()
        self.httpd.server_close()

    def __enter__(self) -> RepoServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _server(cfg: RepoConfig, host: str, port: int, quiet: bool) -> ThreadingHTTPServer:
    cfg.public_dir.mkdir(parents=True, exist_ok=True)  # servable (empty) before the first publish
    handler = type("Handler", (_Handler,), {"quiet": quiet})
    httpd = ThreadingHTTPServer((host, port), partial(handler, directory=str(cfg.public_dir)))
    httpd.daemon_threads = True
    return httpd


def serve(cfg: RepoConfig, host: str = "127.0.0.1", port: int = 0, *, quiet: bool = True) -> RepoServer:
    """Serve ROOT/public from a background thread; port 0 picks a free port (see .url)."""
    httpd = _server(cfg, host, port, quiet)
    thread = threading.Thread(target=httpd.serve_forever, name="appdeb-repo-http", daemon=True)
    thread.start()
    return RepoServer(httpd, thread)


def serve_forever(
    cfg: RepoConfig,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    ready: Callable[[str], None] | None = None,
    quiet: bool = False,
) -> None:
    """Blocking variant for `appdeb repo serve`; returns on Ctrl-C. `ready` gets the URL."""
    server = RepoServer(_server(cfg, host, port, quiet), None)
    if ready is not None:
        ready(server.url)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        print(file=sys.stderr)
    finally:
        server.close()


def client_config(
    cfg: RepoConfig,
    url: str,
    name: str,
    distribution: str | None = None,
    component: str | None = None,
) -> dict[str, str]:
    """Absolute path -> content of the two files a node needs to trust and use the repo.

    The key goes to /etc/apt/keyrings and is bound to this source only (Signed-By),
    so it cannot vouch for other repositories: no apt-key, no trusted.gpg.d.
    """
    check_name(name)
    keyfile = f"/etc/apt/keyrings/{name}.asc"
    sources = (
        "Types: deb\n"
        f"URIs: {url}\n"
        f"Suites: {distribution or cfg.distribution}\n"
        f"Components: {component or cfg.component}\n"
        f"Signed-By: {keyfile}\n"
    )
    return {keyfile: cfg.key_asc.read_text(), f"/etc/apt/sources.list.d/{name}.sources": sources}


def write_client_config(
    root_dir: Path,
    cfg: RepoConfig,
    url: str,
    name: str,
    distribution: str | None = None,
    component: str | None = None,
) -> list[Path]:
    """Write client_config() below root_dir (`/`, or a node image's root); world-readable
    because apt reads them as the unprivileged _apt user."""
    written: list[Path] = []
    for path, text in client_config(cfg, url, name, distribution, component).items():
        dest = root_dir / path.lstrip("/")
        dest.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        dest.write_text(text)
        dest.chmod(0o644)
        written.append(dest)
    return written
