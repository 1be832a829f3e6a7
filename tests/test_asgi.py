"""ASGI apps: the asgi: section and platform, what the package runs, and the build-time interface check.

A FastAPI app declared under wsgi: (or a Flask app under asgi:) is refused by `appdeb build` with the
fix named, before any .deb exists; the check imports the app for real in the build step's environment.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appdeb.build import interface
from appdeb.build.pipeline import BuildOptions, build
from appdeb.build.plan import BuildPlan, app_requirements, make_plan, with_vendor
from appdeb.build.render import render, runtime_config
from appdeb.build.validate import load_spec
from appdeb.errors import SpecError
from appdeb.runtime import contract
from appdeb.runtime.commands import gunicorn_argv

from .conftest import EPOCH, EXAMPLES
from .test_validate import GOOD, problems, write

ASGI = GOOD.replace("platform: [python, wsgi]\nwsgi:", "platform: [python, asgi]\nasgi:")


def test_the_asgi_example_is_valid_and_served_by_uvicorn_workers() -> None:
    spec = load_spec(EXAMPLES / "chat")
    assert spec.platform == ("python", "asgi")
    assert spec.web is not None and (spec.web.app, spec.web.interface) == ("chat.web:app", "asgi")
    plan = make_plan(spec, python_version="3.11", source_date_epoch=EPOCH)
    assert plan.web_unit is not None and "uvicorn workers" in plan.web_unit.description
    described = runtime_config(plan)
    assert described.wsgi == "chat.web:app" and described.web is not None and described.web.interface == "asgi"
    argv = gunicorn_argv(plan.package, described.web, "chat.web:app", "/opt/chat/app", [])
    assert argv[argv.index("--worker-class") + 1] == "appdeb_runtime.asgi_worker.Worker"
    assert argv[-1] == "chat.web:app" and argv[argv.index("--timeout") + 1] == "10"


def test_a_wsgi_app_keeps_sync_workers(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, GOOD))
    assert spec.web is not None and spec.web.interface == "wsgi"
    web = runtime_config(make_plan(spec, python_version="3.11", source_date_epoch=EPOCH)).web
    assert web is not None
    argv = gunicorn_argv("blog", web, "blog:app", "/opt/blog/app", [])
    # gunicorn's sync worker, woken alone and with one loop for one socket or several (sync_worker.py)
    assert argv[argv.index("--worker-class") + 1] == "appdeb_runtime.sync_worker.Worker"


def test_the_asgi_platform_vendors_its_server_unless_the_app_chose_one(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, ASGI))
    names = [re.split(r"[<>=]", r)[0] for r in app_requirements(spec)]
    assert names == ["gunicorn", "uvicorn-worker", "uvicorn", "websockets"]
    (tmp_path / "requirements.txt").write_text("uvicorn==0.54.0\n")
    spec = load_spec(write(tmp_path, ASGI + "require:\n  pip: requirements.txt\n"))
    assert "uvicorn==0.54.0" in app_requirements(spec) and not any(
        r.startswith("uvicorn>") for r in app_requirements(spec))


@pytest.mark.parametrize(("text", "expected"), [
    (GOOD.replace("wsgi:", "asgi:"),
     ["7:3: asgi: the 'asgi:' section needs 'asgi' in the platform list (platform: [python, asgi])",
      "5:11: wsgi: platform 'wsgi' needs a 'wsgi:' section"]),
    (ASGI.replace("asgi:\n", "wsgi:\n"),
     ["5:11: asgi: platform 'asgi' needs a 'asgi:' section",
      "7:3: wsgi: the 'wsgi:' section needs 'wsgi' in the platform list (platform: [python, wsgi])"]),
    (GOOD.replace("[python, wsgi]", "[python, wsgi, asgi]") + "asgi:\n  app: blog:app\n",
     ["5:11: platform: 'wsgi' and 'asgi' both serve the web app; name one",
      "9:3: asgi: an app is served one way: keep one of wsgi and asgi: (a WSGI app under wsgi: with platform "
      "[python, wsgi], an ASGI app under asgi: with [python, asgi])"]),
    (ASGI.replace("blog:app", "blog app"),
     ["7:8: asgi.app: 'blog app' must be 'module:object' (e.g. 'myapp.asgi:app')"]),
    (ASGI.replace("asgi:\n  app: blog:app\n", "web: {workers: 2}\n"),
     ["5:11: asgi: platform 'asgi' needs a 'asgi:' section",
      "6:6: web: only meaningful with a 'wsgi:' or 'asgi:' section"]),
])
def test_asgi_section_problems_are_located(tmp_path: Path, text: str, expected: list[str]) -> None:
    assert sorted(problems(tmp_path, text)) == sorted(expected)


def test_web_settings_apply_to_asgi_too(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, ASGI + "web: {workers: 3, timeout: 20, max_worker_memory: 128}\n"))
    assert spec.web is not None and (spec.web.workers, spec.web.timeout, spec.web.max_worker_memory) == (3, 20, 128)


def _site(tmp_path: Path, text: str, instance: str | None = None) -> str:
    spec = load_spec(write(tmp_path, text + "static: {dir: static}\n"))
    plan = with_vendor(make_plan(spec, instance=instance, python_version="3.11", source_date_epoch=EPOCH),
                       binary_dists=(), vendored=())
    return next(f.content for p, f in render(plan).items() if p.endswith("nginx-site.conf")).decode()


def test_the_nginx_site_passes_websocket_upgrades_for_asgi_only(tmp_path: Path) -> None:
    (tmp_path / "static").mkdir()
    site = _site(tmp_path, ASGI, instance="eu-west")
    assert "map " not in site  # no http-level variable: it would be shared with every other site
    websocket = site[site.index("location @websocket {"):]
    assert "proxy_set_header Upgrade $http_upgrade;" in websocket
    assert 'proxy_set_header Connection "upgrade";' in websocket
    assert "proxy_read_timeout 3600s;" in websocket
    plain = site[site.index("location / {"):site.index("location @websocket")]
    assert 'if ($http_upgrade ~* "^websocket$") {' in plain  # only WebSocket upgrades go there
    assert "error_page 418 = @websocket;" in plain and "proxy_read_timeout 15s;" in plain
    wsgi_site = _site(tmp_path, GOOD)
    assert "websocket" not in wsgi_site.lower() and "$http_upgrade" not in wsgi_site


def test_a_contract_without_interface_reads_as_wsgi() -> None:
    data = json.loads((Path(__file__).parent / "golden/hello-default/opt/hello/appdeb/app.json").read_text())
    del data["web"]["interface"]
    web = contract.Contract.from_json(json.dumps(data)).web
    assert web is not None and web.interface == "wsgi"


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40), max_size=8),
       st.sampled_from(["wsgi", "asgi", "unknown"]), st.text(max_size=20))
def test_the_probe_answer_is_found_among_any_output(lines: list[str], kind: str, name: str) -> None:
    noise = [line for line in "\n".join(lines).splitlines() if not line.startswith(interface.MARK)]
    assert interface.classify("\n".join(noise)) is None
    answer = interface.MARK + json.dumps({"kind": kind, "type": name})
    found = interface.classify("\n".join([*noise, answer, *noise[:2]]))
    assert found == interface.Found(kind, name)


def _copy(tmp_path: Path, example: str, swap: tuple[str, str]) -> Path:
    app = tmp_path / example
    shutil.copytree(EXAMPLES / example, app, ignore=shutil.ignore_patterns(".appdeb"))
    text = (app / "app.yaml").read_text()
    old, new = swap
    (app / "app.yaml").write_text(text.replace(f"platform: [python, {old}]", f"platform: [python, {new}]")
                                  .replace(f"\n{old}:\n", f"\n{new}:\n"))
    return app


def _refused(app: Path, out: Path) -> str:
    with pytest.raises(SpecError) as info:
        build(app, BuildOptions(out_dir=out, source_date_epoch=EPOCH))
    assert not list(out.glob("*.deb")), "refused before a package exists"
    return str(info.value)


def test_a_fastapi_app_under_wsgi_is_refused_with_the_fix(tmp_path: Path) -> None:
    app = _copy(tmp_path, "chat", ("asgi", "wsgi"))
    message = _refused(app, tmp_path / "dist")
    assert message == (f"{app}/app.yaml:15:8: wsgi.app: chat.web:app is an ASGI application (FastAPI); "
                       "declare it under `asgi:` with platform [python, asgi]")


def test_a_flask_app_under_asgi_is_refused_with_the_fix(tmp_path: Path) -> None:
    app = _copy(tmp_path, "flaskapp", ("wsgi", "asgi"))
    message = _refused(app, tmp_path / "dist")
    assert message.endswith("asgi.app: notes.web:app is a WSGI application (Flask); declare it under `wsgi:` "
                            "with platform [python, wsgi]")


@pytest.mark.parametrize(("source", "kind"), [
    ("async def app(scope, receive, send):\n    pass\n", "asgi"),
    ("def app(environ, start_response):\n    return []\n", "wsgi"),
    ("class App:\n    async def __call__(self, scope, receive, send):\n        pass\napp = App()\n", "asgi"),
    ("class App:\n    def __call__(self, environ, start_response):\n        return []\napp = App()\n", "wsgi"),
    ("def app(*args):\n    return []\n", "unknown"),
])
def test_the_probe_reads_the_calling_convention(tmp_path: Path, source: str, kind: str) -> None:
    (tmp_path / "blog.py").write_text(source)
    spec = load_spec(write(tmp_path, GOOD))
    plan = make_plan(spec, python_version="{}.{}".format(*__import__("sys").version_info[:2]),
                     source_date_epoch=EPOCH)
    lib = tmp_path / "lib"
    lib.mkdir()
    if kind == "asgi":
        with pytest.raises(SpecError, match=r"blog:app is an ASGI application \((function app|App)\)"):
            interface.check_interface(plan, lib)
    else:
        assert interface.check_interface(plan, lib) is None


def test_an_app_that_cannot_be_imported_is_not_refused_but_named(tmp_path: Path) -> None:
    (tmp_path / "blog.py").write_text("import os\nDB = os.environ['NO_SUCH_SETTING']\n")
    plan = make_plan(load_spec(write(tmp_path, GOOD)), python_version="{}.{}".format(
        *__import__("sys").version_info[:2]), source_date_epoch=EPOCH)
    (tmp_path / "lib").mkdir()
    warning = interface.check_interface(plan, tmp_path / "lib")
    assert warning is not None and "could not import blog:app" in warning and "KeyError" in warning


def _plan_for(tmp_path: Path, source: str) -> tuple[BuildPlan, Path]:
    (tmp_path / "blog.py").write_text(source)
    plan = make_plan(load_spec(write(tmp_path, GOOD)), python_version="{}.{}".format(
        *__import__("sys").version_info[:2]), source_date_epoch=EPOCH)
    (tmp_path / "lib").mkdir(exist_ok=True)
    return plan, tmp_path / "lib"


HOSTILE = '''\
import os, pathlib, subprocess, sys
pathlib.Path("left-in-the-app").write_text("x")
print("appdeb-interface:{not json")
print("appdeb-interface:" + '{"kind": 1}')
subprocess.Popen(["sh", "-c", "sleep 30; echo late"])
print("SECRET=" + os.environ.get("APPDEB_TEST_SECRET", "none"), file=sys.stderr)
def app(environ, start_response):
    return []
'''


def test_the_import_is_contained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's import sees none of the builder's environment, writes nothing into the app that is
    packaged, leaves no process behind and cannot forge an answer that breaks the build."""
    monkeypatch.setenv("APPDEB_TEST_SECRET", "token-123")
    plan, lib = _plan_for(tmp_path, HOSTILE)
    before = {p.name for p in tmp_path.iterdir()}
    assert interface.check_interface(plan, lib) is None  # the real answer (wsgi) still counts
    assert {p.name for p in tmp_path.iterdir()} == before  # the import ran in a throw-away copy
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert "sleep 30; echo late" not in ps  # its whole session was killed


