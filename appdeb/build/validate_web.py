"""validate_web: the wsgi:/asgi: section (which interface the app speaks) and web: (how it is served)."""

from __future__ import annotations

from typing import Any

from appdeb.build import rules
from appdeb.build.fields import Checker
from appdeb.build.platforms import WEB_SECTIONS
from appdeb.build.rules import OBJECT_RE, shown
from appdeb.build.spec import Web
from appdeb.build.yamlload import YNode


def _interface(top: dict[str, YNode], platform: tuple[str, ...], c: Checker) -> str | None:
    """Which web section the app uses: one of wsgi:/asgi:, matching its platform."""
    given = [s for s in WEB_SECTIONS if s in top]
    if len(given) > 1:
        c.add(top[given[1]], given[1], f"an app is served one way: keep one of {' and '.join(given)}: "
              "(a WSGI app under wsgi: with platform [python, wsgi], an ASGI app under asgi: with [python, asgi])")
    for section in given:
        if platform and section not in platform:
            c.add(top[section], section, f"the '{section}:' section needs '{section}' in the platform list "
                  f"(platform: [python, {section}])")
    return given[0] if given else None


def web(top: dict[str, YNode], platform: tuple[str, ...], c: Checker) -> Web | None:
    interface = _interface(top, platform, c)
    web = top.get("web")
    section = top.get(interface) if interface else None
    w = c.mapping(section, interface or "wsgi")
    if interface is None or section is None or w is None:
        if web is not None:
            c.add(web, "web", "only meaningful with a 'wsgi:' or 'asgi:' section")
        return None
    c.keys(section, interface, ("app",), ("app",))
    app = c.string(w.get("app"), f"{interface}.app")
    if app is not None and not OBJECT_RE.fullmatch(app):
        example = "myapp.asgi:app" if interface == "asgi" else "myapp.wsgi:application"
        c.add(w["app"], f"{interface}.app", f"{shown(app)} must be 'module:object' (e.g. '{example}')")
    opts = c.mapping(web, "web") or {}
    if web is not None and opts:
        c.keys(web, "web", ("workers", "timeout", "graceful_timeout", "max_requests", "max_requests_jitter", "port",
                            "nginx", "public_port", "max_worker_memory", "health", "access_log"))
    ints = {
        "workers": (1, 64), "timeout": (1, 3600), "graceful_timeout": (1, 3600),
        "max_requests": (0, 10**7), "max_requests_jitter": (0, 10**6), "port": (1024, 65535),
        "public_port": (1, 65535), "max_worker_memory": (0, 1 << 20),
    }
    values: dict[str, Any] = {k: c.integer(opts.get(k), f"web.{k}", *rng) for k, rng in ints.items() if k in opts}
    for key in ("nginx", "access_log"):
        if key in opts:
            values[key] = c.boolean(opts[key], f"web.{key}")
    if "health" in opts:
        values["health"] = c.string(opts["health"], "web.health")
        if values["health"] is not None:
            c.check(opts["health"], "web.health", rules.health_path(values["health"]))
    return Web(app=app or "", interface=interface, **{k: v for k, v in values.items() if v is not None})
