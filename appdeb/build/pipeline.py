"""build: the pipeline parse → validate → plan → vendor → render → stage → assemble, with a no-change fast path."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from appdeb import __version__
from appdeb.build.bytecode import stamp as bytecode_stamp
from appdeb.build.plan import BuildPlan, make_plan, with_vendor
from appdeb.build.shipped import shipped_sources, template_dir
from appdeb.build.spec import BUILD_COMMAND, AppSpec
from appdeb.build.stage import app_files, build_inputs
from appdeb.build.validate import load_spec
from appdeb.progress import Reporter, quiet

if TYPE_CHECKING:
    from appdeb.build.bytecode import Compiler
    from appdeb.build.render import RenderedFile


@dataclass(frozen=True)
class BuildOptions:
    """How to build, as given on the command line."""

    instance: str | None = None
    build_number: int = 1
    out_dir: Path = Path("dist")
    vcs: str | None = None
    python_version: str | None = None  # --python: must be the target's (kept for older command lines)
    target: str | None = None  # --target: else app.yaml's target:, else appdeb.build.targets.default_target
    compression: str = "zstd"
    source_date_epoch: int | None = None


@dataclass(frozen=True)
class BuildResult:
    """What happened: the .deb written (or found unchanged) and its identity."""

    deb: Path
    package: str
    version: str
    architecture: str
    sha256: str
    size: int
    reused: bool
    warnings: tuple[str, ...] = ()  # for stderr, not in as_json(); found when built, not repeated on reuse
    port: int | None = None  # the instance's web port on 127.0.0.1

    def as_json(self) -> dict[str, object]:
        return {"deb": str(self.deb), "package": self.package, "version": self.version,
                "architecture": self.architecture, "sha256": self.sha256, "size": self.size, "reused": self.reused,
                "port": self.port}


def default_epoch(app_dir: Path, spec: AppSpec) -> int:
    """SOURCE_DATE_EPOCH if set, else the newest mtime among the app's files: stable for one checkout."""
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env:
        return int(env)
    mtimes = [int((app_dir / rel).lstat().st_mtime) for rel in _inputs(app_dir, spec)]
    return max(mtimes, default=0)


def _inputs(app_dir: Path, spec: AppSpec) -> Iterator[Path]:
    """The files the .deb is made from: those that ship, and with a build step also the excluded
    ones it may read (its output is derived from them, so they decide whether anything changed)."""
    if spec.command(BUILD_COMMAND) is not None:
        return build_inputs(app_dir, spec.exclude)
    return app_files(app_dir, spec.exclude)


def build(app_dir: Path, options: BuildOptions, report: Reporter = quiet) -> BuildResult:
    """Build one package; returns quickly with the existing .deb when nothing changed."""
    app_dir = app_dir.resolve()
    spec = load_spec(app_dir)
    epoch = options.source_date_epoch if options.source_date_epoch is not None else default_epoch(
        app_dir, spec)
    plan = make_plan(spec, instance=options.instance, build_number=options.build_number, vcs=options.vcs,
                     python_version=options.python_version, target=options.target, compression=options.compression,
                     source_date_epoch=epoch)
    out_dir = options.out_dir.resolve()
    fingerprint = _fingerprint(plan, options)
    reused = _reuse(out_dir, plan.package, fingerprint)
    if reused:  # no name lookup: it was done when this .deb was built, and costs up to ~1 s
        return replace(reused, port=_port(plan))
    return replace(_build_checking_name(plan, app_dir, out_dir, fingerprint, report), port=_port(plan))


def _port(plan: BuildPlan) -> int | None:
    """Where the instance's web process listens on 127.0.0.1 (None without a web process)."""
    return plan.port if plan.web_unit else None


def _build_checking_name(plan: BuildPlan, app_dir: Path, out_dir: Path, fingerprint: str,
                         report: Reporter) -> BuildResult:
    """_build, with the package name looked up in the host's apt sources alongside (namecheck)."""
    from concurrent.futures import ThreadPoolExecutor

    from appdeb.build import sealed
    from appdeb.build.namecheck import name_warnings
    from appdeb.build.vendor import cache_root

    sealed.check_owner(cache_root())  # before anything reads or writes the cache
    with ThreadPoolExecutor(1) as pool:  # apt-cache needs ~1 s where no pkgcache.bin is kept
        warnings = pool.submit(name_warnings, plan.package, cache_root())
        result = _build(plan, app_dir, out_dir, fingerprint, report)
        return replace(result, warnings=(*warnings.result(), *result.warnings))


