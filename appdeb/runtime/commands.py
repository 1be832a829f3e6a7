"""Verbs that run the app: its commands, its web process, its workers and timers, the lifecycle hooks."""

from __future__ import annotations

import ctypes
import os
import shlex
import sys
from typing import Any

from . import verbargs
from .app import AppPackage, LauncherError
from .contract import Web


def verb_run(app: AppPackage, args: list[str]) -> int:
    ns = verbargs.parse(app.contract.package, "run", "", args)
    _warn_settings(app)
    _dev_config(app)
    return app.run_command([ns.command, *ns.args], interactive=True)


def _warn_settings(app: AppPackage) -> None:
    """A person is at the terminal: name the settings file's bad lines, but go on (the units refuse)."""
    for problem in app.settings_problems():
        print(f"{app.contract.package}: warning: {problem}", file=sys.stderr)


def verb_env(app: AppPackage, args: list[str]) -> int:
    _warn_settings(app)
    env = app.environ({})
    for key in sorted(env):
        print(f"{key}={shlex.quote(env[key])}")
    return 0


def verb_web(app: AppPackage, args: list[str]) -> int:
    """Serve the app with gunicorn: sync workers for WSGI, uvicorn workers for ASGI; timeout kills a stuck
    worker, max_requests recycles."""
    web, wsgi = app.contract.web, app.contract.wsgi
    if not web or not wsgi:
        raise LauncherError("this app has no wsgi: or asgi: section")
    _not_as_root(app, "web")
    app.check_settings()
    _dev_config(app)
    app.activate()
    from gunicorn.app.wsgiapp import WSGIApplication  # type: ignore[import-untyped]  # vendored

    reload = ["--reload"] if verbargs.parse(app.contract.package, "web", "", args).reload else []
    sys.argv = gunicorn_argv(app.contract.package, web, wsgi, app.app_dir, reload)
    os.environ["APPDEB_WORKER_MEMORY_MB"] = str(web.max_worker_memory)
    if not app.dev:
        _not_dumpable()
    WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]").run()
    return 0


PR_SET_DUMPABLE = 4


def _not_dumpable() -> None:
    """gunicorn's master (this process) and the workers it forks are not dumpable: no other process of the
    app's user may read or write their memory (/proc/PID/mem, ptrace). The master is the one process its
    unit listens to (NotifyAccess=main): written into, it could stretch every stop and restart of the unit
    up to the job bound, and it holds the site's socket. A worker (the app's code) is a fork of it and
    gains nothing it did not have; a debugger of the app's user no longer attaches (root's still does)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise LauncherError(f"web: prctl(PR_SET_DUMPABLE): {os.strerror(ctypes.get_errno())}")


# An ASGI app's workers are uvicorn's, with appdeb's memory bound (asgi_worker.py); the module is
# imported by gunicorn in the worker, where the vendored uvicorn-worker is on the path.
WORKER_CLASSES = {"wsgi": "appdeb_runtime.sync_worker.Worker", "asgi": "appdeb_runtime.asgi_worker.Worker"}


def gunicorn_argv(package: str, web: Web, wsgi: str, app_dir: str, args: list[str]) -> list[str]:
    """gunicorn's command line for the web process.

    gunicorn's access log is off unless web.access_log asks for it: a journal line per request costs
    a small app about a third of its throughput (bench/serve.py), and the nginx site keeps a log of
    its own. Errors, tracebacks and replaced workers reach the journal either way (the error log).
    """
    return [
        "gunicorn", "--bind", f"127.0.0.1:{os.environ.get('APPDEB_PORT', web.port)}",
        "--worker-class", WORKER_CLASSES[web.interface], "--workers", str(web.workers), "--timeout", str(web.timeout),
        "--graceful-timeout", str(web.graceful_timeout), "--max-requests", str(web.max_requests),
        "--max-requests-jitter", str(web.max_requests_jitter), "--chdir", app_dir,
        *(["--access-logfile", "-"] if web.access_log else []), "--name", package,
        "--config", "python:appdeb_runtime.gunicorn_conf", *args, wsgi,
    ]


def verb_process(app: AppPackage, args: list[str]) -> int:
    name = args[0] if args else ""
    if name not in app.contract.processes:
        raise LauncherError(f"no process named '{name}' (known: {', '.join(app.contract.processes) or 'none'})")
    _not_as_root(app, f"process {name}")
    app.check_settings()
    env = app.environ()
    os.chdir(app.app_dir)
    os.execve("/bin/sh", ["/bin/sh", "-c", "exec " + app.contract.processes[name]], env)
    return 1


def _dev_config(app: AppPackage) -> None:
    """In development the config files are rendered on every start (on a node: at configure time)."""
    if app.dev:
        from .configfiles import render_config_files

        for notice in render_config_files(app):
            print(f"appdeb: {notice}", file=sys.stderr)


def _not_as_root(app: AppPackage, verb: str) -> None:
    """The app's own processes never run as root: its units start them as the app's user."""
    if os.geteuid() == 0 and not app.dev:
        unit = app.contract.package
        raise LauncherError(f"'{verb}' runs the app as root; its unit runs it as {app.contract.user} "
                            f"(systemctl restart {unit}…), or: runuser -u {app.contract.user} -- {unit} {verb}")


def verb_timer(app: AppPackage, args: list[str]) -> int:
    name = args[0] if args else ""
    if name not in app.contract.timers:
        raise LauncherError(f"no timer named '{name}' (known: {', '.join(app.contract.timers) or 'none'})")
    app.check_settings()
    return app.run_command(["/bin/sh", "-c", app.contract.timers[name].command])


def services_step(app: AppPackage, step: str, *args: str) -> Any:
    """Call one wiring step, turning a service failure into a one-line runtime error."""
    wiring = app.wiring()
    try:
        return getattr(wiring, step)(app, *args)
    except wiring.ServiceError as exc:
        raise LauncherError(str(exc)) from None
