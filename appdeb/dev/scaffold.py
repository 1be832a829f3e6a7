"""init: a new app directory with a working app.yaml and a minimal WSGI app."""

from __future__ import annotations

import re
from pathlib import Path

from appdeb.build.rules import NAME_RE
from appdeb.errors import AppdebError

APP_YAML = """\
# The app description read by appdeb (see docs/app-yaml.md).
name: {name}
version: "0.1.0"
description: |
  {name}: a WSGI application
maintainer: "{maintainer}"
platform: [python, wsgi]
require:
  os: debian
  python: ">=3.11"
  pip: requirements.txt
wsgi:
  app: {module}:application
commands:
  verify: python3 -c "import {module}"
env:
  GREETING:
    default: Hello
    description: what the front page says
"""

APP_PY = '''\
"""A minimal WSGI application created by appdeb init."""

import os


def application(environ, start_response):
    body = f"{{os.environ.get('GREETING', 'Hello')}} from {name}\\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]
'''


def init(directory: Path, name: str | None = None, maintainer: str = "Your Name <you@example.org>") -> list[Path]:
    """Create DIR/app.yaml, DIR/<module>.py and DIR/requirements.txt (returned, so all are reported);
    refuse to overwrite."""
    name = name or re.sub(r"[^a-z0-9-]+", "-", directory.resolve().name.lower()).strip("-") or "app"
    if not NAME_RE.fullmatch(name) or len(name) > 24:
        raise AppdebError(f"'{name}' is not a valid app name; pass --name")
    module = name.replace("-", "_") + "_app"
    if (directory / "app.yaml").exists():
        raise AppdebError(f"{directory / 'app.yaml'} already exists; not overwriting")
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        directory / "app.yaml": APP_YAML.format(name=name, module=module, maintainer=maintainer),
        directory / f"{module}.py": APP_PY.format(name=name),
        directory / "requirements.txt": "# Python requirements, vendored into the package\n",
    }
    for path, text in files.items():
        path.write_text(text)
    return list(files)
