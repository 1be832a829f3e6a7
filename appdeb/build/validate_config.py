"""validate: config-file templates, ${NAME} references (checked against what the node will define), backups.

A reference the node cannot fill would reach the app as literal text, found only on a server; here
it is a `file:line:col` problem at `appdeb check`.
"""

from __future__ import annotations

import re
from pathlib import Path

from appdeb.build import paths_in_app, rules
from appdeb.build.fields import Checker
from appdeb.build.spec import AppSpec, ServiceSpec, Setting
from appdeb.build.units import clashes, units_for
from appdeb.build.yamlload import YNode
from appdeb.runtime.app import INSTANCE_VARS, REFERENCE, config_var
from appdeb.runtime.contract import DEFAULT_TIMEOUTS, TIMEOUT_RANGE
from appdeb.services import SERVICES

CONFIG_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
RESERVED_FILES = ("settings.env", "secret")
MAX_TEMPLATE = 1 << 20
MAX_EXCLUDES, MAX_EXCLUDE_LEN = 256, 256  # each checkout file is matched against every pattern, on every walk


def config_files(node: YNode | None, c: Checker, app_dir: Path) -> tuple[tuple[str, str], ...]:
    """`config_files: {NAME: TEMPLATE}`: a file name in /etc/PKG, a template inside the app."""
    m = c.mapping(node, "config_files") or {}
    out = []
    for name, item in m.items():
        path = f"config_files.{name}"
        if not CONFIG_NAME_RE.fullmatch(name) or name in RESERVED_FILES or name.endswith((".new", ".appdeb-new")):
            c.add(item, path, f"{rules.shown(name)} is not a config file name (letters, digits, . _ -; not "
                  f"{', '.join(RESERVED_FILES)})")
            continue
        template = c.string(item, path)
        if template is None:
            continue
        problem = rules.relative_path(template) or paths_in_app.app_path(app_dir, template)
        if problem is None and not (app_dir / template).is_file():
            problem = f"template {rules.shown(template)} is not a file in the app"
        elif problem is None and (app_dir / template).stat().st_size > MAX_TEMPLATE:
            problem = f"template {rules.shown(template)} is larger than 1 MiB"
        c.check(item, path, problem)
        if problem is None:
            out.append((name, template))
    return tuple(out)


def known_names(env: tuple[Setting, ...], services: tuple[ServiceSpec, ...], files: tuple[tuple[str, str], ...],
                *, secret: bool) -> set[str]:
    names = set(INSTANCE_VARS) | {s.name for s in env} | {config_var(n) for n, _ in files}
    names |= {v for s in services for v in SERVICES[s.kind].variables}
    return names | ({"APPDEB_SECRET"} if secret else set())


def _unknown(text: str, known: set[str]) -> list[str]:
    return sorted({m.group(1) for m in REFERENCE.finditer(text)} - known)


def references(top: dict[str, YNode], c: Checker, app_dir: Path, env: tuple[Setting, ...],
               services: tuple[ServiceSpec, ...], files: tuple[tuple[str, str], ...]) -> None:
    """Every ${NAME} in a settings default or a config-file template names a variable the node defines."""
    known = known_names(env, services, files, secret=False)
    env_node = top.get("env")
    for setting in env:
        unknown = _unknown(setting.default or "", known - {setting.name})
        if unknown and env_node is not None and env_node.kind == "map":
            item = env_node.value.get(setting.name)
            c.add(item, f"env.{setting.name}.default", _message(unknown, known))
    with_secret = known_names(env, services, files, secret=True)
    for name, template in files:
        text = (app_dir / template).read_text(encoding="utf-8", errors="replace")
        unknown = _unknown(text, with_secret)
        if unknown:
            node = top["config_files"].value.get(name) if "config_files" in top else None
            c.add(node, f"config_files.{name}", f"{template}: " + _message(unknown, with_secret))


def _message(unknown: list[str], known: set[str]) -> str:
    shown = ", ".join(f"${{{n}}}" for n in unknown)
    return f"unknown variable {shown} (known: {', '.join(sorted(known))})"


def backup_keep(node: YNode | None, path: str, c: Checker) -> int | None:
    """`backups: {keep: N}`: how many backups a node keeps (0 keeps all)."""
    m = c.mapping(node, path)
    if not m or node is None:
        return None
    c.keys(node, path, ("keep",))
    return c.integer(m.get("keep"), f"{path}.keep", 0, 1000)


def target(node: YNode | None, c: Checker) -> str | None:
    """`target: debian-13`: one of the Debian releases appdeb builds for."""
    from appdeb.build.targets import TARGETS

    if node is None:
        return None
    name = c.string(node, "target")
    if name is not None and name not in TARGETS:
        c.add(node, "target", f"{rules.shown(name)} is not a target appdeb builds for (one of: {', '.join(TARGETS)})")
        return None
    return name


def command_timeouts(node: YNode | None, c: Checker) -> tuple[tuple[str, int], ...]:
    """`commands.NAME.timeout`: seconds a lifecycle command may run unattended (from a maintainer script
    or a lifecycle verb) before it and every process it started are stopped. Only lifecycle commands
    have one: a person runs the others (`PKG run`) and can interrupt them."""
    if node is None or node.kind != "map":
        return ()
    out = []
    for name, item in node.value.items():
        if item.kind != "map" or "timeout" not in item.value:
            continue
        path, at = f"commands.{name}.timeout", item.value["timeout"]
        if name not in DEFAULT_TIMEOUTS:
            c.add(at, path, f"only lifecycle commands have a timeout ({', '.join(DEFAULT_TIMEOUTS)})")
            continue
        seconds = c.integer(at, path, *TIMEOUT_RANGE)
        if seconds is not None:
            out.append((name, seconds))
    return tuple(out)


def exclude_fits(node: YNode | None, c: Checker) -> bool:
    """Whether `exclude:` is within its bounds (checked first: matching a list past them against the
    checkout is what would take the time)."""
    if node is None or node.kind not in ("seq", "str"):
        return True
    items = list(enumerate(node.value)) if node.kind == "seq" else [(None, node)]
    if len(items) > MAX_EXCLUDES:
        c.add(items[MAX_EXCLUDES][1], f"exclude[{MAX_EXCLUDES}]", f"more than {MAX_EXCLUDES} patterns "
              f"({len(items)}); exclude a directory rather than each of its files")
        return False
    fits = True
    for i, item in items:
        if item.kind == "str" and len(item.value) > MAX_EXCLUDE_LEN:
            c.add(item, "exclude" if i is None else f"exclude[{i}]",
                  f"a pattern is at most {MAX_EXCLUDE_LEN} characters")
            fits = False
    return fits


def unit_names(top: dict[str, YNode], c: Checker, spec: AppSpec) -> None:
    """Every process and timer has units of its own: a name giving one the unit of another (a process
    and a timer both named x are PKG-x.service; a process named nginx beside the site's PKG-nginx.socket)
    would lose a unit, or confuse systemctl, without a word at build time."""
    named: set[tuple[str, ...]] = set()
    for first, unit in clashes(units_for(spec, spec.name or "app", "")):
        if len(unit.verb) != 2 or unit.verb in named:  # processes and timers (they come last), each once
            continue
        named.add(unit.verb)
        section = "processes" if unit.verb[0] == "process" else "timers"
        node = top.get(section)
        at = node.keys_at.get(unit.verb[1]) if node is not None and node.kind == "map" else None
        c.add(node, f"{section}.{unit.verb[1]}", f"its unit {unit.name} clashes with {first.name} "
              f"({first.description}); choose another name", at)
