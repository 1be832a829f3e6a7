"""An installed instance in a temporary directory, for node-side tests that need neither root nor systemd.

The description is the real contract `appdeb build` makes for examples/hello (so a renamed field
breaks these tests too), with paths moved under a temporary directory. `FakeRunner` stands in for
the runtime's door to other programs: it records every program the runtime starts, answers for
systemctl/journalctl as a node would, and runs the file tools (tar, du, mkdir) for real, without the
`runuser` in front when the test is not root.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from appdeb.build.plan import make_plan
from appdeb.build.render import runtime_config
from appdeb.build.shipped import shipped_sources
from appdeb.build.validate import load_spec
from appdeb.runtime import app as runtime_app
from appdeb.runtime import contract, proc

from .conftest import EXAMPLES

FILE_TOOLS = ("tar", "du", "mkdir", "find", "sh", "/bin/sh", "dpkg", "python3")
Answer = proc.Done | Callable[[tuple[str, ...]], proc.Done]


class FakeRunner(proc.Runner):
    """Records each program; answers the ones given (by argv prefix); runs file tools for real."""

    def __init__(self, answers: dict[tuple[str, ...], Answer] | None = None, *, systemd: bool = True) -> None:
        self.answers = dict(answers or {})
        self.calls: list[tuple[str, ...]] = []
        self.on_systemd = systemd

    def run(self, argv: Sequence[str], **kwargs: Any) -> proc.Done:
        argv = tuple(argv)
        self.calls.append(argv)
        for prefix, answer in sorted(self.answers.items(), key=lambda item: -len(item[0])):
            if argv[:len(prefix)] == prefix:
                return answer(argv) if callable(answer) else answer
        real = argv[4:] if argv[:2] == ("runuser", "-u") and os.geteuid() != 0 else argv
        if real and real[0] in (*FILE_TOOLS, "runuser"):
            return super().run(real, **kwargs)
        raise AssertionError(f"the runtime started {argv!r}, which this test did not expect")

    def relay(self, argv: Sequence[str], **kwargs: Any) -> int:
        self.calls.append(tuple(argv))
        return super().relay(argv, **kwargs)

    def bounded(self, argv: Sequence[str], **kwargs: Any) -> int:
        self.calls.append(tuple(argv))
        return super().bounded(argv, **kwargs)

    def show(self, argvs: Sequence[Sequence[str]]) -> int:
        self.calls.extend(tuple(a) for a in argvs)
        return 0

    def systemd(self) -> bool:
        return self.on_systemd

    def ran(self, *prefix: str) -> list[tuple[str, ...]]:
        return [c for c in self.calls if c[:len(prefix)] == prefix]


def done(out: str = "", code: int = 0) -> proc.Done:
    return proc.Done(("answer",), code, out.encode())


def journal(unit: str, app_output: str, result: str = "", started: bool = False) -> proc.Done:
    """journalctl -o json as a unit's journal holds it: the app's lines (from its own cgroup), then
    systemd's own about the unit (from PID 1, naming it in UNIT=, with UNIT_RESULT when it failed;
    started: then a start job that succeeded)."""
    entries: list[dict[str, Any]] = [{"MESSAGE": line, "_SYSTEMD_UNIT": unit, "_PID": "41"}
                                     for line in app_output.splitlines()]
    if result:
        entries.append({"MESSAGE": f"{unit}: Failed with result '{result}'.", "_SYSTEMD_UNIT": "init.scope",
                        "UNIT": unit, "UNIT_RESULT": result, "_PID": "1"})
    if started:
        entries.append({"MESSAGE": f"Started {unit}.", "_SYSTEMD_UNIT": "init.scope", "UNIT": unit,
                        "JOB_TYPE": "start", "JOB_RESULT": "done", "_PID": "1"})
    return done("".join(json.dumps(e) + "\n" for e in entries))


def hello_contract(**changes: Any) -> contract.Contract:
    """The contract the build writes for examples/hello, changed where a test needs it."""
    plan = make_plan(load_spec(EXAMPLES / "hello"), python_version="{}.{}".format(*sys.version_info[:2]),
                     source_date_epoch=0)
    return runtime_config(plan).with_changes(**changes)


def install_root(tmp_path: Path, *, package: str = "hello-nr1", version: str = "2.0.0-1", dev: bool = False,
                 keep: int = 3, settings: str = "", user: str = "nobody", **changes: Any) -> runtime_app.AppPackage:
    """/opt/PKG with app.json, the runtime and the app, and the instance's directories, all under tmp_path."""
    root = tmp_path / "opt" / package
    paths = contract.Paths(
        etc=str(tmp_path / "etc"), settings=str(tmp_path / "etc" / "settings.env"), state=str(tmp_path / "state"),
        tmp=str(tmp_path / "state" / "tmp"), logs=str(tmp_path / "logs"), backups=str(tmp_path / "backups"),
        launcher=str(tmp_path / "launcher"), secret=str(tmp_path / "etc" / "secret"), own=str(tmp_path / "own"),
        run=str(tmp_path / "run"), pin=str(tmp_path / "pin"))
    for made in (paths.etc, paths.state, paths.backups):
        os.makedirs(made, exist_ok=True)
    Path(paths.settings).write_text(settings)
    described = hello_contract(package=package, version=version, paths=paths, dev=dev, user=user,
                               backups=contract.Backups(keep), **{"commands": {}, **changes})
    (root / "appdeb").mkdir(parents=True)
    (root / "appdeb" / "app.json").write_text(described.to_json())
    for name, source in shipped_sources().items():  # the runtime and the service plug-ins, as a package ships them
        (root / "appdeb" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "appdeb" / name).write_bytes(source)
    shutil.copytree(EXAMPLES / "hello", root / "app")
    return runtime_app.AppPackage(str(root))
