"""Notes: a Flask example app for appdeb."""

import os
import sqlite3

SCHEMA_VERSION = 2


def db_path() -> str:
    return os.path.join(os.environ["APPDEB_STATE_DIR"], "notes.db")


def connect() -> sqlite3.Connection:
    return sqlite3.connect(db_path())
