"""Intra-reader repeats: the order, the answers, and test-retest agreement."""

import csv
import io
import zipfile

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from statsmodels.stats.inter_rater import cohens_kappa as statsmodels_kappa

from turingtest.results.report import (
    imrmc_export,
    report_columns,
    report_rows,
    study_report,
)
from turingtest.stats.report import RETEST_KAPPA_MIN
from turingtest.studies import services
from turingtest.studies.models import Judgment, ReadingSession, Study
from turingtest.studies.simulation import readers_simulate


def _session(study, make_reader, index=0):
    enrollment = services.enrollment_consent(enrollment=make_reader(study))
    return services.reading_session_start(
        enrollment=enrollment, phase=study.phases.get(index=index)
    )


def test_the_order_shows_n_cases_twice_at_least_k_apart_and_is_stored(
    make_study, make_reader
):
    study = make_study(practice=0, repeat_cases=3, repeat_min_gap=4)
    main = study.cases.filter(role="main").count()
    for _ in range(5):
        session = _session(study, make_reader)
        order = session.order
        assert len(order) == main + 3
        twice = [c for c in set(order) if order.count(c) == 2]
        assert len(twice) == 3 and all(order.count(c) <= 2 for c in order)
        for case in twice:
            first = order.index(case)
            second = order.index(case, first + 1)
            assert second - first >= 4
        assert set(study.cases.filter(pk__in=twice).values_list("role", flat=True)) == {
            "main"
        }
        # A reload reads the stored order, the same for the same reader.
        stored = ReadingSession.objects.get(pk=session.pk)
        assert stored.order == order
        again = services.reading_session_start(
            enrollment=session.enrollment, phase=session.phase
        )
        assert again.order == order


def test_a_study_without_repeats_keeps_its_orders(make_study, make_reader):
    study = make_study(practice=0)
    session = _session(study, make_reader)
    assert len(session.order) == len(set(session.order)) == study.cases.count()


def test_repeats_that_cannot_fit_are_refused_on_opening(make_study):
    study = make_study(open=False, practice=0, repeat_cases=5, repeat_min_gap=8)
    main = study.cases.filter(role="main").count()
    with pytest.raises(
        ValidationError, match=f"need at least 13 main cases.*has {main}"
    ):
        services.study_open(study=study)
    assert Study.objects.get(pk=study.pk).status == Study.Status.DRAFT


def test_create_study_takes_repeats(db):
    call_command(
        "create_study",
        "rep",
        "--name",
        "Rep",
        "--repeats",
        "4",
        "--repeat-gap",
        "6",
        stdout=io.StringIO(),
    )
    study = Study.objects.get(slug="rep")
    assert (study.repeat_cases, study.repeat_min_gap) == (4, 6)
    with pytest.raises(CommandError, match="at least 1 position, not 0"):
        call_command(
            "create_study",
            "rep2",
            "--name",
            "Rep",
            "--repeat-gap",
            "0",
            stdout=io.StringIO(),
        )


def test_a_reader_answers_both_showings_and_retries_stay_idempotent(
    make_study, make_reader
):
    study = make_study(
        practice=0, phases=("detection",), repeat_cases=2, repeat_min_gap=3
    )
    session = _session(study, make_reader)
    order = session.order
    total = len(order)
    for position in range(total):
        recorded = services.judgment_record(
            session=session, position=position, confidence=2 + position % 4
        )
        assert recorded.created
        # A retry of the same position returns the same row.
        retry = services.judgment_record(
            session=session, position=position, confidence=6
        )
        assert not retry.created and retry.judgment.pk == recorded.judgment.pk
    judgments = list(Judgment.objects.filter(session=session).order_by("position"))
    assert [j.case_id for j in judgments] == order
    assert sum(j.repeat for j in judgments) == 2
    for j in judgments:
        assert j.repeat == (order.index(j.case_id) < j.position)
    session.refresh_from_db()
    assert session.answered == total and session.completed_at is not None


