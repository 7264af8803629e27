"""CPU per request of the reader API on django-ninja beside plain Django views.

Run from the repository root (SQLite by default; set DATABASE_URL for
PostgreSQL and REDIS_URL for the cache the app runs with)::

    .venv/bin/python bench/api_library.py [pairs]

The study of ``bench/reader_queries.py`` (its ``seed``), in a throwaway test
database. Readers walk through it in pairs with Django's test client, through
the whole middleware stack: one reader through the API's ninja views, the
other through two plain JSON views defined here that do the same work with
the same selectors and services (``next``: the enrollment, then
``api.next_payload``; a submit: ``json.loads``, hand-written checks of the
fields, ``services.judgment_record``, then ``api.answer_payload``). The two
take turns request by request (who goes first alternates from pair to
pair), so whatever slows the machine slows both alike. Each request's CPU time (``time.process_time``) is recorded; it
prints, per endpoint, the median and mean in ms for each, their ratio and
their difference, which is what the library costs per request.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "turingtest.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.exceptions import ValidationError  # noqa: E402
from django.http import HttpRequest, JsonResponse  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import (  # noqa: E402
    override_settings,
    setup_databases,
    setup_test_environment,
    teardown_databases,
)
from django.urls import path  # noqa: E402
from django.views.decorators.http import require_GET, require_POST  # noqa: E402

from bench.reader_queries import (  # noqa: E402
    answer_body,
    consented_reader,
    post_answer,
    seed,
)
from turingtest.studies import api, selectors, services  # noqa: E402
from turingtest.urls import urlpatterns as app_urlpatterns  # noqa: E402


@require_GET
def plain_next(request: HttpRequest, slug: str) -> JsonResponse:
    if not request.user.is_authenticated:
        return api.error("Sign in to read this study.", status=401)
    enrollment = selectors.enrollment_for(user=request.user, study_slug=slug)
    if enrollment is None:
        return api.error("No such study.", status=404)
    return JsonResponse(api.next_payload(enrollment))


def _whole(body: dict, name: str, *, required: bool) -> int | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError(f"'{name}' must be a whole number.")
    return value


@require_POST
def plain_answer(request: HttpRequest, slug: str) -> JsonResponse:
    if not request.user.is_authenticated:
        return api.error("Sign in to read this study.", status=401)
    try:
        body = json.loads(request.body)
        if not isinstance(body, dict):
            raise ValidationError(api.BODY_NOT_AN_OBJECT)
        stage = body.get("stage")
        if stage != "practice" and (
            not isinstance(stage, int) or isinstance(stage, bool) or stage < 1
        ):
            raise ValidationError(api.STAGE_INVALID)
        position = _whole(body, "position", required=True)
        assert position is not None
        answers = body.get("answers")
        if answers is not None and not isinstance(answers, dict):
            raise ValidationError("'answers' must be an object.")
        interaction = body.get("interaction")
        recorded = services.judgment_record(
            session=services.SessionRef(
                request.user.pk, slug, None if stage == "practice" else stage - 1
            ),
            position=position,
            confidence=_whole(body, "confidence", required=False),
            kl_grade=_whole(body, "kl_grade", required=False),
            answers=answers,
            interaction=interaction if isinstance(interaction, dict) else None,
            serve_next=True,
        )
    except (ValueError, RecursionError):
        return api.error(api.BODY_NOT_AN_OBJECT)
    except ValidationError as exc:
        return api.error(" ".join(exc.messages))
    payload = api.answer_payload(recorded, position)
    return JsonResponse(payload, status=201 if recorded.created else 200)


urlpatterns = [
    path("plain/studies/<slug:slug>/next", plain_next),
    path("plain/studies/<slug:slug>/answers", plain_answer),
    *app_urlpatterns,
]


def reader_client(study, n: int) -> Client:
    enrollment = consented_reader(study, f"pair{n}@example.org")
    client = Client()
    client.force_login(enrollment.reader.user)
    return client


def walk_pair(study, n: int, times: dict) -> None:
    """Two readers through the whole study, taking turns request by request."""
    walkers = {
        "ninja": (reader_client(study, 2 * n), f"/api/v1/studies/{study.slug}"),
        "plain": (reader_client(study, 2 * n + 1), f"/plain/studies/{study.slug}"),
    }
    order = list(walkers.items())
    if n % 2:  # who goes first alternates from pair to pair
        order.reverse()
    steps = {}

    def timed(name, kind, call):
        started = time.process_time()
        response = call()
        times[name, kind].append((time.process_time() - started) * 1000)
        assert response.status_code in (200, 201), (kind, response.content[:300])
        return response.json()

    for kind, (client, base) in order:
        steps[kind] = timed("next", kind, lambda c=client, b=base: c.get(f"{b}/next"))
    while "redirect" not in steps["ninja"]:
        for kind, (client, base) in order:
            timed("next", kind, lambda c=client, b=base: c.get(f"{b}/next"))
            body = answer_body(steps[kind])
            reply = timed(
                "submit",
                kind,
                lambda c=client, b=base, body=body: post_answer(c, b, body),
            )
            steps[kind] = reply["next"]
    assert "redirect" in steps["plain"]


def main() -> None:
    pairs = int(sys.argv[1]) if len(sys.argv) > 1 else 12
    setup_test_environment()
    settings.MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="turingtest-api-library-"))
    old = setup_databases(verbosity=0, interactive=False)
    try:
        study, _ = seed()
        times: dict = defaultdict(list)
        with override_settings(ROOT_URLCONF=__name__):
            walk_pair(study, 0, defaultdict(list))  # warm-up: caches, imports
            for n in range(1, pairs + 1):
                walk_pair(study, n, times)
        print(
            f"CPU per request through the test client and the whole middleware "
            f"stack, ms ({pairs} pairs of readers; "
            f"{settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[1]})"
        )
        print(
            f"  {'':<8} {'n':>4}  {'ninja':>14}  {'plain':>14}  "
            f"{'ratio':>5}  {'ninja - plain':>13}"
        )
        print(f"  {'':<8} {'':>4}  {'median  mean':>14}  {'median  mean':>14}")
        for name in ("next", "submit"):
            ninja, plain = times[name, "ninja"], times[name, "plain"]
            nm, pm = statistics.median(ninja), statistics.median(plain)
            print(
                f"  {name:<8} {len(ninja):>4}  "
                f"{nm:6.3f} {statistics.mean(ninja):6.3f}  "
                f"{pm:6.3f} {statistics.mean(plain):6.3f}  "
                f"{nm / pm:5.2f}  {nm - pm:+13.3f}"
            )
    finally:
        teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    main()
