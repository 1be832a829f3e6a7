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
import tempfile
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

    def hookups(self) -> Any:
        """The shipped service plug-ins and their glue (appdeb_services beside this file)."""
        here = os.path.join(self.root, "appdeb")
        if here not in sys.path:
            sys.path.insert(0, here)
        return importlib.import_module("appdeb_services.hookups")

    def environ(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The environment every process of the app gets: settings, paths, instance, services.

        On a node the services' variables win over the settings file; in development the
        local settings win, so a developer can point the app at a local database.
        """
        env = dict(os.environ if base is None else base)
        services = self.hookups().environ(self)
        if self.dev:
            env.update(services)
        env.update(self.settings())
        if not self.dev:
            env.update(services)
        if "APPDEB_SECRET_FILE" not in env or not os.path.exists(env["APPDEB_SECRET_FILE"]):
            env["APPDEB_SECRET_FILE"] = self.hookups().secret_path(self)
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
        copy = None
        if demote is not None:  # the root-only secret, delivered to this one command as a private copy
            user = pwd.getpwnam(self.meta["user"])
            copy = self.hookups().deliver_secret(self, user.pw_uid, user.pw_gid)
            if copy:
                env["APPDEB_SECRET_FILE"] = copy
        try:
            return subprocess.call(argv, cwd=self.app_dir, env=env, preexec_fn=demote)
        except FileNotFoundError:
            raise RuntimeError_(f"command not found: {argv[0]}") from None
        finally:
            if copy:
                os.unlink(copy)

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
    """Lifecycle hooks the maintainer scripts call: provision, install, update, uninstall.

    install and update provision first (secret, services, nginx site): the app's command then
    finds its database; uninstall runs the app's command, then purges the services.
    """
    name = args[0] if args else ""
    if name not in ("provision", "install", "update", "uninstall"):
        raise RuntimeError_("usage: hook provision|install|update|uninstall [--from-version V]")
    extra = {"APPDEB_FROM_VERSION": args[2]} if args[1:2] == ["--from-version"] and len(args) > 2 else {}
    if name in ("provision", "install", "update"):
        _services_step(app, "provision")
    if name != "provision" and app.has_command(name):
        code = app.run_command([name], extra_env=extra)
        if code != 0:
            raise RuntimeError_(f"the app's '{name}' command failed (exit {code}): {app.meta['commands'][name]}")
    if name == "uninstall":
        _services_step(app, "purge")
    return 0


def _services_step(app: AppPackage, step: str, *args: str) -> Any:
    """Call one hookups step, turning a service failure into a one-line runtime error."""
    hookups = app.hookups()
    try:
        return getattr(hookups, step)(app, *args)
    except hookups.ServiceError as exc:
        raise RuntimeError_(str(exc)) from None


def get_secret(root: str | None = None) -> str:
    """The instance's generated secret, from the file the environment names (for the app's code)."""
    path = os.environ.get("APPDEB_SECRET_FILE")
    if not path:
        app = AppPackage(root)
        path = app.hookups().secret_path(app)
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


def _systemctl(*args: str) -> int:
    return subprocess.call(["systemctl", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _policy_denies(unit: str) -> bool:
    """policy-rc.d may forbid starting services (chroots, image builds); verify must respect that."""
    policy = "/usr/sbin/policy-rc.d"
    return os.access(policy, os.X_OK) and subprocess.call([policy, unit, "start"]) == 101


def check_web(port: int, deadline: float, host: str | None = None) -> str | None:
    """None if the web process answers on 127.0.0.1:port (any status below 500), else why not."""
    last = "no answer"
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": host} if host else {})
    while True:
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
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
    problems.extend(app.hookups().check(app))
    if os.path.isdir(SYSTEMD) and not app.dev:
        for unit in app.meta["units"]:
            name = unit["name"]
            down = unit["enabled"] and name.endswith(".service") and _systemctl("is-active", "--quiet", name) != 0
            # like deb-systemd-invoke: a unit the admin disabled, or policy-rc.d forbids, is not started
            if down and _systemctl("is-enabled", "--quiet", name) == 0 and not _policy_denies(name):
                problems.append(f"{name} is not running (journalctl -u {name})")
    web = app.meta.get("web")
    web_unit = next((u["name"] for u in app.meta["units"] if u["kind"] == "web"), None)
    if web and web_unit and not problems and (app.dev or _systemctl("is-active", "--quiet", web_unit) == 0):
        why = check_web(int(web["port"]), time.monotonic() + 20)
        if why:
            problems.append(why)
        site = f"/etc/nginx/sites-enabled/{app.meta['package']}.conf"
        if not why and not app.dev and app.meta.get("nginx") and os.path.exists(site):
            why = check_web(int(app.meta["public_port"]), time.monotonic() + 10, app.meta["server_name"])
            if why:
                problems.append(f"through nginx: {why}")
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


def _as_root_on_node(app: AppPackage) -> bool:
    return os.geteuid() == 0 and not app.dev


def _staging_dir(app: AppPackage) -> str:
    """An empty private dir of the app user's (under the instance's tmp) for its backup/restore commands."""
    os.makedirs(app.paths["tmp"], exist_ok=True)
    path = tempfile.mkdtemp(prefix="appdeb-backup-", dir=app.paths["tmp"])
    _chown_tree(app, path, as_app_user=True)
    return path


def _chown_tree(app: AppPackage, top: str, *, as_app_user: bool) -> None:
    """Give a tree to the app user (for its commands) or to root (once inside the backups)."""
    if not _as_root_on_node(app):
        return
    user = pwd.getpwnam(app.meta["user"])
    uid, gid = (user.pw_uid, user.pw_gid) if as_app_user else (0, 0)
    os.chown(top, uid, gid, follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


def _restore_settings(app: AppPackage, source: str) -> None:
    """Put the backed-up settings back with the owner and mode the runtime needs (root:USER 0640)."""
    target = app.paths["settings"]
    tmp = target + ".restore"
    shutil.copyfile(source, tmp)
    if _as_root_on_node(app):
        os.chown(tmp, 0, pwd.getpwnam(app.meta["user"]).pw_gid)
        os.chmod(tmp, 0o640)
    os.replace(tmp, target)


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
    try:
        _services_step(app, "backup", work)
    except RuntimeError_:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if app.has_command("backup"):
        # The command runs as the app user, who cannot enter the root-only backups: it writes into
        # a staging dir of its own, which then moves into the backup and becomes root's.
        staging = _staging_dir(app)
        try:
            code = app.run_command(["backup"], extra_env={"APPDEB_BACKUP_DIR": staging})
            if code != 0:
                shutil.rmtree(work, ignore_errors=True)
                raise RuntimeError_(f"the app's backup command failed (exit {code}): {app.meta['commands']['backup']}")
            os.rmdir(os.path.join(work, "app"))
            shutil.move(staging, os.path.join(work, "app"))
            _chown_tree(app, os.path.join(work, "app"), as_app_user=False)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
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
    running = os.path.isdir(SYSTEMD) and not app.dev and bool(units)
    if running:
        subprocess.call(["systemctl", "stop", *units])
    if os.path.exists(os.path.join(path, "settings.env")):
        _restore_settings(app, os.path.join(path, "settings.env"))
    _services_step(app, "restore", path)
    code = 0
    if app.has_command("restore"):
        # the app user cannot enter the root-only backup: it reads a copy of its part, given to it
        staging = _staging_dir(app)
        try:
            if os.path.isdir(os.path.join(path, "app")):
                shutil.copytree(os.path.join(path, "app"), staging, symlinks=True, dirs_exist_ok=True)
                _chown_tree(app, staging, as_app_user=True)
            code = app.run_command(["restore"], extra_env={"APPDEB_BACKUP_DIR": staging})
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    if running:
        subprocess.call(["systemctl", "start", *units])
    if code != 0:
        raise RuntimeError_(f"the app's restore command failed (exit {code}): {app.meta['commands']['restore']}")
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


# ---- rollback on the node: apt pinning ------------------------------------------------------------
# The node's apt sources (appdeb's repository) keep several versions; a pin at priority 1001 makes apt
# install one of them even as a downgrade, and keeps `apt-get upgrade` from leaving it until unpinned.

APT_PREFERENCES = "/etc/apt/preferences.d"
APT_INSTALL = ("apt-get", "install", "-y", "--allow-downgrades",
               "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold")


def pin_path(app: AppPackage) -> str:
    return os.path.join(APT_PREFERENCES, f"{app.meta['package']}-appdeb-pin")


def pin_text(package: str, version: str) -> str:
    return (f"Explanation: written by '{package} pin' (appdeb); '{package} unpin' removes it\n"
            f"Package: {package}\nPin: version {version}\nPin-Priority: 1001\n")


def pinned_version(app: AppPackage) -> str | None:
    try:
        with open(pin_path(app), encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return None
    return next((ln.split(None, 2)[2] for ln in lines if ln.startswith("Pin: version ")), None)


def _query(argv: list[str]) -> str:
    """stdout of apt-cache/dpkg-query in the C locale (parsed), or '' if the command failed."""
    proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
    return proc.stdout if proc.returncode == 0 else ""


def installed_version(package: str) -> str | None:
    """dpkg's version of the package, also when half-configured (a failed upgrade is rolled back too)."""
    out = _query(["dpkg-query", "-W", "-f=${db:Status-Status} ${Version}", package]).split()
    return out[1] if len(out) == 2 and out[0] != "not-installed" else None


