"""The web process's worker class for a WSGI app: gunicorn's sync worker, serving two sockets as it serves one.

With the nginx site, systemd passes gunicorn two listening sockets: the port, and the site's unix
socket. gunicorn's sync worker then takes another loop (`run_for_multiple`): before every request
it touches its heartbeat twice and selects on every socket, then accepts and asks for its parent,
where with one socket it accepts again at once while connections wait and selects only when none
is left. That is three system calls per request more (strace), the gap between the generated unit
and gunicorn run by hand with one socket (`bench/serve.py`). This class serves each socket select
found ready the one-socket way: it accepts on it until none waits, then selects again; at most
DRAIN in a row, so a busy port never keeps the site's socket waiting for long. Everything else (the
heartbeat, the timeout that kills a wedged worker, max_requests, the memory bound's `alive = False`)
is the sync worker's own.

A request on the site's unix socket carries no peer address; its REMOTE_ADDR is the client's
address as nginx saw it (site_client.py).

Imported by gunicorn in the worker only, where the vendored gunicorn is on the path.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

from gunicorn.workers.sync import StopWaiting, SyncWorker  # type: ignore[import-untyped, import-not-found, unused-ignore]

from .site_client import real_ip

WAITING = (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK)


class Worker(SyncWorker):  # type: ignore[misc]  # untyped base from the vendored package
    """SyncWorker whose loop over several sockets accepts like its loop over one."""

    DRAIN = 64  # requests taken from one socket before the others are looked at again

    def run_for_multiple(self, timeout: float) -> None:
        while self.alive:
            self.notify()
            try:
                ready = self.wait(timeout)
            except StopWaiting:
                return
            for listener in ready or ():
                if listener != self.PIPE[0]:
                    self._drain(listener)
            if not self.is_parent_alive():
                return

    def _drain(self, listener: Any) -> None:  # gunicorn's socket wrapper (gunicorn.sock)
        for _ in range(self.DRAIN):
            if not self.alive:
                return
            try:
                self.accept(listener)
            except OSError as e:
                if e.errno not in WAITING:
                    raise
                return
            self.notify()

    def handle_request(self, listener: Any, req: Any, client: Any, addr: Any) -> Any:
        """On the site's unix socket (only nginx and root connect), REMOTE_ADDR is nginx's client."""
        if listener.FAMILY == socket.AF_UNIX:
            addr = real_ip(req.headers) or addr
        return super().handle_request(listener, req, client, addr)
