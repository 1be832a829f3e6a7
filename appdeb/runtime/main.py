"""The launcher's entry: VERB dispatch with one error boundary (python3 -I run.py ROOT VERB [ARGS…])."""

from __future__ import annotations

import subprocess
import sys

from . import proc
from .app import AppPackage, LauncherError
from .backups import verb_backup, verb_backups, verb_restore
from .commands import verb_env, verb_process, verb_run, verb_timer, verb_web
from .lifecycle import verb_hook
from .pinning import verb_pin, verb_unpin
from .pull import verb_pull
from .rollback import verb_rollback
from .status import verb_status
from .verify import verb_verify

VERBS = {
    "run": (verb_run, "run COMMAND [ARGS…]: a command from the description, or any program, in the app's env"),
    "env": (verb_env, "env: print the app's environment"),
    "web": (verb_web, "web: serve the WSGI/ASGI app with gunicorn (what the web unit runs)"),
    "process": (verb_process, "process NAME: run one of the description's processes"),
    "timer": (verb_timer, "timer NAME: run one timer's command now"),
    "status": (verb_status, "status: version, whose data, port, units, health, newest backup, pin"),
    "verify": (verb_verify, "verify: check python, settings, units, the web answer, then the app's verify"),
    "backup": (verb_backup, "backup [--reason R]: back up settings, services and app data"),
    "backups": (verb_backups, "backups: list backups (whose data, why, size)"),
    "restore": (verb_restore, "restore BACKUP: restore a backup (stops and starts the app)"),
    "hook": (verb_hook, "hook configure|downgrade|uninstall: lifecycle hooks run by the maintainer scripts"),
}
VERBS.update({
    "pin": (verb_pin, "pin VERSION|--previous: install that version and hold it (apt pin); no argument: show"),
    "unpin": (verb_unpin, "unpin: drop the pin and install the newest version again"),
    "rollback": (verb_rollback, "rollback [VERSION] [--restore-backup]: pin the previous (or given) version, "
                                "then optionally restore its data"),
    "pull": (verb_pull, "pull: take the repository's newer release, verify it, else go back (the pull timer runs it)"),
})

HELP_WORDS = ("help", "--help", "-h")  # answered by the launcher itself, like a verb


def main(argv: list[str]) -> int:
    if len(argv) < 1:
        print("usage: run.py ROOT VERB [ARGS…]", file=sys.stderr)
        return 2
    app = AppPackage(argv[0])
    verb, args = (argv[1], argv[2:]) if len(argv) > 1 else ("help", [])
    if verb not in VERBS:
        asked = verb in HELP_WORDS
        out = sys.stdout if asked else sys.stderr
        if not asked:
            print(f"{app.contract.package}: unknown verb '{verb}'", file=out)
        print(f"{app.contract.package} {app.contract.version}\n", file=out)
        for _, text in VERBS.values():
            print("  " + text, file=out)
        names = ", ".join(app.contract.commands) or "none"
        print(f"\ncommands in the description: {names}", file=out)
        return 0 if asked else 2
    try:
        return VERBS[verb][0](app, args)
    except LauncherError as exc:
        print(f"{app.contract.package}: {exc}", file=sys.stderr)
        return 1
    except PermissionError as exc:  # e.g. backup or restore by a user who is not root
        print(f"{app.contract.package}: {verb}: {exc} (run it as root)", file=sys.stderr)
        return 1
    except OSError as exc:  # a file or directory the verb needs is missing or unusable: one line, no traceback
        print(f"{app.contract.package}: {verb}: {exc}", file=sys.stderr)
        return 1
    except (ValueError, KeyError, RecursionError, subprocess.SubprocessError, proc.Failed) as exc:
        # maintainer scripts read one line: a traceback in dpkg's output hides the cause from the admin
        print(f"{app.contract.package}: {verb}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
