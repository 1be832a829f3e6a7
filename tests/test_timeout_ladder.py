"""The timeout ladder of the generated service, read from the rendered files: each outer layer waits
longer than the one inside it, so a slow request is cut by the app server, never by nginx or systemd."""

from __future__ import annotations

import re

from appdeb.build.plan import make_plan
from appdeb.build.render import render
from appdeb.build.validate import load_spec

from .conftest import EXAMPLES


def test_nginx_outwaits_gunicorn_and_systemd_outwaits_a_graceful_stop() -> None:
    spec = load_spec(EXAMPLES / "polls")
    plan = make_plan(spec, instance="prod", python_version="3.11", source_date_epoch=0)
    files = {k: v.content.decode() for k, v in render(plan).items() if not k.endswith(".gz")}
    web = files[f"lib/systemd/system/{plan.package}.service"]
    site = files[f"opt/{plan.package}/appdeb/nginx-site.conf"]
    assert spec.web is not None
    read_timeout = int(re.search(r"proxy_read_timeout (\d+)s;", site).group(1))  # type: ignore[union-attr]
    stop_timeout = int(re.search(r"TimeoutStopSec=(\d+)", web).group(1))  # type: ignore[union-attr]
    assert read_timeout > spec.web.timeout
    assert stop_timeout > spec.web.graceful_timeout
    socket = files[f"lib/systemd/system/{plan.package}.socket"]
    assert f"ListenStream=127.0.0.1:{plan.port}" in socket and f"Requires={plan.package}.socket" in web
