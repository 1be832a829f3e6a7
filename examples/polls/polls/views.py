"""The page, the JSON API and /health. Plain HTML: no template engine needed."""

import json

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import F
from django.http import HttpResponse, JsonResponse
from django.utils.html import format_html, format_html_join
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from .models import Choice, Question


def question_data(q: Question) -> dict:
    data = {"id": q.id, "text": q.text,
            "choices": [{"id": c.id, "text": c.text, "votes": c.votes} for c in q.choices.order_by("id")]}
    # >>> v2
    data["closed"] = q.closed_at is not None
    # <<< v2
    return data


def all_questions() -> list[dict]:
    return [question_data(q) for q in Question.objects.prefetch_related("choices").order_by("id")]


@require_safe
def index(request):
    items = format_html_join("", "<li>{} <ul>{}</ul></li>", (
        (q["text"], format_html_join("", "<li>{}: {}</li>", ((c["text"], c["votes"]) for c in q["choices"])))
        for q in all_questions()))
    return HttpResponse(format_html(
        '<!doctype html><html><head><meta charset="utf-8"><title>{0}</title>'
        '<link rel="stylesheet" href="{1}polls/style.css"></head>'
        "<body><h1>{0}</h1><ul>{2}</ul><footer>{3} {4}</footer></body></html>",
        settings.POLLS_TITLE, settings.STATIC_URL, items or "no questions yet",
        settings.POLLS_INSTANCE, settings.POLLS_VERSION))


@csrf_exempt
@require_http_methods(["GET", "POST"])
def questions(request):
    if request.method == "GET":
        return JsonResponse(all_questions(), safe=False)
    try:
        body = json.loads(request.body)
        text, choices = body["text"], body["choices"]
    except (ValueError, TypeError, KeyError):
        return JsonResponse({"error": 'expected JSON {"text": "...", "choices": ["...", ...]}'}, status=400)
    valid_text = isinstance(text, str) and 0 < len(text.strip()) <= 200
    valid_choices = isinstance(choices, list) and choices and all(
        isinstance(c, str) and 0 < len(c.strip()) <= 200 for c in choices)
    if not (valid_text and valid_choices):
        return JsonResponse({"error": "text and every choice: non-empty strings of at most 200 characters; "
                                      "at least one choice"}, status=400)
    with transaction.atomic():
        q = Question.objects.create(text=text.strip())
        Choice.objects.bulk_create([Choice(question=q, text=c.strip()) for c in choices])
    return JsonResponse(question_data(q), status=201)


@csrf_exempt
@require_POST
def vote(request, choice_id: int):
    choice = Choice.objects.filter(id=choice_id).select_related("question").first()
    if choice is None:
        return JsonResponse({"error": f"no choice {choice_id}"}, status=404)
    # >>> v2
    if choice.question.closed_at is not None:
        return JsonResponse({"error": "this question is closed"}, status=409)
    # <<< v2
    Choice.objects.filter(id=choice_id).update(votes=F("votes") + 1)
    choice.refresh_from_db()
    return JsonResponse({"id": choice.id, "text": choice.text, "votes": choice.votes})


@require_safe
def health(request):
    data = {"ok": True, "version": settings.POLLS_VERSION, "instance": settings.POLLS_INSTANCE,
            "db": connection.vendor}
    try:  # the newest applied migration of the app, so an upgrade test sees the schema change
        applied = MigrationRecorder(connection).migration_qs.filter(app="polls").order_by("-name").first()
        data["migration"] = applied.name if applied else None
    except DatabaseError as exc:
        data.update(ok=False, error=str(exc).strip())
    return JsonResponse(data, status=200 if data["ok"] else 503)
