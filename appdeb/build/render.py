"""render: BuildPlan → the files of the package's control area, units and launcher (pure, no disk writes)."""

from __future__ import annotations

import gzip
import io
import re
import textwrap
import time
from dataclasses import dataclass
from typing import Any

from debian.changelog import Changelog

from appdeb.build import formats
from appdeb.build.plan import BuildPlan
from appdeb.build.shipped import environment, shipped_sources
from appdeb.build.units import Unit
from appdeb.runtime import contract

UNIT_TEMPLATES = {"socket": "web.socket.j2", "web": "web.service.j2", "process": "process.service.j2",
                  "timer-service": "timer-service.service.j2", "timer": "timer.timer.j2"}
SCRIPTS = ("preinst", "postinst", "prerm", "postrm")
CHANGELOG_DATE = "%a, %d %b %Y %H:%M:%S +0000"


@dataclass(frozen=True)
class RenderedFile:
    """Bytes for one path in the package tree (relative, e.g. DEBIAN/control) and its mode."""

    content: bytes
    mode: int = 0o644


# WebSockets one client address may hold open through an ASGI app's nginx site: a browser tab takes one,
# an office behind one address some dozens; hundreds would use up the node's nginx for every site
WEBSOCKETS_PER_CLIENT = 50


def render(plan: BuildPlan) -> dict[str, RenderedFile]:
    """Every generated file of the package, keyed by its path inside the .deb."""
    env = environment()
    ctx: dict[str, Any] = {"plan": plan, **_description(plan), "after": service_after(plan),
                           "layout": contract.FORMAT, "where": where(plan),
                           "notify_timeout": contract.NOTIFY_TIMEOUT,
                           "notify_job_timeout": contract.NOTIFY_JOB_TIMEOUT,
                           "websockets_per_client": WEBSOCKETS_PER_CLIENT,
                           "year": time.gmtime(plan.source_date_epoch).tm_year}
    files: dict[str, RenderedFile] = {"DEBIAN/control": _text(env.get_template("control.j2").render(ctx))}
    for script in SCRIPTS:
        files[f"DEBIAN/{script}"] = _text(env.get_template(f"{script}.j2").render(ctx), 0o755)
    for unit in plan.units:
        files[f"{plan.paths.unit_dir[1:]}/{unit.name}"] = _unit(plan, unit, ctx)
    files[plan.paths.launcher[1:]] = _text(env.get_template("launcher.j2").render(ctx), 0o755)
    files[f"{plan.paths.runtime[1:]}/app.json"] = _text(runtime_config(plan).to_json())
    # the first settings file is data the package ships; postinst copies it, nothing is pasted into shell
    files[f"{plan.paths.runtime[1:]}/settings.env"] = _text(settings_template(plan) + "\n")
    for name, source in shipped_sources().items():
        files[f"{plan.paths.runtime[1:]}/{name}"] = RenderedFile(source)
    for tool in plan.console_scripts:  # for the node's python3; PATH of every app process has paths.bin
        files[f"{plan.paths.bin[1:]}/{tool.name}"] = _text(tool.text("/usr/bin/python3"), 0o755)
    if plan.nginx:
        files[f"{plan.paths.runtime[1:]}/nginx-site.conf"] = _text(env.get_template("nginx-site.conf.j2").render(ctx))
    files[f"{plan.paths.doc[1:]}/copyright"] = _text(env.get_template("copyright.j2").render(ctx))
    files[f"usr/share/lintian/overrides/{plan.package}"] = _text(env.get_template("lintian-overrides.j2").render(ctx))
    files[f"{plan.paths.doc[1:]}/changelog.Debian.gz"] = RenderedFile(changelog_gz(plan))
    return files


def where(plan: BuildPlan) -> str:
    """Where the instance answers, as the install output tells the admin."""
    text = f"web process on 127.0.0.1:{plan.port}"
    if plan.nginx:
        text += f", site http://{plan.server_name.split()[0]}:{plan.public_port}/"
    return text


def _text(text: str, mode: int = 0o644) -> RenderedFile:
    return RenderedFile(text.encode(), mode)


def _unit(plan: BuildPlan, unit: Unit, ctx: dict[str, Any]) -> RenderedFile:
    template = environment().get_template(UNIT_TEMPLATES[unit.kind])
    return _text(template.render({**ctx, "unit": unit}))


def _description(plan: BuildPlan) -> dict[str, Any]:
    """Summary and body lines of the control Description (control.j2 escapes them as continuation lines).

    Lines are split on "\n" alone, as dpkg does; the validator refused every other line break.
    The summary does not repeat the package's name (apt shows the two side by side), and body
    lines are wrapped to 80 columns as Debian asks, except those starting with a blank (shown verbatim).
    """
    lines = plan.spec.description.split("\n") if plan.spec.description.strip() else [""]
    summary = synopsis(lines[0], (plan.spec.name, plan.package))
    body = wrap_body([ln.rstrip() for ln in lines[1:]])
    instance = f" (instance {plan.instance})" if plan.instance else ""
    body = [*body, "", f"Built by appdeb from {plan.spec.name} {plan.spec.version}{instance}."]
    while body and not body[0].strip():
        body.pop(0)
    return {"summary": summary, "body": body}


