"""chat: messages in PostgreSQL (the postgres service's DATABASE_URL) and a WebSocket echo."""

import os

import psycopg2

# Numbered schema steps; `migrate` applies the ones a database has not seen (install and update).
MIGRATIONS = [
    "CREATE TABLE messages (id serial PRIMARY KEY, text text NOT NULL)",
    # >>> v2
    "ALTER TABLE messages ADD COLUMN author text NOT NULL DEFAULT 'anonymous'",
    # <<< v2
]


def connect() -> "psycopg2.extensions.connection":
    return psycopg2.connect(os.environ["DATABASE_URL"])


def schema_version(db: "psycopg2.extensions.connection") -> int:
    with db.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version int NOT NULL)")
        cur.execute("SELECT coalesce(max(version), 0) FROM schema_version")
        return int(cur.fetchone()[0])
