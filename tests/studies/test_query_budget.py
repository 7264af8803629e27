"""Database queries per reader request: each endpoint has a budget.

Counted as a production request runs, with no transaction around the test
(transaction=True), so BEGIN and COMMIT count as they would on the server.
CI runs these on PostgreSQL and on SQLite.

- ``next``: at most 3 (the enrollment, the reader's sessions, and a write:
  the time the case is shown, or the session a stage starts);
- a submit, with the next step it returns: at most 5 (the enrollment with
  the locked session, the answer, the session's new position, and the
  transaction); a submit that ends a stage also starts the next stage's
  session or marks the reader done: one more. On PostgreSQL, 2: the session
  read, then one statement that moves it and stores the answer (3 for a
  repeat of a stage's last answer, which reads where the reader is; 5 for
  the answer that ends a stage, in a transaction with the next stage's
  start);
- an image: at most 1, and none once the reader's tokens are cached.
"""

import json

import pytest
from django.db import connection

from tests.conftest import ReaderAPI
from turingtest.studies import services
from turingtest.studies.models import Judgment, ReadingSession, Study

pytestmark = pytest.mark.django_db(transaction=True)

POSTGRES = connection.vendor == "postgresql"
NEXT = 3
SUBMIT = 2 if POSTGRES else 5
SUBMIT_REPEATED = 3 if POSTGRES else 5
SUBMIT_ENDING_A_STAGE = 5 if POSTGRES else 6
IMAGE = 1
IMAGE_CACHED = 0


def _body(step: dict) -> dict:
    asked = {q["field"] for q in step["phase"]["questions"]}
    body = {"stage": step["stage"], "position": step["position"]}
    if "confidence" in asked:
        body["confidence"] = 5
    if "kl_grade" in asked:
        body["kl_grade"] = 2
    return body


def _walk(reader_api: ReaderAPI, budget, *, images: bool = True) -> list[dict]:
    """Read the whole study within the budgets; returns every step seen."""
    with budget(NEXT):
        step = reader_api.next().json()
    steps = []
    first_image = True
    while "redirect" not in step:
        steps.append(step)
        if images:
            with budget(IMAGE if first_image else IMAGE_CACHED):
                assert reader_api.client.get(step["image"]).status_code == 200
            first_image = False
        with budget(NEXT):  # a reload shows the same case
            assert reader_api.next().json()["image"] == step["image"]
        body = _body(step)
        with budget(
            SUBMIT_ENDING_A_STAGE if step["position"] + 1 == step["total"] else SUBMIT
        ):
            response = reader_api.post("answers", body)
        assert response.status_code == 201, response.content
        with budget(SUBMIT_REPEATED):  # a retry of the same answer stores nothing
            again = reader_api.post("answers", body)
        assert again.status_code == 200 and again.json()["duplicate"]
        assert again.json()["next"] == response.json()["next"]
        step = response.json()["next"]
    return steps


def test_a_reader_reads_a_whole_study_within_the_query_budgets(
    reader_api, study, enrollment, django_assert_max_num_queries
):
    steps = _walk(reader_api, django_assert_max_num_queries)
    # 2 practice cases, then 10 main cases in each of two phases: all stored
    # once, in each session's order, and the reader is done.
    assert [s["stage"] for s in steps] == ["practice"] * 2 + [1] * 10 + [2] * 10
    for session in ReadingSession.objects.filter(enrollment=enrollment):
        stored = list(session.judgments.order_by("position"))
        assert [j.case_id for j in stored] == session.order
        assert session.answered == len(session.order)
        assert session.completed_at is not None
    enrollment.refresh_from_db()
    assert enrollment.completed_at is not None
    assert reader_api.next().json()["stage"] == "done"


def test_resuming_after_a_reload_is_within_budget_and_keeps_the_order(
    reader_api, enrollment, django_assert_max_num_queries
):
    step = reader_api.next().json()
    for _ in range(3):
        step = reader_api.post("answers", _body(step)).json()["next"]
    # A new tab: a fresh client of the same reader resumes where they were.
    from django.test import Client

    tab = Client()
    tab.force_login(enrollment.reader.user)
    resumed = ReaderAPI(tab, reader_api.base.rsplit("/", 1)[-1])
    with django_assert_max_num_queries(NEXT):
        again = resumed.next().json()
    assert (again["stage"], again["position"], again["image"]) == (
        step["stage"],
        step["position"],
        step["image"],
    )


