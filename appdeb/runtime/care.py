"""Verbs that look after an installed instance: verify, backup, backups, restore."""

from __future__ import annotations

import datetime
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from .app import SYSTEMD, AppPackage, RuntimeError_
from .commands import services_step


def _systemctl(*args: str) -> int:
    return subprocess.call(["systemctl", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _policy_denies(unit: str) -> bool:
    """policy-rc.d may forbid starting services (chroots, image builds); verify must respect that."""
    policy = "/usr/sbin/policy-rc.d"
    return os.access(policy, os.X_OK) and subprocess.call([policy, unit, "start"]) == 101


def check_web(port: int, deadline: float, host: str | None = None) -> str | None:
    """None if the web process answers on 127.0.0.1:port (any status below 500), else why not."""
    last = "no answer"
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": host} if host else {})
    while True:
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                return None if resp.status < 500 else f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return None
            last = f"HTTP {exc.code}"
        except OSError as exc:
            last = str(exc)
        if time.monotonic() > deadline:
            return f"the web process does not answer on 127.0.0.1:{port}: {last}"
        time.sleep(0.3)


def verify_problems(app: AppPackage) -> list[str]:
    """appdeb's own checks: python, required settings, running units, the web answering."""
    problems = []
    found = "{}.{}".format(*sys.version_info[:2])
    if found != app.meta["python_version"]:
        problems.append(f"python3 is {found}, the package was built for {app.meta['python_version']}")
    settings = app.settings()
    missing = [s["name"] for s in app.meta["env"] if s["required"] and not settings.get(s["name"])]
    if missing:
        problems.append(f"required settings missing in {app.paths['settings']}: {', '.join(missing)}")
    problems.extend(app.hookups().check(app))
    if os.path.isdir(SYSTEMD) and not app.dev:
        for unit in app.meta["units"]:
            name = unit["name"]
            down = unit["enabled"] and name.endswith(".service") and _systemctl("is-active", "--quiet", name) != 0
            # like deb-systemd-invoke: a unit the admin disabled, or policy-rc.d forbids, is not started
            if down and _systemctl("is-enabled", "--quiet", name) == 0 and not _policy_denies(name):
                problems.append(f"{name} is not running (journalctl -u {name})")
    web = app.meta.get("web")
    web_unit = next((u["name"] for u in app.meta["units"] if u["kind"] == "web"), None)
    if web and web_unit and not problems and (app.dev or _systemctl("is-active", "--quiet", web_unit) == 0):
        why = check_web(int(web["port"]), time.monotonic() + 20)
        if why:
            problems.append(why)
        site = f"/etc/nginx/sites-enabled/{app.meta['package']}.conf"
        if not why and not app.dev and app.meta.get("nginx") and os.path.exists(site):
            why = check_web(int(app.meta["public_port"]), time.monotonic() + 10, app.meta["server_name"])
            if why:
                problems.append(f"through nginx: {why}")
    return problems


def verb_verify(app: AppPackage, args: list[str]) -> int:
    problems = verify_problems(app)
    if not problems and app.has_command("verify"):
        code = app.run_command(["verify"])
        if code != 0:
            problems.append(f"the app's verify command failed (exit {code}): {app.meta['commands']['verify']}")
    for p in problems:
        print(f"{app.meta['package']}: verify: {p}", file=sys.stderr)
    if not problems:
        print(f"{app.meta['package']} {app.meta['version']}: ok")
    return 1 if problems else 0


def _option(args: list[str], name: str, default: str = "") -> str:
    return args[args.index(name) + 1] if name in args and args.index(name) + 1 < len(args) else default


def _as_root_on_node(app: AppPackage) -> bool:
    return os.geteuid() == 0 and not app.dev


def _staging_dir(app: AppPackage) -> str:
    """An empty private dir of the app user's (under the instance's tmp) for its backup/restore commands."""
    os.makedirs(app.paths["tmp"], exist_ok=True)
    path = tempfile.mkdtemp(prefix="appdeb-backup-", dir=app.paths["tmp"])
    _chown_tree(app, path, as_app_user=True)
    return path


def _chown_tree(app: AppPackage, top: str, *, as_app_user: bool) -> None:
    """Give a tree to the app user (for its commands) or to root (once inside the backups)."""
    if not _as_root_on_node(app):
        return
    user = pwd.getpwnam(app.meta["user"])
    uid, gid = (user.pw_uid, user.pw_gid) if as_app_user else (0, 0)
    os.chown(top, uid, gid, follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


def _restore_settings(app: AppPackage, source: str) -> None:
    """Put the backed-up settings back with the owner and mode the runtime needs (root:USER 0640)."""
    target = app.paths["settings"]
    tmp = target + ".restore"
    shutil.copyfile(source, tmp)
    if _as_root_on_node(app):
        os.chown(tmp, 0, pwd.getpwnam(app.meta["user"]).pw_gid)
        os.chmod(tmp, 0o640)
    os.replace(tmp, target)


def verb_backup(app: AppPackage, args: list[str]) -> int:
    """Back up settings, services and the app's own data into backups/STAMP-VERSION-REASON/."""
    reason = _option(args, "--reason", "manual")
    version = _option(args, "--from-version", app.meta["version"])
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    safe_version = version.replace(":", "_").replace("/", "_")
    final = os.path.join(app.paths["backups"], f"{stamp}-{safe_version}-{reason}")
    work = final + ".partial"
    os.makedirs(os.path.join(work, "app"), mode=0o700)
    if os.path.exists(app.paths["settings"]):
        shutil.copy2(app.paths["settings"], os.path.join(work, "settings.env"))
    try:
        services_step(app, "backup", work)
    except RuntimeError_:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if app.has_command("backup"):
        # The command runs as the app user, who cannot enter the root-only backups: it writes into
        # a staging dir of its own, which then moves into the backup and becomes root's.
        staging = _staging_dir(app)
        try:
            code = app.run_command(["backup"], extra_env={"APPDEB_BACKUP_DIR": staging})
            if code != 0:
                shutil.rmtree(work, ignore_errors=True)
                raise RuntimeError_(f"the app's backup command failed (exit {code}): {app.meta['commands']['backup']}")
            os.rmdir(os.path.join(work, "app"))
            shutil.move(staging, os.path.join(work, "app"))
            _chown_tree(app, os.path.join(work, "app"), as_app_user=False)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    with open(os.path.join(work, "meta.json"), "w", encoding="utf-8") as f:
        json.dump({"package": app.meta["package"], "version": version, "reason": reason, "time": stamp}, f)
    os.chmod(work, 0o700)
    os.rename(work, final)
    print(final)
    return 0


def list_backups(app: AppPackage) -> list[str]:
    try:
        names = os.listdir(app.paths["backups"])
    except FileNotFoundError:
        return []
    return sorted(n for n in names if not n.endswith(".partial")
                  and os.path.isfile(os.path.join(app.paths["backups"], n, "meta.json")))


def verb_backups(app: AppPackage, args: list[str]) -> int:
    for name in list_backups(app):
        with open(os.path.join(app.paths["backups"], name, "meta.json"), encoding="utf-8") as f:
            meta = json.load(f)
        print(f"{name}\tversion={meta['version']}\treason={meta['reason']}")
    return 0


def resolve_backup(app: AppPackage, name: str) -> str:
    path = name if os.path.isabs(name) else os.path.join(app.paths["backups"], name)
    if not os.path.isfile(os.path.join(path, "meta.json")):
        known = ", ".join(list_backups(app)[-5:]) or "none"
        raise RuntimeError_(f"no backup '{name}' (recent: {known})")
    return path


def verb_restore(app: AppPackage, args: list[str]) -> int:
    """Stop the app, put settings and data back from a backup, start it again."""
    if not args:
        raise RuntimeError_("usage: restore BACKUP (see 'backups')")
    path = resolve_backup(app, args[0])
    units = [u["name"] for u in app.meta["units"] if u["enabled"]]
    running = os.path.isdir(SYSTEMD) and not app.dev and bool(units)
    if running:
        subprocess.call(["systemctl", "stop", *units])
    if os.path.exists(os.path.join(path, "settings.env")):
        _restore_settings(app, os.path.join(path, "settings.env"))
    services_step(app, "restore", path)
    code = 0
    if app.has_command("restore"):
        # the app user cannot enter the root-only backup: it reads a copy of its part, given to it
        staging = _staging_dir(app)
        try:
            if os.path.isdir(os.path.join(path, "app")):
                shutil.copytree(os.path.join(path, "app"), staging, symlinks=True, dirs_exist_ok=True)
                _chown_tree(app, staging, as_app_user=True)
            code = app.run_command(["restore"], extra_env={"APPDEB_BACKUP_DIR": staging})
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    if running:
        subprocess.call(["systemctl", "start", *units])
    if code != 0:
        raise RuntimeError_(f"the app's restore command failed (exit {code}): {app.meta['commands']['restore']}")
    print(f"restored {os.path.basename(path)}")
    return 0
