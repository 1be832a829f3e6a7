"""An Ansible stdout callback that prints one JSON document: every task's result per host, and the stats.

ansible-core ships no JSON callback of its own (it lives in a collection), and appdeb reads a play's
outcome as data, so it brings this small one (loaded through ANSIBLE_CALLBACK_PLUGINS). The shape is
{"plays": [{"tasks": [{"task": {"name"}, "hosts": {host: result}}]}], "stats": {host: counters}}.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: appdeb_json
    type: stdout
    short_description: appdeb's machine-readable play report
    description: every task result per host and the per-host stats, as one JSON document
      (to the file named by APPDEB_ANSIBLE_REPORT, else stdout)
"""


class CallbackModule(CallbackBase):  # type: ignore[misc]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "appdeb_json"

    def __init__(self) -> None:
        super().__init__()
        self.plays: list[dict[str, Any]] = []

    def v2_playbook_on_play_start(self, play: Any) -> None:
        self.plays.append({"play": {"name": play.get_name()}, "tasks": []})

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self.plays[-1]["tasks"].append({"task": {"name": task.get_name()}, "hosts": {}})

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self.v2_playbook_on_task_start(task, False)

    def _record(self, result: Any, **flags: bool) -> None:
        data = dict(result._result)
        data.update(flags)
        data.pop("invocation", None)
        task = self.plays[-1]["tasks"][-1] if self.plays and self.plays[-1]["tasks"] else None
        if task is not None:
            task["hosts"][result._host.get_name()] = data

    def v2_runner_on_ok(self, result: Any) -> None:
        self._record(result)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._record(result, failed=True)

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._record(result, unreachable=True, failed=True)

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._record(result, skipped=True)

    def v2_playbook_on_stats(self, stats: Any) -> None:
        summary = {host: stats.summarize(host) for host in sorted(stats.processed)}
        text = json.dumps({"plays": self.plays, "stats": summary}, default=str)
        target = os.environ.get("APPDEB_ANSIBLE_REPORT")
        if target:  # a file of the controller's own, out of reach of whatever hosts print
            with open(target, "w", encoding="utf-8") as f:
                f.write(text)
        else:
            self._display.display(text)
