"""The runtime shipped inside every package: the app's environment, its commands and lifecycle verbs.

It runs on the node with nothing but python3's standard library (no appdeb install there), and
from a checkout under `appdeb serve`, so development and production see the same environment.
Usage: python3 -I appdeb_runtime.py ROOT VERB [ARGS…]; the package's launcher /usr/bin/PKG does this.
"""

from __future__ import annotations

import datetime
import importlib
import json
import os
import pwd
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

SYSTEMD = "/run/systemd/system"


class RuntimeError_(Exception):
    """A failure to report in one line, without a traceback."""


def parse_settings(text: str) -> dict[str, str]:
    """KEY=value lines; '#' comments; optional single or double quotes around the value."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value
    return out


class AppPackage:
    """An installed (or checked-out) app: its description, settings and environment."""

    def __init__(self, root: str | None = None) -> None:
        self.root = os.path.abspath(root or os.environ["APPDEB_ROOT"])
        with open(os.path.join(self.root, "appdeb", "app.json"), encoding="utf-8") as f:
            self.meta: dict[str, Any] = json.load(f)
        layout = self.meta.get("layout", {})
        self.app_dir = os.path.join(self.root, layout.get("app", "app"))
        self.lib_dir = os.path.join(self.root, layout.get("lib", "lib"))
        self.paths: dict[str, str] = self.meta["paths"]
        self.dev = bool(self.meta.get("dev"))

    @property
    def config(self) -> dict[str, Any]:
        """The app description as the developer wrote it (app.yaml, parsed)."""
        return dict(self.meta["config"])

    def settings(self) -> dict[str, str]:
        values = {s["name"]: s["default"] for s in self.meta["env"] if s.get("default") is not None}
        try:
            with open(self.paths["settings"], encoding="utf-8") as f:
                values.update(parse_settings(f.read()))
        except FileNotFoundError:
            pass
        return values

    def sys_path(self) -> list[str]:
        extra = [os.path.join(self.app_dir, p) for p in self.meta["python_paths"]]
        return [self.app_dir, *extra, self.lib_dir, os.path.join(self.root, "appdeb")]

    def environ(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The environment every process of the app gets: settings, paths, instance, services."""
        env = dict(os.environ if base is None else base)
        env.update(self.settings())
        p = self.paths
        env.update({
            "APPDEB_ROOT": self.root, "APPDEB_PACKAGE": self.meta["package"], "APPDEB_APP": self.meta["app"],
            "APPDEB_INSTANCE": self.meta["instance"], "APPDEB_VERSION": self.meta["version"],
            "APPDEB_SETTINGS": p["settings"], "APPDEB_STATE_DIR": p["state"], "APPDEB_LOG_DIR": p["logs"],
            "APPDEB_BACKUP_ROOT": p["backups"], "TMPDIR": p["tmp"], "HOME": p["state"],
            "PYTHONPATH": os.pathsep.join(self.sys_path()), "PYTHONNOUSERSITE": "1",
        })
        if self.meta.get("web"):
            env["APPDEB_PORT"] = str(self.meta["web"]["port"])
        return env

    def activate(self) -> None:
        """Make this process the app's: import paths and environment."""
        for entry in reversed(self.sys_path()):
            if entry not in sys.path:
                sys.path.insert(0, entry)
        env = self.environ(dict(os.environ))
        os.environ.clear()
        os.environ.update(env)
        os.makedirs(self.paths["tmp"], exist_ok=True) if self.dev else None

    def load_object(self, spec: str) -> Any:
        """Import 'module:object' (dotted attributes allowed) with the app's paths active."""
        self.activate()
        module_name, _, attr = spec.partition(":")
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj

    def command_argv(self, name_or_argv: list[str]) -> list[str]:
        """A named command from the description runs through sh; anything else runs as given."""
        commands = self.meta["commands"]
        if len(name_or_argv) == 1 and name_or_argv[0] in commands:
            return ["/bin/sh", "-c", commands[name_or_argv[0]]]
        return name_or_argv

    def run_command(self, name_or_argv: str | list[str], *, extra_env: dict[str, str] | None = None,
                    as_app_user: bool = True) -> int:
        """Run a command in the app's environment and directory; returns its exit code."""
        argv = self.command_argv([name_or_argv] if isinstance(name_or_argv, str) else list(name_or_argv))
        env = {**self.environ(), **(extra_env or {})}
        demote = self._demote if as_app_user and os.geteuid() == 0 and not self.dev else None
        try:
            return subprocess.call(argv, cwd=self.app_dir, env=env, preexec_fn=demote)
        except FileNotFoundError:
            raise RuntimeError_(f"command not found: {argv[0]}") from None

    def _demote(self) -> None:
        user = pwd.getpwnam(self.meta["user"])
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)

    def has_command(self, name: str) -> bool:
        return name in self.meta["commands"]


