"""Lifecycle commands: migrate (install, update) and check (verify)."""

import sys

from . import MIGRATIONS, connect, schema_version


def migrate() -> None:
    with connect() as db, db.cursor() as cur:
        done = schema_version(db)
        for number, statement in enumerate(MIGRATIONS[done:], done + 1):
            cur.execute(statement)
            cur.execute("INSERT INTO schema_version VALUES (%s)", (number,))
            print(f"chat: applied migration {number}")
    print(f"chat: schema at {len(MIGRATIONS)}")


def check() -> None:
    """The schema must have every step this release knows; a newer one is fine (steps only add, with
    defaults), so an older release runs on it until the backup taken when it was left is restored."""
    with connect() as db:
        found = schema_version(db)
    if found < len(MIGRATIONS):
        sys.exit(f"chat: schema is at {found}, this release needs {len(MIGRATIONS)}")


if __name__ == "__main__":
    {"migrate": migrate, "check": check}[sys.argv[1]]()
