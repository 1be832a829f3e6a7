"""The app as the runtime sees it: description, settings, environment, commands (standard library only)."""

from __future__ import annotations

import importlib
import os
import pwd
import re
import sys
import threading
from typing import Any

from . import proc
from . import settings as settings_file
from .contract import Contract, ContractError
from .proc import plain_env

NODE_PATH = "/usr/local/bin:/usr/bin:/bin"  # a node's PATH for services (and so for the app in development)
TIMED_OUT = 124  # the exit status of a lifecycle command stopped at its bound (as timeout(1) reports it)


class LauncherError(Exception):
    """A failure to report in one line, without a traceback."""


# the instance's variables (APPDEB_CONFIG_* of config files come on top); ${NAME} in settings may use them
INSTANCE_VARS = ("APPDEB_ROOT", "APPDEB_PACKAGE", "APPDEB_APP", "APPDEB_INSTANCE", "APPDEB_VERSION",
                 "APPDEB_ETC_DIR", "APPDEB_SETTINGS", "APPDEB_STATE_DIR", "APPDEB_LOG_DIR", "APPDEB_BACKUP_ROOT",
                 "TMPDIR", "HOME", "APPDEB_PORT")
REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand(value: str, known: dict[str, str]) -> str:
    """${NAME} of a known variable replaced by its value; anything else stays as written."""
    return REFERENCE.sub(lambda m: known.get(m.group(1), m.group(0)), value)


def config_var(name: str) -> str:
    """The variable naming a rendered config file's path: app.ini -> APPDEB_CONFIG_APP_INI."""
    return "APPDEB_CONFIG_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def parse_settings(text: str) -> dict[str, str]:
    """KEY=value lines; '#' comments; optional single or double quotes around the value (lines that are
    not settings are left out here: `settings_problems` names them)."""
    return settings_file.parse(text).values


