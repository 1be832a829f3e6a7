"""Platform mixins named in app.yaml's `platform:`; adding one (e.g. a plain `command`) is one entry here."""

from __future__ import annotations

from dataclasses import dataclass

# Vendored into every wsgi package so nodes need nothing but python3.
GUNICORN_REQUIREMENT = "gunicorn>=22,<24"


@dataclass(frozen=True)
class Platform:
    """What a mixin needs from the description and adds to the build."""

    name: str
    needs: tuple[str, ...] = ()  # other platforms it builds on
    sections: tuple[str, ...] = ()  # app.yaml sections it requires
    pip: tuple[str, ...] = ()  # requirements it adds to the app's own
    serves_web: bool = False  # whether it gets the web unit


PLATFORMS: dict[str, Platform] = {
    "python": Platform("python"),
    "wsgi": Platform("wsgi", needs=("python",), sections=("wsgi",), pip=(GUNICORN_REQUIREMENT,), serves_web=True),
}


def extra_requirements(names: tuple[str, ...]) -> tuple[str, ...]:
    """Requirements the chosen platforms add, in a stable order."""
    return tuple(req for name in names for req in PLATFORMS[name].pip)
