"""The lifecycle the maintainer scripts drive: configure (install, update, provision), downgrade, hooks.

`postinst configure` calls `PKG hook configure`: under the instance lock it reads the marker
(the version whose data the instance holds), runs the app's install or, after a backup, update
command, and records the new version. Deciding here rather than in shell keeps every value data.
"""

from __future__ import annotations

import contextlib
import os
import stat

from . import verbargs
from .app import AppPackage, LauncherError
from .backups import take_backup
from .commands import services_step
from .configfiles import render_config_files
from .guard import app_user, ensure_app_dirs, instance_lock, on_node_as_root, read_own, remove_tree, write_own
from .pinning import version_lt

MARKER = "configured-version"
LEGACY_DIR = ".appdeb"  # appdeb 0.1.0 kept its state inside the app's state directory


def data_version(app: AppPackage) -> str | None:
    """The version whose data the instance holds (None before a first install went through)."""
    return read_own(app, MARKER)


def set_data_version(app: AppPackage, version: str) -> None:
    write_own(app, MARKER, version + "\n")


def run_app_hook(app: AppPackage, name: str, from_version: str | None = None) -> None:
    """Provision (secret, services, site), then the app's own lifecycle command if it has one."""
    if name in ("provision", "install", "update"):
        services_step(app, "provision")
        for notice in render_config_files(app):  # before the app's command, which may read them
            print(f"{app.contract.package}: {notice}", flush=True)
    if name != "provision" and app.has_command(name):
        extra = {"APPDEB_FROM_VERSION": from_version} if from_version else {}
        code = app.run_command([name], extra_env=extra)
        if code != 0:
            raise LauncherError(f"the app's '{name}' command failed (exit {code}): {app.contract.commands[name]}")
    if name == "uninstall":
        services_step(app, "purge")


def configure(app: AppPackage) -> None:
    """First install runs `install`; another version's data is backed up, then `update`d; the same
    version again only provisions. The marker moves only once the command went through."""
    with instance_lock(app, "configure"):
        migrate_legacy_state(app)
        if on_node_as_root(app):
            ensure_app_dirs(app)
        previous = data_version(app)
        version = app.contract.version
        if previous is None:
            run_app_hook(app, "install")
        elif previous != version:
            reason = "downgrade" if version_lt(version, previous) else "upgrade"
            try:
                take_backup(app, reason, previous)
            except LauncherError as exc:
                raise LauncherError(f"backup before the update failed; nothing was migrated: {exc}") from None
            run_app_hook(app, "update", previous)
        else:
            run_app_hook(app, "provision")
        if previous != version:
            set_data_version(app, version)


def _legacy_dir_fd(app: AppPackage) -> int | None:
    """The 0.1.0 state directory STATE/.appdeb, opened without following links, if root's."""
    try:
        state_fd = os.open(app.paths.state, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fd = os.open(LEGACY_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=state_fd)
    except OSError:
        return None
    finally:
        os.close(state_fd)
    if os.fstat(fd).st_uid != 0:  # the app user's own directory of that name: not ours to read
        os.close(fd)
        return None
    return fd


def migrate_legacy_state(app: AppPackage) -> None:
    """Packages of appdeb 0.1.0 kept the marker in STATE/.appdeb: take it over once, then drop that dir."""
    if not on_node_as_root(app):
        return
    fd = _legacy_dir_fd(app)
    if fd is None:
        return
    try:
        if data_version(app) is None:
            text = _read_root_file(fd, "configured-version")
            if text:
                set_data_version(app, text)
    finally:
        os.close(fd)
    remove_tree(os.path.join(app.paths.state, LEGACY_DIR))


def _read_root_file(dir_fd: int, name: str) -> str | None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError:
        return None
    with os.fdopen(fd, encoding="utf-8") as f:
        st = os.fstat(f.fileno())
        if st.st_uid != 0 or not stat.S_ISREG(st.st_mode):
            return None
        return f.read(200).strip() or None


def prepare_downgrade(app: AppPackage, target: str) -> None:
    """Before dpkg replaces this release by an older one (prerm upgrade OLD).

    A package built by appdeb 0.1.0 reads its marker from STATE/.appdeb; without it, it would
    take the instance for a new one and run `install` over the data. Leave it the marker there,
    written through a verified root-owned directory, never through a path the app user controls.
    """
    version = data_version(app)
    if not on_node_as_root(app) or version is None or not version_lt(target, app.contract.version):
        return
    state_fd = os.open(app.paths.state, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        fd = _root_legacy_dir(state_fd)
    finally:
        os.close(state_fd)
    try:
        os.fchown(fd, 0, app_user(app).pw_gid)
        os.fchmod(fd, 0o750)
        new = os.open("configured-version.new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644,
                      dir_fd=fd)
        with os.fdopen(new, "w", encoding="utf-8") as f:
            f.write(version + "\n")
        os.rename("configured-version.new", "configured-version", src_dir_fd=fd, dst_dir_fd=fd)
    finally:
        os.close(fd)


def _root_legacy_dir(state_fd: int) -> int:
    """STATE/.appdeb as a directory of root's, opened without following links; whatever the app user
    put there under that name (a link, a directory of its own) is renamed aside, never used."""
    for attempt in range(3):
        with contextlib.suppress(FileExistsError):
            os.mkdir(LEGACY_DIR, 0o750, dir_fd=state_fd)
        try:
            fd = os.open(LEGACY_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=state_fd)
            if os.fstat(fd).st_uid == 0:
                return fd
            os.close(fd)
        except OSError:  # a link or a file in its place
            pass
        os.rename(LEGACY_DIR, f"{LEGACY_DIR}.not-root-{os.getpid()}-{attempt}", src_dir_fd=state_fd,
                  dst_dir_fd=state_fd)
    raise LauncherError(f"could not make {LEGACY_DIR} a directory of root's in the state directory")


def verb_hook(app: AppPackage, args: list[str]) -> int:
    """Lifecycle hooks the maintainer scripts call: configure, downgrade VERSION, uninstall (and the
    single steps provision, install, update for running by hand)."""
    ns = verbargs.parse(app.contract.package, "hook", "", args)
    name, from_version = ns.step, ns.from_version
    if name == "configure" and not ns.version and not from_version:
        configure(app)
    elif name == "downgrade" and ns.version and not from_version:
        prepare_downgrade(app, ns.version)
    elif name in ("provision", "install", "update", "uninstall") and not ns.version:
        with instance_lock(app, name):
            run_app_hook(app, name, from_version)
    else:
        raise LauncherError("usage: hook configure | downgrade VERSION | provision | install | update "
                            "[--from-version V] | uninstall")
    return 0
