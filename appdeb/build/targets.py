"""targets: the Debian releases a package can be built for, and everything each one decides.

A target fixes what a package cannot learn on the node: the python3 minor version its libraries are
vendored (and binary wheels compiled) for, the glibc floor of those wheels, the dependency floors of
its control file, the PostgreSQL major its backups are made with, and the apt suite (distribution)
it is published into. The plan picks one target per build; nothing else names a release.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from appdeb.errors import AppdebError


@dataclass(frozen=True)
class Target:
    """One Debian release as a build target."""

    name: str  # debian-13: what `--target` and app.yaml's `target:` say
    release: str  # "13"
    suite: str  # trixie: the node's apt suite and the repository distribution
    python: str  # "3.13": the release's python3 minor version
    glibc_minor: int  # 41: manylinux_2_41 and older wheels run there
    postgres: str  # "17": the PostgreSQL major the release's `postgresql` depends on

    @property
    def python_floors(self) -> tuple[str, str]:
        """`python3 (>= 3.13)`, `python3 (<< 3.14)`: vendored libraries work with this minor only."""
        major, minor = self.python.split(".")
        return f"python3 (>= {self.python})", f"python3 (<< {major}.{int(minor) + 1})"

    @property
    def postgres_depends(self) -> str:
        """The server the release ships; backups are dumped with its tools."""
        return f"postgresql (>= {self.postgres})"


TARGETS: dict[str, Target] = {
    "debian-13": Target("debian-13", "13", "trixie", "3.13", 41, "17"),
    "debian-12": Target("debian-12", "12", "bookworm", "3.11", 36, "15"),
}
CURRENT_STABLE = "debian-13"


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise AppdebError(f"unknown target {name!r}: use one of {', '.join(TARGETS)}") from None


def for_suite(suite: str) -> Target | None:
    """The target whose packages a node of that apt suite installs."""
    return next((t for t in TARGETS.values() if t.suite == suite), None)


def for_python(version: str) -> Target | None:
    return next((t for t in TARGETS.values() if t.python == version), None)


def default_target(build_python: str | None = None) -> Target:
    """The target of a build that names none: the release whose python3 is the build machine's.

    `commands.build` and `appdeb serve` run the vendored libraries with the build machine's python,
    so a package for that release is the one this machine can build and try end to end; elsewhere
    (another python) it is the current stable release.
    """
    found = for_python(build_python or "{}.{}".format(*sys.version_info[:2]))
    return found or TARGETS[CURRENT_STABLE]


def resolve(app_yaml_target: str | None, cli_target: str | None, cli_python: str | None) -> Target:
    """The build's target: --target, else app.yaml's target:, else the one of --python, else the default."""
    if cli_target:
        target = get_target(cli_target)
    elif app_yaml_target:
        target = get_target(app_yaml_target)
    elif cli_python:
        target = for_python(cli_python) or _no_target_for(cli_python)
    else:
        target = default_target()
    if cli_python and cli_python != target.python:
        raise AppdebError(f"--python {cli_python} does not match target {target.name} (python {target.python}); "
                          f"give --target only")
    return target


def _no_target_for(python: str) -> Target:
    known = ", ".join(f"{t.name} (python {t.python})" for t in TARGETS.values())
    raise AppdebError(f"no target has python {python}: the targets are {known}")


__all__ = ["CURRENT_STABLE", "TARGETS", "Target", "default_target", "for_python", "for_suite", "get_target",
           "resolve"]