def _build(plan: BuildPlan, app_dir: Path, out_dir: Path, fingerprint: str, report: Reporter) -> BuildResult:
    """The real work, only when something changed (its modules are imported only then)."""
    from concurrent.futures import ThreadPoolExecutor

    from appdeb.build.bytecode import MARK, compiler
    from appdeb.build.deb import Inputs, write_deb
    from appdeb.build.entrypoints import console_scripts
    from appdeb.build.interface import check_interface
    from appdeb.build.payload import available as payload_available
    from appdeb.build.render import RenderedFile, render
    from appdeb.build.stage import requirement_files
    from appdeb.build.vendor import cache_root, vendor
    from appdeb.files import sha256_of

    report(f"vendoring {len(plan.requirements)} requirements for {plan.target.name} (python {plan.python_version})")
    vendored = vendor(plan.requirements, plan.python_version, app_dir, plan.target.glibc_minor)
    plan = with_vendor(plan, binary_dists=vendored.binary_dists, vendored=vendored.dists,
                       console_scripts=console_scripts(vendored.lib), glibc=vendored.glibc)
    step = plan.spec.command(BUILD_COMMAND)
    with tempfile.TemporaryDirectory(prefix="appdeb-stage-") as tmp, ThreadPoolExecutor(1) as pool:
        # the app's import runs in a process of its own, beside the rest (after commands.build, if any)
        check = None if step else pool.submit(check_interface, plan, vendored.lib, None, vendored.tree)
        files = render(plan)
        comp = compiler(plan.target)
        if comp is not None:  # the package ships byte code: which interpreter compiled it (postinst reads it)
            files[f"{plan.paths.runtime[1:]}/{MARK}"] = RenderedFile(comp.mark())
        shipped = plan
        if step is not None:
            from appdeb.build.build_step import run_build_step

            report(f"running commands.build: {step}")
            copy = run_build_step(plan, vendored.lib, Path(tmp) / "build")
            shipped = replace(plan, spec=replace(plan.spec, app_dir=copy))  # the copy, after the command
            check = pool.submit(check_interface, plan, vendored.lib, copy, vendored.tree)
        assert check is not None
        report("checking the web app's interface, writing the package")
        if plan.compression == "zstd" and payload_available():
            inputs = Inputs(shipped.spec.app_dir, vendored.lib, vendored.tree,
                            [str(app_dir), str(cache_root()), str(out_dir)], [tmp], requirement_files(plan), comp,
                            gate=check.result)  # a refused interface stops the .deb before it is named
            deb = write_deb(shipped, files, inputs, out_dir, cache_root() / "payload")
        else:
            check.result()
            deb = _staged_deb(shipped, vendored.lib, files, Path(tmp), [app_dir, out_dir], comp, report)
        warning = check.result()
    result = BuildResult(deb, plan.package, plan.version, plan.architecture, sha256_of(deb), deb.stat().st_size,
                         reused=False, warnings=(warning,) if warning else ())
    _remember(out_dir, plan.package, fingerprint, result)
    return result


def _staged_deb(plan: BuildPlan, lib: Path, files: dict[str, RenderedFile], tmp: Path, dirs: list[Path],
                comp: Compiler | None, report: Reporter) -> Path:
    """The .deb through a staged tree and dpkg-deb (no zstd program here, or xz asked for)."""
    from appdeb.build.assemble import assemble
    from appdeb.build.bytecode import compile_staged
    from appdeb.build.stage import normalize, refuse_build_paths, requirement_files, stage
    from appdeb.build.vendor import cache_root

    report("staging")
    tree = tmp / "pkg"
    stage(plan, lib, files, tree)
    refuse_build_paths(tree, [str(tmp), str(tree), *map(str, dirs), str(cache_root())], requirement_files(plan))
    if comp is not None:  # after the build-path check: byte code repeats its sources' strings
        report(f"byte-compiling with {comp.program}")
        compile_staged(comp, tree, plan.paths.root, plan.paths.lib, plan.paths.app)
        normalize(tree, plan.source_date_epoch, plan.paths.lib[1:])
    report(f"compressing ({plan.compression})")
    return assemble(plan, tree, out_dir=dirs[1])


def _fingerprint(plan: BuildPlan, options: BuildOptions) -> str:
    """Everything the .deb depends on: appdeb itself, templates, options and every app file's bytes."""
    h = hashlib.sha256()
    h.update(f"{__version__}\0{plan.package}\0{plan.version}\0{plan.target.name}\0{plan.compression}\0"
             f"{plan.source_date_epoch}\0{options.instance}".encode())
    for name, source in shipped_sources().items():
        h.update(name.encode() + b"\0" + source)
    h.update(f"\0{bytecode_stamp(plan.target)}\0".encode())  # an interpreter appearing or going changes the .deb
    for path in sorted(template_dir().iterdir()):
        h.update(path.name.encode() + path.read_bytes())
    for rel in _inputs(plan.spec.app_dir, plan.spec):
        full = plan.spec.app_dir / rel
        h.update(str(rel).encode() + b"\0" + (os.readlink(full).encode() if full.is_symlink() else full.read_bytes()))
    return h.hexdigest()


def _state_file(out_dir: Path, package: str) -> Path:
    return out_dir / ".appdeb-state" / f"{package}.json"


def _reuse(out_dir: Path, package: str, fingerprint: str) -> BuildResult | None:
    try:
        state = json.loads(_state_file(out_dir, package).read_text())
    except (OSError, ValueError):
        return None
    deb = out_dir / state["deb"]
    try:
        st = deb.stat()
    except OSError:
        return None
    if state["fingerprint"] != fingerprint or st.st_size != state["size"] or st.st_mtime_ns != state["mtime_ns"]:
        return None
    return BuildResult(deb, state["package"], state["version"], state["architecture"], state["sha256"],
                       st.st_size, reused=True)


def _remember(out_dir: Path, package: str, fingerprint: str, result: BuildResult) -> None:
    path = _state_file(out_dir, package)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"fingerprint": fingerprint, "deb": result.deb.name, "package": result.package,
            "version": result.version, "architecture": result.architecture, "sha256": result.sha256,
            "size": result.size, "mtime_ns": result.deb.stat().st_mtime_ns}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


__all__ = ["BuildOptions", "BuildResult", "build"]
