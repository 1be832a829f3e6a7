"""AppSpec: what the user said in app.yaml, as frozen values (validated by validate.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LIFECYCLE_COMMANDS = ("install", "update", "verify", "backup", "restore", "uninstall")
# how verify learns a process started: it stayed up for a while (settle), or it told systemd (notify:
# sd_notify READY=1, Type=notify; active then means the process itself said it is ready)
READY_KINDS = ("settle", "notify")
BUILD_COMMAND = "build"  # commands.build: run by `appdeb build` in a copy of the app; its output ships


@dataclass(frozen=True)
class Requirements:
    """The `require:` section: what the app needs from the node and from PyPI."""

    os: str = "debian"
    python: str = ""  # a version specifier such as ">=3.11"; empty means any
    deb: tuple[str, ...] = ()
    pip: tuple[str, ...] = ()  # requirement lines (a requirements file is read into these)
    pip_file: str | None = None  # the file they came from, relative to the app dir
    included: tuple[str, ...] = ()  # files their `-r`/`-c` lines pull in, relative to the app dir
    projects: tuple[str, ...] = ()  # normalized names the app requires (its lines and included -r files)
    constrained: tuple[str, ...] = ()  # names only its included -c files constrain


@dataclass(frozen=True)
class Web:
    """How the web app is served: gunicorn sync workers (WSGI) or uvicorn workers (ASGI) under gunicorn's
    arbiter, with fail-safe recycling.

    The defaults follow the fail-safe benchmark (docs/failsafe.md): a wedged request holds a sync
    worker until `timeout` kills it, so at a bad-request rate r the wedged workers average r × timeout
    (Poisson); 6 workers and 10 s keep the chance that all of them are stuck at 1 % wedging of 10
    requests/s below 0.1 %, while a sync worker killed by its timeout takes nothing else down.
    """

    app: str  # module:object
    interface: str = "wsgi"  # wsgi | asgi: the section it was declared in
    workers: int = 6
    timeout: int = 10
    graceful_timeout: int = 20
    # Recycling is the backstop for what the per-request memory bound cannot see (descriptors, threads);
    # each recycle (a worker's exit and a fresh one's start) costs ~60 ms of CPU: every 1000 requests
    # that was ~15 % of a small app's CPU per request, every 10000 it is ~1.5 % (docs/failsafe.md,
    # "What the generated unit costs per request").
    max_requests: int = 10000
    max_requests_jitter: int = 1000
    health: str = "/"  # requested after start, by verify and by deploys; any status below 500 is healthy
    max_worker_memory: int = 256  # MiB: a worker past this is replaced after its request (0: no limit)
    port: int | None = None  # default instance's port; instances: may override
    nginx: bool | None = None  # a site in front (default: when there are static files)
    public_port: int = 80  # where nginx listens (instances: may override)
    access_log: bool = False  # a journal line per request from gunicorn (nginx's site keeps its own log)


@dataclass(frozen=True)
class Process:
    """A long-running extra process (a worker), one systemd unit each."""

    name: str
    command: str
    ready: str = "settle"  # READY_KINDS: how verify learns it has started


@dataclass(frozen=True)
class Timer:
    """A command run on a systemd calendar schedule."""

    name: str
    command: str
    schedule: str


@dataclass(frozen=True)
class Static:
    """A directory of static files and the URL prefix it is served under."""

    dir: str
    url: str = "/static/"


@dataclass(frozen=True)
class Setting:
    """One environment setting the app expects."""

    name: str
    default: str | None = None
    required: bool = False
    description: str = ""


@dataclass(frozen=True)
class ServiceSpec:
    """A service the app requests (postgres, files, …) with its options."""

    kind: str
    options: tuple[tuple[str, Any], ...] = ()

    def option(self, key: str, default: Any = None) -> Any:
        return dict(self.options).get(key, default)


@dataclass(frozen=True)
class InstanceSettings:
    """Per-instance overrides declared in app.yaml's `instances:`."""

    port: int | None = None
    server_name: str | None = None
    public_port: int | None = None
    backup_keep: int | None = None


@dataclass(frozen=True)
class AppSpec:
    """Everything app.yaml says, validated; the input of planning."""

    app_dir: Path
    name: str
    version: str
    description: str
    maintainer: str
    platform: tuple[str, ...]
    require: Requirements
    python_paths: tuple[str, ...] = ()
    web: Web | None = None
    commands: tuple[tuple[str, str], ...] = ()
    command_timeouts: tuple[tuple[str, int], ...] = ()  # `commands.NAME: {command: …, timeout: SECONDS}`
    processes: tuple[Process, ...] = ()
    timers: tuple[Timer, ...] = ()
    static: Static | None = None
    env: tuple[Setting, ...] = ()
    services: tuple[ServiceSpec, ...] = ()
    instances: tuple[tuple[str, InstanceSettings], ...] = ()
    exclude: tuple[str, ...] = ()
    backup_keep: int | None = None  # `backups: {keep: N}`; None: appdeb's default
    config_files: tuple[tuple[str, str], ...] = ()  # /etc/PKG/NAME rendered from a template in the app
    target: str | None = None  # `target: debian-13`: the Debian release to build for (appdeb/build/targets.py)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def command(self, name: str) -> str | None:
        return dict(self.commands).get(name)

    def instance_settings(self, instance: str | None) -> InstanceSettings:
        return dict(self.instances).get(instance or "", InstanceSettings())
