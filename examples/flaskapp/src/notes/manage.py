"""Lifecycle commands: init, migrate, check, backup, restore, uninstall, tidy."""

import os
import shutil
import sqlite3
import sys

from . import SCHEMA_VERSION, connect, db_path


def init() -> None:
    with connect() as db:
        db.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
    print(f"initialised {db_path()}")


def migrate() -> None:
    init()
    with connect() as db:
        db.execute("INSERT OR REPLACE INTO meta VALUES ('migrated_from', ?)",
                   (os.environ.get("APPDEB_FROM_VERSION", ""),))
    print("migrated")


def check() -> None:
    with connect() as db:
        db.execute("SELECT count(*) FROM notes").fetchone()


def backup() -> None:
    with connect() as src, sqlite3.connect(os.path.join(os.environ["APPDEB_BACKUP_DIR"], "notes.db")) as dst:
        src.backup(dst)


def restore() -> None:
    shutil.copyfile(os.path.join(os.environ["APPDEB_BACKUP_DIR"], "notes.db"), db_path())


def uninstall() -> None:
    print("notes: uninstalling; the state directory is removed by the package")


def tidy() -> None:
    with open(os.path.join(os.environ["APPDEB_STATE_DIR"], "tidy.stamp"), "a") as f:
        f.write("tidied\n")


if __name__ == "__main__":
    {"init": init, "migrate": migrate, "check": check, "backup": backup, "restore": restore,
     "uninstall": uninstall, "tidy": tidy}[sys.argv[1]]()