def parse_madison(text: str, package: str) -> list[str]:
    """Versions from `apt-cache madison` lines 'PKG | VERSION | SOURCE', first-seen order, no repeats."""
    versions: list[str] = []
    for line in text.splitlines():
        fields = [f.strip() for f in line.split("|")]
        if len(fields) >= 3 and fields[0] == package and fields[1] not in versions:
            versions.append(fields[1])
    return versions


def version_lt(a: str, b: str) -> bool:
    """Debian version order, by dpkg itself (the node always has it)."""
    return subprocess.call(["dpkg", "--compare-versions", a, "lt", b]) == 0


def sort_versions(versions: list[str]) -> list[str]:
    """Oldest first."""
    import functools

    def cmp(a: str, b: str) -> int:
        return 0 if a == b else -1 if version_lt(a, b) else 1

    return sorted(versions, key=functools.cmp_to_key(cmp))


def available_versions(package: str) -> list[str]:
    """Versions apt can download from its sources (what a pin can select), oldest first."""
    return sort_versions(parse_madison(_query(["apt-cache", "madison", package]), package))


def choose_version(app: AppPackage, wanted: str) -> str:
    """VERSION as given (if apt knows it), or for --previous the newest available below the installed."""
    package = app.meta["package"]
    available = available_versions(package)
    shown = ", ".join(available) or "none"
    if wanted == "--previous":
        current = installed_version(package) or app.meta["version"]
        older = [v for v in available if version_lt(v, current)]
        if not older:
            raise RuntimeError_(f"no version older than {current} is available from apt (available: {shown}); "
                                "run apt-get update, or check the repository's retention")
        return older[-1]
    if wanted.startswith("-") or not wanted or any(c.isspace() for c in wanted):
        raise RuntimeError_(f"not a version: {wanted!r}")
    if wanted not in available:
        raise RuntimeError_(f"version {wanted} of {package} is not available from apt (available: {shown}); "
                            "run apt-get update, or check the repository's retention")
    return wanted


