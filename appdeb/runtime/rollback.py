"""rollback [VERSION] [--restore-backup]: back to an older release, with its data in one safe step.

With --restore-backup the data goes back first, while the newer release (which knows every backup
format) is still installed: the current data is backed up, the backup of VERSION's data restored,
and the marker set to VERSION. The older package's postinst then finds its own data and runs no
`update` command against a newer schema. If installing fails, the current data is put back.
"""

from __future__ import annotations

from .app import AppPackage, LauncherError
from .backups import backup_meta, list_backups, restore_backup, take_backup
from .guard import instance_lock
from .lifecycle import data_version, set_data_version
from .pinning import OLD_LAYOUT, choose_version, forget_pull_hold, install_pinned, need_root, refuse_old_layout


def backup_of_version(app: AppPackage, version: str) -> str | None:
    """The newest backup whose data is version's: taken when an upgrade (or downgrade) left it."""
    found = None
    for name in list_backups(app):
        if backup_meta(app, name).get("version") == version:
            found = name
    return found


def verb_rollback(app: AppPackage, args: list[str]) -> int:
    """rollback [VERSION] [--restore-backup]: pin and install VERSION (default: the previous one), with
    the data backed up when that version was left if asked."""
    restore = "--restore-backup" in args
    rest = [a for a in args if a not in ("--restore-backup", OLD_LAYOUT)]
    if len(rest) > 1 or any(a.startswith("-") and a != "--previous" for a in rest):
        raise LauncherError(f"usage: rollback [VERSION] [--restore-backup] [{OLD_LAYOUT}]")
    need_root(app, "rollback")
    package = app.contract.package
    version = choose_version(app, rest[0] if rest else "--previous")
    refuse_old_layout(app, version, OLD_LAYOUT in args)
    forget_pull_hold(app)
    if restore:
        _rollback_with_data(app, version)
    else:
        install_pinned(app, version)
    print(f"{package}: rolled back to {version}{' with its data' if restore else ''}, pinned "
          f"('{package} unpin' returns to the newest version)", flush=True)
    return 0


def _rollback_with_data(app: AppPackage, version: str) -> None:
    package = app.contract.package
    backup = backup_of_version(app, version)
    if backup is None:  # refuse before anything changes
        raise LauncherError(f"no backup holds the data of {version} ('{package} backups'); nothing was changed "
                            f"(without --restore-backup the app would run {version} on the newer data)")
    with instance_lock(app, "rollback"):
        current = data_version(app) or app.contract.version
        safety = take_backup(app, "rollback", current)
        print(f"{package}: current data ({current}) backed up in {safety}", flush=True)
        print(f"{package}: restoring {backup} (the data of {version})", flush=True)
        restore_backup(app, f"{app.paths.backups}/{backup}", restart=False)
        set_data_version(app, version)
    try:
        install_pinned(app, version)
    except LauncherError as exc:
        with instance_lock(app, "rollback undo"):
            restore_backup(app, safety)
            set_data_version(app, current)
        raise LauncherError(f"{exc}\nthe data of {current} was put back from {safety}") from None