def test_revisable_study_stays_within_budget_and_keeps_revisions(
    make_study, make_reader, django_assert_max_num_queries
):
    study = make_study(slug="revisable", edit_policy=Study.EditPolicy.UNTIL_PHASE_END)
    enrollment = services.enrollment_consent(enrollment=make_reader(study))
    from django.test import Client

    client = Client()
    client.force_login(enrollment.reader.user)
    api = ReaderAPI(client, study.slug)
    step = api.next().json()
    while "review" not in step:
        with django_assert_max_num_queries(
            SUBMIT_ENDING_A_STAGE if step["stage"] == "practice" else SUBMIT
        ):
            step = api.post("answers", _body(step)).json()["next"]
    # Phase 1 answered: the reader reviews, revises one answer, then finishes.
    assert step["stage"] == 1 and step["position"] == step["total"]
    revised = api.post("revisions", {"stage": 1, "position": 0, "kl_grade": 4})
    assert revised.status_code == 201
    assert api.client.get(f"{api.base}/answers/1/0").json()["kl_grade"] == 4
    finished = api.post("finish", {"stage": 1}).json()
    assert finished["next"]["stage"] == 2 and finished["next"]["position"] == 0
    assert Judgment.objects.filter(session__enrollment=enrollment).count() == 12


def test_a_closed_study_takes_no_answer_and_serves_no_image_from_the_cache(
    reader_api, study, enrollment
):
    step = reader_api.next().json()
    assert reader_api.client.get(step["image"]).status_code == 200  # now cached
    services.study_close(study=study)
    assert reader_api.client.get(step["image"]).status_code == 404
    refused = reader_api.post("answers", _body(step))
    assert refused.status_code == 400
    assert Judgment.objects.count() == 0


def _join(study, reader):
    ((_, invitation),) = services.invitations_create(study=study, count=1)
    return services.enrollment_consent(
        enrollment=services.invitation_accept(token=invitation, reader=reader)
    )


def _own_case_token(study, *others) -> str:
    """A case token of ``study`` whose image no study in ``others`` shows."""
    cases = study.cases
    for other in others:
        cases = cases.exclude(image__in=other.cases.values("image"))
    return cases.first().token


def test_a_reader_of_several_studies_sees_each_within_budget(
    make_study, enrollment, reader_client, django_assert_max_num_queries
):
    """Each study's tokens are kept per process beside a small cached list of
    the reader's studies: a study consented to later, or a process that does
    not hold every map yet, costs one query, then none; a removed enrollment
    takes its images away at once."""
    from turingtest.studies import selectors

    first = enrollment.study
    # Opening a study moves the access generation: these open first.
    second = make_study(slug="second", seed=8)
    third = make_study(slug="third", seed=9)
    a = _own_case_token(first)
    with django_assert_max_num_queries(IMAGE):
        assert reader_client.get(f"/api/v1/images/{a}").status_code == 200
    later = _join(second, enrollment.reader)
    b = _own_case_token(second, first)
    for budget in (IMAGE, IMAGE, IMAGE_CACHED):  # checked once, read, then cached
        with django_assert_max_num_queries(budget):
            assert reader_client.get(f"/api/v1/images/{b}").status_code == 200
    # Another process: it holds no map yet, and the reader has joined a third
    # study since the cached list was made.
    _join(third, enrollment.reader)
    c = _own_case_token(third, first, second)
    selectors._STUDY_FILES.clear()
    for token in (c, a, b):
        with django_assert_max_num_queries(IMAGE if token == c else IMAGE_CACHED):
            assert reader_client.get(f"/api/v1/images/{token}").status_code == 200
    later.delete()
    assert reader_client.get(f"/api/v1/images/{b}").status_code == 404
    assert reader_client.get(f"/api/v1/images/{a}").status_code == 200


def test_a_removal_holds_after_the_cache_lost_its_access_counter(
    make_study, enrollment, reader_client
):
    """A counter the cache dropped (flushed, culled, expired) starts again at a
    value no cached entry holds, so a removal after it still takes effect."""
    from django.core.cache import cache

    from turingtest.studies import selectors

    second = make_study(slug="second", seed=8)
    later = _join(second, enrollment.reader)
    b = _own_case_token(second, enrollment.study)
    cache.delete(selectors.ACCESS_GENERATION_KEY)
    selectors.image_access_revoke()  # a study closed, say: the counter starts
    selectors.image_access_revoke()  # and moves on
    assert reader_client.get(f"/api/v1/images/{b}").status_code == 200
    cache.delete(selectors.ACCESS_GENERATION_KEY)
    later.delete()
    assert reader_client.get(f"/api/v1/images/{b}").status_code == 404


def test_a_new_password_signs_the_cached_reader_out(reader_api, enrollment):
    step = reader_api.next().json()
    user = enrollment.reader.user
    user.set_password("another-long-passphrase-2")
    user.save()
    assert reader_api.client.get(step["image"]).status_code == 404
    assert reader_api.next().status_code == 401


def test_an_answer_to_a_study_the_reader_is_not_in_is_the_same_404(
    client, make_study, enrollment
):
    other = make_study(slug="other", seed=8)
    client.force_login(enrollment.reader.user)
    body = json.dumps({"stage": 1, "position": 0, "kl_grade": 1})
    refused = client.post(
        f"/api/v1/studies/{other.slug}/answers", body, content_type="application/json"
    )
    missing = client.post(
        "/api/v1/studies/nope/answers", body, content_type="application/json"
    )
    assert refused.status_code == missing.status_code == 404
    assert refused.content == missing.content
