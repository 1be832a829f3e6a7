"""interface: at build time, is the object under wsgi:/asgi: really a WSGI/ASGI app? Refused before a .deb exists.

A FastAPI app declared under `wsgi:` builds and installs, then every request fails with a TypeError
that only the journal shows. The builder knows better: after vendoring it imports the app, the way
`commands.build` runs (a copy of the app, the vendored libraries and the app's environment of the
build step, never on a node), contained (only PATH/LANG/HOME/TMPDIR in its environment, its whole
session killed at the end or after the timeout; as root confined like the build step, as a uid of its
own, and without network: appdeb.build.confine) in a throw-away copy, and looks at
the callable's signature: `async def __call__(scope, receive, send)` (or three required positional
parameters) is ASGI, two (`environ, start_response`) are WSGI. An app that cannot be imported here
(it needs a database at import time, say) is not refused for that: the build says it could not tell.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from appdeb.build import confine, sealed
from appdeb.build.plan import BuildPlan
from appdeb.build.yamlload import load
from appdeb.errors import AppdebError, Problem, SpecError, printable

TIMEOUT = 60  # seconds for the import: Django's setup takes about one on a small machine
MARK = "appdeb-interface:"

# Runs in the app's environment (stdlib only): prints MARK and {"kind", "type"} as JSON.
PROBE = r"""
import importlib, inspect, json, sys
module, _, attr = sys.argv[1].partition(":")
obj = importlib.import_module(module)
for part in attr.split("."):
    obj = getattr(obj, part)
def kind(obj):
    if inspect.isclass(obj) or not callable(obj):
        return "unknown"
    call = obj if inspect.isfunction(obj) or inspect.ismethod(obj) else getattr(obj, "__call__", None)
    if inspect.iscoroutinefunction(obj) or inspect.iscoroutinefunction(call):
        return "asgi"
    try:
        params = inspect.signature(call).parameters.values()
    except (TypeError, ValueError):
        return "unknown"
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    if len(required) == 3:
        return "asgi"
    if len(required) == 2:
        return "wsgi"
    return "unknown"
name = "function " + obj.__name__ if inspect.isfunction(obj) else type(obj).__name__
print(MARK + json.dumps({"kind": kind(obj), "type": name}))
"""

FIX = {"asgi": "declare it under `asgi:` with platform [python, asgi]",
       "wsgi": "declare it under `wsgi:` with platform [python, wsgi]"}


@dataclass(frozen=True)
class Found:
    """What the import found: the calling convention (wsgi, asgi, unknown) and the object's type name."""

    kind: str
    type: str


def classify(output: str) -> Found | None:
    """The probe's answer from its output (None if it printed none: the import failed)."""
    for line in reversed(output.splitlines()):
        if line.startswith(MARK):
            try:  # the app's own output may imitate the mark
                data = json.loads(line[len(MARK):])
                return Found(str(data["kind"]), str(data["type"]))
            except (ValueError, KeyError, TypeError):
                continue
    return None


def mismatch(plan: BuildPlan, found: Found) -> SpecError | None:
    """The error for an app declared under the other interface's section, located at its app: line."""
    web = plan.spec.web
    if web is None or found.kind not in FIX or found.kind == web.interface:
        return None
    path = plan.spec.app_dir / "app.yaml"
    tree, _ = load(path, display_name=str(path))
    node = tree.value[web.interface].value["app"]
    article = "an" if found.kind == "asgi" else "a"
    message = (f"{web.app} is {article} {found.kind.upper()} application ({found.type}); "
               f"{FIX[found.kind]}")
    return SpecError([Problem(str(path), node.line, node.col, f"{web.interface}.app", message)])


