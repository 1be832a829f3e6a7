"""plan: decide every name, path, port, unit and version of a build — in one place, from the spec alone."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, fields, replace
from pathlib import PurePosixPath

from debian.debian_support import Version

from appdeb.build.entrypoints import Script
from appdeb.build.platforms import extra_requirements
from appdeb.build.requirements import rebase
from appdeb.build.spec import AppSpec
from appdeb.build.targets import TARGETS, Target, resolve
from appdeb.build.units import Unit, units_for, wants_nginx
from appdeb.errors import AppdebError
from appdeb.files import debian_arch
from appdeb.runtime import contract

COMPRESSIONS = ("zstd", "xz", "gzip", "none")
PORT_BASE, PORT_SPAN = 20000, 10000
# appdeb's own state on a node, root's alone: never inside a directory the app user can write.
OWN_STATE = "/var/lib/appdeb"
DEFAULT_BACKUP_KEEP = 5
# the maintainer scripts call deb-systemd-helper and deb-systemd-invoke as debhelper's do, which
# needs this version (debhelper asks for the same); a versioned relation also because it is essential
INIT_SYSTEM_HELPERS = "init-system-helpers (>= 1.54~)"


@dataclass(frozen=True)
class Paths(contract.Paths):
    """Where an instance lives on the node; nothing of one instance overlaps another's.

    The runtime's share (contract.Paths: etc, settings, state, own, secret, pin …) plus what only
    the package itself needs to know (where its files go).
    """

    root: str = ""  # /opt/PKG: the app, its libraries and the runtime
    app: str = ""
    lib: str = ""
    bin: str = ""  # console scripts of the vendored libraries (on the app's PATH)
    runtime: str = ""
    unit_dir: str = "/lib/systemd/system"
    doc: str = ""
    nginx_site: str = ""  # the site's link in nginx's sites-enabled (contract.nginx_site_path decides it)
    web_socket: str = ""  # the web socket's unix listener for the nginx site, in the root-owned run directory

    def for_runtime(self) -> contract.Paths:
        """The share app.json carries."""
        return contract.Paths(**{f.name: getattr(self, f.name) for f in fields(contract.Paths)})


@dataclass(frozen=True)
class Names:
    """The instance naming decision: package, user and every path derive from this."""

    package: str
    user: str
    port: int


@dataclass(frozen=True)
class BuildPlan:
    """What we decided to build; templates see only this."""

    spec: AppSpec
    instance: str
    package: str
    version: str
    upstream_version: str
    build_number: int
    user: str
    port: int
    server_name: str
    nginx: bool
    public_port: int
    paths: Paths
    units: tuple[Unit, ...]
    depends: tuple[str, ...]
    pre_depends: tuple[str, ...]
    requirements: tuple[str, ...]
    python_version: str  # "3.11": the node's python3 must be this (the target's)
    target: Target  # the Debian release built for: python, wheel platform, floors, suite
    compression: str
    source_date_epoch: int
    architecture: str = "all"
    python_abi: str = ""  # set when binary wheels are vendored (e.g. cp311)
    binary_dists: tuple[str, ...] = ()
    vendored: tuple[str, ...] = ()
    console_scripts: tuple[Script, ...] = ()  # of the vendored libraries, shipped in paths.bin
    backup_keep: int = DEFAULT_BACKUP_KEEP  # backups kept per instance (0: all); settings may override

    @property
    def distribution(self) -> str:
        """The repository distribution (apt suite) this package is published into: its target's."""
        return self.target.suite

    @property
    def rebuild_hints(self) -> tuple[tuple[str, str], ...]:
        """(python, target name) of every target: preinst names the one that fits a node it refuses."""
        return tuple((t.python, t.name) for t in TARGETS.values())

    @property
    def web_unit(self) -> Unit | None:
        return next((u for u in self.units if u.kind == "web"), None)


