"""A reader's answer survives a dropped database connection, a double click and a closed browser."""

import json
import time

import pytest
from django.db import OperationalError, connection
from django.test import Client

from tests.conftest import PASSWORD, ReaderAPI
from turingtest.studies.models import Judgment, ReadingSession

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="drops a real PostgreSQL connection"
)
# The statements of a submit: its session read (on PostgreSQL, then one
# statement that moves the session and inserts the answer), the answer's INSERT.
SESSION_READ = 'FROM "studies_readingsession"'
INSERT = 'INSERT INTO "studies_judgment"'


def committed_judgments(session_id: int) -> list[tuple]:
    """Judgments as another client sees them: only what was committed."""
    if connection.vendor == "postgresql":
        import psycopg

        with psycopg.connect(**_pg_params()) as conn:
            return conn.execute(
                "SELECT position, kl_grade FROM studies_judgment "
                "WHERE session_id = %s ORDER BY position",
                (session_id,),
            ).fetchall()
    return list(
        Judgment.objects.filter(session_id=session_id).values_list(
            "position", "kl_grade"
        )
    )


def _pg_params() -> dict:
    s = connection.settings_dict
    return {
        "dbname": s["NAME"],
        "user": s["USER"],
        "host": s["HOST"] or "127.0.0.1",
        "port": s["PORT"] or 5432,
        "password": s["PASSWORD"] or None,
        "autocommit": True,
    }


def _terminate(pid: int) -> None:
    import psycopg

    with psycopg.connect(**_pg_params()) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        for _ in range(200):
            gone = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)
            ).fetchone()[0]
            if not gone:
                return
            time.sleep(0.01)
    raise AssertionError(f"backend {pid} still alive")


@pytest.fixture
def reading(make_study, make_reader):
    from turingtest.studies import services

    study = make_study()
    enrollment = services.enrollment_consent(enrollment=make_reader(study))
    client = Client()
    client.force_login(enrollment.reader.user)
    api = ReaderAPI(client, study.slug)
    step = api.next().json()
    for _ in range(3):
        step = api.answer(step).json()["next"]
    session = ReadingSession.objects.get(enrollment=enrollment, phase__index=0)
    return api, step, session


def submit(api: ReaderAPI, step: dict, grade: int):
    body = {"stage": step["stage"], "position": step["position"], "kl_grade": grade}
    return api.post("answers", body)


def assert_try_again(response) -> None:
    assert response.status_code == 503
    message = json.loads(response.content)["error"]
    assert "try again" in message.lower()


@postgres_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("statement", [SESSION_READ, INSERT])
def test_a_dropped_postgres_connection_mid_submit(reading, statement):
    api, step, session = reading
    before = committed_judgments(session.pk)
    dropped = []

    def drop_connection(execute, sql, params, many, context):
        if statement in sql and not dropped:
            dropped.append(connection.connection.info.backend_pid)
            _terminate(dropped[0])
        return execute(sql, params, many, context)

    with connection.execute_wrapper(drop_connection):
        response = submit(api, step, grade=3)
    assert dropped, "the submit never reached the statement"
    assert_try_again(response)
    assert committed_judgments(session.pk) == before

    # The reader presses the key again: a fresh connection, one answer.
    retry = submit(api, step, grade=3)
    assert retry.status_code == 201, retry.content
    assert connection.connection.info.backend_pid != dropped[0]
    again = submit(api, step, grade=3)
    assert again.status_code == 200 and again.json()["duplicate"]
    after = committed_judgments(session.pk)
    assert after == before + [(step["position"], 3)]


@pytest.mark.django_db(transaction=True)
def test_a_database_error_mid_submit_asks_to_try_again(reading):
    """The same on any database: the error raised where the driver would raise it."""
    api, step, session = reading
    before = committed_judgments(session.pk)
    raised = []

    def locked(execute, sql, params, many, context):
        if INSERT in sql and not raised:
            raised.append(sql)
            raise OperationalError("database is locked")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(locked):
        assert_try_again(submit(api, step, grade=2))
    assert committed_judgments(session.pk) == before
    assert submit(api, step, grade=2).status_code == 201
    assert submit(api, step, grade=2).status_code == 200
    assert committed_judgments(session.pk) == before + [(step["position"], 2)]


