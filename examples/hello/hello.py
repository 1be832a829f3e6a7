"""A WSGI app with no dependencies: the greeting comes from the settings appdeb injects."""

import os


def application(environ, start_response):
    instance = os.environ.get("APPDEB_INSTANCE") or "default"
    version = os.environ.get("APPDEB_VERSION", "?")
    body = f"{os.environ.get('GREETING', 'Hello')} from hello ({instance}, {version})\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]
