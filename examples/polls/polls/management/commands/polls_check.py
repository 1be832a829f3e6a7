"""The verify command: the database answers, every migration is applied, the files directory is writable."""

import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor

from polls.models import Question


class Command(BaseCommand):
    help = "Check the database connection, the migrations and $CONFIG_FILES; count the questions."

    def handle(self, *args, **options):
        try:
            executor = MigrationExecutor(connection)
            pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
            if pending:
                names = ", ".join(f"{m.app_label}.{m.name}" for m, _ in pending)
                raise CommandError(f"unapplied migrations: {names} (run: python3 manage.py migrate)")
            count = Question.objects.count()
        except DatabaseError as exc:
            raise CommandError(f"database ({connection.vendor}): {exc}".strip()) from None
        files = settings.POLLS_FILES_DIR
        probe = files / f".polls_check.{os.getpid()}"
        try:
            files.mkdir(parents=True, exist_ok=True)
            probe.write_text("ok\n")
            probe.unlink()
        except OSError as exc:
            raise CommandError(f"files directory {files} is not writable: {exc}") from None
        self.stdout.write(f"polls: ok: {count} question(s), db={connection.vendor} "
                          f"({connection.settings_dict['NAME']}), files={files}")