class AppPackage:
    """An installed (or checked-out) app: its description, settings and environment."""

    def __init__(self, root: str | None = None) -> None:
        self.root = os.path.abspath(root or os.environ["APPDEB_ROOT"])
        with open(os.path.join(self.root, "appdeb", "app.json"), encoding="utf-8") as f:
            try:
                self.contract = Contract.from_json(f.read())
            except ContractError as exc:
                raise LauncherError(f"{f.name}: {exc}") from None
        layout = self.contract.layout
        self.app_dir = layout.app if layout else os.path.join(self.root, "app")
        self.lib_dir = layout.lib if layout else os.path.join(self.root, "lib")
        self.bin_dir = layout.bin if layout else os.path.join(self.root, "bin")
        self.paths = self.contract.paths
        self.dev = self.contract.dev
        self.proc = proc  # the door to other programs, also for the service plug-ins

    @property
    def config(self) -> dict[str, Any]:
        """The app description as the developer wrote it (app.yaml, parsed)."""
        return dict(self.contract.config)

    def settings(self) -> dict[str, str]:
        values = {s.name: s.default for s in self.contract.env if s.default is not None}
        values.update(self._settings_file().values)
        return values

    def settings_problems(self) -> list[str]:
        """`FILE:LINE: why` for each line of the settings file that is not a setting."""
        return self._settings_file().messages(self.paths.settings)

    def check_settings(self) -> None:
        """Refuse to start the app on a settings file with lines that are not settings (a typo would
        otherwise leave a setting at its default without a word)."""
        problems = self.settings_problems()
        if problems:
            raise LauncherError("\n".join([*problems, "fix the settings file, then: "
                                            f"{self.contract.package} restart"]))

    def _settings_file(self) -> settings_file.Parsed:
        try:
            with open(self.paths.settings, encoding="utf-8") as f:
                return settings_file.parse(f.read())
        except FileNotFoundError:
            return settings_file.Parsed({})

    def sys_path(self) -> list[str]:
        extra = [os.path.join(self.app_dir, p) for p in self.contract.python_paths]
        return [self.app_dir, *extra, self.lib_dir, os.path.join(self.root, "appdeb")]

    def wiring(self) -> Any:
        """The shipped service plug-ins and their glue (appdeb_services beside this file)."""
        here = os.path.join(self.root, "appdeb")
        if here not in sys.path:
            sys.path.insert(0, here)
        return importlib.import_module("appdeb_services.wiring")

    def instance_vars(self) -> dict[str, str]:
        """APPDEB_* and friends: what the package decided for this instance (also usable as ${NAME} in
        settings values and config-file templates)."""
        p, c = self.paths, self.contract
        out = {
            "APPDEB_ROOT": self.root, "APPDEB_PACKAGE": c.package, "APPDEB_APP": c.app,
            "APPDEB_INSTANCE": c.instance, "APPDEB_VERSION": c.version, "APPDEB_ETC_DIR": p.etc,
            "APPDEB_SETTINGS": p.settings, "APPDEB_STATE_DIR": p.state, "APPDEB_LOG_DIR": p.logs,
            "APPDEB_BACKUP_ROOT": p.backups, "TMPDIR": p.tmp, "HOME": p.state,
        }
        if c.web:
            out["APPDEB_PORT"] = str(c.web.port)
        for name in c.config_files:
            out[config_var(name)] = os.path.join(p.config_dir, name)
        return out

    def environ(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The environment every process of the app gets: settings, paths, instance, services.

        On a node the services' variables win over the settings file; in development the
        local settings win, so a developer can point the app at a local database. Settings may
        refer to the instance's variables as ${NAME} (e.g. "${APPDEB_STATE_DIR}/data").
        """
        env = dict(os.environ if base is None else base)
        services = self.wiring().environ(self)
        instance = self.instance_vars()
        known = {**instance, **services}
        settings = {k: expand(v, known) for k, v in self.settings().items()}
        for layer in ((services, settings) if self.dev else (settings, services)):
            env.update(layer)
        if "APPDEB_SECRET_FILE" not in env or not os.path.exists(env["APPDEB_SECRET_FILE"]):
            env["APPDEB_SECRET_FILE"] = self.wiring().secret_path(self)
        env.update(instance)
        env.update({
            "PYTHONPATH": os.pathsep.join(self.sys_path()), "PYTHONNOUSERSITE": "1",
            # the vendored libraries' console scripts first; in development the node's PATH, not the host's
            "PATH": os.pathsep.join([self.bin_dir, NODE_PATH if self.dev else env.get("PATH") or NODE_PATH]),
        })
        return env

    def activate(self) -> None:
        """Make this process the app's: import paths and environment."""
        for entry in reversed(self.sys_path()):
            if entry not in sys.path:
                sys.path.insert(0, entry)
        env = self.environ(dict(os.environ))
        os.environ.clear()
        os.environ.update(env)
        os.makedirs(self.paths.tmp, exist_ok=True) if self.dev else None

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
        commands = self.contract.commands
        if len(name_or_argv) == 1 and name_or_argv[0] in commands:
            return ["/bin/sh", "-c", commands[name_or_argv[0]]]
        return name_or_argv

    def run_command(self, name_or_argv: str | list[str], *, extra_env: dict[str, str] | None = None,
                    as_app_user: bool = True, interactive: bool = False, stop: threading.Event | None = None
                    ) -> int:
        """Run a command in the app's environment and directory; returns its exit code.

        Run by root for the app user, the command gets no terminal of root's: a session of its own (no
        controlling tty, so no TIOCSTI into root's shell) and, unless a person asked for it
        interactively (`PKG run`), no stdin and a pipe for its output that root relays. A lifecycle
        command run so (from a maintainer script or a lifecycle verb) is bounded in time: past its
        timeout it and every process it started are stopped and it fails (TIMED_OUT), so a command
        stuck on a lock cannot hold dpkg's lock for ever. stop (set from another thread) ends such a
        command sooner, the same way: proc.Stopped is raised then.
        """
        given = [name_or_argv] if isinstance(name_or_argv, str) else list(name_or_argv)
        argv = self.command_argv(given)
        user = pwd.getpwnam(self.contract.user) if as_app_user and os.geteuid() == 0 and not self.dev else None
        env = {**self.environ(plain_env() if user else None), **(extra_env or {})}
        copy = None
        if user is not None:  # the root-only secret, delivered to this one command as a private copy
            copy = self.wiring().deliver_secret(self, user.pw_uid, user.pw_gid)
            if copy:
                env["APPDEB_SECRET_FILE"] = copy
        try:
            name = given[0] if len(given) == 1 and given[0] in self.contract.commands else ""
            seconds = self.contract.command_timeout(name) if name else None
            if user is not None and not interactive and seconds is not None:
                return self._bounded(name, argv, env, seconds, stop)
            ids = (user.pw_uid, user.pw_gid) if user is not None else None
            return proc.relay(argv, cwd=self.app_dir, env=env, user=ids, interactive=user is None or interactive,
                              label=f"{self.contract.package}-run")
        except FileNotFoundError:
            raise LauncherError(f"command not found: {argv[0]}") from None
        finally:
            if copy:
                os.unlink(copy)

    def _bounded(self, name: str, argv: list[str], env: dict[str, str], seconds: int,
                 stop: threading.Event | None) -> int:
        """The command under its bound; past it, TIMED_OUT after saying so: each caller fails the step
        as for any failing command (a restore still starts the units again, a backup stops the update)."""
        user = pwd.getpwnam(self.contract.user)
        try:
            return proc.bounded(argv, cwd=self.app_dir, env=env, user=(user.pw_uid, user.pw_gid), seconds=seconds,
                                label=f"{self.contract.package}-{name}", stop=stop)
        except proc.TimedOut:
            print(f"{self.contract.package}: the app's '{name}' command timed out after {seconds}s and was stopped "
                  f"with every process it started (commands.{name}.timeout in app.yaml)", file=sys.stderr, flush=True)
            return TIMED_OUT

    def has_command(self, name: str) -> bool:
        return name in self.contract.commands


def get_secret(root: str | None = None) -> str:
    """The instance's generated secret, from the file the environment names (for the app's code)."""
    path = os.environ.get("APPDEB_SECRET_FILE")
    if not path:
        app = AppPackage(root)
        path = app.wiring().secret_path(app)
    with open(path, encoding="utf-8") as f:
        return f.read().strip()
