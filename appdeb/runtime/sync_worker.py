"""The web process's worker class for a WSGI app: gunicorn's sync worker, woken alone and serving two
sockets as it serves one.

Every idle sync worker waits in select() on the listening sockets, so each new connection wakes all
of them: one accepts it, the others fail with EAGAIN, touch their heartbeat, ask for their parent and
select again. With the default 2×CPUs+2 workers that is ~18 of the ~33 system calls a request costs
(strace -c of examples/hello under wrk). This class waits in epoll with EPOLLEXCLUSIVE (Linux 4.5):
the kernel wakes one idle worker per connection, not all.

With the nginx site, systemd passes gunicorn two listening sockets: the port, and the site's unix
socket. gunicorn's sync worker then takes another loop (`run_for_multiple`) that selects before
every request, where with one socket it accepts again at once while connections wait. Here one loop
serves one socket or several: a socket found ready is accepted on until none waits, at most DRAIN in
a row, so a busy port never keeps the site's socket waiting for long. Everything else (the
heartbeat touched before every wait and every request, the timeout that kills a wedged
worker, max_requests, the memory bound's `alive = False`, signals waking the worker through its
pipe) is the sync worker's own. Measured (strace -c -f of every serving process, 6 workers, wrk):
33 system calls per request for gunicorn run by hand, 20.3 for this class.

A request on the site's unix socket carries no peer address; its REMOTE_ADDR is the client's
address as nginx saw it (site_client.py).

Imported by gunicorn in the worker only, where the vendored gunicorn is on the path.
"""

from __future__ import annotations

import errno
import os
import select
import socket
from typing import Any

from gunicorn import util  # type: ignore[import-untyped, import-not-found, unused-ignore]
from gunicorn.workers.sync import SyncWorker  # type: ignore[import-untyped, import-not-found, unused-ignore]

from .site_client import real_ip

WAITING = (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK)


class Worker(SyncWorker):  # type: ignore[misc]  # untyped base from the vendored package
    """SyncWorker woken alone per connection (epoll, EPOLLEXCLUSIVE), with one loop for one socket or several."""

    DRAIN = 8  # requests taken from one socket before the others are looked at again

    def run(self) -> None:
        for listener in self.sockets:
            listener.setblocking(0)  # as SyncWorker.run: lost in the fork
        self._poller = select.epoll()
        self._listeners = {listener.fileno(): listener for listener in self.sockets}
        for fd in self._listeners:
            self._poller.register(fd, select.EPOLLIN | select.EPOLLEXCLUSIVE)
        self._poller.register(self.PIPE[0], select.EPOLLIN)  # a signal's wake-up byte (set_wakeup_fd)
        self.run_for_multiple(self.timeout or 0.5)  # no timeout would spin: SyncWorker's minimum

    def wait(self, timeout: float) -> list[Any]:
        """The listeners ready, after at most timeout seconds (the heartbeat was touched just before)."""
        ready = []
        for fd, _ in self._poller.poll(timeout):
            if fd == self.PIPE[0]:
                os.read(fd, 1)
            else:
                ready.append(self._listeners[fd])
        return ready

    def run_for_multiple(self, timeout: float) -> None:
        while self.alive:
            self.notify()
            for listener in self.wait(timeout):
                self._drain(listener)
            if not self.is_parent_alive():
                return

    def _drain(self, listener: Any) -> None:  # gunicorn's socket wrapper (gunicorn.sock)
        """Serve listener's waiting connections (SyncWorker.accept's steps), touching the heartbeat before
        each: every request has the whole web.timeout (one that came late in a wait would otherwise start
        with a heartbeat up to timeout/2 old); an accept that finds none touches nothing."""
        for _ in range(self.DRAIN):
            if not self.alive:
                return
            try:
                client, addr = listener.accept()
            except OSError as e:
                if e.errno not in WAITING:
                    raise
                return
            self.notify()
            client.setblocking(1)
            util.close_on_exec(client)
            self.handle(listener, client, addr)

    def handle_request(self, listener: Any, req: Any, client: Any, addr: Any) -> Any:
        """On the site's unix socket (only nginx and root connect), REMOTE_ADDR is nginx's client."""
        if listener.FAMILY == socket.AF_UNIX:
            addr = real_ip(req.headers) or addr
        return super().handle_request(listener, req, client, addr)
