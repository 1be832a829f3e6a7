"""The launcher's entry: VERB dispatch with one error boundary (python3 -I run.py ROOT VERB [ARGS…])."""

from __future__ import annotations

import subprocess
import sys

from . import proc
from .app import AppPackage, LauncherError
from .backups import verb_backup, verb_backups, verb_restore
from .commands import verb_env, verb_process, verb_run, verb_timer, verb_web
from .daytwo import verb_logs, verb_restart, verb_version
from .lifecycle import verb_hook
from .pinning import verb_pin, verb_unpin
from .pull import verb_pull
from .rollback import verb_rollback
from .status import verb_status
from .verbargs import Usage, parse
from .verify import verb_verify

VERBS = {
    "run": (verb_run, "run COMMAND [ARGS…]: a command from the description, or any program, in the app's env"),
    "env": (verb_env, "env: print the app's environment"),
    "web": (verb_web, "web: serve the WSGI/ASGI app with gunicorn (what the web unit runs)"),
    "process": (verb_process, "process NAME: run one of the description's processes"),
    "timer": (verb_timer, "timer NAME: run one timer's command now"),
    "status": (verb_status, "status: version, whose data, port, units, health, newest backup, pin"),
    "logs": (verb_logs, "logs [-f] [-n N]: the journal of the package's units, its nginx site's and the app's logs"),
    "restart": (verb_restart, "restart: restart the web process and workers (applies a settings.env change)"),
    "version": (verb_version, "version: print the installed version"),
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


def usage(app: AppPackage, asked: bool, verb: str = "") -> int:
    """The launcher's own help: its verbs and the description's commands."""
    out = sys.stdout if asked else sys.stderr
    if not asked:
        print(f"{app.contract.package}: unknown verb '{verb}'", file=out)
    print(f"{app.contract.package} {app.contract.version}\n", file=out)
    for _, text in VERBS.values():
        print("  " + text, file=out)
    names = ", ".join(app.contract.commands) or "none"
    print(f"\ncommands in the description: {names}\n'{app.contract.package} VERB --help' explains one verb",
          file=out)
    return 0 if asked else 2


def main(argv: list[str]) -> int:
    if len(argv) < 1:
        print("usage: run.py ROOT VERB [ARGS…]", file=sys.stderr)
        return 2
    app = AppPackage(argv[0])
    verb, args = (argv[1], argv[2:]) if len(argv) > 1 else ("help", [])
    if verb in HELP_WORDS and args[:1] and args[0] in VERBS:  # help VERB
        verb, args = args[0], ["--help"]
    elif verb not in VERBS:
        return usage(app, verb in HELP_WORDS, verb)
    try:  # every verb's arguments are checked before it runs: --help or a misuse starts nothing
        names = list(app.contract.processes if verb == "process" else app.contract.timers)
        parse(app.contract.package, verb, VERBS[verb][1], args, names)
    except Usage as exc:
        return exc.code
    try:
        return VERBS[verb][0](app, args)
    except Usage as exc:
        return exc.code
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