def check_interface(plan: BuildPlan, lib: Path, app: Path | None = None, tree: str = "") -> str | None:
    """Import the web app in the build step's environment; raise SpecError on a mismatch.

    Returns a warning when the import did not answer (the build goes on: it could not tell). A
    verdict that the app is what it declares is remembered (tree: the vendored tree's content
    digest; with the app's files, the interpreter and appdeb's probe), so a build of unchanged
    code (a new build number) does not import the app again.
    """
    from appdeb.build.build_step import copy_app, interpreter
    from appdeb.runner import run_contained

    web = plan.spec.web
    if web is None:
        return None
    try:
        python = interpreter(plan.python_version, "the interface check")
    except AppdebError as exc:  # built for another python (another target): it cannot be imported here
        return f"{web.interface}.app: could not check {web.app}: {exc}"
    source = plan.spec.app_dir if app is None else app
    known = _verdict_path(plan, source, python, tree) if tree else None
    if known is not None and known.is_file():
        return None
    with (tempfile.TemporaryDirectory(prefix="appdeb-interface-") as tmp,
          confine.uid() if sealed.can_seal() else contextlib.nullcontext() as uid):  # held until it is reaped
        app = Path(tmp) / "app"  # always a throw-away copy: what the import writes never reaches the package
        copy_app(source, plan.spec.exclude, app)
        argv, env = _prepare(plan, lib, Path(tmp), python, tree, uid)
        try:
            code, output = run_contained(argv, cwd=app, env=env, timeout=TIMEOUT, namespaces=uid is None,
                                         stop=None if uid is None else partial(confine.reap, uid))
        except AppdebError:  # the timeout
            return f"{web.interface}.app: could not check {web.app}: its import took more than {TIMEOUT} s"
        finally:
            if uid is not None:
                confine.reap(uid)
        if code != 0:
            last = [printable(line) for line in output.strip().splitlines()[-1:]] or ["no output"]
            return f"{web.interface}.app: could not import {web.app} to check it is {web.interface.upper()}: {last[0]}"
    found = classify(output)
    error = mismatch(plan, found) if found else None
    if error:
        raise error
    if found and known is not None:
        known.parent.mkdir(parents=True, exist_ok=True)
        known.write_text(f"{web.app} is {web.interface}\n")
    return None


def _prepare(plan: BuildPlan, lib: Path, tmp: Path, python: str, tree: str, uid: int | None
             ) -> tuple[list[str], dict[str, str]]:
    """The import's argv and environment (as root, run as uid): tmp holds the app's copy, its runtime root and probe."""
    from appdeb.build.build_step import build_environment, own_dirs, runtime_var
    from appdeb.build.vendor import cache_root

    web = plan.spec.web
    assert web is not None
    byte_code, where, root, probe = _library_byte_code(plan, tree), tmp / "lib", tmp / "env", tmp / "probe.py"
    probe.write_text(PROBE.replace("MARK", repr(MARK)))
    argv = [python, "-I", str(root / "appdeb" / "run.py"), str(root), "run", "python3", str(probe), web.app]
    # the libraries import from their kept byte code (not from source) where it can be laid over them
    overlay = (byte_code, lib, where) if uid is not None and byte_code and not any(
        c in str(p) for p in (byte_code, lib) for c in ",:\\") else None  # overlayfs splits its options there
    paths = build_environment(plan, lib, tmp / "app", root, python, lib_seen_as=where if overlay else None)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", **own_dirs(paths),
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}  # none of the builder's tokens
    if uid is None:
        return argv, env
    where.mkdir()
    confine.hand_over(uid, tmp, tmp / "app", runtime_var(root))
    cache = sealed.sealable(cache_root(), tmp)  # the cache read-only to it too
    return confine.argv_for(argv, n=uid, cwd=tmp / "app", box=tmp, read=[lib], cache=cache, overlay=overlay,
                            net=True), env


def _library_byte_code(plan: BuildPlan, tree: str) -> Path | None:
    """The libraries' byte code kept with their payload segment by an earlier build, if there is one."""
    from appdeb.build.bytecode import compiler
    from appdeb.build.payload import segment_key
    from appdeb.build.vendor import cache_root

    comp = compiler(plan.target)
    if comp is None or not tree:
        return None
    found = cache_root() / "payload" / f"{segment_key(tree, plan.paths.lib[1:], comp)}.pyc"
    return found if found.is_dir() else None


def _verdict_path(plan: BuildPlan, app: Path, python: str, tree: str) -> Path:
    """Where a passed check of exactly these inputs is remembered (appdeb's cache)."""
    import hashlib
    import os

    from appdeb import __version__
    from appdeb.build.stage import build_inputs
    from appdeb.build.vendor import cache_root
    from appdeb.files import sha256_of

    web = plan.spec.web
    assert web is not None
    st = os.stat(python)
    h = hashlib.sha256(f"{__version__}\0{PROBE}\0{python}\0{st.st_size}\0{st.st_mtime_ns}\0{tree}\0"
                       f"{web.app}\0{web.interface}\0{plan.python_version}".encode())
    for rel in build_inputs(app, plan.spec.exclude):
        full = app / rel
        data = os.readlink(full) if full.is_symlink() else sha256_of(full)
        h.update(f"\0{rel.as_posix()}\0{data}".encode())
    return cache_root() / "interface" / h.hexdigest()
