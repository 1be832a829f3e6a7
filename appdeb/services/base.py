"""The interface every service plug-in implements (runs on the node, as root unless noted)."""

from __future__ import annotations

import os
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # on a node the runtime is appdeb_runtime; services only read what it passes in
    from appdeb.runtime.contract import Contract, Paths


# seconds any tool a service runs may take (a dump or restore: as long as it needs); see Service.run
TOOL_TIMEOUT = 300


class App(Protocol):
    """What a service may use of the runtime's AppPackage."""

    contract: Contract
    paths: Paths
    dev: bool
    proc: ModuleType  # the runtime's door to other programs (appdeb.runtime.proc)

    def settings(self) -> dict[str, str]: ...


class ServiceError(Exception):
    """A service step failed; the message says which and why."""


class Service:
    """A service an app requests. Subclasses set the class attributes and override what they need.

    provision: create what the instance needs (idempotent; at install and every upgrade).
    environ: the variables injected into every process of the app.
    backup/restore: into/from a directory of the backup (restore runs with the app stopped).
    check: problems for `PKG verify`. purge: remove what provision made (on purge).
    """

    kind = ""
    depends: tuple[str, ...] = ()  # Debian packages the node needs
    after: tuple[str, ...] = ()  # units the app's units start after
    variables: tuple[str, ...] = ()  # what environ() injects (settings and config files may refer to them)

    def __init__(self, app: App, options: dict[str, Any]) -> None:
        self.app = app
        self.options = options
        self.package: str = app.contract.package
        self.user: str = app.contract.user

    def provision(self) -> None:
        """Create what the instance needs; must be idempotent."""

    def environ(self) -> dict[str, str]:
        return {}

    def backup(self, dest: str) -> None:
        """Write this service's data into dest (an empty directory)."""

    def restore(self, src: str) -> None:
        """Put this service's data back from src (what backup wrote)."""

    def check(self) -> list[str]:
        return []

    def size_estimate(self) -> int:
        """Bytes this service's backup may take (0 when unknown or small)."""
        return 0

    def purge(self) -> None:
        """Remove what provision created (the backup taken before purge is kept)."""

    def run(self, argv: list[str], *, user: str | None = None, stdin: Any = None, stdout: Any = None,
            check: bool = True, timeout: float | None = TOOL_TIMEOUT, env: dict[str, str] | None = None) -> Any:
        """Run a tool through the runtime's door (app.proc), as another user if asked; a failure names it.
        Bounded (timeout): a tool that talks to what the app controls (its redis, its database) could be
        made to wait for ever, in postinst; only dumps and restores, as long as the data, pass None."""
        door = self.app.proc
        other = user if user and os.geteuid() == 0 and not self.app.dev else None
        base = door.plain_env() if other else (dict(os.environ) if env else None)  # never root's for another user
        done = door.run(door.as_user(other, argv), stdin=stdin, stdout=stdout, timeout=timeout,
                        env={**base, **(env or {})} if base is not None else None)
        if check and not done.ok:
            err = done.err.decode(errors="replace").strip()
            raise ServiceError(f"{self.kind}: {' '.join(argv)} failed (exit {done.code}): {err}")
        return done
