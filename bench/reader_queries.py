"""Database queries per request of the reader's API, counted through the API.

Run from the repository root (SQLite by default; set DATABASE_URL for
PostgreSQL and REDIS_URL for the cache the app runs with)::

    .venv/bin/python bench/reader_queries.py

A study of 20 main cases (2 real and 2 synthetic per KL grade), 2 practice
cases, grading then detection, in a throwaway test database. One signed-in
reader walks through it with Django's test client; every request is counted
with ``CaptureQueriesContext`` (savepoints included), as a production request
runs: no transaction around it. It prints, per endpoint, the fewest, the
median and the most queries seen, the same for the submits that end a stage,
and the image view with a cold and a warm cache; then the CPU time of each
request the reader's walk made, and of the three queries every reader request
makes, compiled once (``turingtest.studies.prepared``) beside the same
querysets compiled on each call, in turn in one run.
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
from django.core.cache import cache  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import (  # noqa: E402
    CaptureQueriesContext,
    setup_databases,
    setup_test_environment,
    teardown_databases,
)


def seed():
    from turingtest.imaging.phantom import knee_phantom
    from turingtest.imaging.services import image_create
    from turingtest.studies import services

    n = 0
    for grade in range(5):
        for source, count in (("real", 4), ("synthetic", 2)):
            for _ in range(count):
                n += 1
                image_create(
                    pixels=knee_phantom(grade, n, size=64),
                    source=source,
                    kl_grade=grade,
                    origin=f"phantom {n}",
                )
    study = services.study_create(
        slug="queries", name="Queries", phases=("grading", "detection")
    )
    services.cases_build(study=study, per_grade=2, seed=1, practice=2)
    study = services.study_open(study=study)
    return study, consented_reader(study, "reader@example.org")


def consented_reader(study, email: str):
    """A reader invited to ``study``, signed up and consented: the enrollment."""
    from turingtest.studies import services

    ((_, token),) = services.invitations_create(study=study, count=1)
    enrollment = services.reader_signup(
        token=token,
        email=email,
        password="correct-horse-battery-staple",
        name="Reader",
        profession="radiologist",
        experience_years=5,
    )
    return services.enrollment_consent(enrollment=enrollment)


def answer_body(step: dict) -> dict:
    """An answer to every question the step's phase asks."""
    asked = {q["field"] for q in step["phase"]["questions"]}
    body = {"stage": step["stage"], "position": step["position"]}
    body |= {"confidence": 2} if "confidence" in asked else {}
    body |= {"kl_grade": 1} if "kl_grade" in asked else {}
    return body


def post_answer(client, base: str, body: dict):
    return client.post(
        f"{base}/answers", json.dumps(body), content_type="application/json"
    )


def counted(counts, name, call):
    with CaptureQueriesContext(connection) as ctx:
        response = call()
    counts[name].append(len(ctx.captured_queries))
    assert response.status_code in (200, 201), (name, response.content[:300])
    return response


def main() -> None:
    setup_test_environment()
    settings.MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="turingtest-queries-"))
    old = setup_databases(verbosity=0, interactive=False)
    try:
        cache.clear()
        study, enrollment = seed()
        client = Client()
        client.force_login(enrollment.reader.user)
        base = f"/api/v1/studies/{study.slug}"
        counts = defaultdict(list)
        step = counted(counts, "next", lambda: client.get(f"{base}/next")).json()
        image_cold = True
        while "redirect" not in step:
            url = step["image"]
            name = "image, cold cache" if image_cold else "image"
            counted(counts, name, lambda url=url: client.get(url))
            image_cold = False
            counted(counts, "next (reload)", lambda: client.get(f"{base}/next"))
            body = answer_body(step)

            def submit(body=body):
                return post_answer(client, base, body)

            with CaptureQueriesContext(connection) as ctx:
                response = submit()
            assert response.status_code == 201, response.content[:300]
            following = response.json()["next"]
            ends = following.get("stage") != step["stage"]
            name = "submit, ends a stage" if ends else "submit"
            counts[name].append(len(ctx.captured_queries))
            counted(counts, "submit, repeated", submit)
            step = following
        print(
            f"{connection.vendor}, cache {settings.CACHES['default']['BACKEND'].rsplit('.', 1)[-1]}; "
            "queries per request (fewest / median / most, requests)"
        )
        for name in (
            "next",
            "next (reload)",
            "submit",
            "submit, ends a stage",
            "submit, repeated",
            "image, cold cache",
            "image",
        ):
            values = counts.get(name, [])
            if values:
                print(
                    f"  {name:<22} {min(values):>3} / {statistics.median(values):>4g} / "
                    f"{max(values):>3}   ({len(values)})"
                )
        cpu_per_request(study, enrollment)
        prepared_beside_orm(study, enrollment)
    finally:
        teardown_databases(old, verbosity=0)


