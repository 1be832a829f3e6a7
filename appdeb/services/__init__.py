"""Service plug-ins (PostgreSQL, files, redis): one module each, one interface (see base.py)."""

from __future__ import annotations

from ..spec import AppSpec

# Debian packages each service pulls onto the node.
DEPENDS: dict[str, tuple[str, ...]] = {
    "postgres": ("postgresql",),
    "redis": ("redis-server",),
    "files": (),
}


def plan_depends(spec: AppSpec) -> tuple[str, ...]:
    """Debian dependencies the app's requested services add."""
    return tuple(dep for svc in spec.services for dep in DEPENDS.get(svc.kind, ()))
