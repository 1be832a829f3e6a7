"""Backups of an instance: settings, the whole state directory, services, the app's own part.

Layout of BACKUPS/STAMP-VERSION-REASON/ (root 0700): meta.json (whose data: `version`), settings.env,
state.tar (the state directory but tmp/ and cache/, archived by the app user), app.tar (what the
app's `backup` command wrote, archived by the app user), services/KIND/… (dumps). Root never walks
the app's directories: tar runs as the app user and root only stores or feeds the byte stream.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import sys

from . import proc, verbargs
from .app import AppPackage, LauncherError
from .commands import services_step
from .guard import app_output, app_user, instance_lock, new_staging, on_node_as_root, remove_tree, run_as_app

EXCLUDED = ("tmp", "cache")  # scratch space inside the state directory, never backed up
MARGIN = 16 << 20


def list_backups(app: AppPackage) -> list[str]:
    """Finished backups, oldest first (names start with a UTC time stamp)."""
    try:
        names = os.listdir(app.paths.backups)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if not n.endswith(".partial")
                  and os.path.isfile(os.path.join(app.paths.backups, n, "meta.json")))


def backup_meta(app: AppPackage, name: str) -> dict[str, str]:
    with open(os.path.join(app.paths.backups, name, "meta.json"), encoding="utf-8") as f:
        return dict(json.load(f))


def tree_size(path: str, skip_top: tuple[str, ...] = ()) -> int:
    """Bytes of the regular files below path (lstat only: no link is followed)."""
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        if dirpath == path:
            dirnames[:] = [d for d in dirnames if d not in skip_top]
        for name in filenames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


def state_size(app: AppPackage) -> int:
    """Bytes the state directory would put into a backup, as `du` run by the app user reports them
    (root does not walk the app's tree)."""
    state = app.paths.state
    if not os.path.isdir(state):
        return 0
    scratch = [os.path.join(state, x) for x in EXCLUDED]
    out = app_output(app, ["sh", "-c", 'du -skx "$@" 2>/dev/null; true', "sh", state, *scratch])
    sizes = [int(line.split()[0]) for line in out.splitlines() if line.split()[:1] and line.split()[0].isdigit()]
    return max(0, sizes[0] - sum(sizes[1:])) * 1024 if sizes else 0


def check_space(app: AppPackage, reason: str) -> None:
    """Refuse, before anything changes, a backup that would not fit (with room to spare)."""
    need = state_size(app) + services_step(app, "size_estimate")
    os.makedirs(app.paths.backups, mode=0o700, exist_ok=True)
    st = os.statvfs(app.paths.backups)
    free = st.f_bavail * st.f_frsize
    if need + need // 10 + MARGIN > free:
        raise LauncherError(
            f"not enough space for the backup before {reason}: it needs about {_mib(need)} and "
            f"{app.paths.backups} has {_mib(free)} free; nothing was changed. Free space (older backups: "
            f"'{app.contract.package} backups'), or lower APPDEB_BACKUP_KEEP in {app.paths.settings}, then retry")


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"


def _tar_from_app(app: AppPackage, directory: str, dest: str, excluded: tuple[str, ...] = ()) -> None:
    """dest (root's) := a tar of directory, made by the app user (so no link of the app's is followed)."""
    argv = ["tar", "-C", directory, "--sparse", "--anchored", *(f"--exclude=./{x}" for x in excluded),
            "-cf", "-", "."]
    with open(dest, "xb") as out:
        run_as_app(app, argv, stdout=out, what=f"archiving {directory}")
    os.chmod(dest, 0o600)


def _untar_as_app(app: AppPackage, archive: str, directory: str, *, clear: bool) -> None:
    """Unpack a backup's tar into an app directory as the app user (clearing it first, but tmp/cache)."""
    keep = " ".join(f"! -name {x}" for x in EXCLUDED)
    script = (f'cd "$1" && {{ [ "$2" = no ] || find . -mindepth 1 -maxdepth 1 {keep} -exec rm -rf {{}} +; }} '
              '&& tar -xpf -')
    with open(archive, "rb") as data:
        run_as_app(app, ["sh", "-c", script, "sh", directory, "yes" if clear else "no"], stdin=data,
                   what=f"restoring {directory}")


def take_backup(app: AppPackage, reason: str, version: str | None = None) -> str:
    """Back up the instance into a new directory; returns its path. `version` says whose data it is."""
    with instance_lock(app, "backup"):
        check_space(app, reason)
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        version = version or app.contract.version
        final = os.path.join(app.paths.backups, f"{stamp}-{version.replace(':', '_')}-{reason}")
        work = final + ".partial"
        os.makedirs(work, mode=0o700)
        try:
            _fill(app, work)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        meta = {"package": app.contract.package, "version": version, "reason": reason, "time": stamp,
                "format": 2, "made_by": app.contract.version}
        with open(os.path.join(work, "meta.json"), "w", encoding="utf-8") as f:
            json.dump(meta, f)
        os.rename(work, final)
        prune_backups(app, keep_also=os.path.basename(final))
        return final


def _fill(app: AppPackage, work: str) -> None:
    if os.path.exists(app.paths.settings):
        shutil.copy2(app.paths.settings, os.path.join(work, "settings.env"))
    if os.path.isdir(app.paths.state):
        _tar_from_app(app, app.paths.state, os.path.join(work, "state.tar"), EXCLUDED)
    services_step(app, "backup", work)
    if app.has_command("backup"):
        # The command runs as the app user into a fresh directory of its own; the app user then archives it.
        staging = new_staging(app)
        try:
            code = app.run_command(["backup"], extra_env={"APPDEB_BACKUP_DIR": staging})
            if code != 0:
                raise LauncherError(f"the app's backup command failed (exit {code}): {app.contract.commands['backup']}")
            _tar_from_app(app, staging, os.path.join(work, "app.tar"))
        finally:
            remove_tree(staging)


def backup_keep(app: AppPackage) -> int:
    """How many backups to keep: the settings' APPDEB_BACKUP_KEEP, else the description's (0 = all)."""
    text = app.settings().get("APPDEB_BACKUP_KEEP", "")
    if text.isdigit():
        return int(text)
    return app.contract.backups.keep


def prune_backups(app: AppPackage, keep_also: str = "") -> list[str]:
    """Delete the oldest backups beyond the keep count; never the newest of a pinned rollback's version."""
    from .pinning import pinned_version

    keep = backup_keep(app)
    names = list_backups(app)
    if keep <= 0 or len(names) <= keep:
        return []
    protected = {keep_also}
    pinned = pinned_version(app)
    if pinned:
        of_pinned = [n for n in names if backup_meta(app, n).get("version") == pinned]
        protected.update(of_pinned[-1:])
    newest = set(names[-keep:])
    doomed = [n for n in names if n not in newest and n not in protected]
    for name in doomed:
        remove_tree(os.path.join(app.paths.backups, name))
    return doomed


def resolve_backup(app: AppPackage, name: str) -> str:
    path = os.path.abspath(os.path.join(app.paths.backups, name))
    inside = os.path.dirname(path) == os.path.abspath(app.paths.backups)
    if not inside or not os.path.isfile(os.path.join(path, "meta.json")):
        known = ", ".join(list_backups(app)[-5:]) or "none"
        raise LauncherError(f"no backup '{name}' (recent: {known})")
    return path


def _units(app: AppPackage) -> list[str]:
    units = [u.name for u in app.contract.units if u.enabled]
    return units if proc.systemd_running() and not app.dev else []


def _systemctl(app: AppPackage, action: str, units: list[str]) -> None:
    try:
        proc.run(["systemctl", action, *units], check=True, what=f"systemctl {action} {' '.join(units)}")
    except proc.Failed as exc:
        raise LauncherError(f"{exc} (journalctl -u {units[0]})") from None


def restore_backup(app: AppPackage, path: str, *, restart: bool = True) -> None:
    """Stop the app, put settings, state, services and the app's part back, start it again."""
    units = _units(app)
    with instance_lock(app, "restore"):
        if units:
            _systemctl(app, "stop", units)  # nothing is touched while the app may still write
        if os.path.exists(os.path.join(path, "settings.env")):
            _restore_settings(app, os.path.join(path, "settings.env"))
        if os.path.exists(os.path.join(path, "state.tar")):
            _untar_as_app(app, os.path.join(path, "state.tar"), app.paths.state, clear=True)
        services_step(app, "restore", path)
        code = _restore_app_part(app, path)
    if units and restart:
        # a unit that failed until now (a downgraded worker meeting the newer schema the restore has
        # just replaced) may have hit its start limit: the restore is the remedy, so it starts afresh
        proc.run(["systemctl", "reset-failed", *units])
        _systemctl(app, "start", units)
    if code != 0:
        raise LauncherError(f"the app's restore command failed (exit {code}): {app.contract.commands['restore']}")


def _restore_app_part(app: AppPackage, path: str) -> int:
    """The app's restore command reads its part from a fresh directory it owns."""
    if not app.has_command("restore"):
        return 0
    staging = new_staging(app)
    try:
        archive = os.path.join(path, "app.tar")
        legacy = os.path.join(path, "app")  # appdeb 0.1.0 stored the app's part unpacked, as root's
        if os.path.isdir(legacy) and not os.path.exists(archive):
            archive = os.path.join(staging + ".tar")
            with open(archive, "xb") as out:
                proc.run(["tar", "-C", legacy, "-cf", "-", "."], stdout=out, check=True)
        if os.path.exists(archive):
            _untar_as_app(app, archive, staging, clear=False)
        return app.run_command(["restore"], extra_env={"APPDEB_BACKUP_DIR": staging})
    finally:
        remove_tree(staging)
        if os.path.exists(staging + ".tar"):
            os.unlink(staging + ".tar")


def _restore_settings(app: AppPackage, source: str) -> None:
    """Put the backed-up settings back with the owner and mode the runtime needs (root:USER 0640)."""
    target = app.paths.settings
    tmp = target + ".restore"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)  # never readable by others
    with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
        if on_node_as_root(app):
            os.fchown(out.fileno(), 0, app_user(app).pw_gid)
            os.fchmod(out.fileno(), 0o640)
        shutil.copyfileobj(src, out)
    os.replace(tmp, target)


