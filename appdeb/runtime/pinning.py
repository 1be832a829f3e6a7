"""Rollback on the node by apt pinning: pin, unpin, rollback [--restore-backup].

The node's apt sources (appdeb's repository) keep several versions; a pin at priority 1001 makes apt
install one of them even as a downgrade, and keeps `apt-get upgrade` from leaving it until unpinned.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys

from . import proc
from .app import AppPackage, LauncherError
from .guard import own_dir

APT_PREFERENCES = "/etc/apt/preferences.d"
APT_INSTALL = ("apt-get", "install", "-y", "--allow-downgrades",
               "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold")


def pin_path(app: AppPackage) -> str:
    return app.paths.pin


def pin_text(package: str, version: str) -> str:
    return (f"Explanation: written by '{package} pin' (appdeb); '{package} unpin' removes it\n"
            f"Package: {package}\nPin: version {version}\nPin-Priority: 1001\n")


def pinned_version(app: AppPackage) -> str | None:
    try:
        with open(pin_path(app), encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return None
    return next((ln.split(None, 2)[2] for ln in lines if ln.startswith("Pin: version ")), None)


def _query(argv: list[str]) -> str:
    """stdout of apt-cache/dpkg-query in the C locale (parsed), or '' if the command failed."""
    return proc.output(argv)


def installed_version(package: str) -> str | None:
    """dpkg's version of the package, also when half-configured (a failed upgrade is rolled back too)."""
    out = _query(["dpkg-query", "-W", "-f=${db:Status-Status} ${Version}", package]).split()
    return out[1] if len(out) == 2 and out[0] != "not-installed" else None


# the priority appdeb's client files give its repository's packages (appdeb/repo/serve.py PIN_PRIORITY)
REPOSITORY_PRIORITY = 995
_VERSION_LINE = re.compile(r"^ (?:\*\*\*|   ) (\S+) -?[0-9]+$")
_SOURCE_LINE = re.compile(r"^ {8}(-?[0-9]+) (\S.*)$")


def parse_policy(text: str) -> list[str]:
    """The versions `apt-cache policy PKG` lists with a source at the repository's priority, first-seen
    order, no repeats. Another source's package of the same name (Debian's `hello`) is not among them:
    a rollback, a pin or pull's wait must never pick it, whatever its version."""
    versions: list[str] = []
    current = None
    for line in text.splitlines():
        if found := _VERSION_LINE.match(line):
            current = found.group(1)
            continue
        found = _SOURCE_LINE.match(line)
        if found and int(found.group(1)) == REPOSITORY_PRIORITY and current and current not in versions:
            versions.append(current)
    return versions


def version_lt(a: str, b: str) -> bool:
    """Debian version order, by dpkg itself (the node always has it)."""
    return proc.call(["dpkg", "--compare-versions", a, "lt", b]) == 0


def sort_versions(versions: list[str]) -> list[str]:
    """Oldest first."""
    import functools

    def cmp(a: str, b: str) -> int:
        return 0 if a == b else -1 if version_lt(a, b) else 1

    return sorted(versions, key=functools.cmp_to_key(cmp))


def available_versions(package: str) -> list[str]:
    """Versions apt can download from the repository (what a pin may select), oldest first."""
    return sort_versions(parse_policy(_query(["apt-cache", "policy", package])))


def choose_version(app: AppPackage, wanted: str) -> str:
    """VERSION as given (if apt knows it), or for --previous the newest available below the installed."""
    package = app.contract.package
    available = available_versions(package)
    shown = ", ".join(available) or "none"
    if wanted == "--previous":
        current = installed_version(package) or app.contract.version
        older = [v for v in available if version_lt(v, current)]
        if not older:
            raise LauncherError(f"no version older than {current} is available from the repository (available: "
                                f"{shown}); run apt-get update, or check the repository's retention")
        return older[-1]
    if wanted.startswith("-") or not wanted or any(c.isspace() for c in wanted):
        raise LauncherError(f"not a version: {wanted!r}")
    if wanted not in available:
        raise LauncherError(f"version {wanted} of {package} is not available from the repository (available: "
                            f"{shown}); run apt-get update, or check the repository's retention")
    return wanted


OLD_LAYOUT = "--allow-old-layout"