def test_revising_a_repeat_changes_only_that_showing(make_study, make_reader):
    study = make_study(
        practice=0,
        phases=("detection",),
        repeat_cases=1,
        repeat_min_gap=2,
        edit_policy=Study.EditPolicy.UNTIL_PHASE_END,
    )
    session = _session(study, make_reader)
    for position in range(len(session.order)):
        services.judgment_record(session=session, position=position, confidence=2)
    repeat = Judgment.objects.get(session=session, repeat=True)
    services.judgment_revise(session=session, position=repeat.position, confidence=5)
    rows = [r for r in report_rows(study) if r["case"] == repeat.case.number]
    assert sorted((r["repeat"], r["answer"]) for r in rows) == [
        (False, "real"),
        (True, "synthetic"),
    ]


def test_a_reader_reads_the_repeats_through_the_api(make_study, make_reader):
    from django.test import Client

    from tests.conftest import ReaderAPI

    study = make_study(
        practice=0, phases=("detection",), repeat_cases=2, repeat_min_gap=2
    )
    enrollment = services.enrollment_consent(enrollment=make_reader(study))
    client = Client()
    client.force_login(enrollment.reader.user)
    steps = ReaderAPI(client, study.slug).answer_all()
    total = study.cases.count() + 2
    assert [s["position"] for s in steps] == list(range(total))
    assert {s["total"] for s in steps} == {total}
    # The second showing looks like any other step: nothing says "repeat".
    assert all("repeat" not in str(s).lower() for s in steps)
    images = [s["image"] for s in steps]
    assert len(set(images)) == total - 2
    assert (
        Judgment.objects.filter(session__enrollment=enrollment, repeat=True).count()
        == 2
    )


def _answered(make_study, repeats):
    study = make_study(
        slug=f"r{repeats}", practice=0, repeat_cases=repeats, repeat_min_gap=3
    )
    readers_simulate(study=study, readers=4, accuracy=0.7, seed=1)
    return study


def _kappa_by_hand(a, b, categories, quadratic):
    """Cohen's kappa from its definition (Cohen 1960, 1968)."""
    k = len(categories)
    table = np.zeros((k, k))
    for x, y in zip(a, b, strict=True):
        table[categories.index(x), categories.index(y)] += 1
    p = table / table.sum()
    i, j = np.indices((k, k))
    w = 1 - ((i - j) / (k - 1)) ** 2 if quadratic else (i == j).astype(float)
    observed = (w * p).sum()
    expected = (w * np.outer(p.sum(1), p.sum(0))).sum()
    return (observed - expected) / (1 - expected)


def test_repeats_leave_the_accuracy_figures_unchanged(make_study):
    study = _answered(make_study, 3)
    assert (
        Judgment.objects.filter(session__enrollment__study=study, repeat=True).count()
        == 4 * 2 * 3
    )
    with_repeats = study_report(study)
    imrmc_with = imrmc_export(study)
    # The same study with the second showings' answers deleted.
    Judgment.objects.filter(session__enrollment__study=study, repeat=True).delete()
    without = study_report(study)
    assert imrmc_with == imrmc_export(study)
    assert with_repeats.counts.repeats == 4 * 2 * 3
    assert without.counts.repeats == 0
    for key in ("detection", "grading", "readers", "attention"):
        assert getattr(with_repeats, key) == getattr(without, key), key
    assert with_repeats.counts.main == without.counts.main


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_retest_kappa_equals_an_independent_computation(make_study):
    study = _answered(make_study, 4)
    report = study_report(study)
    assert report == study_report(study)
    rows = list(report_rows(study))
    # Rows and columns agree on the retest too.
    from turingtest.stats.report import build_report

    assert build_report(report_columns(study)).retest == build_report(rows).retest
    entries = {(e.reader, e.phase, e.question): e for e in report.retest.readers}
    assert {q for _, _, q in entries} == {"kl_grade", "real_synthetic"}
    first = {(r["reader"], r["phase"], r["case"]): r for r in rows if not r["repeat"]}
    checked = 0
    for (reader, phase, question), e in entries.items():
        field = "kl_grade" if question == "kl_grade" else "answer"
        pairs = [
            (first[(reader, phase, r["case"])][field], r[field])
            for r in rows
            if r["repeat"] and r["reader"] == reader and r["phase"] == phase
        ]
        assert e.n == len(pairs) == 4
        assert e.same == sum(a == b for a, b in pairs)
        categories = [0, 1, 2, 3, 4] if field == "kl_grade" else ["real", "synthetic"]
        a, b = zip(*pairs, strict=True)
        expected = _kappa_by_hand(a, b, categories, field == "kl_grade")
        if np.isnan(expected) or e.kappa is None:
            assert e.kappa is None and not e.flagged
            continue
        assert e.kappa == pytest.approx(expected, abs=1e-12)
        if field == "answer":
            table = np.zeros((2, 2))
            for x, y in pairs:
                table[categories.index(x), categories.index(y)] += 1
            sm = statsmodels_kappa(table)
            assert e.kappa == pytest.approx(sm.kappa, abs=1e-12)
        assert e.flagged == (expected < RETEST_KAPPA_MIN)
        checked += 1
    assert checked


