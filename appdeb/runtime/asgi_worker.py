"""The web process's worker class for an ASGI app: uvicorn's worker for gunicorn, with appdeb's memory bound.

gunicorn's arbiter keeps what the WSGI service has: a worker whose event loop stops ticking for
web.timeout seconds (an async handler that blocks the loop: the ASGI form of a wedge) misses its
heartbeat and is killed and replaced; max_requests (with jitter) recycles workers; the systemd
socket and graceful stop are the arbiter's. What this class adds:

- its own heartbeat, a task that tells the arbiter "alive" every second the loop gets a turn.
  uvicorn's comes from its main loop's every tenth tick, and each tick waits for whatever blocking
  work is ready in the loop, so a worker busy with honest CPU work in async handlers (ten requests of
  0.3 s ready at once) missed it for web.timeout and was killed mid-work (the `work` rows of
  docs/failsafe.md); now only one stretch of blocking longer than web.timeout, a wedge, gets a kill.
- the memory bound on that heartbeat, since uvicorn's worker never calls gunicorn_conf.post_request:
  a worker past web.max_worker_memory stops accepting, finishes what it serves and is replaced.
- the client's address on requests through the nginx site, whose unix socket gives none
  (site_client.py): the ASGI scope's `client` is then nginx's client, as REMOTE_ADDR is for WSGI.
- `alive = False` — how the base worker's reloader (`appdeb serve`) and the memory check say
  "leave" — becomes uvicorn's own graceful exit.

Imported by gunicorn in the worker only, where the vendored uvicorn-worker is on the path.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from uvicorn_worker import UvicornWorker  # type: ignore[import-not-found]  # vendored in asgi packages

from .gunicorn_conf import memory_limit_mb, rss_mb
from .site_client import real_ip, scheme


class Worker(UvicornWorker):  # type: ignore[misc]  # untyped base from the vendored package
    """UvicornWorker, with a heartbeat of its own, the memory bound and a graceful `alive = False`."""

    BEAT = 1.0  # seconds between heartbeats while the loop is free (gunicorn's timeout is web.timeout)

    @property
    def alive(self) -> bool:
        return bool(self.__dict__.get("_alive", True))

    @alive.setter
    def alive(self, value: bool) -> None:
        leaving = self.alive and not value
        self.__dict__["_alive"] = value
        if leaving:  # uvicorn's handler: stop accepting, finish the open requests, exit; the arbiter forks anew
            os.kill(os.getpid(), signal.SIGTERM)

    async def _serve(self) -> None:
        worker: Any = self
        worker.wsgi = _site_clients(worker.wsgi)  # uvicorn takes its app from here (UvicornWorker._serve)
        beat = asyncio.get_running_loop().create_task(self._beat())
        try:
            await super()._serve()
        finally:
            beat.cancel()

    async def _beat(self) -> None:
        limit = memory_limit_mb()
        while True:
            self.notify()
            if limit and self.alive and rss_mb() > limit:
                self.log.warning("worker %s uses %.0f MiB (web.max_worker_memory %d): replacing it", self.pid,
                                 rss_mb(), limit)
                self.alive = False
            await asyncio.sleep(self.BEAT)


def _site_clients(app: Any) -> Any:
    """The ASGI app, with `client` and `scheme` from nginx's X-Real-IP and X-Forwarded-Proto on a unix socket.

    Only the site's socket is a unix socket here (root's directory, root and www-data may connect):
    a connection over it has no peer address (uvicorn's client None, its server (path, None)); one
    over the TCP port keeps its own, and its X-Real-IP is never read."""

    async def with_client(scope: dict[str, Any], receive: Any, send: Any) -> None:
        server = scope.get("server")
        unix = scope.get("client") is None and server is not None and server[1] is None
        if unix and scope["type"] in ("http", "websocket"):
            headers = scope.get("headers") or ()
            if ip := real_ip(headers):
                scope = {**scope, "client": (ip, 0)}
            if proto := scheme(headers):  # nginx's $scheme, as gunicorn takes it for a WSGI app on this socket
                scope = {**scope, "scheme": proto if scope["type"] == "http" else proto.replace("http", "ws")}
        await app(scope, receive, send)

    return with_client