# ---- verbs ----------------------------------------------------------------------------------------

def verb_run(app: AppPackage, args: list[str]) -> int:
    if not args:
        raise RuntimeError_("usage: run COMMAND [ARGS…] (a command from the description or any program)")
    return app.run_command(args)


def verb_env(app: AppPackage, args: list[str]) -> int:
    env = app.environ({})
    for key in sorted(env):
        print(f"{key}={shlex.quote(env[key])}")
    return 0


def verb_web(app: AppPackage, args: list[str]) -> int:
    """Serve the WSGI app with gunicorn sync workers: timeout kills a stuck request, max_requests recycles."""
    web = app.meta["web"]
    if not web:
        raise RuntimeError_("this app has no wsgi: section")
    app.activate()
    from gunicorn.app.wsgiapp import WSGIApplication  # type: ignore[import-untyped]  # vendored

    sys.argv = [
        "gunicorn", "--bind", f"127.0.0.1:{os.environ.get('APPDEB_PORT', web['port'])}",
        "--worker-class", "sync", "--workers", str(web["workers"]), "--timeout", str(web["timeout"]),
        "--graceful-timeout", str(web["graceful_timeout"]), "--max-requests", str(web["max_requests"]),
        "--max-requests-jitter", str(web["max_requests_jitter"]), "--chdir", app.app_dir,
        "--access-logfile", "-", "--name", app.meta["package"], *args, app.meta["wsgi"],
    ]
    WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]").run()
    return 0


def verb_process(app: AppPackage, args: list[str]) -> int:
    name = args[0] if args else ""
    if name not in app.meta["processes"]:
        raise RuntimeError_(f"no process named '{name}' (known: {', '.join(app.meta['processes']) or 'none'})")
    env = app.environ()
    os.chdir(app.app_dir)
    os.execve("/bin/sh", ["/bin/sh", "-c", "exec " + app.meta["processes"][name]], env)
    return 1


def verb_timer(app: AppPackage, args: list[str]) -> int:
    name = args[0] if args else ""
    if name not in app.meta["timers"]:
        raise RuntimeError_(f"no timer named '{name}' (known: {', '.join(app.meta['timers']) or 'none'})")
    return app.run_command(["/bin/sh", "-c", app.meta["timers"][name]["command"]])


def verb_hook(app: AppPackage, args: list[str]) -> int:
    """Lifecycle hooks the maintainer scripts call: install, update, uninstall."""
    name = args[0] if args else ""
    if name not in ("install", "update", "uninstall"):
        raise RuntimeError_("usage: hook install|update|uninstall [--from-version V]")
    extra = {"APPDEB_FROM_VERSION": args[2]} if args[1:2] == ["--from-version"] and len(args) > 2 else {}
    if not app.has_command(name):
        return 0
    code = app.run_command([name], extra_env=extra)
    if code != 0:
        raise RuntimeError_(f"the app's '{name}' command failed (exit {code}): {app.meta['commands'][name]}")
    return 0