def _apt_install(app: AppPackage) -> int:
    """apt-get install the package's candidate (the pinned version, if pinned); apt's output passes through."""
    sys.stdout.flush()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.call([*APT_INSTALL, app.meta["package"]], env=env)


def _need_root(app: AppPackage, verb: str) -> None:
    if app.dev:
        raise RuntimeError_(f"{verb} acts on the installed package of a node, not on a checkout")
    if os.geteuid() != 0:
        raise RuntimeError_(f"{verb} needs root: it changes {APT_PREFERENCES} and runs apt-get")


def pin_and_install(app: AppPackage, wanted: str) -> str:
    """Write the pin file, install the pinned version (downgrading if need be), check it is installed."""
    _need_root(app, "pin")
    package = app.meta["package"]
    version = choose_version(app, wanted)
    path = pin_path(app)
    os.makedirs(APT_PREFERENCES, mode=0o755, exist_ok=True)
    with open(path + ".new", "w", encoding="utf-8") as f:
        f.write(pin_text(package, version))
    os.chmod(path + ".new", 0o644)
    os.replace(path + ".new", path)
    print(f"{package}: pinned to {version} ({path})", flush=True)
    code = _apt_install(app)
    now = installed_version(package)
    if code != 0 or now != version:
        raise RuntimeError_(f"apt-get did not install {version} (exit {code}, installed: {now or 'none'}); "
                            f"the pin stays in {path}: fix the cause and rerun, or '{package} unpin'")
    return version


