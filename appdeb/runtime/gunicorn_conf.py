"""gunicorn settings the web verb loads (`--config python:appdeb_runtime.gunicorn_conf`).

A worker whose memory grew past APPDEB_WORKER_MEMORY_MB (web.max_worker_memory) finishes the request
it served and is then replaced: a leaking app stays bounded without a request being cut off, and
the unit's MemoryMax stays a last resort. gunicorn reads only the names it knows from this module.
"""

from __future__ import annotations

import os
from typing import Any

# No TCP peer's X-Forwarded-* headers are believed (gunicorn's default trusts 127.0.0.1, uvicorn's worker
# takes the same list): on the port any local process could claim https or another client's address. The
# site's unix socket, which only root and nginx reach, is not a TCP peer, and gunicorn keeps believing
# nginx's X-Forwarded-Proto there; site_client.py gives the ASGI worker the same.
forwarded_allow_ips = ""
# On that socket only nginx's X-Forwarded-Proto says the scheme (nginx sets it; gunicorn's default also took
# X-Forwarded-Ssl and X-Forwarded-Protocol, which nginx passes from the client as they came), and no header
# sets SCRIPT_NAME or PATH_INFO (gunicorn's default forwarder_headers: only nginx's dropping of header names
# with an underscore kept a client's from them).
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}
forwarder_headers = ""

_LIMIT_MB = int(os.environ.get("APPDEB_WORKER_MEMORY_MB", "0") or 0)
_PAGE = os.sysconf("SC_PAGE_SIZE")
_statm = -1  # each worker keeps its own /proc/self/statm open


def _forget_statm() -> None:
    global _statm
    _statm = -1


os.register_at_fork(after_in_child=_forget_statm)


def rss_mb() -> float:
    """This process's resident memory in MiB (from /proc: no psutil on the node).

    It is read after every request, so the file stays open and is re-read with one pread: opening and
    reading it through a Python file object cost ~30 µs of CPU per request, a tenth of a small app's
    (bench/serve.py). /proc/self is resolved when opened and a worker is a fork: a forked process
    forgets its parent's descriptor and opens its own.
    """
    global _statm
    if _statm < 0:
        _statm = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
    return int(os.pread(_statm, 64, 0).split()[1]) * _PAGE / (1 << 20)


def memory_limit_mb() -> int:
    """web.max_worker_memory as the web verb passed it (0: no limit)."""
    return _LIMIT_MB


def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    if _LIMIT_MB and rss_mb() > _LIMIT_MB:
        worker.log.warning("worker %s uses %.0f MiB (web.max_worker_memory %d): replacing it", worker.pid,
                           rss_mb(), _LIMIT_MB)
        worker.alive = False
