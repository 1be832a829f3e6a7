"""Service plug-ins: one module per service, one interface (base.Service).

This package is shipped inside every package as `appdeb_services` next to the runtime, so it
uses only the standard library and relative imports. Adding a service = one module + one
entry in SERVICES.
"""

from __future__ import annotations

from .base import Service
from .files import Files
from .postgres import Postgres
from .redis import Redis

SERVICES: dict[str, type[Service]] = {cls.kind: cls for cls in (Postgres, Files, Redis)}

__all__ = ["SERVICES", "Service"]