def verb_backup(app: AppPackage, args: list[str]) -> int:
    """backup [--reason R]: labelled with the version whose data the instance holds."""
    from .lifecycle import data_version

    ns = verbargs.parse(app.contract.package, "backup", "", args)
    if not ns.reason.isidentifier():
        raise LauncherError(f"not a reason: {ns.reason!r} (letters, digits, _)")
    print(take_backup(app, ns.reason, ns.from_version or data_version(app)))
    return 0


def verb_backups(app: AppPackage, args: list[str]) -> int:
    """backups: every backup with whose data it holds, why it was taken and its size."""
    for name in list_backups(app):
        meta = backup_meta(app, name)
        size = tree_size(os.path.join(app.paths.backups, name))
        print(f"{name}\tversion={meta['version']}\treason={meta['reason']}\tsize={_mib(size)}")
    print(f"keeping the newest {backup_keep(app) or 'all'} (APPDEB_BACKUP_KEEP in {app.paths.settings})",
          file=sys.stderr)
    return 0


def verb_restore(app: AppPackage, args: list[str]) -> int:
    """restore BACKUP: stop the app, put settings and data back from a backup, start it again."""
    if len(args) != 1 or args[0].startswith("-"):
        raise LauncherError("usage: restore BACKUP (see 'backups')")
    path = resolve_backup(app, args[0])
    restore_backup(app, path)
    print(f"restored {os.path.basename(path)}")
    return 0
