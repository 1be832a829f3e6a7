"""The web process: list and add notes."""

import os

from flask import Flask, jsonify, request
from markupsafe import escape

from . import connect

app = Flask(__name__, static_folder=None)


@app.get("/")
def index():
    with connect() as db:
        rows = db.execute("SELECT body FROM notes ORDER BY id").fetchall()
    title = escape(os.environ.get("NOTES_TITLE", "Notes"))
    items = "".join(f"<li>{escape(r[0])}</li>" for r in rows)
    return f"<h1>{title}</h1><p>{os.environ.get('APPDEB_VERSION')}</p><ul>{items}</ul>"


@app.get("/api/notes")
def list_notes():
    with connect() as db:
        rows = db.execute("SELECT id, body FROM notes ORDER BY id").fetchall()
    return jsonify([{"id": i, "body": b} for i, b in rows])


@app.post("/api/notes")
def add_note():
    body = (request.get_json(silent=True) or {}).get("body") or request.form.get("body", "")
    with connect() as db:
        cur = db.execute("INSERT INTO notes (body) VALUES (?)", (body,))
    return jsonify({"id": cur.lastrowid, "body": body}), 201


@app.get("/health")
def health():
    return jsonify({"ok": True, "version": os.environ.get("APPDEB_VERSION"),
                    "instance": os.environ.get("APPDEB_INSTANCE")})