def _systemctl(*args: str) -> int:
    return subprocess.call(["systemctl", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _policy_denies(unit: str) -> bool:
    """policy-rc.d may forbid starting services (chroots, image builds); verify must respect that."""
    policy = "/usr/sbin/policy-rc.d"
    return os.access(policy, os.X_OK) and subprocess.call([policy, unit, "start"]) == 101


def check_web(port: int, deadline: float) -> str | None:
    """None if the web process answers on 127.0.0.1:port (any status below 500), else why not."""
    last = "no answer"
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                return None if resp.status < 500 else f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return None
            last = f"HTTP {exc.code}"
        except OSError as exc:
            last = str(exc)
        if time.monotonic() > deadline:
            return f"the web process does not answer on 127.0.0.1:{port}: {last}"
        time.sleep(0.3)


def verify_problems(app: AppPackage) -> list[str]:
    """appdeb's own checks: python, required settings, running units, the web answering."""
    problems = []
    found = "{}.{}".format(*sys.version_info[:2])
    if found != app.meta["python_version"]:
        problems.append(f"python3 is {found}, the package was built for {app.meta['python_version']}")
    settings = app.settings()
    missing = [s["name"] for s in app.meta["env"] if s["required"] and not settings.get(s["name"])]
    if missing:
        problems.append(f"required settings missing in {app.paths['settings']}: {', '.join(missing)}")
    if os.path.isdir(SYSTEMD) and not app.dev:
        for unit in app.meta["units"]:
            name = unit["name"]
            down = unit["enabled"] and name.endswith(".service") and _systemctl("is-active", "--quiet", name) != 0
            if down and not _policy_denies(name):
                problems.append(f"{name} is not running (journalctl -u {name})")
    web = app.meta.get("web")
    web_unit = next((u["name"] for u in app.meta["units"] if u["kind"] == "web"), None)
    if web and web_unit and not problems and (app.dev or _systemctl("is-active", "--quiet", web_unit) == 0):
        why = check_web(int(web["port"]), time.monotonic() + 20)
        if why:
            problems.append(why)
    return problems


def verb_verify(app: AppPackage, args: list[str]) -> int:
    problems = verify_problems(app)
    if not problems and app.has_command("verify"):
        code = app.run_command(["verify"])
        if code != 0:
            problems.append(f"the app's verify command failed (exit {code}): {app.meta['commands']['verify']}")
    for p in problems:
        print(f"{app.meta['package']}: verify: {p}", file=sys.stderr)
    if not problems:
        print(f"{app.meta['package']} {app.meta['version']}: ok")
    return 1 if problems else 0


def _option(args: list[str], name: str, default: str = "") -> str:
    return args[args.index(name) + 1] if name in args and args.index(name) + 1 < len(args) else default


def verb_backup(app: AppPackage, args: list[str]) -> int:
    """Back up settings, services and the app's own data into backups/STAMP-VERSION-REASON/."""
    reason = _option(args, "--reason", "manual")
    version = _option(args, "--from-version", app.meta["version"])
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    safe_version = version.replace(":", "_").replace("/", "_")
    final = os.path.join(app.paths["backups"], f"{stamp}-{safe_version}-{reason}")
    work = final + ".partial"
    os.makedirs(os.path.join(work, "app"), mode=0o700)
    if os.path.exists(app.paths["settings"]):
        shutil.copy2(app.paths["settings"], os.path.join(work, "settings.env"))
    if app.has_command("backup"):
        if os.geteuid() == 0 and not app.dev:
            user = pwd.getpwnam(app.meta["user"])
            os.chown(os.path.join(work, "app"), user.pw_uid, user.pw_gid)
            os.chmod(work, 0o711)
        code = app.run_command(["backup"], extra_env={"APPDEB_BACKUP_DIR": os.path.join(work, "app")})
        if code != 0:
            shutil.rmtree(work, ignore_errors=True)
            raise RuntimeError_(f"the app's backup command failed (exit {code})")
    with open(os.path.join(work, "meta.json"), "w", encoding="utf-8") as f:
        json.dump({"package": app.meta["package"], "version": version, "reason": reason, "time": stamp}, f)
    os.chmod(work, 0o700)
    os.rename(work, final)
    print(final)
    return 0


def list_backups(app: AppPackage) -> list[str]:
    try:
        names = os.listdir(app.paths["backups"])
    except FileNotFoundError:
        return []
    return sorted(n for n in names if not n.endswith(".partial")
                  and os.path.isfile(os.path.join(app.paths["backups"], n, "meta.json")))


def verb_backups(app: AppPackage, args: list[str]) -> int:
    for name in list_backups(app):
        with open(os.path.join(app.paths["backups"], name, "meta.json"), encoding="utf-8") as f:
            meta = json.load(f)
        print(f"{name}\tversion={meta['version']}\treason={meta['reason']}")
    return 0


def resolve_backup(app: AppPackage, name: str) -> str:
    path = name if os.path.isabs(name) else os.path.join(app.paths["backups"], name)
    if not os.path.isfile(os.path.join(path, "meta.json")):
        known = ", ".join(list_backups(app)[-5:]) or "none"
        raise RuntimeError_(f"no backup '{name}' (recent: {known})")
    return path


def verb_restore(app: AppPackage, args: list[str]) -> int:
    """Stop the app, put settings and data back from a backup, start it again."""
    if not args:
        raise RuntimeError_("usage: restore BACKUP (see 'backups')")
    path = resolve_backup(app, args[0])
    units = [u["name"] for u in app.meta["units"] if u["enabled"]]
    running = os.path.isdir(SYSTEMD) and not app.dev
    if running:
        subprocess.call(["systemctl", "stop", *units])
    if os.path.exists(os.path.join(path, "settings.env")):
        shutil.copy2(os.path.join(path, "settings.env"), app.paths["settings"])
    code = 0
    if app.has_command("restore"):
        code = app.run_command(["restore"], extra_env={"APPDEB_BACKUP_DIR": os.path.join(path, "app")})
    if running:
        subprocess.call(["systemctl", "start", *units])
    if code != 0:
        raise RuntimeError_(f"the app's restore command failed (exit {code})")
    print(f"restored {os.path.basename(path)}")
    return 0


VERBS = {
    "run": (verb_run, "run COMMAND [ARGS…]: a command from the description, or any program, in the app's env"),
    "env": (verb_env, "env: print the app's environment"),
    "web": (verb_web, "web: serve the WSGI app with gunicorn (what the web unit runs)"),
    "process": (verb_process, "process NAME: run one of the description's processes"),
    "timer": (verb_timer, "timer NAME: run one timer's command now"),
    "verify": (verb_verify, "verify: check python, settings, units, the web answer, then the app's verify"),
    "backup": (verb_backup, "backup [--reason R]: back up settings, services and app data"),
    "backups": (verb_backups, "backups: list backups"),
    "restore": (verb_restore, "restore BACKUP: restore a backup (stops and starts the app)"),
    "hook": (verb_hook, "hook install|update|uninstall: lifecycle hooks run by the maintainer scripts"),
}


def main(argv: list[str]) -> int:
    if len(argv) < 1:
        print("usage: appdeb_runtime.py ROOT VERB [ARGS…]", file=sys.stderr)
        return 2
    app = AppPackage(argv[0])
    verb, args = (argv[1], argv[2:]) if len(argv) > 1 else ("help", [])
    if verb not in VERBS:
        print(f"{app.meta['package']} {app.meta['version']}\n")
        for _, text in VERBS.values():
            print("  " + text)
        names = ", ".join(app.meta["commands"]) or "none"
        print(f"\ncommands in the description: {names}")
        return 0 if verb in ("help", "--help", "-h") else 2
    try:
        return VERBS[verb][0](app, args)
    except RuntimeError_ as exc:
        print(f"{app.meta['package']}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