def instance_names(spec: AppSpec, instance: str | None) -> Names:
    """THE naming rule: `NAME` or `NAME-INSTANCE`, a same-named system user, a stable port."""
    if instance is not None and not re.fullmatch(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*", instance):
        raise AppdebError(f"instance name '{instance}' must be lower-case letters, digits and single hyphens")
    package = f"{spec.name}-{instance}" if instance else spec.name
    if package == "appdeb":  # /var/lib/appdeb holds every instance's root-owned state
        raise AppdebError("the package name 'appdeb' is reserved; choose another app name or an --instance")
    if len(package) > 32:
        raise AppdebError(f"package name '{package}' is longer than 32 characters (system user names are limited)")
    settings = spec.instance_settings(instance)
    port = settings.port or (spec.web.port if spec.web and spec.web.port and not instance else None)
    return Names(package=package, user=package, port=port or default_port(package))


def port_notes(spec: AppSpec) -> list[str]:
    """Where each instance listens and why: what `check` tells, so nobody has to guess a derived port."""
    if spec.web is None:
        return []
    base = instance_names(spec, None)
    source = "web.port" if spec.web.port else "derived from the package name"
    notes = [f"{base.package}: port {base.port} ({source})"]
    for name, settings in spec.instances:
        names = instance_names(spec, name)
        why = f"instances.{name}.port" if settings.port else "derived from the package name"
        notes.append(f"{names.package}: port {names.port} ({why})")
    notes.append(f"any other instance NAME: a port derived from '{spec.name}-NAME' (20000-29999); "
                 "set instances.NAME.port to choose it")
    return notes


def default_port(package: str) -> int:
    """A port derived from the package name, so instances differ without configuration."""
    return PORT_BASE + zlib.crc32(package.encode()) % PORT_SPAN


def paths_for(package: str) -> Paths:
    root = f"/opt/{package}"
    return Paths(
        root=root, app=f"{root}/app", lib=f"{root}/lib", bin=f"{root}/bin", runtime=f"{root}/appdeb",
        etc=f"/etc/{package}", settings=f"/etc/{package}/settings.env",
        state=f"/var/lib/{package}", tmp=f"/var/lib/{package}/tmp", logs=f"/var/log/{package}",
        backups=f"/var/backups/{package}", launcher=f"/usr/bin/{package}", doc=f"/usr/share/doc/{package}",
        own=f"{OWN_STATE}/{package}", run=f"/run/appdeb/{package}", secret=f"/etc/{package}/secret",
        pin=f"/etc/apt/preferences.d/{package}-appdeb-pin", nginx_site=contract.nginx_site_path(package),
        web_socket=f"/run/appdeb/{package}/web.sock",
    )


def debian_version(app_version: str, build_number: int, vcs: str | None = None) -> tuple[str, str]:
    """(upstream, full) Debian version; pre-releases sort before releases, higher builds sort higher."""
    upstream = app_version
    upstream = re.sub(r"[.-]?(dev|a|alpha|b|beta|rc|c|pre|preview)(?=\d|$)", r"~\1", upstream)
    upstream = re.sub(r"[.-]?post(?=\d|$)", "+post", upstream)
    upstream = upstream.replace("_", ".")
    if ":" in upstream:
        raise AppdebError(f"version '{app_version}': ':' (an epoch) is not allowed in app versions")
    full = f"{upstream}-{build_number}"
    if vcs:
        full += f"+{re.sub(r'[^A-Za-z0-9.]', '', vcs)}"
    try:
        Version(full)
    except ValueError as exc:
        raise AppdebError(f"version '{app_version}' does not make a valid Debian version: {exc}") from None
    return upstream, full


def make_plan(
    spec: AppSpec,
    *,
    instance: str | None = None,
    build_number: int = 1,
    vcs: str | None = None,
    python_version: str | None = None,
    target: str | None = None,
    compression: str = "zstd",
    source_date_epoch: int,
) -> BuildPlan:
    """Pure: the spec and the build options in, every decision out."""
    if compression not in COMPRESSIONS:
        raise AppdebError(f"unknown compression '{compression}' (allowed: {', '.join(COMPRESSIONS)})")
    if build_number < 0:
        raise AppdebError("the build number must be 0 or more")
    chosen = resolve(spec.target, target, python_version)
    check_python(spec.require.python, chosen.python)
    names = instance_names(spec, instance)
    upstream, version = debian_version(spec.version, build_number, vcs)
    settings = spec.instance_settings(instance)
    depends = (*chosen.python_floors, "adduser", INIT_SYSTEM_HELPERS, *spec.require.deb,
               *service_depends(spec, chosen), *(("nginx",) if wants_nginx(spec) else ()))
    return BuildPlan(
        spec=spec, instance=instance or "", package=names.package, version=version, upstream_version=upstream,
        build_number=build_number, user=names.user, port=names.port,
        server_name=settings.server_name or f"{names.package}.localhost",
        nginx=wants_nginx(spec), public_port=settings.public_port or (spec.web.public_port if spec.web else 80),
        paths=paths_for(names.package), units=units_for(spec, names.package, paths_for(names.package).web_socket),
        depends=tuple(dict.fromkeys(depends)), pre_depends=("python3",),
        requirements=app_requirements(spec),
        python_version=chosen.python, target=chosen, compression=compression, source_date_epoch=source_date_epoch,
        backup_keep=next((k for k in (settings.backup_keep, spec.backup_keep) if k is not None), DEFAULT_BACKUP_KEEP),
    )


def app_requirements(spec: AppSpec) -> tuple[str, ...]:
    """What to vendor: the app's lines (their `-r`/`-c` paths relative to the app directory), then what
    its platforms add unless the app chose that project itself."""
    base = str(PurePosixPath(spec.require.pip_file).parent) if spec.require.pip_file else "."
    extra = extra_requirements(spec.platform, spec.require.projects, spec.require.constrained)
    return (*rebase(spec.require.pip, base), *extra)


def service_depends(spec: AppSpec, target: Target) -> tuple[str, ...]:
    """Debian packages the app's requested services pull onto the node, at the target's versions."""
    from appdeb.services import SERVICES

    versioned = {"postgresql": target.postgres_depends}
    return tuple(versioned.get(dep, dep) for svc in spec.services for dep in SERVICES[svc.kind].depends)


def with_vendor(plan: BuildPlan, *, binary_dists: tuple[str, ...], vendored: tuple[str, ...],
                console_scripts: tuple[Script, ...] = (), glibc: str = "") -> BuildPlan:
    """Record what vendoring found: binary wheels make the package architecture-specific and need
    the glibc their manylinux tags name (libc6 is essential, but the version is the wheels')."""
    arch = debian_arch()
    abi = "cp" + plan.python_version.replace(".", "") if binary_dists else ""
    libc = (f"libc6 (>= {glibc})",) if glibc and binary_dists else ()
    return replace(plan, architecture=arch if binary_dists else "all", python_abi=abi,
                   binary_dists=binary_dists, vendored=vendored, console_scripts=console_scripts,
                   depends=tuple(dict.fromkeys((*plan.depends, *libc))))


def check_python(specifier: str, version: str) -> None:
    """Refuse to build for a Python the app says it does not support."""
    if not re.fullmatch(r"3\.[0-9]{1,2}", version):
        raise AppdebError(f"python version {version!r} is not MAJOR.MINOR of a python 3 (e.g. 3.11)")
    target = tuple(int(x) for x in version.split("."))
    for part in filter(None, (p.strip() for p in specifier.split(","))):
        m = re.match(r"^(==|!=|>=|<=|~=|>|<)\s*([\d.]+)$", part)
        if not m:
            continue
        op, ver = m.group(1), tuple(int(x) for x in m.group(2).split("."))
        t = target[: len(ver)] if op in ("==", "!=") else target
        ok = {"==": t == ver, "!=": t != ver, ">=": t >= ver, "<=": t <= ver, ">": t > ver, "<": t < ver,
              "~=": t >= ver and t[: len(ver) - 1] == ver[:-1]}[op]
        if not ok:
            raise AppdebError(f"the app requires python {specifier}, but the build targets python {version}")
