"""Platform mixins named in app.yaml's `platform:`; adding one (e.g. a plain `command`) is one entry here."""

from __future__ import annotations

from dataclasses import dataclass

from appdeb.build.requirements import project_name

# Vendored into every wsgi package so nodes need nothing but python3, unless the app requires gunicorn
# itself (then its own requirement decides the version). The floor: 23.0.0 fixed request smuggling
# (CVE-2024-6827) and, like 24 to 27, keeps what the runtime drives (gunicorn.app.wsgiapp.WSGIApplication
# from sys.argv, `--config python:MODULE`, systemd's LISTEN_FDS, the post_request hook). The cap: that is
# gunicorn's internal API, not a promise, and majors come often; a build without the app's own choice
# gets only majors checked against the runtime. An app that wants a newer one names it.
GUNICORN_REQUIREMENT = "gunicorn>=23,<28"
# An ASGI app runs in uvicorn workers under the same gunicorn arbiter (uvicorn_worker.UvicornWorker):
# the arbiter's timeout still kills a worker whose event loop stopped ticking, max_requests still
# recycles, the systemd socket and reload work unchanged. uvicorn-worker 0.3 is the first built for
# uvicorn's current Config; uvicorn itself has no 1.0 yet and changes its API in minors, so it is capped
# at the next major like gunicorn. websockets is uvicorn's WebSocket protocol (without it, upgrades
# are refused with 404).
ASGI_REQUIREMENTS = (GUNICORN_REQUIREMENT, "uvicorn-worker>=0.3,<1", "uvicorn>=0.36,<1", "websockets>=13,<18")


@dataclass(frozen=True)
class Platform:
    """What a mixin needs from the description and adds to the build."""

    name: str
    needs: tuple[str, ...] = ()  # other platforms it builds on
    sections: tuple[str, ...] = ()  # app.yaml sections it requires
    pip: tuple[str, ...] = ()  # requirements it adds to the app's own
    serves_web: bool = False  # whether it gets the web unit
    interface: str = ""  # the web section it reads and the calling convention of its app (wsgi, asgi)


PLATFORMS: dict[str, Platform] = {
    "python": Platform("python"),
    "wsgi": Platform("wsgi", needs=("python",), sections=("wsgi",), pip=(GUNICORN_REQUIREMENT,), serves_web=True,
                     interface="wsgi"),
    "asgi": Platform("asgi", needs=("python",), sections=("asgi",), pip=ASGI_REQUIREMENTS, serves_web=True,
                     interface="asgi"),
}
WEB_SECTIONS = tuple(p.interface for p in PLATFORMS.values() if p.interface)  # wsgi, asgi


def extra_requirements(names: tuple[str, ...], required: tuple[str, ...] = (),
                       constrained: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Requirements the chosen platforms add, in a stable order; the app's own choice wins.

    A project the app requires (normalized names) is left to the app's line; one it only constrains
    is added by name alone, so the app's constraint alone picks the version.
    """
    out: list[str] = []
    for req in (req for name in names for req in PLATFORMS[name].pip):
        project = project_name(req)
        if project in required:
            continue
        out.append(project if project in constrained and project else req)
    return tuple(out)
