"""The ASGI app: JSON API over PostgreSQL, a health check and a WebSocket echo.

Database calls are blocking (psycopg2), so those endpoints are plain `def`: FastAPI runs them in its
thread pool and the event loop stays free for the WebSocket and the other requests.
"""

import os

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel

from . import MIGRATIONS, connect, schema_version

app = FastAPI(title=os.environ.get("CHAT_TITLE", "Chat"))


class NewMessage(BaseModel):
    text: str
    # >>> v2
    author: str = "anonymous"
    # <<< v2


@app.get("/health")
def health() -> JSONResponse:
    try:
        with connect() as db:
            schema = schema_version(db)
    except Exception as exc:  # the health check reports, it does not fail
        return JSONResponse({"ok": False, "error": str(exc)}, status_code=503)
    return JSONResponse({"ok": schema >= len(MIGRATIONS), "schema": schema,
                         "instance": os.environ.get("APPDEB_INSTANCE", ""),
                         "version": os.environ.get("APPDEB_VERSION", "")})


@app.get("/api/messages")
def messages() -> list[dict[str, object]]:
    columns = ["id", "text"]
    # >>> v2
    columns.append("author")
    # <<< v2
    with connect() as db, db.cursor() as cur:
        cur.execute(f"SELECT {', '.join(columns)} FROM messages ORDER BY id")
        return [dict(zip(columns, row)) for row in cur.fetchall()]


@app.post("/api/messages", status_code=201)
def post_message(message: NewMessage) -> dict[str, object]:
    values = message.model_dump()
    with connect() as db, db.cursor() as cur:
        cur.execute(f"INSERT INTO messages ({', '.join(values)}) VALUES ({', '.join(['%s'] * len(values))}) "
                    "RETURNING id", list(values.values()))
        return {"id": cur.fetchone()[0], **values}


@app.websocket("/ws/echo")
async def echo(socket: WebSocket) -> None:
    await socket.accept()
    try:
        while True:
            await socket.send_text("echo: " + await socket.receive_text())
    except WebSocketDisconnect:
        pass


@app.get("/", response_class=HTMLResponse)
def index() -> str:
    title = os.environ.get("CHAT_TITLE", "Chat")
    return (f'<!doctype html><title>{title}</title><link rel="stylesheet" href="/static/style.css">'
            f"<h1>{title}</h1><p>GET /api/messages, POST /api/messages, WebSocket /ws/echo</p>")