def test_a_closed_browser_resumes_at_the_same_case_and_order(make_study, make_reader):
    from turingtest.studies import services

    study = make_study(per_grade=2)
    enrollment = services.enrollment_consent(enrollment=make_reader(study))
    email = enrollment.reader.user.username

    def browser() -> ReaderAPI:
        client = Client()
        signed_in = client.post(
            "/accounts/login/", {"username": email, "password": PASSWORD}
        )
        assert signed_in.status_code == 302
        return ReaderAPI(client, study.slug)

    first = browser()
    step = first.next().json()
    while step["stage"] == "practice" or step["position"] < 4:
        step = first.answer(step).json()["next"]
    shown = first.next().json()  # the case on screen when the window closes
    session = ReadingSession.objects.get(enrollment=enrollment, phase__index=0)
    order, served_at = list(session.order), session.served_at
    del first  # the browser is gone, and its session cookie with it

    second = browser()
    resumed = second.next().json()
    assert resumed == shown
    session.refresh_from_db()
    assert session.order == order
    assert session.served_at == served_at  # the case was first shown back then
    step = resumed
    while step.get("stage") == 1:
        step = second.answer(step).json()["next"]
    cases = [
        int(c)
        for c in Judgment.objects.filter(session=session)
        .order_by("position")
        .values_list("case", flat=True)
    ]
    assert cases == order  # every case once, in the stored order


def test_two_tabs_starting_a_phase_at_once_share_one_session(
    study, enrollment, monkeypatch
):
    import random

    from turingtest.studies import services

    real_seed = services.session_seed
    raced = []

    def other_tab_first(**kwargs):
        # The other tab stores the session between this one's look and its save.
        seed = real_seed(**kwargs)
        cases = study.cases.filter(role="practice").order_by("number")
        order = list(cases.values_list("id", flat=True))
        random.Random(seed).shuffle(order)
        raced.append(
            ReadingSession.objects.create(
                enrollment=enrollment, phase=None, seed=seed, order=order
            )
        )
        return seed

    monkeypatch.setattr(services, "session_seed", other_tab_first)
    session = services.reading_session_start(enrollment=enrollment, phase=None)
    assert raced and session.pk == raced[0].pk
    assert ReadingSession.objects.filter(enrollment=enrollment).count() == 1


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="SQLite's test database is in memory, where a second writer fails at once",
)
@pytest.mark.django_db(transaction=True)
def test_one_answer_sent_twice_at_once_is_stored_once(reader_api, enrollment):
    """A double click: both requests race for the same position, through
    practice's end and into the first phase; one stores it, the other is told
    it was already stored, and the order goes on unbroken."""
    import threading

    from django.db import connections

    step = reader_api.next().json()
    for _ in range(5):
        barrier, replies = threading.Barrier(2), []

        def click(step=step, barrier=barrier, replies=replies):
            barrier.wait()
            try:
                replies.append(reader_api.answer(step, kl_grade=2))
            finally:
                connections.close_all()  # this thread's own connection

        clicks = [threading.Thread(target=click) for _ in range(2)]
        for t in clicks:
            t.start()
        for t in clicks:
            t.join()
        assert sorted(r.status_code for r in replies) == [200, 201]
        stored, repeated = sorted(replies, key=lambda r: r.status_code, reverse=True)
        assert repeated.json()["duplicate"] and not stored.json()["duplicate"]
        assert repeated.json()["next"]["position"] == stored.json()["next"]["position"]
        step = stored.json()["next"]
    sessions = ReadingSession.objects.filter(enrollment=enrollment)
    for session in sessions:
        positions = list(
            session.judgments.order_by("position").values_list("position", flat=True)
        )
        assert positions == list(range(session.answered))
    assert sum(s.answered for s in sessions) == 5
