"""validate: the YAML tree of app.yaml → AppSpec, collecting every problem before failing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from appdeb.build import rules, validate_config, validate_files, validate_web
from appdeb.build.fields import Checker, plain
from appdeb.build.platforms import PLATFORMS
from appdeb.build.rules import ENV_RE, IDENT_RE, NAME_RE, shown
from appdeb.build.spec import (
    LIFECYCLE_COMMANDS,
    READY_KINDS,
    AppSpec,
    InstanceSettings,
    Process,
    ServiceSpec,
    Setting,
    Timer,
)
from appdeb.build.yamlload import YNode, load
from appdeb.errors import Problem, SpecError
from appdeb.services import SERVICES

TOP_KEYS = ("name", "version", "description", "maintainer", "platform", "require", "python", "wsgi", "asgi", "web",
            "commands", "processes", "timers", "static", "env", "services", "instances", "exclude", "backups",
            "config_files", "target")
REQUIRED = ("name", "version", "description", "maintainer", "platform")
KNOWN_SERVICES = tuple(SERVICES)
MAP_KEYS = {"commands": ("command", "timeout"), "processes": ("command", "ready")}


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
    platform = _platform(top.get("platform"), top, c)
    spec = AppSpec(
        app_dir=app_dir,
        name=_name(top.get("name"), c) or "",
        version=_version(top.get("version"), c),
        description=_checked_text(top.get("description"), "description", c, rules.description),
        maintainer=_checked_text(top.get("maintainer"), "maintainer", c, rules.maintainer),
        platform=platform,
        require=validate_files.require(top.get("require"), c, app_dir),
        python_paths=validate_files.python_paths(top.get("python"), c, app_dir),
        web=validate_web.web(top, platform, c),
        commands=_commands(top.get("commands"), c),
        command_timeouts=validate_config.command_timeouts(top.get("commands"), c),
        processes=_processes(top.get("processes"), c),
        timers=_timers(top.get("timers"), c),
        static=validate_files.static(top.get("static"), c, app_dir, built=validate_files.has_build(top)),
        env=_env(top.get("env"), c),
        services=_services(top.get("services"), c),
        instances=_instances(top.get("instances"), c),
        exclude=validate_files.exclude(top.get("exclude"), c, app_dir)
        if validate_config.exclude_fits(top.get("exclude"), c) else (),
        backup_keep=validate_config.backup_keep(top.get("backups"), "backups", c),
        config_files=validate_config.config_files(top.get("config_files"), c, app_dir),
        target=validate_config.target(top.get("target"), c),
        raw=plain(tree),
    )
    validate_config.references(top, c, app_dir, spec.env, spec.services, spec.config_files)
    validate_config.unit_names(top, c, spec)
    return spec


def _name(node: YNode | None, c: Checker) -> str | None:
    name = c.string(node, "name")
    if name is not None and (not NAME_RE.fullmatch(name) or len(name) > 24):
        c.add(node, "name", f"{shown(name)} is not a valid app name (lower-case letters, digits and single "
              "hyphens, starting with a letter, at most 24 characters)")
        return None
    return name


def _version(node: YNode | None, c: Checker) -> str:
    version = c.string(node, "version")
    if version is not None and not rules.VERSION_RE.fullmatch(version):
        c.add(node, "version", f"{shown(version)} is not a version (digits first, then letters, digits, . + ~ -; "
              "at most 64 characters)")
    return version or ""


def _text(node: YNode | None, key: str, c: Checker) -> str:
    text = c.string(node, key)
    if text is not None and not text.strip():
        c.add(node, key, "must not be empty")
    return (text or "").strip()


def _checked_text(node: YNode | None, key: str, c: Checker, rule: Callable[[str], str | None]) -> str:
    """A required text field, stripped, then held to its rule (one line for the maintainer, …)."""
    text = _text(node, key, c)
    if text:
        c.check(node, key, rule(text))
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
    web = [n for n in known if PLATFORMS[n].serves_web]
    if len(web) > 1:
        c.add(node, "platform", f"'{web[0]}' and '{web[1]}' both serve the web app; name one")
    if node is not None and not names:
        c.add(node, "platform", f"must name at least one platform (allowed: {', '.join(PLATFORMS)})")
    return tuple(known)


def _named_commands(node: YNode | None, section: str, c: Checker) -> list[tuple[str, str]]:
    """`name: command` or `name: {command: …}` pairs, names checked.

    Commands are shell on purpose (the runtime runs them as the app user via /bin/sh -c); they
    travel as data in app.json and no template renders them, so any one line or several is fine.
    """
    m = c.mapping(node, section) or {}
    out = []
    for name, item in m.items():
        path = f"{section}.{name}"
        if not IDENT_RE.fullmatch(name):
            c.add(node, path, "names are lower-case letters, digits and hyphens, starting with a letter",
                  node.keys_at[name] if node else None)
            continue
        if item.kind == "map":
            c.keys(item, path, MAP_KEYS.get(section, ("command",)), ("command",))
            cmd = c.string(item.value.get("command"), f"{path}.command")
        else:
            cmd = c.string(item, path)
        if cmd is not None and _command(item, path, cmd, c):
            out.append((name, cmd.strip()))
    return out


def _processes(node: YNode | None, c: Checker) -> tuple[Process, ...]:
    """A process says how verify learns it started: by staying up (settle) or by telling systemd (notify)."""
    out = []
    for name, cmd in _named_commands(node, "processes", c):
        item = node.value[name] if node else None
        ready_node = item.value.get("ready") if item is not None and item.kind == "map" else None
        ready = c.string(ready_node, f"processes.{name}.ready") or "settle"
        if ready not in READY_KINDS:
            c.add(ready_node, f"processes.{name}.ready", f"{shown(ready)} is not one of: {', '.join(READY_KINDS)}")
        out.append(Process(name, cmd, ready))
    return tuple(out)


def _command(node: YNode, path: str, cmd: str, c: Checker) -> bool:
    if not cmd.strip():
        c.add(node, path, "command must not be empty")
        return False
    problem = rules.command(cmd)
    c.check(node, path, problem)
    return problem is None


def reserved_command_names() -> set[str]:
    """The launcher's verbs and help words, from its dispatch table (they shadow a command of the
    same name). install/update/verify/backup/restore/uninstall stay allowed: they are the app's
    lifecycle commands, run by those verbs."""
    from appdeb.runtime.main import HELP_WORDS, VERBS

    return (set(VERBS) | set(HELP_WORDS)) - set(LIFECYCLE_COMMANDS)


def _commands(node: YNode | None, c: Checker) -> tuple[tuple[str, str], ...]:
    pairs = _named_commands(node, "commands", c)
    reserved = reserved_command_names()
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
        if not IDENT_RE.fullmatch(name) or item.kind != "map":
            c.add(item, path, "each timer is 'name: {command: …, schedule: …}' with a lower-case name")
            continue
        c.keys(item, path, ("command", "schedule"), ("command", "schedule"))
        cmd = c.string(item.value.get("command"), f"{path}.command")
        cmd_ok = cmd is not None and _command(item.value["command"], f"{path}.command", cmd, c)
        schedule = c.string(item.value.get("schedule"), f"{path}.schedule")
        if schedule is not None:
            schedule = schedule.strip()
            c.check(item.value["schedule"], f"{path}.schedule", rules.schedule(schedule))
        if cmd and cmd_ok and schedule:
            out.append(Timer(name, cmd.strip(), schedule))
    return tuple(out)


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
            default = _one_line(item.value.get("default"), f"{path}.default", c)
            required = c.boolean(item.value.get("required"), f"{path}.required") or False
            desc = _one_line(item.value.get("description"), f"{path}.description", c, number=False) or ""
            out.append(Setting(name, default, required and default is None, desc))
        elif item.kind == "null":
            out.append(Setting(name, required=True))
        else:
            out.append(Setting(name, _one_line(item, path, c)))
    return tuple(out)


def _one_line(node: YNode | None, path: str, c: Checker, *, number: bool = True) -> str | None:
    """A setting's default or description: one line in the settings file, never a second setting, and
    shown there as it is."""
    text = c.string(node, path, allow_number=number)
    if text is not None:
        c.check(node, path, rules.one_line(text) or rules.visible(text))
    return text


def _env_name(name: str, node: YNode, c: Checker) -> bool:
    if ENV_RE.fullmatch(name):
        return True
    c.add(node, f"env.{name}", "setting names are letters, digits and underscores")
    return False


def _services(node: YNode | None, c: Checker) -> tuple[ServiceSpec, ...]:
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
        out.append(ServiceSpec(kind, tuple(sorted(opts.items()))))
    return tuple(out)


def _instances(node: YNode | None, c: Checker) -> tuple[tuple[str, InstanceSettings], ...]:
    m = c.mapping(node, "instances") or {}
    out = []
    for name, item in m.items():
        path = f"instances.{name}"
        if not NAME_RE.fullmatch(name) or len(name) > 31:
            c.add(item, path, "instance names are lower-case letters, digits and single hyphens, starting with "
                  "a letter")
            continue
        opts = c.mapping(item, path) or {}
        if item.kind == "map":
            c.keys(item, path, ("port", "server_name", "public_port", "backups"))
        port = c.integer(opts.get("port"), f"{path}.port", 1024, 65535)
        public = c.integer(opts.get("public_port"), f"{path}.public_port", 1, 65535)
        server = c.string(opts.get("server_name"), f"{path}.server_name")
        if server is not None:
            c.check(opts["server_name"], f"{path}.server_name", rules.server_names(server))
        keep = validate_config.backup_keep(opts.get("backups"), f"{path}.backups", c)
        out.append((name, InstanceSettings(port=port, server_name=server, public_port=public, backup_keep=keep)))
    return tuple(out)
