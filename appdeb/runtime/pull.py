"""pull: take this package's new release from its repository by itself, verify it, go back if it fails.

Run by the timer `appdeb-pull@PKG.timer` that `appdeb repo client-config --pull PKG` sets up
(docs/repository.md). One attempt: `apt-get update` from the repository's source file alone (named in
the root-owned /etc/appdeb/pull/PKG.conf), and when apt's candidate is newer than the installed version,
`apt-get install --only-upgrade`, then the health gate (`PKG verify`: units settled, the web answering,
the app's verify). A release that fails the gate is rolled back like `PKG rollback` does: the previous
version pinned and installed. Such a pin is pull's own (remembered in the instance's root-owned state),
so pull waits for a release newer than the failed one and then lets go of it; a pin of the admin's is
left alone. Each attempt prints one line starting with `pull:` (the journal keeps it); non-zero exit
when the attempt failed.
"""

from __future__ import annotations

import os
import re
import stat

from . import proc
from .app import AppPackage, LauncherError
from .guard import own_dir
from .pinning import (
    PULL_HELD,
    available_versions,
    install_pinned,
    installed_version,
    need_root,
    pinned_version,
    version_lt,
)

CONF_DIR = "/etc/appdeb/pull"
SOURCES_RE = re.compile(r"/etc/apt/sources\.list\.d/[A-Za-z0-9][A-Za-z0-9._-]*\.(?:sources|list)")
HELD = PULL_HELD  # in the instance's own state: "PINNED FAILED", the pin pull set after FAILED failed


def _root_owned(path: str) -> os.stat_result:
    """Root reads only configuration nobody else could have written (no link, no group/other write)."""
    st = os.lstat(path)
    if st.st_uid != 0 or st.st_mode & 0o022 or stat.S_ISLNK(st.st_mode):
        raise LauncherError(f"{path} must be root's and writable by root alone; refusing to use it")
    return st


def sources_file(package: str) -> str:
    """The apt source file of the repository this package follows, from /etc/appdeb/pull/PKG.conf."""
    path = f"{CONF_DIR}/{package}.conf"
    try:
        _root_owned(CONF_DIR)
        _root_owned(path)
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise LauncherError(f"{path} is missing: set this node up with "
                            f"'appdeb repo client-config … --pull {package}'") from None
    found = [ln.split("=", 1)[1].strip() for ln in text.splitlines() if ln.startswith("sources=")]
    if len(found) != 1 or not SOURCES_RE.fullmatch(found[0]):
        raise LauncherError(f"{path}: needs one line sources=/etc/apt/sources.list.d/NAME.sources")
    return found[0]


def _held(app: AppPackage) -> tuple[str, str] | None:
    """(pinned, failed) when the current pin is the one pull set after a failed release."""
    try:
        with open(os.path.join(own_dir(app), HELD), encoding="utf-8") as f:
            parts = f.read().split()
    except FileNotFoundError:
        return None
    return (parts[0], parts[1]) if len(parts) == 2 else None


def _set_held(app: AppPackage, value: tuple[str, str] | None) -> None:
    path = os.path.join(own_dir(app), HELD)
    if value is None:
        if os.path.exists(path):
            os.remove(path)
        return
    with open(path + ".new", "w", encoding="utf-8") as f:
        f.write(" ".join(value) + "\n")
    os.replace(path + ".new", path)


def _tail(done: proc.Done) -> str:
    """The last lines a program said, as one line for the log."""
    lines = (done.err or done.out).decode(errors="replace").strip().splitlines()
    return " / ".join(ln.strip() for ln in lines[-2:]) or f"exit {done.code}"


def _update(sources: str) -> str | None:
    """apt-get update from the repository's source only; None, or why it failed."""
    done = proc.run(["apt-get", "update", "--error-on=any", "-o", f"Dir::Etc::sourcelist={sources}",
                     "-o", "Dir::Etc::sourceparts=-", "-o", "APT::Get::List-Cleanup=0"],
                    env={**os.environ, "LC_ALL": "C"}, cwd="/")
    return None if done.ok else _tail(done)


def candidate(package: str) -> str | None:
    """apt's candidate version (`apt-cache policy`), None when there is none."""
    out = proc.output(["apt-cache", "policy", package])
    found = re.search(r"^\s+Candidate: (\S+)$", out, re.M)
    return found.group(1) if found and found.group(1) != "(none)" else None


def _upgrade_problem(app: AppPackage, new: str) -> str | None:
    """Install `new` and run the health gate; None when it serves, else why not (one line)."""
    package = app.contract.package
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    done = proc.run(["apt-get", "install", "-y", "--only-upgrade", "-o", "Dpkg::Options::=--force-confdef",
                     "-o", "Dpkg::Options::=--force-confold", package], env=env, cwd="/")
    if installed_version(package) != new:
        return f"failed install: {_tail(done)}"
    check = proc.run([app.paths.launcher, "verify"], cwd="/")  # the new release's own checks
    if not check.ok:
        said = [ln.split("verify: ", 1)[-1] for ln in check.err.decode(errors="replace").splitlines() if ln]
        return f"failed verify: {' / '.join(said[:3])[:400] or f'exit {check.code}'}"
    if not done.ok:
        return f"failed install: {_tail(done)}"
    return None


def _let_go_of_pin(app: AppPackage) -> str | None:
    """With a pin: why this attempt stops here (a log line), or None once pull dropped its own pin."""
    package, pinned = app.contract.package, pinned_version(app)
    held = _held(app)
    if pinned is None:
        if held:
            _set_held(app, None)  # the admin unpinned: follow the repository again
        return None
    if held is None or held[0] != pinned:
        return f"pull: {package} pinned to {pinned} by '{package} pin'; left alone"
    newest = (available_versions(package) or [held[1]])[-1]
    if not version_lt(held[1], newest):
        return f"pull: {package} held at {pinned} ({held[1]} failed); waiting for a newer release"
    os.remove(app.paths.pin)
    _set_held(app, None)
    return None


def verb_pull(app: AppPackage, args: list[str]) -> int:
    """pull: one attempt to take, verify and keep the newest release (see the module docstring)."""
    if args:
        raise LauncherError("usage: pull")
    need_root(app, "pull")
    package = app.contract.package
    sources = sources_file(package)
    why = _update(sources)
    if why is not None:
        print(f"pull: {package} apt-get update failed: {why}", flush=True)
        return 1
    stop = _let_go_of_pin(app)
    if stop is not None:
        print(stop, flush=True)
        return 0
    before, new = installed_version(package), candidate(package)
    if before is None or new is None or not version_lt(before, new):
        print(f"pull: {package} up to date ({before or 'not installed'})", flush=True)
        return 0
    problem = _upgrade_problem(app, new)
    if problem is None:
        print(f"pull: {package} {before} → {new} ok", flush=True)
        return 0
    try:
        install_pinned(app, before)
    except LauncherError as exc:
        print(f"pull: {package} {before} → {new} {problem}; going back to {before} failed too: {exc}", flush=True)
        return 1
    _set_held(app, (before, new))
    print(f"pull: {package} {before} → {new} {problem}; pinned back to {before}", flush=True)
    return 1
