"""The development environment: the packaged runtime, run from a checkout (`appdeb serve`, `appdeb run`).

The same runtime file and the same generated description drive it, so an app sees the same
variables, paths and commands locally as on a node; only the directories point into .appdeb/dev.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from appdeb import files
from appdeb.build.plan import make_plan
from appdeb.build.render import runtime_config
from appdeb.build.shipped import shipped_sources
from appdeb.build.validate import load_spec
from appdeb.build.vendor import vendor
from appdeb.errors import AppdebError
from appdeb.progress import Reporter, quiet
from appdeb.runtime import contract

LOCAL_SETTINGS = "settings.local.env"


def prepare(app_dir: Path, *, port: int | None = None, settings: Path | None = None,
            report: Reporter = quiet) -> Path:
    """Write .appdeb/dev (runtime + description) for app_dir and return that root."""
    app_dir = app_dir.resolve()
    spec = load_spec(app_dir)
    version = "{}.{}".format(*sys.version_info[:2])
    plan = make_plan(spec, source_date_epoch=0)  # the contract's target; libraries are for this python
    report(f"vendoring {len(plan.requirements)} requirements")
    lib = vendor(plan.requirements, version, app_dir).lib
    root = own_dir(own_dir(app_dir / ".appdeb") / "dev")
    ignore_generated(app_dir / ".appdeb")
    paths = runtime_paths(own_dir(root / "var"), etc=app_dir, settings=settings or app_dir / LOCAL_SETTINGS,
                          launcher="appdeb run", make=own_dir)
    if os.path.islink(paths.secret):
        raise AppdebError(f"{paths.secret} is a symbolic link: remove it (appdeb serve/run write the secret there)")
    if not os.path.lexists(paths.secret):  # a development secret, generated once per checkout
        fd = os.open(paths.secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48) + "\n")
    described = runtime_config(plan).with_changes(paths=paths, instance="dev")
    if port is not None and described.web:
        described = described.with_changes(web=dataclasses.replace(described.web, port=port))
    write_runtime(root, described, app=app_dir, lib=lib, python=sys.executable)
    return root


def own_dir(path: Path) -> Path:
    """A directory of .appdeb/ that appdeb writes and empties, made here if absent. A checkout may carry a
    link there (`.appdeb -> ../../elsewhere`, committed): appdeb would then delete and write outside the
    checkout, before any of the app's code runs. So it must be a directory of the caller's own."""
    if not files.own_directory(path, 0o755):
        raise AppdebError(f"{path} is not a directory of yours (a link or another user's): remove it; appdeb "
                          "serve and run write their generated files there")
    return path


def ignore_generated(state: Path) -> None:
    """Keep the generated .appdeb/ out of the app's version control: a .gitignore of `*` inside it.

    Inside, not in the app's own .gitignore: appdeb never edits the user's files, and the
    directory then ignores itself wherever the checkout is copied.
    """
    state.mkdir(parents=True, exist_ok=True)
    ignore = state / ".gitignore"
    if not os.path.lexists(ignore):  # a link there (even a dangling one) is never written through
        ignore.write_text("# written by appdeb serve/run: everything here is generated\n*\n")


def runtime_paths(var: Path, *, etc: Path, settings: Path, launcher: str,
                  make: Callable[[Path], object] = lambda path: path.mkdir(parents=True, exist_ok=True),
                  ) -> contract.Paths:
    """A runtime root's paths outside a node (development, the build step): all below var, made here (by
    make: a checkout's own .appdeb must hold real directories of the caller's, see own_dir)."""
    paths = contract.Paths(
        etc=str(etc), settings=str(settings), state=str(var / "lib"), tmp=str(var / "tmp"), logs=str(var / "log"),
        backups=str(var / "backups"), launcher=launcher, secret=str(var / "secret"), own=str(var / "appdeb"),
        run=str(var / "run"), pin=str(var / "pin"), config=str(var / "etc"))
    for made in (paths.state, paths.tmp, paths.logs, paths.backups):
        make(Path(made))
    return paths


def write_runtime(root: Path, described: contract.Contract, *, app: Path, lib: Path, python: str,
                  lib_seen_as: Path | None = None) -> None:
    """The runtime, app.json (a dev layout pointing at app and lib) and the console scripts under root.

    The scripts are the vendored libraries' for `python`, and `python3` is `python` (the one the
    libraries were vendored for): with the node's PATH, what runs here finds what a node finds.
    lib_seen_as: where the app's processes will see lib (a mount of it made for them), if elsewhere.
    """
    from appdeb.build.entrypoints import console_scripts

    bin_dir, runtime_dir = root / "bin", root / "appdeb"
    for generated in (bin_dir, runtime_dir):  # made anew, whatever was there (a link goes, not its target)
        if generated.is_symlink() or generated.is_file():
            generated.unlink()
        shutil.rmtree(generated, ignore_errors=True)
    bin_dir.mkdir(parents=True)
    for script in console_scripts(lib):
        (bin_dir / script.name).write_text(script.text(python))
        (bin_dir / script.name).chmod(0o755)
    (bin_dir / "python3").symlink_to(python)
    seen = lib_seen_as or lib
    described = described.with_changes(dev=True, layout=contract.Layout(str(app), str(seen), str(bin_dir)))
    runtime_dir.mkdir()
    (runtime_dir / "app.json").write_text(described.to_json())
    for name, source in shipped_sources().items():
        (root / "appdeb" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "appdeb" / name).write_bytes(source)


def exec_runtime(root: Path, verb: str, args: list[str]) -> None:
    """Replace this process with the runtime (signals and exit codes pass straight through)."""
    runtime = root / "appdeb" / "run.py"
    if not runtime.is_file():
        raise AppdebError(f"{root} is not a prepared development environment")
    # Byte code goes below root, not into __pycache__ directories in the checkout: -X for this process
    # (-I ignores PYTHON* variables), the variable for the programs it starts.
    cache = str(own_dir(root / "pycache"))  # a link there would take the byte code elsewhere
    argv = [sys.executable, "-I", "-X", f"pycache_prefix={cache}", str(runtime), str(root), verb, *args]
    os.execve(sys.executable, argv, {**os.environ, "PYTHONPYCACHEPREFIX": cache})