def _cpu_ms(call, repeat: int = 300) -> float:
    call()
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for _ in range(repeat):
            call()
        best = min(best, (time.process_time() - started) / repeat * 1000)
    return best


def cpu_per_request(study, enrollment) -> None:
    """CPU of each request of a second reader's walk through the study."""
    from turingtest.studies import services

    ((_, token),) = services.invitations_create(study=study, count=1)
    other = services.reader_signup(
        token=token,
        email="second@example.org",
        password="correct-horse-battery-staple",
        name="Second",
        profession="radiologist",
        experience_years=5,
    )
    services.enrollment_consent(enrollment=other)
    client = Client()
    client.force_login(other.reader.user)
    base = f"/api/v1/studies/{study.slug}"
    times = defaultdict(list)

    def timed(name, call):
        started = time.process_time()
        response = call()
        times[name].append((time.process_time() - started) * 1000)
        return response

    step = timed("next", lambda: client.get(f"{base}/next")).json()
    while "redirect" not in step:
        timed("image", lambda url=step["image"]: client.get(url))
        timed("next", lambda: client.get(f"{base}/next"))
        body = answer_body(step)
        response = timed("submit", lambda body=body: post_answer(client, base, body))
        step = response.json()["next"]
    print("CPU per request through Django's test client, ms (median of the walk)")
    for name in ("next", "submit", "image"):
        print(
            f"  {name:<8} {statistics.median(times[name]):6.2f}   ({len(times[name])})"
        )


def prepared_beside_orm(study, enrollment) -> None:
    """The reader path's three queries: compiled once beside compiled per call."""
    from django.db import transaction

    from turingtest.studies import selectors, services
    from turingtest.studies.models import Enrollment, ReadingSession

    user = enrollment.reader.user
    ref = services.SessionRef(user.pk, study.slug, 0)

    def orm_enrollment():
        return (
            Enrollment.objects.select_related("study", "reader")
            .filter(reader__user=user, study__slug=study.slug)
            .first()
        )

    def orm_lock():
        with transaction.atomic():
            return (
                ReadingSession.objects.select_for_update(of=("self",))
                .select_related("enrollment__study", "enrollment__reader", "phase")
                .filter(
                    enrollment__reader__user_id=user.pk,
                    enrollment__study__slug=study.slug,
                    phase__index=0,
                )
                .first()
            )

    def prepared_lock():
        with transaction.atomic():
            return services._session_lock(ref)

    pairs = {
        "enrollment with study and reader": (
            orm_enrollment,
            lambda: selectors.enrollment_for(user=user, study_slug=study.slug),
        ),
        "reader's sessions": (
            lambda: list(ReadingSession.objects.filter(enrollment=enrollment)),
            lambda: selectors._SESSIONS(enrollment_id=enrollment.pk),
        ),
        "session locked with the rest (submit)": (orm_lock, prepared_lock),
    }
    print("CPU per query, ms: compiled on each call / compiled once, ratio")
    for name, (orm, prepared) in pairs.items():
        a, b = _cpu_ms(orm), _cpu_ms(prepared)
        print(f"  {name:<40} {a:6.3f} / {b:6.3f}   {a / b:4.1f}x")


if __name__ == "__main__":
    main()
