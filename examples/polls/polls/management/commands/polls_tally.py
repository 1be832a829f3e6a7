"""The tally timer (app.yaml timers.tally): vote counts and a timestamp into $CONFIG_FILES/tally.json."""

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from polls.views import all_questions

from .polls_worker import write_json


class Command(BaseCommand):
    help = "Write $CONFIG_FILES/tally.json: every question's votes, the total, and when."

    def handle(self, *args, **options):
        questions = all_questions()
        for q in questions:
            q["votes"] = sum(c["votes"] for c in q["choices"])
        total = sum(q["votes"] for q in questions)
        path = settings.POLLS_FILES_DIR / "tally.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {"time": timezone.now().isoformat(), "version": settings.POLLS_VERSION,
                          "instance": settings.POLLS_INSTANCE, "total_votes": total, "questions": questions})
        self.stdout.write(f"polls tally: {len(questions)} question(s), {total} vote(s) -> {path}")