def layout_of(package: str, version: str) -> int:
    """The Appdeb-Layout field apt knows for that version (0: none, as appdeb 0.1.0 built them)."""
    for line in _query(["apt-cache", "show", f"{package}={version}"]).splitlines():
        key, _, value = line.partition(":")
        if key == "Appdeb-Layout" and value.strip().isdigit():
            return int(value.strip())
    return 0


def refuse_old_layout(app: AppPackage, version: str, allowed: bool) -> None:
    """Going back to a package whose scripts keep root's state inside the app's directory is the
    admin's explicit choice: those scripts follow paths the app user controls."""
    if allowed or layout_of(app.contract.package, version) >= 2:
        return
    raise LauncherError(f"{version} has no Appdeb-Layout field: built by appdeb 0.1.0, whose maintainer scripts "
                        f"keep root's state in "
                        f"{app.paths.state}/.appdeb, where the app's user can plant links and code; nothing was "
                        f"changed. Rebuild that version with this appdeb, or pass {OLD_LAYOUT} to go back anyway")


def _apt_install(app: AppPackage) -> int:
    """apt-get install the package's candidate (the pinned version, if pinned); apt's output passes through."""
    sys.stdout.flush()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return proc.relay([*APT_INSTALL, app.contract.package], cwd="/", env=env, interactive=True)


def need_root(app: AppPackage, verb: str) -> None:
    if app.dev:
        raise LauncherError(f"{verb} acts on the installed package of a node, not on a checkout")
    if os.geteuid() != 0:
        raise LauncherError(f"{verb} needs root: it changes {APT_PREFERENCES} and runs apt-get")


PULL_HELD = "pull-held"  # pull's own pin (runtime/pull.py), in the instance's root-owned state


def forget_pull_hold(app: AppPackage) -> None:
    """An admin's pin, unpin or rollback is the admin's decision from now on: pull no longer owns the pin."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(own_dir(app), PULL_HELD))


def install_pinned(app: AppPackage, version: str) -> str:
    """Write the pin file, install the pinned version (downgrading if need be), check it is installed."""
    package = app.contract.package
    path = pin_path(app)
    os.makedirs(os.path.dirname(pin_path(app)), mode=0o755, exist_ok=True)
    with open(path + ".new", "w", encoding="utf-8") as f:
        f.write(pin_text(package, version))
    os.chmod(path + ".new", 0o644)
    os.replace(path + ".new", path)
    print(f"{package}: pinned to {version} ({path})", flush=True)
    code = _apt_install(app)
    now = installed_version(package)
    if code != 0 or now != version:
        raise LauncherError(f"apt-get did not install {version} (exit {code}, installed: {now or 'none'}); "
                            f"the pin stays in {path}: fix the cause and rerun, or '{package} unpin'")
    return version


def verb_pin(app: AppPackage, args: list[str]) -> int:
    """pin VERSION|--previous: hold the package at a version (installing it); no argument shows the state."""
    package = app.contract.package
    if not args:
        pinned = pinned_version(app)
        print(f"{package}: installed {installed_version(package) or 'none'}, "
              f"{'pinned to ' + pinned if pinned else 'not pinned'}; "
              f"available: {', '.join(available_versions(package)) or 'none'}")
        return 0
    rest = [a for a in args if a != OLD_LAYOUT]
    if len(rest) != 1:
        raise LauncherError(f"usage: pin VERSION|--previous [{OLD_LAYOUT}]")
    need_root(app, "pin")
    forget_pull_hold(app)
    version = choose_version(app, rest[0])
    refuse_old_layout(app, version, OLD_LAYOUT in args)
    version = install_pinned(app, version)
    print(f"{package}: now at {version}, pinned ('{package} unpin' returns to the newest version)")
    return 0


def verb_unpin(app: AppPackage, args: list[str]) -> int:
    """unpin: remove the pin and install apt's candidate (the newest version) again."""
    need_root(app, "unpin")
    forget_pull_hold(app)
    package = app.contract.package
    try:
        os.remove(pin_path(app))
        print(f"{package}: pin removed ({pin_path(app)})", flush=True)
    except FileNotFoundError:
        print(f"{package}: was not pinned", flush=True)
    code = _apt_install(app)
    if code != 0:
        raise LauncherError(f"apt-get install {package} failed (exit {code})")
    print(f"{package}: now at {installed_version(package)}")
    return 0
