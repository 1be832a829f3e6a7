"""The client's address for a request that came through the instance's nginx site.

The site reaches the web process over the web socket's unix listener, which only root and nginx
(www-data) may connect to (web.socket). A unix peer has no address, so gunicorn's REMOTE_ADDR and
uvicorn's client would be empty for every request through the site: apps that log, rate-limit or
audit by address saw nothing. nginx sets `X-Real-IP: $remote_addr` on every request it passes
(replacing any the client sent), so on that listener, and only there, the header is nginx's word.
On the TCP port, where any local process may connect, it is never read.

Imported by the worker classes inside the web process (no appdeb imports).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

HEADER = "x-real-ip"
SCHEME = "x-forwarded-proto"
SCHEMES = ("http", "https")


def real_ip(headers: Iterable[tuple[str | bytes, str | bytes]]) -> str | None:
    """The one X-Real-IP value, as a normalised IP address; None unless exactly one valid value is there."""
    value = _one(headers, HEADER)
    try:
        return str(ipaddress.ip_address(value.strip())) if value is not None else None
    except ValueError:
        return None


def scheme(headers: Iterable[tuple[str | bytes, str | bytes]]) -> str | None:
    """The one X-Forwarded-Proto value nginx set ($scheme: http or https); None otherwise."""
    value = _one(headers, SCHEME)
    return value.strip().lower() if value is not None and value.strip().lower() in SCHEMES else None


def _one(headers: Iterable[tuple[str | bytes, str | bytes]], header: str) -> str | None:
    values = [value for name, value in headers if _text(name).lower() == header]
    return _text(values[0]) if len(values) == 1 else None


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value