def synopsis(line: str, names: tuple[str, ...]) -> str:
    """The Description's first line as Debian writes a synopsis: without a leading "NAME:" (NAME being
    the app or package; apt shows the name beside it) and without a leading article."""
    text = line.strip()
    for name in sorted(names, key=len, reverse=True):
        if text.lower().startswith(name.lower()) and not text[len(name):len(name) + 1].isalnum():
            text = text[len(name):].lstrip(" \t:,;-\u2013\u2014").strip()
            break
    text = re.sub(r"^(a|an|the)\s+(?=\S)", "", text, flags=re.IGNORECASE)
    return (text or "web application packaged by appdeb")[:80].rstrip()


def wrap_body(lines: list[str]) -> list[str]:
    """Body lines within 80 columns (with the leading blank): a paragraph that has a longer line is
    filled anew; blank lines and verbatim lines (starting with a blank) stay as they are."""
    out: list[str] = []
    paragraph: list[str] = []
    for line in [*lines, ""]:
        if line.strip() and not line.startswith((" ", "\t")):
            paragraph.append(line)
            continue
        if any(len(p) > 79 for p in paragraph):
            paragraph = textwrap.wrap(" ".join(paragraph), width=79, break_long_words=False, break_on_hyphens=False)
        out += [*paragraph, line]
        paragraph = []
    return out[:-1]


def service_after(plan: BuildPlan) -> tuple[str, ...]:
    """Units the app's processes start after (its services' daemons)."""
    from appdeb.services import SERVICES

    return tuple(unit.format(package=plan.package) for s in plan.spec.services for unit in SERVICES[s.kind].after)



def settings_template(plan: BuildPlan) -> str:
    """The first settings file: defaults filled in, required ones commented for the admin."""
    out = [f"# Settings for {plan.package} (KEY=value), read by its runtime and injected into the app's",
           "# environment. Created at first install, kept on upgrade and remove, deleted on purge."]
    for s in plan.spec.env:
        note = " (required)" if s.required else ""
        desc = f": {formats.comment(s.description)}" if s.description else ""
        out.append(f"# {s.name}{note}{desc}")
        out.append(f"{s.name}={formats.env_value(s.default)}" if s.default is not None else f"#{s.name}=")
    return "\n".join(out)


def runtime_config(plan: BuildPlan) -> contract.Contract:
    """What the runtime on the node needs to know (written as app.json: the node has no PyYAML)."""
    spec, p = plan.spec, plan.paths
    web = spec.web
    return contract.Contract(
        package=plan.package, instance=plan.instance, app=spec.name, version=plan.version,
        python_version=plan.python_version, python_abi=plan.python_abi,
        binary_dists=list(plan.binary_dists), python_paths=list(spec.python_paths),
        wsgi=web.app if web else None,
        web=None if web is None else contract.Web(
            port=plan.port, workers=web.workers, timeout=web.timeout, graceful_timeout=web.graceful_timeout,
            max_requests=web.max_requests, max_requests_jitter=web.max_requests_jitter,
            max_worker_memory=web.max_worker_memory, health=web.health, access_log=web.access_log,
            interface=web.interface),
        commands=dict(spec.commands), command_timeouts=dict(spec.command_timeouts),
        processes={x.name: x.command for x in spec.processes},
        timers={t.name: contract.Timer(t.command, t.schedule) for t in spec.timers},
        env=[contract.Setting(s.name, s.default, s.required) for s in spec.env],
        services=[contract.RequestedService(s.kind, dict(s.options)) for s in spec.services],
        static=None if spec.static is None else contract.Static(spec.static.dir, spec.static.url),
        units=[contract.Unit(u.name, u.kind, u.enabled, u.notify) for u in plan.units],
        user=plan.user, server_name=plan.server_name, nginx=plan.nginx, public_port=plan.public_port,
        paths=p.for_runtime(),
        backups=contract.Backups(plan.backup_keep), config_files=dict(spec.config_files), config=spec.raw,
        target=plan.target.name, suite=plan.target.suite, postgres=plan.target.postgres,
    )


def changelog_gz(plan: BuildPlan) -> bytes:
    """A one-entry Debian changelog, gzipped without timestamps so builds stay reproducible."""
    log = Changelog()
    log.new_block(package=plan.package, version=plan.version, distributions="unstable", urgency="medium",
                  author=plan.spec.maintainer, date=time.strftime(CHANGELOG_DATE, time.gmtime(plan.source_date_epoch)))
    log.add_change("")
    log.add_change(f"  * Built by appdeb from {plan.spec.name} {plan.spec.version}.")
    log.add_change("")
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(str(log).encode())
    return buf.getvalue()
