"""Querysets compiled once (turingtest.studies.prepared) give what the ORM gives."""

import pytest
from django.db import connection, transaction
from django.db.models import Count
from django.db.models.signals import post_save

from turingtest.studies import prepared
from turingtest.studies.models import Enrollment, ReadingSession, Study
from turingtest.studies.prepared import PreparedQuery

ENROLLMENT = PreparedQuery(
    lambda user_id, slug: (
        Enrollment.objects.select_related("study", "reader")
        .filter(reader__user_id=user_id, study__slug=slug)
        .order_by("pk")[:1]
    ),
    user_id=int,
    slug=str,
)


@pytest.fixture
def two_studies(make_study, make_reader):
    first, second = make_study(slug="first"), make_study(slug="second", seed=8)
    return [make_reader(first), make_reader(second), make_reader(first)]


def test_rows_and_related_objects_are_the_orms(two_studies, django_assert_num_queries):
    for enrollment in two_studies:
        user = enrollment.reader.user
        expected = (
            Enrollment.objects.select_related("study", "reader")
            .filter(reader__user=user, study__slug=enrollment.study.slug)
            .get()
        )
        with django_assert_num_queries(1):  # related objects come with the row
            (found,) = ENROLLMENT(user_id=user.pk, slug=enrollment.study.slug)
            assert found.study.status == Study.Status.OPEN and found.reader.code
        assert found == expected
        for a, b in ((found, expected), (found.study, expected.study)):
            fields = [f.attname for f in type(a)._meta.concrete_fields]
            assert [getattr(a, f) for f in fields] == [getattr(b, f) for f in fields]
        assert found.reader == expected.reader
        # another study's slug finds nothing for this reader
        other = "second" if enrollment.study.slug == "first" else "first"
        assert ENROLLMENT(user_id=user.pk, slug=other) == []


def test_locking_queries_compile_and_run_in_a_transaction(two_studies):
    locked = PreparedQuery(
        lambda enrollment_id: (
            ReadingSession.objects.select_for_update(of=("self",))
            .select_related("enrollment__study", "phase")
            .filter(enrollment_id=enrollment_id)
        ),
        enrollment_id=int,
    )
    enrollment = two_studies[0]
    ReadingSession.objects.create(enrollment=enrollment, phase=None, seed=1, order=[3])
    with transaction.atomic():
        (session,) = locked(enrollment_id=enrollment.pk)
    assert session.order == [3] and session.phase is None  # JSON decoded, null FK
    assert session.enrollment.study == enrollment.study


def test_shapes_it_cannot_prepare_are_refused(db):
    twice = PreparedQuery(
        lambda n: Study.objects.filter(practice_count=n, repeat_cases=n), n=int
    )
    with pytest.raises(ValueError, match="2 times"):
        twice(n=1)
    annotated = PreparedQuery(
        lambda n: Study.objects.annotate(k=Count("cases")).filter(practice_count=n),
        n=int,
    )
    with pytest.raises(ValueError, match="annotations"):
        annotated(n=1)
    with pytest.raises(TypeError):
        ENROLLMENT(user_id=1)


def _session(enrollment, **fields) -> ReadingSession:
    return ReadingSession(enrollment=enrollment, phase=None, seed=5, **fields)


def test_an_insert_and_an_update_write_what_save_writes(
    two_studies, django_assert_num_queries
):
    by_orm = _session(two_studies[2], order=[4, 2, {"case": 9}])
    by_orm.save()
    ours = _session(two_studies[0], order=[4, 2, {"case": 9}])
    with django_assert_num_queries(1):
        prepared.insert(ours)
    assert ours.pk is not None and ours.pk != by_orm.pk and not ours._state.adding
    stored = ReadingSession.objects.get(pk=ours.pk)
    expected = ReadingSession.objects.get(pk=by_orm.pk)
    fields = ["seed", "order", "completed_at", "served_position", "answered"]
    assert [getattr(stored, f) for f in fields] == [
        getattr(expected, f) for f in fields
    ]
    assert stored.enrollment == two_studies[0] and stored.phase is None
    assert stored.started_at == ours.started_at is not None  # auto_now_add, as save()

    ours.answered, ours.served_position = 2, 1
    ours.served_at = by_orm.started_at
    with django_assert_num_queries(1):
        prepared.update(ours, ["answered", "served_position", "served_at"])
    stored.refresh_from_db()
    assert (stored.answered, stored.served_position, stored.served_at) == (
        2,
        1,
        by_orm.started_at,
    )
    assert stored.order == [4, 2, {"case": 9}]  # fields not named stay as they were


def test_an_update_of_a_row_that_is_gone_fails(two_studies):
    session = _session(two_studies[0], order=[1])
    prepared.insert(session)
    ReadingSession.objects.filter(pk=session.pk).delete()
    session.answered = 1
    with pytest.raises(ReadingSession.DoesNotExist):
        prepared.update(session, ["answered"])


def test_a_save_receiver_is_never_skipped(two_studies):
    heard = []

    def receiver(sender, instance, created, **kwargs):
        heard.append((instance.pk, created))

    post_save.connect(receiver, sender=ReadingSession, dispatch_uid="test-prepared")
    try:
        session = _session(two_studies[0], order=[1])
        prepared.insert(session)
        session.answered = 1
        prepared.update(session, ["answered"])
    finally:
        post_save.disconnect(dispatch_uid="test-prepared", sender=ReadingSession)
    assert heard == [(session.pk, True), (session.pk, False)]
    assert ReadingSession.objects.get(pk=session.pk).answered == 1


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="one statement needs PostgreSQL"
)
def test_a_row_is_inserted_only_where_the_other_row_had_not_moved(two_studies):
    first = _session(two_studies[0], order=[1, 2])
    prepared.insert(first)
    assert prepared.writes_combine(ReadingSession)

    first.answered = 1  # what the row should become where it still holds 0
    second = _session(two_studies[2], order=[{"case": 3}])
    moved = prepared.insert_if_moved(
        second, first, ["answered"], expect={"answered": 0, "completed_at": None}
    )
    assert moved and second.pk is not None
    assert ReadingSession.objects.get(pk=first.pk).answered == 1
    assert ReadingSession.objects.get(pk=second.pk).order == [{"case": 3}]

    # The same expectation again: the row holds 1 now, so nothing is written.
    first.answered = 2
    third = _session(two_studies[1], order=[4])
    count = ReadingSession.objects.count()
    assert not prepared.insert_if_moved(
        third, first, ["answered"], expect={"answered": 0, "completed_at": None}
    )
    assert third.pk is None and ReadingSession.objects.count() == count
    assert ReadingSession.objects.get(pk=first.pk).answered == 1
