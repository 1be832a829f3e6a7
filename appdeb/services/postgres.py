"""postgres: a role and a database per instance on the node's PostgreSQL, reached with peer auth.

The role has the instance's system user name, so peer authentication over the local socket
needs no password at all. Backups are pg_dump custom-format archives; restore is pg_restore.
"""

from __future__ import annotations

import os
import time

from .base import Service, ServiceError

SOCKET_DIR = "/var/run/postgresql"
DUMP = "postgres.dump"


def ident(name: str) -> str:
    """A quoted SQL identifier (instance names contain hyphens)."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"

# every lock wait of a dump or restore session (pg_dump's --lock-wait-timeout covers only its first pass)
LOCK_BOUND = {"PGOPTIONS": "-c lock_timeout=60s"}


class Postgres(Service):
    kind = "postgres"
    depends = ("postgresql",)
    after = ("postgresql.service",)
    variables = ("CONFIG_PG_DBNAME", "CONFIG_PG_USER", "CONFIG_PG_HOST", "CONFIG_PG_PORT", "CONFIG_PG_PASSWORD",
                 "DATABASE_URL")

    @property
    def dbname(self) -> str:
        return self.package

    def psql(self, sql: str, *, db: str = "postgres") -> str:
        out = self.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db, "-tAc", sql], user="postgres")
        return str(out.text.strip())

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.app.proc.call(["pg_isready", "-q", "-h", SOCKET_DIR]) != 0:
            if time.monotonic() > deadline:
                raise ServiceError("postgres: the server does not accept connections (pg_lsclusters; "
                                   "systemctl status postgresql)")
            time.sleep(0.5)

    def exists(self) -> bool:
        return self.psql(f"SELECT 1 FROM pg_database WHERE datname = {literal(self.dbname)}") == "1"

    def provision(self) -> None:
        self.wait_ready()
        if self.psql(f"SELECT 1 FROM pg_roles WHERE rolname = {literal(self.user)}") != "1":
            self.psql(f"CREATE ROLE {ident(self.user)} LOGIN")
        if not self.exists():
            self._create()
        else:
            self._private()  # a database provisioned by an older release kept PostgreSQL's defaults

    def _create(self) -> None:
        self.run(["createdb", "-O", self.user, "-E", "UTF8", self.dbname], user="postgres")
        self._private()

    def _private(self) -> None:
        """Only the owner (and the superuser) may connect: PostgreSQL lets every role connect to a new
        database, so another instance's user, peer-authenticated as itself, could read this one's catalog
        and make temporary tables in it."""
        self.psql(f"REVOKE CONNECT, TEMPORARY ON DATABASE {ident(self.dbname)} FROM PUBLIC")

    def environ(self) -> dict[str, str]:
        if self.app.dev:  # development: the developer's settings.local.env says where the database is
            return {}
        return {
            "CONFIG_PG_DBNAME": self.dbname, "CONFIG_PG_USER": self.user, "CONFIG_PG_HOST": SOCKET_DIR,
            "CONFIG_PG_PORT": "5432", "CONFIG_PG_PASSWORD": "",
            "DATABASE_URL": f"postgresql://{self.user}@/{self.dbname}?host={SOCKET_DIR}",
        }

    def backup(self, dest: str) -> None:
        self.wait_ready()
        if not self.exists():
            return  # not provisioned yet (the service is new in the version being installed)
        # As the database's owner, not the superuser: the app's own objects (functions in CHECK
        # constraints, triggers) must never run with more rights than the app has.
        with open(os.path.join(dest, DUMP), "wb") as f:
            # a lock the app holds (an idle transaction on a table or a sequence) ends the dump after a minute,
            # not holds it: the data's size alone decides how long it may take
            self.run(["pg_dump", "-Fc", "--lock-wait-timeout=60s", "-d", self.dbname], user=self.user, stdout=f,
                     timeout=None, env=LOCK_BOUND)
        with open(os.path.join(dest, DUMP), "rb") as f:
            self.run(["pg_restore", "--list"], user=self.user, stdin=f, stdout=self.app.proc.QUIET)

    def restore(self, src: str) -> None:
        dump = os.path.join(src, DUMP)
        if not os.path.exists(dump):
            return
        self.provision()
        self.psql(f"DROP DATABASE IF EXISTS {ident(self.dbname)} WITH (FORCE)")
        self._create()
        with open(dump, "rb") as f:  # loaded by the owner itself: the dump's code never runs as the superuser
            self.run(["pg_restore", "--no-owner", "-d", self.dbname], user=self.user, stdin=f, timeout=None,
                     env=LOCK_BOUND)

    def size_estimate(self) -> int:
        """The database's size on disk: a custom-format dump is smaller, so this errs on the safe side."""
        if self.app.dev or not self.exists():
            return 0
        return int(self.psql(f"SELECT pg_database_size({literal(self.dbname)})") or 0)

    def check(self) -> list[str]:
        if self.app.dev:
            return []
        probe = self.run(["psql", "-X", "-d", self.dbname, "-tAc", "SELECT 1"], user=self.user, check=False)
        if not probe.ok:
            return [f"postgres: cannot connect as {self.user}: {probe.err.decode(errors='replace').strip()}"]
        return []

    def purge(self) -> None:
        """Drop the database and role only when the admin opted in (the purge backup holds a dump)."""
        if self.app.settings().get("APPDEB_PURGE_DATABASE", "").lower() not in ("1", "yes", "true"):
            print(f"{self.package}: keeping database {self.dbname} (set APPDEB_PURGE_DATABASE=yes to drop it)")
            return
        self.wait_ready()
        self.psql(f"DROP DATABASE IF EXISTS {ident(self.dbname)} WITH (FORCE)")
        self.psql(f"DROP ROLE IF EXISTS {ident(self.user)}")
