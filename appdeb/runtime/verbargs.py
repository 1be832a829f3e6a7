"""Each launcher verb's arguments, parsed with argparse before the verb does anything.

The launcher is run by people, not only by units and maintainer scripts: `PKG backup --help` must
print help and take no backup, and `PKG backups prune` must say it is not understood rather than
list. So every verb declares what it accepts here, `parse` runs before the verb, and the verb only
ever sees arguments it understands: `--help` prints help and exits 0, anything else it does not
know exits 2 with a usage line, nothing started or written. (argparse is the standard library's:
the runtime runs with the node's Debian python, click is not there.)
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

OLD_LAYOUT = "--allow-old-layout"  # pinning.OLD_LAYOUT, without importing apt logic to parse arguments


class Usage(Exception):
    """argparse has printed help (code 0) or a usage error (code 2); the launcher exits with code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _lines(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return number


def _remainder(p: argparse.ArgumentParser, what: str, helps: str) -> None:
    p.add_argument(what, help=helps)
    p.add_argument("args", nargs=argparse.REMAINDER, help="its arguments, passed on as they are")


def _old_layout(p: argparse.ArgumentParser) -> None:
    p.add_argument(OLD_LAYOUT, action="store_true",
                   help="allow a version built for an older layout of the package (its data may not fit)")


def _version_or_previous(p: argparse.ArgumentParser, what: str) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("version", nargs="?", help=f"the version to {what} (see '{p.prog.split()[0]} pin')")
    group.add_argument("--previous", action="store_true", help=f"{what} the version installed before this one")
    _old_layout(p)


def _hook(p: argparse.ArgumentParser) -> None:
    p.add_argument("step", choices=("configure", "downgrade", "provision", "install", "update", "uninstall"),
                   help="the lifecycle step")
    p.add_argument("version", nargs="?", help="downgrade: the version being installed")
    p.add_argument("--from-version", metavar="V", help="provision/install/update: the version the data is from")


def _rollback(p: argparse.ArgumentParser) -> None:
    _version_or_previous(p, "roll back to")
    p.add_argument("--restore-backup", action="store_true",
                   help="also restore the data backed up when that version was left")


def _backup(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reason", default="manual", help="why it was taken (letters, digits, _; default: manual)")
    p.add_argument("--from-version", metavar="V", help="label it as data of this version (default: the data's)")


def _logs(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until interrupted")
    p.add_argument("-n", "--lines", type=_lines, default=50, metavar="N", help="lines from each log (default 50)")


def _none(p: argparse.ArgumentParser) -> None:
    """A verb without arguments: only -h/--help."""


SPECS: dict[str, Callable[[argparse.ArgumentParser], object]] = {
    "run": lambda p: _remainder(p, "command", "a command from the description, or any program"),
    "web": lambda p: p.add_argument("--reload", action="store_true",
                                    help="restart the workers when the code changes (appdeb serve, in development)"),
    "restore": lambda p: p.add_argument("backup", help="a backup's name (see 'backups') or path"),
    "backup": _backup, "logs": _logs, "hook": _hook, "rollback": _rollback,
    "pin": lambda p: _version_or_previous(p, "install and hold"),
}


NAMED = {"process": "processes", "timer": "timers"}  # verbs taking a NAME from the description


def parser(package: str, verb: str, summary: str, names: Sequence[str] = ()) -> argparse.ArgumentParser:
    """names: the description's processes or timers, for `process NAME` and `timer NAME`."""
    p = argparse.ArgumentParser(prog=f"{package} {verb}", description=summary, allow_abbrev=False)
    if verb in NAMED:
        p.add_argument("name", choices=list(names), help=f"one of the description's {NAMED[verb]}")
    else:
        SPECS.get(verb, _none)(p)
    return p


def parse(package: str, verb: str, summary: str, args: list[str], names: Sequence[str] = ()) -> argparse.Namespace:
    """The verb's arguments, or Usage once argparse has printed help (0) or the error (2)."""
    try:
        return parser(package, verb, summary, names).parse_args(args)
    except SystemExit as exc:
        raise Usage(exc.code if isinstance(exc.code, int) else 2) from None