def test_the_import_never_sees_the_builders_tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPDEB_TEST_SECRET", "token-123")
    plan, lib = _plan_for(tmp_path, "import os\nraise SystemExit('SECRET=' + os.environ.get('APPDEB_TEST_SECRET', "
                                    "'none'))\n")
    warning = interface.check_interface(plan, lib)
    assert warning is not None and "SECRET=none" in warning and "token-123" not in warning


def test_a_passed_check_is_remembered_until_the_app_or_its_libraries_change(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new build number of unchanged code does not import the app again; a changed file, another
    vendored tree, or a check that did not pass (not remembered) imports it again. (The imports are
    counted at the door they go through: as root the import can write nothing outside its own box.)"""
    from appdeb import runner

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    runs: list[str] = []
    real = runner.run_contained

    def counted(argv: list[str], **kw: Any) -> tuple[int, str]:
        runs.append("x")
        return real(argv, **kw)
    monkeypatch.setattr(runner, "run_contained", counted)
    source = "def app(environ, start_response):\n    return []\n"
    (tmp_path / "app").mkdir()
    plan, lib = _plan_for(tmp_path / "app", source)
    for _ in range(2):
        assert interface.check_interface(plan, lib, tree="tree-1") is None
    assert runs == ["x"]
    assert interface.check_interface(plan, lib, tree="tree-2") is None  # other libraries
    (tmp_path / "app" / "blog.py").write_text(source + "# changed\n")
    assert interface.check_interface(plan, lib, tree="tree-2") is None
    assert interface.check_interface(plan, lib) is None  # no tree named: nothing remembered or read
    assert len(runs) == 4
