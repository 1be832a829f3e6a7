"""The per-worker memory check gunicorn runs after every request reads this process's RSS, even after a fork."""

from __future__ import annotations

import os

from appdeb.runtime import gunicorn_conf


def test_rss_follows_allocations_and_a_forked_worker_reads_its_own() -> None:
    before = gunicorn_conf.rss_mb()
    block = bytearray(64 << 20)
    block[::4096] = b"x" * len(block[::4096])  # touch every page: resident, not just reserved
    grown = gunicorn_conf.rss_mb()
    assert grown - before > 56
    del block
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a worker: the parent's open statm would report the parent
        extra = bytearray(96 << 20)
        extra[::4096] = b"y" * len(extra[::4096])
        os.write(write, f"{gunicorn_conf.rss_mb():.0f}".encode())
        os._exit(0)
    os.close(write)
    child = float(os.read(read, 64))
    os.waitpid(pid, 0)
    assert child - gunicorn_conf.rss_mb() > 80  # the child's own 96 MiB, not the parent's figure
