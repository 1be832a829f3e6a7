"""build_step: run the app's `commands.build` in a copy of the app, in the environment its commands get.

Generated files (Django's collectstatic, compiled assets) are made by the build, not committed: the
command runs like `appdeb run` runs a command — the vendored libraries and the app's paths on
PYTHONPATH, their console scripts and `python3` on PATH, the app's variables — but with build-time
values (this build's package, instance, version and port; state, settings and secret in a throw-away
directory) and never in the checkout: in a copy, which is then what ships. The build stays
reproducible: SOURCE_DATE_EPOCH is the package's, hash seeds are fixed and stage() gives every file
one mtime; a failure stops the build with the command's last lines before any .deb is written.
As root the command runs as a uid of its own that writes only the copy and its runtime's state
(appdeb.build.confine); root takes the copy back, without following links, before reading it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from functools import partial
from pathlib import Path

from appdeb.build import confine, sealed
from appdeb.build.paths_in_app import app_dir_path
from appdeb.build.plan import BuildPlan
from appdeb.build.render import runtime_config
from appdeb.build.spec import BUILD_COMMAND
from appdeb.build.stage import build_inputs
from appdeb.build.vendor import cache_root
from appdeb.dev.env import runtime_paths, write_runtime
from appdeb.errors import AppdebError, printable
from appdeb.runner import run_contained, which
from appdeb.runtime import contract

TAIL_LINES = 30  # of the command's output, in the error
TIMEOUT = 3600  # seconds commands.build may run (a stuck step ends the build, and every process it started)
# Not a secret: the build step has no instance yet; an app that reads APPDEB_SECRET_FILE at import
# time (Django's SECRET_KEY) finds a value, the same in every build, and it is never shipped.
BUILD_SECRET = "appdeb-build-step-placeholder-not-a-secret\n"
READ_ONLY_HINT = ("appdeb's cache, which holds the vendored libraries, is read-only to commands.build: it writes "
                  "into the app's copy (its working directory) or $TMPDIR")


def run_build_step(plan: BuildPlan, lib: Path, work: Path) -> Path:
    """Copy the app into work/app, run commands.build there and return that copy (the tree to ship)."""
    with confine.uid() if sealed.can_seal() else contextlib.nullcontext() as uid:  # held until it is reaped
        return _run(plan, lib, work, uid)


def _run(plan: BuildPlan, lib: Path, work: Path, uid: int | None) -> Path:
    command = plan.spec.command(BUILD_COMMAND)
    assert command is not None
    python = interpreter(plan.python_version)
    copy = work / "app"
    copy_app(plan.spec.app_dir, plan.spec.exclude, copy)
    root = work / "env"
    paths = build_environment(plan, lib, copy, root, python)
    env = {"SOURCE_DATE_EPOCH": str(plan.source_date_epoch), "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    argv = [python, "-I", str(root / "appdeb" / "run.py"), str(root), "run", BUILD_COMMAND]
    cache = sealed.sealable(cache_root(), work) if uid is not None else None
    if uid is not None:  # as root: the step runs as a uid of its own, which writes only the copy and its var
        confine.hand_over(uid, work, copy, runtime_var(root))
        env |= own_dirs(paths)
        argv = confine.argv_for(argv, n=uid, cwd=copy, box=work, read=[lib], cache=cache)
    before = None if cache is not None else sealed.tree_state(lib)
    try:
        # a session of its own, no stdin: no terminal of the builder's to read or type into (TIOCSTI)
        code, output = run_contained(argv, cwd=copy, env={**os.environ, **env}, timeout=TIMEOUT, namespaces=False,
                                     stop=None if uid is None else partial(confine.reap, uid))
        if code != 0:
            tail = "\n".join(printable(line) for line in output.rstrip().splitlines()[-TAIL_LINES:])
            hint = f"\n{READ_ONLY_HINT}" if "Read-only file system" in output else ""
            raise AppdebError(f"commands.build failed (exit {code}): {command}\n{tail}".rstrip() + hint)
    finally:
        if uid is not None:
            confine.reclaim(uid, copy)  # root's again, no link followed, before anything reads it
        _check_cache(lib, before)
    _check_static(plan, copy)
    return copy


def _check_cache(lib: Path, before: sealed.Snapshot | None) -> None:
    """Where the cache could not be sealed: a step that changed the vendored tree loses it (the next build
    vendors afresh) and fails."""
    changed = sealed.changes(lib, before) if before is not None else []
    if changed:
        sealed.evict(lib.parent)
        raise AppdebError(f"commands.build changed the cached vendored libraries ({sealed.described(changed)}); "
                          f"that cache entry was dropped. {READ_ONLY_HINT}")


def copy_app(app_dir: Path, excludes: tuple[str, ...], dest: Path) -> None:
    """The checkout's files as the build step may read them (build_inputs), links kept as links."""
    dest.mkdir(parents=True)
    for rel in build_inputs(app_dir, excludes):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(app_dir / rel, dest / rel, follow_symlinks=False)


def interpreter(python_version: str, purpose: str = "commands.build") -> str:
    """A python of the target version: the vendored binary wheels import only there."""
    if python_version == "{}.{}".format(*sys.version_info[:2]):
        return sys.executable
    found = which(f"python{python_version}")
    if found is None:
        from appdeb.build.targets import default_target

        raise AppdebError(f"{purpose} runs with the libraries vendored for python {python_version}, "
                          f"but python{python_version} is not installed here (install it, or build with --target "
                          f"{default_target().name}, this machine's python)")
    return found


def runtime_var(root: Path) -> Path:
    """Where a build-time runtime root keeps its state (runtime_paths lays it out): the code's to write."""
    return root / "var"


def own_dirs(paths: contract.Paths) -> dict[str, str]:
    """HOME and TMPDIR of the app's code at build time: its runtime's state and temporary directories."""
    return {"HOME": paths.state, "TMPDIR": paths.tmp}


def build_environment(plan: BuildPlan, lib: Path, copy: Path, root: Path, python: str,
                      lib_seen_as: Path | None = None) -> contract.Paths:
    """A runtime root like `appdeb run`'s (.appdeb/dev), for this build: the runtime, app.json, scripts.
    Returns its paths."""
    var = runtime_var(root)
    paths = runtime_paths(var, etc=var / "etc", settings=var / "etc" / "settings.env", launcher="appdeb build")
    Path(paths.etc).mkdir(parents=True, exist_ok=True)
    Path(paths.secret).write_text(BUILD_SECRET)
    Path(paths.secret).chmod(0o600)
    write_runtime(root, runtime_config(plan).with_changes(paths=paths), app=copy, lib=lib, python=python,
                  lib_seen_as=lib_seen_as)
    return paths


def _check_static(plan: BuildPlan, copy: Path) -> None:
    """static.dir may be the build's output: now it must be there, a directory inside the app."""
    static = plan.spec.static
    if static is None:
        return
    problem = app_dir_path(copy, static.dir)
    if problem:
        raise AppdebError(f"static.dir: after commands.build, {problem} (the build command must create it)")