def verb_pin(app: AppPackage, args: list[str]) -> int:
    """pin VERSION|--previous: hold the package at a version (installing it); no argument shows the state."""
    package = app.meta["package"]
    if not args:
        pinned = pinned_version(app)
        print(f"{package}: installed {installed_version(package) or 'none'}, "
              f"{'pinned to ' + pinned if pinned else 'not pinned'}; "
              f"available: {', '.join(available_versions(package)) or 'none'}")
        return 0
    if len(args) != 1:
        raise RuntimeError_("usage: pin VERSION|--previous")
    version = pin_and_install(app, args[0])
    print(f"{package}: now at {version}, pinned ('{package} unpin' returns to the newest version)")
    return 0


def verb_unpin(app: AppPackage, args: list[str]) -> int:
    """unpin: remove the pin and install apt's candidate (the newest version) again."""
    _need_root(app, "unpin")
    package = app.meta["package"]
    try:
        os.remove(pin_path(app))
        print(f"{package}: pin removed ({pin_path(app)})", flush=True)
    except FileNotFoundError:
        print(f"{package}: was not pinned", flush=True)
    code = _apt_install(app)
    if code != 0:
        raise RuntimeError_(f"apt-get install {package} failed (exit {code})")
    print(f"{package}: now at {installed_version(package)}")
    return 0


def backup_of_version(app: AppPackage, version: str) -> str | None:
    """The newest backup whose data is version's: taken when an upgrade (or downgrade) left it."""
    found = None
    for name in list_backups(app):
        with open(os.path.join(app.paths["backups"], name, "meta.json"), encoding="utf-8") as f:
            if json.load(f).get("version") == version:
                found = name
    return found


def verb_rollback(app: AppPackage, args: list[str]) -> int:
    """rollback [VERSION] [--restore-backup]: pin and install VERSION (default: the previous one), then
    optionally restore the data backed up when that version was left."""
    restore = "--restore-backup" in args
    rest = [a for a in args if a != "--restore-backup"]
    if len(rest) > 1 or any(a.startswith("-") and a != "--previous" for a in rest):
        raise RuntimeError_("usage: rollback [VERSION] [--restore-backup]")
    package = app.meta["package"]
    version = pin_and_install(app, rest[0] if rest else "--previous")
    print(f"{package}: rolled back to {version}, pinned ('{package} unpin' returns to the newest version)",
          flush=True)
    if not restore:
        return 0
    backup = backup_of_version(app, version)
    if backup is None:
        raise RuntimeError_(f"no backup holds the data of {version} ('{package} backups'); the data was NOT "
                            f"restored: the app runs {version} on the newer data")
    print(f"{package}: restoring {backup} (the current data was backed up by the downgrade)", flush=True)
    # The installed runtime is now the rolled-back version's: let it restore with its own description.
    code = subprocess.call([app.paths["launcher"], "restore", backup])
    if code != 0:
        raise RuntimeError_(f"restoring {backup} failed (exit {code}); the app runs {version}")
    return 0


VERBS.update({
    "pin": (verb_pin, "pin VERSION|--previous: install that version and hold it (apt pin); no argument: show"),
    "unpin": (verb_unpin, "unpin: drop the pin and install the newest version again"),
    "rollback": (verb_rollback, "rollback [VERSION] [--restore-backup]: pin the previous (or given) version, "
                                "then optionally restore its data"),
})


def main(argv: list[str]) -> int:
    if len(argv) < 1:
        print("usage: appdeb_runtime.py ROOT VERB [ARGS…]", file=sys.stderr)
        return 2
    app = AppPackage(argv[0])
    verb, args = (argv[1], argv[2:]) if len(argv) > 1 else ("help", [])
    if verb not in VERBS:
        asked = verb in ("help", "--help", "-h")
        out = sys.stdout if asked else sys.stderr
        if not asked:
            print(f"{app.meta['package']}: unknown verb '{verb}'", file=out)
        print(f"{app.meta['package']} {app.meta['version']}\n", file=out)
        for _, text in VERBS.values():
            print("  " + text, file=out)
        names = ", ".join(app.meta["commands"]) or "none"
        print(f"\ncommands in the description: {names}", file=out)
        return 0 if asked else 2
    try:
        return VERBS[verb][0](app, args)
    except RuntimeError_ as exc:
        print(f"{app.meta['package']}: {exc}", file=sys.stderr)
        return 1
    except PermissionError as exc:  # e.g. backup or restore by a user who is not root
        print(f"{app.meta['package']}: {verb}: {exc} (run it as root)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
