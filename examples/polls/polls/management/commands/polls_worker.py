"""The worker process (app.yaml processes.worker): a heartbeat, and closing old polls, every N seconds."""

import json
import os
import signal
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from polls.models import Question


def write_json(path, data) -> None:
    """Write atomically, so a reader never sees half a file."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


class Command(BaseCommand):
    help = "Loop: write $CONFIG_FILES/worker.heartbeat and close questions older than POLLS_CLOSE_AFTER_DAYS."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="one round, then exit")

    def handle(self, *args, once=False, **options):
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())  # systemctl stop: finish the round, exit 0
        files = settings.POLLS_FILES_DIR
        files.mkdir(parents=True, exist_ok=True)
        self.stdout.write(f"polls worker: every {settings.POLLS_WORKER_INTERVAL}s into {files}")
        while not stop.is_set():
            close_old_connections()  # survive a database restart between rounds
            # >>> v2
            self.close_old_questions()
            # <<< v2
            write_json(files / "worker.heartbeat", {"time": time.time(), "pid": os.getpid(),
                                                    "version": settings.POLLS_VERSION,
                                                    "questions": Question.objects.count()})
            if once:
                break
            stop.wait(settings.POLLS_WORKER_INTERVAL)

    # >>> v2
    def close_old_questions(self) -> None:
        import datetime

        from django.utils import timezone

        cutoff = timezone.now() - datetime.timedelta(days=settings.POLLS_CLOSE_AFTER_DAYS)
        closed = Question.objects.filter(closed_at__isnull=True, pub_date__lt=cutoff).update(closed_at=timezone.now())
        if closed:
            self.stdout.write(f"polls worker: closed {closed} question(s)")
    # <<< v2
