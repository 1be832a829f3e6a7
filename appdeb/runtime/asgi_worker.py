"""The web process's worker class for an ASGI app: uvicorn's worker for gunicorn, with appdeb's memory bound.

gunicorn's arbiter keeps what the WSGI service has: a worker whose event loop stops ticking for
web.timeout seconds (an async handler that blocks the loop: the ASGI form of a wedge) misses its
heartbeat and is killed and replaced; max_requests (with jitter) recycles workers; the systemd
socket and graceful stop are the arbiter's. Two things gunicorn's base worker does reach only a
sync worker's loop, so this one carries them to uvicorn's: what gunicorn_conf.post_request does after
each request is done on the heartbeat instead (a worker past web.max_worker_memory stops accepting,
finishes what it serves and is replaced), and `alive = False` — how the base worker's reloader
(`appdeb serve`) and its memory check say "leave" — becomes uvicorn's own graceful exit. Imported
by gunicorn in the worker only, where the vendored uvicorn-worker is on the path.
"""

from __future__ import annotations

import os
import signal

from uvicorn_worker import UvicornWorker  # type: ignore[import-not-found]  # vendored in asgi packages

from .gunicorn_conf import memory_limit_mb, rss_mb


class Worker(UvicornWorker):  # type: ignore[misc]  # untyped base from the vendored package
    """UvicornWorker, plus the memory check on each heartbeat (every web.timeout / 2 seconds)."""

    @property
    def alive(self) -> bool:
        return bool(self.__dict__.get("_alive", True))

    @alive.setter
    def alive(self, value: bool) -> None:
        leaving = self.alive and not value
        self.__dict__["_alive"] = value
        if leaving:  # uvicorn's handler: stop accepting, finish the open requests, exit; the arbiter forks anew
            os.kill(os.getpid(), signal.SIGTERM)

    async def callback_notify(self) -> None:
        self.notify()
        limit = memory_limit_mb()
        if limit and self.alive and rss_mb() > limit:
            self.log.warning("worker %s uses %.0f MiB (web.max_worker_memory %d): replacing it", self.pid,
                             rss_mb(), limit)
            self.alive = False
