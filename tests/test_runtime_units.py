"""How verify words a unit that is down: the app's own exception out of the journal (no systemd needed)."""

from __future__ import annotations

from appdeb.runtime.units import app_error

LOG = """\
[INFO] Booting worker with pid: 184
Traceback (most recent call last):
  File "/opt/x/lib/gunicorn/arbiter.py", line 608, in spawn_worker
    worker.init_process()
  File "/opt/x/app/hello.py", line 1, in <module>
    import no_such_module
ModuleNotFoundError: No module named 'no_such_module'
[INFO] Worker exiting (pid: 184)
x.service: Main process exited, code=exited, status=3/NOTIMPLEMENTED""".splitlines()


def test_the_last_traceback_gives_its_innermost_frame_and_exception() -> None:
    older = ["Traceback (most recent call last):", '  File "old.py", line 2', "ValueError: old", *LOG]
    assert app_error(older) == ['File "/opt/x/app/hello.py", line 1, in <module>',
                                "ModuleNotFoundError: No module named 'no_such_module'"]


def test_no_traceback_means_nothing_to_quote() -> None:
    assert app_error(["sh: 1: no-such-worker-command: not found"]) == []
    assert app_error(["Traceback (most recent call last):", '  File "cut.py", line 1']) == []
