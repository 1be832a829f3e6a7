"""Verbs an admin looks for in the first week: logs, restart (how a settings change is applied), version.

Where the logs are: every unit of the package logs to the journal (gunicorn's errors, the workers', the
timers'), the nginx site to /var/log/nginx/PKG.{access,error}.log, and the app itself may keep files in
its log directory (APPDEB_LOG_DIR, /var/log/PKG, the app user's). `PKG logs` shows all three. The app's
directory is the app user's, so its files are read as that user (root follows no link the app made).
"""

from __future__ import annotations

import os
import sys

from . import proc, verbargs
from .app import AppPackage, LauncherError
from .configfiles import render_config_files
from .units import unit_problems


def _on_a_node(app: AppPackage, verb: str) -> None:
    if app.dev or not proc.systemd_running():
        raise LauncherError(f"{verb} acts on the units of an installed package (here: no systemd units)")


NGINX_LOGS = "/var/log/nginx"  # where the site template tells nginx to log (nginx-site.conf.j2)


def nginx_logs(app: AppPackage) -> list[str]:
    """The site's own log files (nginx's directory is root's), when the package has a site."""
    if not app.contract.nginx:
        return []
    names = (f"{NGINX_LOGS}/{app.contract.package}.{kind}.log" for kind in ("access", "error"))
    return [n for n in names if os.path.isfile(n)]


def app_logs(app: AppPackage) -> list[str]:
    """Regular files directly in the app's log directory (listed without following any link; a name
    that could put control characters on root's terminal is left out)."""
    try:
        with os.scandir(app.paths.logs) as entries:
            return sorted(e.path for e in entries if e.is_file(follow_symlinks=False) and e.name.isprintable())
    except FileNotFoundError:
        return []


def logs_argvs(app: AppPackage, lines: int, follow: bool) -> list[list[str]]:
    """journalctl for all the package's units, tail for nginx's files and (as the app user) the app's."""
    more = ["-F"] if follow else []
    units = [f"--unit={u.name}" for u in app.contract.units]  # none: journalctl alone would show everything
    journal = ["journalctl", "--no-pager", "-o", "short-iso", "-n", str(lines), *(["-f"] if follow else []), *units]
    out = [journal] if units else []
    if nginx_logs(app):
        out.append(["tail", "-n", str(lines), *more, "--", *nginx_logs(app)])
    mine = app_logs(app)
    if mine:
        user = None if os.geteuid() != 0 else app.contract.user
        out.append(proc.as_user(user, ["tail", "-n", str(lines), *more, "--", *mine]))
    return out


def verb_logs(app: AppPackage, args: list[str]) -> int:
    """logs [-f] [-n N]: the journal of every unit of the package, the site's nginx logs, the app's files."""
    ns = verbargs.parse(app.contract.package, "logs", "", args)
    _on_a_node(app, "logs")
    argvs = logs_argvs(app, ns.lines, ns.follow)
    if not argvs:
        print(f"{app.contract.package}: no units, no site and no files in {app.paths.logs}: nothing logs yet")
        return 0
    if ns.follow:  # side by side, until interrupted
        return proc.show(argvs)
    codes = []
    for argv in argvs:
        if argv[0] != "journalctl":
            print(f"\n==> {' '.join(a for a in argv if a.startswith('/'))} <==", flush=True)
        codes.append(proc.show([argv]))
    return max(codes)


def verb_restart(app: AppPackage, args: list[str]) -> int:
    """restart: the config files are rendered again and the web process and workers start with the
    current settings (systemd keeps the socket, so no request is refused); refused, with nothing
    restarted, while the settings file has lines that are not settings."""
    _on_a_node(app, "restart")
    if os.geteuid() != 0:
        raise LauncherError("restart needs root (systemctl restart)")
    problems = app.settings_problems()
    if problems:
        raise LauncherError("\n".join([*problems, "nothing was restarted: the running app keeps its settings"]))
    services = [u.name for u in app.contract.units if u.kind in ("web", "process")]
    if not services:
        raise LauncherError("this package has no web process or workers to restart")
    for notice in render_config_files(app):  # config files carry settings too (as configure renders them)
        print(f"{app.contract.package}: {notice}", flush=True)
    sockets = [u.name for u in app.contract.units if u.kind == "socket"]
    proc.run(["systemctl", "reset-failed", *sockets, *services])  # units that hit their start limit may start
    proc.run(["systemctl", "restart", *services], check=True, what=f"systemctl restart {' '.join(services)}")
    if sockets:  # started if it had failed with its service; never restarted (it holds waiting requests)
        proc.run(["systemctl", "start", *sockets], check=True, what=f"systemctl start {' '.join(sockets)}")
    down = unit_problems(app)
    for line in down:
        print(f"{app.contract.package}: restart: {line}", file=sys.stderr)
    if not down:
        print(f"{app.contract.package}: restarted {', '.join(services)}")
    return 1 if down else 0


def verb_version(app: AppPackage, args: list[str]) -> int:
    """version: the installed package's version (status says more)."""
    print(app.contract.version)
    return 0
