"""The build→node contract: what a package tells its runtime, as typed values with a format number.

`appdeb build` makes one `Contract` from its plan and writes it as `appdeb/app.json` in the
package; the runtime on the node (and `appdeb serve`/`run`, and the tests) read it back into the
same classes. Both sides import this one module (it ships with the runtime, so it uses the standard
library only): a field renamed on one side is a type error on the other, not a KeyError on a node.
`FORMAT` goes up when the meaning of a field changes; a runtime refuses a format it does not know.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

FORMAT = 2  # also the package's control field Appdeb-Layout
NGINX_ENABLED = "/etc/nginx/sites-enabled"
# How long each lifecycle command may run unattended (seconds) unless app.yaml sets
# `commands.NAME.timeout`: long enough for a real migration or dump, short enough that a command
# waiting on a lock or a dead peer does not hold dpkg's lock (and the instance's) for ever.
DEFAULT_TIMEOUTS = {"install": 1800, "update": 1800, "backup": 3600, "restore": 3600, "verify": 300,
                    "uninstall": 600}
# seconds a `ready: notify` process has to send READY=1, and to stop (its unit's TimeoutStartSec,
# TimeoutStopSec): its start holds the maintainer script, so one that never says it is ready fails the
# install instead; and what holds any job of its unit at most (JobRunningTimeoutSec), since the process
# may ask systemd for more time (EXTEND_TIMEOUT_USEC) without end
NOTIFY_TIMEOUT = 30
NOTIFY_JOB_TIMEOUT = NOTIFY_TIMEOUT + 15
TIMEOUT_RANGE = (1, 86400)  # what app.yaml may set: a second to a day


class ContractError(ValueError):
    """app.json is not a contract this runtime understands (a different format, a missing field)."""


def nginx_site_path(package: str) -> str:
    """Where an instance's nginx site is linked while the package is installed (one decision)."""
    return f"{NGINX_ENABLED}/{package}.conf"


def nginx_socket_unit(package: str) -> str:
    """The socket unit through which an instance's nginx site reaches its web process (one decision)."""
    return f"{package}-nginx.socket"


@dataclass(frozen=True)
class Paths:
    """Every node path of an instance the runtime needs (decided in appdeb.build.plan.Paths)."""

    etc: str
    settings: str
    state: str
    tmp: str
    logs: str
    backups: str
    launcher: str
    secret: str
    own: str  # appdeb's own state for the instance (root's)
    run: str  # root-only runtime files (per-command secret copies)
    pin: str
    config: str | None = None  # where config files are rendered, when not the etc directory (development)

    @property
    def config_dir(self) -> str:
        return self.config or self.etc


@dataclass(frozen=True)
class Web:
    """The web process's settings as the unit and the launcher apply them."""

    port: int
    workers: int
    timeout: int
    graceful_timeout: int
    max_requests: int
    max_requests_jitter: int
    max_worker_memory: int
    health: str
    access_log: bool = False  # gunicorn logs every request (to the journal): opt-in, it costs throughput
    interface: str = "wsgi"  # how gunicorn calls the app (contract.wsgi): sync workers (wsgi), uvicorn workers (asgi)


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | None
    required: bool


@dataclass(frozen=True)
class RequestedService:
    kind: str
    options: dict[str, Any]


@dataclass(frozen=True)
class Static:
    dir: str
    url: str


@dataclass(frozen=True)
class Timer:
    command: str
    schedule: str


@dataclass(frozen=True)
class Unit:
    name: str
    kind: str  # socket, web, process, timer-service, timer
    enabled: bool
    notify: bool = False  # a process that tells systemd when it has started: active means it said so


@dataclass(frozen=True)
class Backups:
    keep: int


@dataclass(frozen=True)
class Layout:
    """Where app, libraries and console scripts are when they are not below the root (development)."""

    app: str
    lib: str
    bin: str


@dataclass(frozen=True)
class Contract:
    """One instance of one release of an app, as its runtime sees it."""

    package: str
    instance: str
    app: str
    version: str
    python_version: str
    python_abi: str
    binary_dists: list[str]
    python_paths: list[str]
    wsgi: str | None  # the web app's module:object, WSGI or ASGI (web.interface says which)
    web: Web | None
    commands: dict[str, str]
    processes: dict[str, str]
    timers: dict[str, Timer]
    env: list[Setting]
    services: list[RequestedService]
    static: Static | None
    units: list[Unit]
    user: str
    server_name: str
    nginx: bool
    public_port: int
    paths: Paths
    backups: Backups
    config_files: dict[str, str]
    config: dict[str, Any]  # app.yaml as the developer wrote it, parsed
    # The Debian release built for (appdeb/build/targets.py): its name, apt suite and PostgreSQL major.
    # Defaults keep app.json of packages built before targets readable (they were all debian-12).
    target: str = "debian-12"
    suite: str = "bookworm"
    postgres: str = "15"
    format: int = FORMAT
    dev: bool = False  # a development root (appdeb serve/run, the build step), not an installed package
    layout: Layout | None = None
    # app.yaml's `commands.NAME.timeout` overrides; absent in app.json of older packages (defaults apply)
    command_timeouts: dict[str, int] = field(default_factory=dict)

    @property
    def nginx_site(self) -> str:
        return nginx_site_path(self.package)

    @property
    def nginx_socket(self) -> str:
        return nginx_socket_unit(self.package)

    def command_timeout(self, name: str) -> int | None:
        """Seconds the lifecycle command NAME may run unattended; None for a command without a bound."""
        return self.command_timeouts.get(name, DEFAULT_TIMEOUTS.get(name))

    def to_json(self) -> str:
        data = asdict(self)
        # only a development root has dev and layout; timeouts only where app.yaml set one
        for name in ("dev", "layout", "command_timeouts"):
            if not data[name]:
                del data[name]
        if data["paths"]["config"] is None:
            del data["paths"]["config"]
        for unit in data["units"]:  # the same app.json as before for units that do not notify
            if not unit["notify"]:
                del unit["notify"]
        return json.dumps(data, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Contract:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else None
            raise ContractError(f"app.json has format {found!r}; this runtime reads format {FORMAT}")
        try:
            return _contract(data)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ContractError(f"app.json does not match format {FORMAT}: {type(exc).__name__}: {exc}") from None

    def with_changes(self, **changes: Any) -> Contract:
        return replace(self, **changes)


def _contract(data: dict[str, Any]) -> Contract:
    nested: dict[str, Callable[[Any], Any]] = {
        "web": lambda v: None if v is None else Web(**v),
        "timers": lambda v: {name: Timer(**t) for name, t in v.items()},
        "env": lambda v: [Setting(**s) for s in v],
        "services": lambda v: [RequestedService(**s) for s in v],
        "static": lambda v: None if v is None else Static(**v),
        "units": lambda v: [Unit(**u) for u in v],
        "paths": lambda v: Paths(**v),
        "backups": lambda v: Backups(**v),
        "layout": lambda v: None if v is None else Layout(**v),
    }
    known = {f.name for f in fields(Contract)}
    unknown = set(data) - known
    if unknown:
        raise KeyError(", ".join(sorted(unknown)))
    values: dict[str, Any] = {k: nested[k](v) if k in nested else v for k, v in data.items()}
    return Contract(**values)

