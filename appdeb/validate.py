"""validate: the YAML tree of app.yaml → AppSpec, collecting every problem before failing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .checker import Checker, plain
from .errors import Problem, SpecError
from .platforms import PLATFORMS
from .services import SERVICES
from .spec import (
    LIFECYCLE_COMMANDS,
    AppSpec,
    InstanceSettings,
    Process,
    Requirements,
    Service,
    Setting,
    Static,
    Timer,
    Web,
)
from .yamlload import YNode, load

TOP_KEYS = ("name", "version", "description", "maintainer", "platform", "require", "python", "wsgi", "web",
            "commands", "processes", "timers", "static", "env", "services", "instances", "exclude")
REQUIRED = ("name", "version", "description", "maintainer", "platform")
NAME_RE = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
IDENT_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
VERSION_RE = re.compile(r"^[0-9][A-Za-z0-9.+~-]*$")
OBJECT_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
SPECIFIER_RE = re.compile(r"^\s*(==|!=|>=|<=|~=|>|<)\s*\d+(\.\d+)*\s*$")
KNOWN_SERVICES = tuple(SERVICES)
OS_VALUES = ("debian",)


def load_spec(app_dir: Path) -> AppSpec:
    """Read and validate APP_DIR/app.yaml; raise SpecError listing every problem."""
    path = app_dir / "app.yaml"
    tree, dup_problems = load(path, display_name=str(path))
    check = Checker(str(path))
    check.problems.extend(dup_problems)
    spec = _spec(tree, check, app_dir)
    if check.problems or spec is None:
        raise SpecError(check.problems or [Problem(str(path), 1, 1, "", "invalid")])
    return spec


def _spec(tree: YNode, c: Checker, app_dir: Path) -> AppSpec | None:
    top = c.mapping(tree, "")
    if top is None:
        return None
    c.keys(tree, "", TOP_KEYS, REQUIRED)
    name = _name(top.get("name"), c)
    version = c.string(top.get("version"), "version")
    if version is not None and not VERSION_RE.match(version):
        c.add(top["version"], "version", f"'{version}' is not a version (digits first, then letters, digits, . + ~ -)")
    platform = _platform(top.get("platform"), top, c)
    spec = AppSpec(
        app_dir=app_dir,
        name=name or "",
        version=version or "",
        description=_text(top.get("description"), "description", c),
        maintainer=_maintainer(top.get("maintainer"), c),
        platform=platform,
        require=_require(top.get("require"), c, app_dir),
        python_paths=_python(top.get("python"), c, app_dir),
        web=_web(top.get("wsgi"), top.get("web"), c),
        commands=_commands(top.get("commands"), c),
        processes=tuple(Process(n, cmd) for n, cmd in _named_commands(top.get("processes"), "processes", c)),
        timers=_timers(top.get("timers"), c),
        static=_static(top.get("static"), c, app_dir),
        env=_env(top.get("env"), c),
        services=_services(top.get("services"), c),
        instances=_instances(top.get("instances"), c),
        exclude=tuple(c.string_list(top.get("exclude"), "exclude")),
        raw=plain(tree),
    )
    return spec


def _name(node: YNode | None, c: Checker) -> str | None:
    name = c.string(node, "name")
    if name is not None and (not NAME_RE.match(name) or len(name) > 24):
        c.add(node, "name", f"'{name}' is not a valid app name (lower-case letters, digits and single "
              "hyphens, starting with a letter, at most 24 characters)")
        return None
    return name


def _text(node: YNode | None, key: str, c: Checker) -> str:
    text = c.string(node, key)
    if text is not None and not text.strip():
        c.add(node, key, "must not be empty")
    return (text or "").strip()


def _maintainer(node: YNode | None, c: Checker) -> str:
    text = _text(node, "maintainer", c)
    if text and not re.match(r"^[^<>]+ <[^<>@\s]+@[^<>\s]+>$", text):
        c.add(node, "maintainer", f"'{text}' must look like 'Full Name <email@example.org>'")
    return text


def _platform(node: YNode | None, top: dict[str, YNode], c: Checker) -> tuple[str, ...]:
    names = c.string_list(node, "platform", split_commas=True)
    for n in names:
        if n not in PLATFORMS:
            c.add(node, "platform", f"unknown platform '{n}' (allowed: {', '.join(PLATFORMS)})")
    known = [n for n in names if n in PLATFORMS]
    for n in known:
        for need in PLATFORMS[n].needs:
            if need not in known:
                c.add(node, "platform", f"'{n}' needs '{need}' in the platform list too")
        for section in PLATFORMS[n].sections:
            if section not in top:
                c.add(node, section, f"platform '{n}' needs a '{section}:' section")
    if node is not None and not names:
        c.add(node, "platform", f"must name at least one platform (allowed: {', '.join(PLATFORMS)})")
    return tuple(known)


def _require(node: YNode | None, c: Checker, app_dir: Path) -> Requirements:
    m = c.mapping(node, "require")
    if not m:
        return Requirements()
    assert node is not None
    c.keys(node, "require", ("os", "python", "deb", "pip"))
    os_name = c.string(m.get("os"), "require.os") or "debian"
    if os_name not in OS_VALUES:
        c.add(m["os"], "require.os", f"unsupported os '{os_name}' (allowed: {', '.join(OS_VALUES)})")
    python = c.string(m.get("python"), "require.python") or ""
    for part in filter(None, (p.strip() for p in python.split(","))):
        if not SPECIFIER_RE.match(part):
            c.add(m["python"], "require.python", f"'{part}' is not a version specifier (e.g. '>=3.11', '<3.13')")
    debs = c.string_list(m.get("deb"), "require.deb")
    for d in debs:
        if not re.match(r"^[a-z0-9][a-z0-9+.-]+(\s*\([<>=]+\s*[^)]+\))?$", d):
            c.add(m["deb"], "require.deb", f"'{d}' is not a Debian package relation (e.g. 'libpq5 (>= 15)')")
    pip, pip_file = _pip(m.get("pip"), c, app_dir)
    return Requirements(os=os_name, python=python, deb=tuple(debs), pip=pip, pip_file=pip_file)


def _pip(node: YNode | None, c: Checker, app_dir: Path) -> tuple[tuple[str, ...], str | None]:
    if node is None or node.kind == "null":
        return (), None
    if node.kind == "seq":
        return tuple(c.string_list(node, "require.pip")), None
    name = c.string(node, "require.pip")
    if name is None:
        return (), None
    path = app_dir / name
    if not path.is_file():
        c.add(node, "require.pip", f"requirements file '{name}' does not exist in {app_dir}")
        return (), None
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    return tuple(ln for ln in lines if ln and not ln.startswith("#")), name


def _python(node: YNode | None, c: Checker, app_dir: Path) -> tuple[str, ...]:
    m = c.mapping(node, "python")
    if not m:
        return ()
    assert node is not None
    c.keys(node, "python", ("paths",))
    paths = c.string_list(m.get("paths"), "python.paths")
    for p in paths:
        if p.startswith("/") or ".." in Path(p).parts:
            c.add(m["paths"], "python.paths", f"'{p}' must be a path inside the app directory")
        elif not (app_dir / p).is_dir():
            c.add(m["paths"], "python.paths", f"'{p}' is not a directory in the app")
    return tuple(p.rstrip("/") or "." for p in paths)


def _web(wsgi: YNode | None, web: YNode | None, c: Checker) -> Web | None:
    w = c.mapping(wsgi, "wsgi")
    if wsgi is None or w is None:
        if web is not None:
            c.add(web, "web", "only meaningful with a 'wsgi:' section")
        return None
    c.keys(wsgi, "wsgi", ("app",), ("app",))
    app = c.string(w.get("app"), "wsgi.app")
    if app is not None and not OBJECT_RE.match(app):
        c.add(w["app"], "wsgi.app", f"'{app}' must be 'module:object' (e.g. 'myapp.wsgi:application')")
    opts = c.mapping(web, "web") or {}
    if web is not None and opts:
        c.keys(web, "web", ("workers", "timeout", "graceful_timeout", "max_requests", "max_requests_jitter", "port",
                            "nginx", "public_port"))
    ints = {
        "workers": (1, 64), "timeout": (1, 3600), "graceful_timeout": (1, 3600),
        "max_requests": (0, 10**7), "max_requests_jitter": (0, 10**6), "port": (1024, 65535),
        "public_port": (1, 65535),
    }
    values: dict[str, Any] = {k: c.integer(opts.get(k), f"web.{k}", *rng) for k, rng in ints.items() if k in opts}
    if "nginx" in opts:
        values["nginx"] = c.boolean(opts["nginx"], "web.nginx")
    return Web(app=app or "", **{k: v for k, v in values.items() if v is not None})


def _named_commands(node: YNode | None, section: str, c: Checker) -> list[tuple[str, str]]:
    """`name: command` or `name: {command: …}` pairs, names checked."""
    m = c.mapping(node, section) or {}
    out = []
    for name, item in m.items():
        path = f"{section}.{name}"
        if not IDENT_RE.match(name):
            c.add(node, path, "names are lower-case letters, digits and hyphens, starting with a letter",
                  node.keys_at[name] if node else None)
            continue
        if item.kind == "map":
            c.keys(item, path, ("command",), ("command",))
            cmd = c.string(item.value.get("command"), f"{path}.command")
        else:
            cmd = c.string(item, path)
        if cmd is not None and not cmd.strip():
            c.add(item, path, "command must not be empty")
        elif cmd is not None:
            out.append((name, cmd.strip()))
    return out


def _commands(node: YNode | None, c: Checker) -> tuple[tuple[str, str], ...]:
    pairs = _named_commands(node, "commands", c)
    reserved = {"run", "env", "web", "process", "timer", "backups", "shell", "help", "version", "rollback", "unpin"}
    for name, _ in pairs:
        if name in reserved:
            assert node is not None
            c.add(node, f"commands.{name}", f"'{name}' is a launcher verb; choose another name "
                  f"(lifecycle names: {', '.join(LIFECYCLE_COMMANDS)})", node.keys_at[name])
    return tuple(pairs)


def _timers(node: YNode | None, c: Checker) -> tuple[Timer, ...]:
    m = c.mapping(node, "timers") or {}
    out = []
    for name, item in m.items():
        path = f"timers.{name}"
        if not IDENT_RE.match(name) or item.kind != "map":
            c.add(item, path, "each timer is 'name: {command: …, schedule: …}' with a lower-case name")
            continue
        c.keys(item, path, ("command", "schedule"), ("command", "schedule"))
        cmd = c.string(item.value.get("command"), f"{path}.command")
        schedule = c.string(item.value.get("schedule"), f"{path}.schedule")
        if cmd and schedule:
            out.append(Timer(name, cmd.strip(), schedule.strip()))
    return tuple(out)


def _static(node: YNode | None, c: Checker, app_dir: Path) -> Static | None:
    if node is None or node.kind == "null":
        return None
    if node.kind == "map":
        c.keys(node, "static", ("dir", "url"), ("dir",))
        d = c.string(node.value.get("dir"), "static.dir")
        url = c.string(node.value.get("url"), "static.url") or "/static/"
    else:
        d, url = c.string(node, "static"), "/static/"
    if d is None:
        return None
    if not (app_dir / d).is_dir():
        c.add(node, "static", f"'{d}' is not a directory in the app")
    if not url.startswith("/"):
        c.add(node, "static.url", f"'{url}' must start with '/'")
    return Static(dir=d.rstrip("/"), url=url if url.endswith("/") else url + "/")


def _env(node: YNode | None, c: Checker) -> tuple[Setting, ...]:
    if node is not None and node.kind == "seq":
        names = c.string_list(node, "env")
        return tuple(Setting(n, required=True) for n in names if _env_name(n, node, c))
    m = c.mapping(node, "env") or {}
    out = []
    for name, item in m.items():
        path = f"env.{name}"
        if not _env_name(name, item, c):
            continue
        if item.kind == "map":
            c.keys(item, path, ("default", "required", "description"))
            default = c.string(item.value.get("default"), f"{path}.default", allow_number=True)
            required = c.boolean(item.value.get("required"), f"{path}.required") or False
            desc = c.string(item.value.get("description"), f"{path}.description") or ""
            out.append(Setting(name, default, required and default is None, desc))
        elif item.kind == "null":
            out.append(Setting(name, required=True))
        else:
            out.append(Setting(name, c.string(item, path, allow_number=True)))
    return tuple(out)


def _env_name(name: str, node: YNode, c: Checker) -> bool:
    if ENV_RE.match(name):
        return True
    c.add(node, f"env.{name}", "setting names are letters, digits and underscores")
    return False


def _services(node: YNode | None, c: Checker) -> tuple[Service, ...]:
    if node is not None and node.kind == "seq":
        kinds = c.string_list(node, "services")
        items: list[tuple[str, dict[str, Any]]] = [(k, {}) for k in kinds]
    else:
        m = c.mapping(node, "services") or {}
        items = []
        for k, v in m.items():
            opts = c.mapping(v, f"services.{k}")
            items.append((k, {key: plain(val) for key, val in (opts or {}).items()}))
    out = []
    for kind, opts in items:
        if kind not in KNOWN_SERVICES:
            c.add(node, f"services.{kind}", f"unknown service (allowed: {', '.join(KNOWN_SERVICES)})")
            continue
        out.append(Service(kind, tuple(sorted(opts.items()))))
    return tuple(out)


def _instances(node: YNode | None, c: Checker) -> tuple[tuple[str, InstanceSettings], ...]:
    m = c.mapping(node, "instances") or {}
    out = []
    for name, item in m.items():
        path = f"instances.{name}"
        if not IDENT_RE.match(name):
            c.add(item, path, "instance names are lower-case letters, digits and hyphens")
            continue
        opts = c.mapping(item, path) or {}
        if item.kind == "map":
            c.keys(item, path, ("port", "server_name", "public_port"))
        port = c.integer(opts.get("port"), f"{path}.port", 1024, 65535)
        public = c.integer(opts.get("public_port"), f"{path}.public_port", 1, 65535)
        server = c.string(opts.get("server_name"), f"{path}.server_name")
        out.append((name, InstanceSettings(port=port, server_name=server, public_port=public)))
    return tuple(out)
