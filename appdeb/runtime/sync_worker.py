"""The web process's worker class for a WSGI app: gunicorn's sync worker, as cheap on two sockets as on one.

With the nginx site the unit passes gunicorn two sockets (the port and the site's unix socket).
gunicorn's sync worker serves one socket by accepting until nothing waits and only then sleeping in
select(); for several it goes through select() (and a second heartbeat and a getppid) before every
accept, which cost the generated unit about a sixth more CPU per request than the same unit with
the port alone (bench/serve_variants.py `onesocket`). This worker serves several sockets the way the
original serves one: accept from each until none has a connection waiting, then wait on all.
Everything else (timeouts, max_requests, the memory check in post_request) is the sync worker's.

Imported by gunicorn in the worker only, where the vendored gunicorn is on the path.
"""

from __future__ import annotations

import errno

from gunicorn.workers.sync import StopWaiting, SyncWorker  # type: ignore[import-untyped]  # vendored

NOTHING_WAITING = (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK)


class Worker(SyncWorker):  # type: ignore[misc]  # untyped base from the vendored package
    """SyncWorker whose loop over several sockets accepts first and selects only when all are idle."""

    def run_for_multiple(self, timeout: float) -> None:
        while self.alive:
            self.notify()
            if self.accept_any():
                continue
            if not self.is_parent_alive():
                return
            try:
                self.wait(timeout)
            except StopWaiting:
                return

    def accept_any(self) -> bool:
        """Serve one waiting connection from each socket that has one; whether any had."""
        served = False
        for listener in self.sockets:
            if not self.alive:
                break
            try:
                self.accept(listener)
                served = True
            except OSError as exc:
                if exc.errno not in NOTHING_WAITING:
                    raise
        return served