def test_retest_flags_a_reader_who_changes_answers(make_study, make_reader):
    study = make_study(
        practice=0, phases=("detection",), repeat_cases=6, repeat_min_gap=2
    )
    sessions = [_session(study, make_reader) for _ in range(2)]
    steady, fickle = sessions
    for session in sessions:
        seen = {}
        for position, case in enumerate(session.order):
            truth = study.cases.get(pk=case).image.source
            says_synthetic = (truth == "synthetic") != (position % 3 == 0)
            if case in seen and session is fickle:
                says_synthetic = not seen[case]
            elif case in seen:
                says_synthetic = seen[case]
            seen[case] = says_synthetic
            services.judgment_record(
                session=session,
                position=position,
                confidence=5 if says_synthetic else 2,
            )
    report = study_report(study)
    by_reader = {e.reader: e for e in report.retest.readers}
    steady_code = steady.enrollment.reader.code
    fickle_code = fickle.enrollment.reader.code
    assert by_reader[steady_code].same == 6 and not by_reader[steady_code].flagged
    assert by_reader[fickle_code].same == 0 and by_reader[fickle_code].flagged
    assert by_reader[fickle_code].kappa < RETEST_KAPPA_MIN


def test_retest_is_shown_on_the_staff_page_and_exported(make_study, staff_client):
    study = _answered(make_study, 3)
    page = staff_client.get(f"/staff/studies/{study.slug}/").content.decode()
    assert 'id="report-retest-table"' in page
    response = staff_client.get(f"/staff/studies/{study.slug}/results.zip")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    rows = list(
        csv.DictReader(io.StringIO(archive.read(f"{study.slug}/retest.csv").decode()))
    )
    report = study_report(study)
    # One row per reader and phase: grading asks the grade, detection the call.
    assert len(rows) == len(report.retest.readers) == 4 * 2
    for row, e in zip(rows, report.retest.readers, strict=True):
        assert row["reader"] == e.reader and row["question"] == e.question
        assert row["pairs"] == "3"
        assert row["flagged"] == str(e.flagged).lower()
        if e.kappa is not None:
            assert float(row["kappa"]) == pytest.approx(e.kappa)
    judgments = list(
        csv.DictReader(
            io.StringIO(archive.read(f"{study.slug}/judgments.csv").decode())
        )
    )
    assert sum(r["repeat"] == "true" for r in judgments) == 4 * 2 * 3
    html = archive.read(f"{study.slug}/report.html").decode()
    assert "Test-retest agreement" in html
    from turingtest.stats.report import report_markdown

    markdown = report_markdown(report)
    assert "## Test-retest agreement" in markdown
    assert markdown.count("| grading | KL grade |") == 4


def test_staff_progress_counts_repeats_and_the_readers_score_does_not(
    make_study, make_reader
):
    from turingtest.studies import selectors

    study = make_study(
        practice=0, phases=("detection",), repeat_cases=2, repeat_min_gap=2
    )
    session = _session(study, make_reader)
    for position in range(len(session.order)):
        services.judgment_record(session=session, position=position, confidence=2)
    (progress,) = selectors.study_progress(study=study)
    total = study.cases.count() + 2
    assert progress.per_phase == [("detection", total, total)]
    score = selectors.reader_score(enrollment=session.enrollment)
    main = study.cases.filter(role="main")
    assert score.detection_total == main.count()
    assert score.detection_correct == main.filter(image__source="real").count()
