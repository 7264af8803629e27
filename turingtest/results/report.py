"""The study report from the database: rows for the statistics, stored reports.

:func:`report_rows` reads a study's final answers in the shape that
:func:`turingtest.stats.report.build_report` takes and :func:`study_report`
builds the report from them. Built reports are kept as
:class:`~turingtest.results.models.StudyReport` rows, so the staff page shows
one without computing it: a large study's report takes seconds, which no web
request may spend. :func:`study_report_for_page` says whether the stored one
is stale; :func:`study_report_refresh` (the Celery task's body) rebuilds it.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import markdown
import numpy as np
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Case as Case_
from django.db.models import Count, IntegerField, Max, Q, Value, When
from django.db.models.functions import Coalesce
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import mark_safe

from turingtest.domain.references import all_of as all_references
from turingtest.domain.references import on_scale
from turingtest.domain.scales import KL
from turingtest.domain.scoring import is_correct
from turingtest.results.models import StudyReport
from turingtest.stats import plots as report_plots
from turingtest.stats.questions import question_summary, reference_agreement
from turingtest.stats.report import (
    QUESTION_LABELS,
    REPORT_VERSION,
    AnswerColumns,
    Report,
    build_report,
    humans_label,
    image_summary_rows,
    imrmc_rows,
    imrmc_text,
    machine_comparison,
    reader_summary_rows,
    report_markdown,
    retest_rows,
)
from turingtest.stats.report.formatting import (
    MISSING,
    ci_page,
    fixed,
    interval_page,
    p_page,
    percent,
    percent_ci_page,
)
from turingtest.stats.report.results import (
    Detection,
    DetectionImage,
    Figure,
    Grading,
)
from turingtest.studies import interactions
from turingtest.studies.models import (
    Case,
    Enrollment,
    Judgment,
    JudgmentRevision,
    PhaseQuestion,
    Reader,
    ReadingSession,
    Study,
)

# Up to this many answers the page builds a stale report itself. Measured
# with bench/report_db.py on a shared 2-core machine: reading and building
# the report of 1,860 answers (15 readers x 60 cases x 2 phases) takes
# 0.3-0.6 s, of 4,900 answers 0.5-0.6 s. The four plots take 1.5-2.4 s
# together, so they are not drawn then: the plot view draws each one
# (0.3-0.6 s) on its first request and stores it. A large study (800,000
# answers) takes 12-18 s and is left to the Celery task.
SYNC_BUILD_MAX_ANSWERS = 5000

# name -> (title, drawing function)
PLOTS: dict[str, tuple[str, Callable[[Report], bytes]]] = {
    "forest": ("Accuracy per reader", report_plots.forest_plot),
    "roc": ("ROC curves", report_plots.roc_plot),
    "kl-confusion": (
        f"{KL.abbreviation} grades, real vs synthetic",
        report_plots.kl_confusion_plot,
    ),
    "realism": ("Realism of each image", report_plots.realism_histogram),
}
THUMBNAILS = 6


# ---------------------------------------------------------------- reading


@dataclass(frozen=True)
class AnswersFingerprint:
    """What changes whenever a study's answers change (they are append-only)."""

    answers_count: int
    revisions_count: int
    last_answer_at: datetime | None


def _judgments(study: Study):
    return Judgment.objects.filter(
        session__enrollment__study=study, session__phase__isnull=False
    )


def answers_fingerprint(study: Study) -> AnswersFingerprint:
    """Counts and latest time of the answers the report is built from."""
    judgments = _judgments(study).aggregate(n=Count("id"), last=Max("answered_at"))
    revisions = JudgmentRevision.objects.filter(
        judgment__session__enrollment__study=study,
        judgment__session__phase__isnull=False,
    ).aggregate(n=Count("id"), last=Max("answered_at"))
    times = [t for t in (judgments["last"], revisions["last"]) if t is not None]
    return AnswersFingerprint(judgments["n"], revisions["n"], max(times, default=None))


# What the report reads of each case and each enrolled reader, in this order.
CASE_FIELDS = (
    "id",
    "number",
    "role",
    "token",
    "image__source",
    "image__kl_grade",
    "image__generator__name",
)
READER_FIELDS = (
    "id",
    "reader__code",
    "reader__profession",
    "reader__experience_years",
    "reader__kind",
    "reader__machine_model",
)


def report_rows(study: Study) -> Iterator[dict[str, Any]]:
    """One row per judgment outside practice, with its final answer and case role.

    A revised judgment counts with its latest revision; the reading time
    stays that of the first answer, when the image was read. Case and reader
    fields are read once and shared between rows, which keeps a study of
    800,000 answers in memory.
    """
    cases = {}
    for pk, number, role, token, source, grade, generator in Case.objects.filter(
        study=study
    ).values_list(*CASE_FIELDS):
        cases[pk] = (number, role, token, source, grade, generator or "")
    readers = {
        pk: (code, profession, years, kind, model)
        for pk, code, profession, years, kind, model in Enrollment.objects.filter(
            study=study
        ).values_list(*READER_FIELDS)
    }
    # The answer that counts is the latest revision (scoring.final), read here
    # in one pass over the revisions in order rather than per judgment.
    latest = {
        judgment: (answer, confidence, grade)
        for judgment, answer, confidence, grade in JudgmentRevision.objects.filter(
            judgment__session__enrollment__study=study,
            judgment__session__phase__isnull=False,
        )
        .order_by("judgment_id", "revision")
        .values_list("judgment_id", "answer", "confidence", "kl_grade")
    }
    judgments = (
        _judgments(study)
        .order_by("session_id", "position")
        .values_list(
            "id",
            "session__enrollment_id",
            "session__phase__kind",
            "position",
            "repeat",
            "case_id",
            "answer",
            "confidence",
            "kl_grade",
            "duration_ms",
        )
    )
    slug = study.slug
    for (
        pk,
        enrollment,
        phase,
        position,
        repeat,
        case,
        *answer,
        duration,
    ) in judgments.iterator(chunk_size=5000):
        code, profession, years, kind, model = readers[enrollment]
        number, role, token, source, reference, generator = cases[case]
        answer, confidence, grade = latest.get(pk, answer)
        yield {
            "study": slug,
            "reader": code,
            "reader_profession": profession,
            "reader_experience_years": years,
            "reader_kind": kind,
            "reader_model": model,
            "phase": phase,
            "position": position + 1,
            "repeat": repeat,
            "case": number,
            "image": token,
            "role": role,
            "truth": source,
            "reference_kl": reference,
            "generator": generator,
            "answer": answer,
            "confidence": confidence,
            "kl_grade": grade,
            "correct": is_correct(phase, source, reference, answer, grade),
            "duration_ms": duration,
        }


def _int_columns(queryset, fields: list[str], width: int) -> np.ndarray:
    """``fields`` of every row as one (n, width) integer array, NULL as -1.

    Read through the database cursor in one pass: no model instances and no
    per-row work in Python beyond what the driver does.
    """
    sql, params = queryset.values_list(*fields).query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return np.empty((0, width), np.int64)
    return np.array(rows, dtype=np.int64).reshape(len(rows), width)


def _coded(queryset):
    """Answers as integers for :func:`_int_columns`: ``answer_code`` -1 (none),
    0 (real) or 1 (synthetic); ``confidence_or`` and ``kl_or`` -1 where NULL."""
    missing = Value(-1)
    return queryset.annotate(
        answer_code=Case_(
            When(answer="real", then=Value(0)),
            When(answer="synthetic", then=Value(1)),
            default=missing,
            output_field=IntegerField(),
        ),
        confidence_or=Coalesce("confidence", missing),
        kl_or=Coalesce("kl_grade", missing),
    )


def report_columns(study: Study) -> AnswerColumns:
    """The rows of :func:`report_rows` as arrays, for :func:`build_report`.

    The same answers in the same order, read as integers (answers coded in
    the query) and joined to the few sessions, readers and cases with numpy,
    so a study of 800,000 answers costs no Python work per answer.
    """
    cases = list(
        Case.objects.filter(study=study).order_by("id").values_list(*CASE_FIELDS)
    )
    enrollments = list(
        Enrollment.objects.filter(study=study)
        .order_by("id")
        .values_list(*READER_FIELDS)
    )
    sessions = list(
        ReadingSession.objects.filter(enrollment__study=study, phase__isnull=False)
        .order_by("id")
        .values_list("id", "enrollment_id", "phase__kind")
    )
    phases = sorted({kind for _, _, kind in sessions})
    judgments = _coded(_judgments(study).order_by("session_id", "position"))
    fields = ["id", "session_id", "case_id", "answer_code", "confidence_or", "kl_or"]
    fields += ["duration_ms", "repeat"]
    table = _int_columns(judgments, fields, len(fields))
    ids, session_ids, case_ids = table[:, 0], table[:, 1], table[:, 2]
    answer, confidence, kl = table[:, 3].copy(), table[:, 4], table[:, 5]
    duration, repeat = table[:, 6].astype(float), table[:, 7].astype(bool)
    # The answer that counts is the latest revision (scoring.final).
    revised = _int_columns(
        _coded(
            JudgmentRevision.objects.filter(
                judgment__session__enrollment__study=study,
                judgment__session__phase__isnull=False,
            ).order_by("judgment_id", "revision")
        ),
        ["judgment_id", "answer_code", "confidence_or", "kl_or"],
        4,
    )
    confidence, kl = confidence.copy(), kl.copy()
    if len(revised):
        # The last revision of each judgment (they come in order), put on
        # that judgment's row.
        revised = revised[np.r_[revised[1:, 0] != revised[:-1, 0], True]]
        order = np.argsort(ids, kind="stable")
        at = order[np.searchsorted(ids, revised[:, 0], sorter=order)]
        answer[at], confidence[at], kl[at] = revised[:, 1], revised[:, 2], revised[:, 3]

    def floats(values: np.ndarray) -> np.ndarray:
        out = values.astype(float)
        out[values < 0] = np.nan
        return out

    def index_of(keys: list[int], values: np.ndarray) -> np.ndarray:
        return np.searchsorted(np.asarray(keys, np.int64), values)

    session_keys = [pk for pk, _, _ in sessions]
    at_session = index_of(session_keys, session_ids)
    enrollment_keys = [pk for pk, *_ in enrollments]
    session_reader = index_of(enrollment_keys, np.array([e for _, e, _ in sessions]))
    session_phase = np.array([phases.index(k) for _, _, k in sessions], np.int64)
    return AnswerColumns(
        study=study.slug,
        reader=session_reader[at_session] if len(sessions) else at_session,
        case=index_of([pk for pk, *_ in cases], case_ids),
        phase=session_phase[at_session] if len(sessions) else at_session,
        answer=answer.astype(np.int8),
        confidence=floats(confidence),
        kl_grade=floats(kl),
        duration_ms=duration,
        repeat=repeat,
        phases=phases,
        readers=[e[1] for e in enrollments],
        reader_profession=[e[2] for e in enrollments],
        reader_experience_years=[e[3] for e in enrollments],
        reader_kind=[e[4] for e in enrollments],
        reader_model=[e[5] for e in enrollments],
        cases=[c[1] for c in cases],
        case_role=[c[2] for c in cases],
        case_truth=[c[4] for c in cases],
        case_image=[c[3] for c in cases],
        case_reference_kl=[c[5] for c in cases],
        case_generator=[c[6] or "" for c in cases],
    )


def _extra_final_answers(study: Study):
    """Each main, first-showing answer of a human (or simulated) reader to the
    study's extra questions, as the reader last left it:
    ``(enrollment id, phase id, case id, answers)``."""
    latest = dict(
        JudgmentRevision.objects.filter(
            judgment__session__enrollment__study=study,
            judgment__session__phase__isnull=False,
        )
        .order_by("judgment_id", "revision")
        .values_list("judgment_id", "answers")
    )
    rows = (
        _judgments(study)
        .filter(case__role=Case.Role.MAIN, repeat=False)
        .exclude(session__enrollment__reader__kind=Reader.Kind.MACHINE)
        .values_list(
            "id", "session__enrollment_id", "session__phase_id", "case_id", "answers"
        )
    )
    for pk, enrollment, phase, case, answers in rows.iterator(chunk_size=5000):
        yield enrollment, phase, case, latest.get(pk, answers) or {}


def question_report(study: Study) -> list[dict[str, Any]]:
    """Agreement and spread of each choice question the study added to a phase
    (:func:`turingtest.stats.questions.question_summary`), JSON-ready; empty
    where it added none."""
    asked = [
        (phase, q)
        for phase in study.phases.order_by("index")
        for q in (pq.as_question() for pq in phase.questions.order_by("order", "id"))
        if q.scale is not None
    ]
    if not asked:
        return []
    main = Case.objects.filter(study=study, role=Case.Role.MAIN).values_list(
        "id", "image__source", "image__kl_grade", "image__references"
    )
    cases = {pk: source for pk, source, _, _ in main}
    references = {
        pk: all_references(kl_grade, references) for pk, _, kl_grade, references in main
    }
    case_ids = sorted(cases)
    at_case = {pk: i for i, pk in enumerate(case_ids)}
    enrollments = dict(
        Enrollment.objects.filter(study=study).values_list("id", "reader__code")
    )
    readers = sorted(enrollments)
    at_reader = {pk: i for i, pk in enumerate(readers)}
    grids = {
        (phase.id, q.field): np.full((len(readers), len(case_ids)), None, object)
        for phase, q in asked
    }
    for enrollment, phase, case, answers in _extra_final_answers(study):
        for key, value in answers.items():
            grid = grids.get((phase, key))
            if grid is not None:
                grid[at_reader[enrollment], at_case[case]] = value
    sources = [cases[pk] for pk in case_ids]
    summaries = []
    for phase, q in asked:
        summary = question_summary(
            key=q.field,
            kind=q.kind.value,
            codes=q.scale.codes,
            labels=q.scale.labels,
            ratings=grids[(phase.id, q.field)],
            sources=sources,
        )
        against = reference_agreement(
            scale=q.scale.name,
            kind=q.kind.value,
            codes=q.scale.codes,
            ratings=grids[(phase.id, q.field)],
            reference=[
                on_scale(q.scale, references[pk].get(q.scale.name)) for pk in case_ids
            ],
            sources=sources,
            readers=[enrollments[pk] for pk in readers],
        )
        summary = replace(summary, reference=against)
        summaries.append(summary.to_dict() | {"phase": phase.kind, "title": q.title})
    return summaries


FREE_TEXT_COLUMNS = (
    "case",
    "image",
    "truth",
    "reader",
    "phase",
    "repeat",
    "question",
    "text",
)


def free_text_rows(study: Study) -> list[dict[str, Any]]:
    """Every free-text answer to the study's questions, as the reader last left
    it, by case, phase and reader: ``free_text.csv`` and the staff page."""
    keys = set(
        PhaseQuestion.objects.filter(
            phase__study=study, type=PhaseQuestion.Type.FREE_TEXT
        ).values_list("key", flat=True)
    )
    if not keys:
        return []
    latest = dict(
        JudgmentRevision.objects.filter(
            judgment__session__enrollment__study=study,
            judgment__session__phase__isnull=False,
        )
        .order_by("judgment_id", "revision")
        .values_list("judgment_id", "answers")
    )
    judgments = (
        _judgments(study)
        .filter(
            Q(answers__has_any_keys=sorted(keys))
            | Q(revisions__answers__has_any_keys=sorted(keys))
        )
        .distinct()
        .order_by(
            "case__number",
            "session__phase__index",
            "session__enrollment__reader__code",
            "repeat",
        )
        .values_list(
            "id",
            "case__number",
            "case__token",
            "case__image__source",
            "session__enrollment__reader__code",
            "session__phase__kind",
            "repeat",
            "answers",
        )
    )
    rows = []
    for pk, number, token, source, reader, phase, repeat, answers in judgments:
        answers = latest.get(pk, answers) or {}
        for key in sorted(keys & set(answers)):
            rows.append(
                {
                    "case": number,
                    "image": token,
                    "truth": source,
                    "reader": reader,
                    "phase": phase,
                    "repeat": str(repeat).lower(),
                    "question": key,
                    "text": answers[key],
                }
            )
    return rows


def free_text_by_image(study: Study) -> list[dict[str, Any]]:
    """The free-text answers grouped per image, for the staff page."""
    images: dict[int, dict[str, Any]] = {}
    for row in free_text_rows(study):
        image = images.setdefault(
            row["case"],
            {"case": row["case"], "truth": row["truth"], "answers": []},
        )
        image["answers"].append(row)
    return list(images.values())


def study_report(study: Study) -> Report:
    """The full report of the study's answers as they are now."""
    report = build_report(
        report_columns(study),
        study=study.slug,
        kl_grading=any(phase.asks_grade for phase in study.phases.all()),
    )
    questions = question_report(study)
    if questions:  # a study of the reference protocol reports as it always did
        report = replace(report, questions=tuple(questions))
    return report


# ---------------------------------------------------------------- storing


def _is_current(stored: StudyReport | None, fingerprint: AnswersFingerprint) -> bool:
    return (
        stored is not None
        and stored.version == REPORT_VERSION
        and stored.answers_count == fingerprint.answers_count
        and stored.revisions_count == fingerprint.revisions_count
        and stored.last_answer_at == fingerprint.last_answer_at
    )


def _png_text(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


def study_report_save(
    *,
    study: Study,
    with_plots: bool = True,
    fingerprint: AnswersFingerprint | None = None,
) -> StudyReport:
    """Build the study's report now and store it in place of the last one.

    The fingerprint is read before the answers (here, or by the caller that
    has just read it to find the stored report stale), so an answer arriving
    during the build leaves the stored report marked stale rather than
    current.
    """
    if fingerprint is None:
        fingerprint = answers_fingerprint(study)
    start = time.perf_counter()
    data = study_report(study)
    plots = (
        {name: _png_text(draw(data)) for name, (_, draw) in PLOTS.items()}
        if with_plots
        else {}
    )
    seconds = time.perf_counter() - start
    with transaction.atomic():
        stored, _ = StudyReport.objects.update_or_create(
            study=study,
            defaults={
                "version": REPORT_VERSION,
                "built_at": timezone.now(),
                "build_seconds": seconds,
                "answers_count": fingerprint.answers_count,
                "revisions_count": fingerprint.revisions_count,
                "last_answer_at": fingerprint.last_answer_at,
                "data": data.to_json(),
                "plots": plots,
            },
        )
    # Read back as stored: PostgreSQL's jsonb turns -0.0 into 0 and reorders
    # keys, and a file exported now must equal one exported from the store.
    stored.refresh_from_db(fields=["data"])
    return stored


def study_report_refresh(*, study_id: int) -> tuple[StudyReport | None, bool]:
    """Make the stored report current and complete; (report, whether rebuilt).

    Idempotent: over unchanged answers a second run builds nothing, and a
    report built by a page without its plots only gets the plots drawn.
    None when the study is gone.
    """
    study = Study.objects.filter(pk=study_id).first()
    if study is None:
        return None, False
    stored = StudyReport.objects.filter(study=study).defer("data").first()
    fingerprint = answers_fingerprint(study)
    if not _is_current(stored, fingerprint):
        return study_report_save(study=study, fingerprint=fingerprint), True
    for name in PLOTS:
        if name not in stored.plots:
            study_report_plot(study=study, name=name)
    return stored, False


def _queue(study_id: int) -> None:
    # Imported here: the tasks module imports this one.
    from turingtest.results.tasks import study_report_build

    # CPU work: the default queue, never a gpu worker's.
    study_report_build.apply_async(args=[study_id], queue="default")


def study_report_rebuild(*, study: Study) -> str:
    """Rebuild now where that is quick ("built"), else queue the task ("queued")."""
    fingerprint = answers_fingerprint(study)
    if fingerprint.answers_count < SYNC_BUILD_MAX_ANSWERS:
        study_report_save(study=study, with_plots=False, fingerprint=fingerprint)
        return "built"
    transaction.on_commit(lambda: _queue(study.pk))
    return "queued"


@dataclass(frozen=True)
class PageReport:
    """The stored report as the staff page shows it."""

    stored: StudyReport | None
    stale: bool
    answers_count: int


def study_report_for_page(*, study: Study) -> PageReport:
    """The stored report, built here first if it is stale and the study small."""
    fingerprint = answers_fingerprint(study)
    stored = StudyReport.objects.filter(study=study).defer("plots").first()
    current = _is_current(stored, fingerprint)
    if not current and fingerprint.answers_count < SYNC_BUILD_MAX_ANSWERS:
        stored = study_report_save(
            study=study, with_plots=False, fingerprint=fingerprint
        )
        current = True
    return PageReport(stored, not current, fingerprint.answers_count)


def study_report_plot(*, study: Study, name: str) -> bytes | None:
    """A plot of the stored report as PNG, drawn and kept on first request.

    None when the name is unknown or no report is stored yet.
    """
    if name not in PLOTS:
        return None
    stored = StudyReport.objects.filter(study=study).defer("data").first()
    if stored is None:
        if answers_fingerprint(study).answers_count >= SYNC_BUILD_MAX_ANSWERS:
            return None
        stored = study_report_save(study=study, with_plots=False)
    if name in stored.plots:
        return base64.b64decode(stored.plots[name])
    data = StudyReport.objects.values_list("data", flat=True).get(pk=stored.pk)
    png = PLOTS[name][1](Report.from_json(data))
    with transaction.atomic():
        # Other plots of the same report may be stored meanwhile; keep them.
        row = StudyReport.objects.select_for_update().defer("data").get(pk=stored.pk)
        if row.built_at == stored.built_at and name not in row.plots:
            row.plots = row.plots | {name: _png_text(png)}
            row.save(update_fields=["plots"])
    return png


def study_report_current(study: Study) -> Report:
    """The report of the answers as they are now: the stored one if current."""
    stored = StudyReport.objects.filter(study=study).defer("plots").first()
    fingerprint = answers_fingerprint(study)
    if not _is_current(stored, fingerprint):
        stored = study_report_save(
            study=study, with_plots=False, fingerprint=fingerprint
        )
    return Report.from_json(stored.data)


# ---------------------------------------------------------------- exports


def reader_summary_export(study: Study) -> list[dict[str, Any]]:
    return reader_summary_rows(study_report_current(study))


def retest_export(study: Study) -> list[dict[str, Any]]:
    return retest_rows(study_report_current(study))


def image_summary_export(study: Study) -> list[dict[str, Any]]:
    return image_summary_rows(study_report_current(study))


def report_json_export(study: Study) -> Iterator[str]:
    # Sorted keys: PostgreSQL's jsonb does not keep the order of stored keys,
    # and the file should not depend on the database.
    data = study_report_current(study).to_json()
    yield json.dumps(data, indent=2, sort_keys=True) + "\n"


def imrmc_export(study: Study) -> list[dict[str, str]]:
    return imrmc_rows(report_rows(study))


def imrmc_file_export(study: Study) -> Iterator[str]:
    """The ``.imrmc`` file the iMRMC program opens as it is."""
    yield imrmc_text(
        report_rows(study),
        title=study.slug,
        study_name=study.name,
        exported_at=timezone.now().isoformat(timespec="seconds"),
    )


def report_html_export(study: Study) -> Iterator[str]:
    """The report as one HTML file that opens anywhere, offline: the full
    report with its tables, the plots, and a heatmap per image of where
    readers zoomed in. Images are embedded as PNG, so the file stands alone.
    """
    data = study_report_current(study)
    plots = []
    for name, (title, _) in PLOTS.items():
        png = study_report_plot(study=study, name=name)
        if png is not None:
            plots.append({"title": title, "png": _png_text(png)})
    heatmaps = [
        row | {"png": _png_text(interactions.zoom_heatmap_png(case=row["case"]))}
        for row in interactions.zoom_heatmap_cases(study=study)
    ]
    yield render_to_string(
        "studies/report_file.html",
        {
            "study": study,
            "full_html": mark_safe(
                markdown.markdown(escape(report_markdown(data)), extensions=["extra"])
            ),
            "plots": plots,
            "heatmaps": heatmaps,
        },
    )


# ---------------------------------------------------------------- display


def _detection_view(d: Detection) -> dict[str, Any]:
    asym = d.error_asymmetry
    eq = d.equivalence.readers
    agreement = d.agreement
    return {
        "phase": d.phase,
        "n_readers": d.n_readers,
        "n_cases": d.n_cases,
        "n_real": d.n_real,
        "n_synthetic": d.n_synthetic,
        "note": d.note,
        "readers": [
            {
                "reader": r.reader,
                "kind": r.kind,
                "profession": r.profession,
                "experience_years": r.experience_years,
                "n": r.n,
                "accuracy": percent_ci_page(r.accuracy),
                "p_value": p_page(r.p_value),
                "sensitivity": percent_ci_page(r.sensitivity),
                "specificity": percent_ci_page(r.specificity),
                "fake_as_real": percent_ci_page(r.fake_as_real),
                "real_as_fake": percent_ci_page(r.real_as_fake),
                "d_prime": fixed(r.d_prime),
                "auc": ci_page(r.auc) if r.auc else "n/a",
            }
            for r in d.readers
        ],
        "pooled_accuracy": percent_ci_page(d.pooled_accuracy),
        "pooled_p": p_page(d.pooled_accuracy.p_value),
        "mrmc_percent_correct": percent_ci_page(d.mrmc_percent_correct),
        "mrmc_auc": ci_page(d.mrmc_auc),
        "mrmc_auc_p": p_page(d.mrmc_auc.p_value),
        "fake_as_real": percent_ci_page(asym.fake_as_real.pooled),
        "real_as_fake": percent_ci_page(asym.real_as_fake.pooled),
        "asymmetry": percent_ci_page(asym.difference),
        "asymmetry_p": p_page(asym.difference.p_value),
        "tost_margin": percent(d.equivalence.margin, 0, unit=""),
        "tost_equivalent": eq.get("equivalent"),
        "tost_p": p_page(eq.p_value),
        "tost_note": eq.note,
        "fleiss_kappa": ci_page(agreement.fleiss_kappa),
        "krippendorff_alpha": ci_page(agreement.krippendorff_alpha),
        "cohen_kappa_mean": fixed(agreement.cohen_kappa.get("mean"), 3),
    }


def _grading_view(g: Grading) -> dict[str, Any]:
    summary = g.summary
    alpha = g.inter_reader_alpha
    sources = (("real", summary.real), ("synthetic", summary.synthetic))
    return {
        "phase": g.phase,
        "n_readers": g.n_readers,
        "n_cases": g.n_cases,
        "note": g.note,
        "summary": [
            {
                "source": source,
                "kappa": ci_page(figures.mean_kappa_quadratic),
                "exact": percent_ci_page(figures.pooled_exact),
                "alpha": ci_page(alpha.get(source)),
            }
            for source, figures in sources
        ],
        "difference": ci_page(summary.kappa_difference),
        "difference_p": p_page(summary.kappa_difference.p_value),
        "readers": [
            {
                "reader": r.reader,
                "kind": r.kind,
                **{
                    f"kappa_{s}": ci_page(getattr(r, s).kappa_quadratic, 2)
                    if getattr(r, s).n
                    else "n/a"
                    for s, _ in sources
                },
                **{
                    f"exact_{s}": percent_ci_page(getattr(r, s).exact)
                    if getattr(r, s).n
                    else "n/a"
                    for s, _ in sources
                },
            }
            for r in g.readers
        ],
    }


def _thumbnails(detection: Mapping[str, Detection]) -> dict[str, list[dict[str, Any]]]:
    for phase in ("detection", "combined"):
        if phase in detection:
            images = detection[phase].images
            break
    else:
        return {"most": [], "least": []}
    fakes = [
        i for i in images if i.truth == "synthetic" and i.fraction_real is not None
    ]
    fakes.sort(key=lambda i: (-(i.fraction_real or 0.0), str(i.case)))

    def view(i: DetectionImage) -> dict[str, Any]:
        return {
            "token": i.image,
            "case": i.case,
            "reference_kl": i.reference_kl,
            "called_real": f"{i.n_called_real} of {i.n}",
            "fraction_real": percent(i.fraction_real or 0.0, 0),
        }

    k = min(THUMBNAILS, len(fakes) // 2) if len(fakes) > 1 else len(fakes)
    most = fakes[:k]
    least = fakes[::-1][: min(THUMBNAILS, len(fakes) - k)]
    return {"most": [view(i) for i in most], "least": [view(i) for i in least]}


def _machines_view(data: Report) -> list[dict[str, Any]]:
    """Human readers' headline figures beside each machine reader's, for display."""
    out = []
    for r in machine_comparison(data):
        fmt = percent_ci_page if r.is_accuracy else ci_page
        out.append(
            {
                "phase": r.phase,
                "figure": r.figure,
                "humans": r.humans,
                "n_humans": r.n_humans,
                "human": fmt(r.human),
                "reader": r.reader,
                "machine": r.machine,
                "value": fmt(r.value),
                "auc": ci_page(r.auc) if r.auc else None,
                "human_auc": ci_page(r.human_auc),
            }
        )
    return out


def _retest_view(data: Report) -> dict[str, Any] | None:
    """Each reader's test-retest kappa on the repeated cases, for display."""
    retest = data.retest
    if not retest.readers:
        return None
    rows = []
    for e in retest.readers:
        rows.append(
            {
                "reader": e.reader,
                "simulated": e.kind == "simulated",
                "phase": e.phase,
                "question": QUESTION_LABELS[e.question],
                "n": e.n,
                "same": e.same,
                "kappa": fixed(e.kappa),
                "ci": interval_page(e.ci),
                "flagged": e.flagged,
            }
        )
    return {"threshold": retest.threshold, "rows": rows}


def _percent_or_missing(x: float | None) -> str:
    return MISSING if x is None else percent(x)


def _reference_view(q: Mapping[str, Any]) -> dict[str, Any] | None:
    """A question's answers against the pool's reference values, for display."""
    ref = q.get("reference")
    if not ref:
        return None
    ordinal = ref["kind"] == "ordinal"
    return {
        "scale": ref["scale"],
        "n_answers": ref["n_answers"],
        "n_images": ref["n_images"],
        "exact": percent_ci_page(Figure.of(ref["exact"])),
        "within_one": percent_ci_page(Figure.of(ref["within_one"]))
        if ordinal
        else None,
        "exact_real": _percent_or_missing(ref["exact_by_source"]["real"]),
        "exact_synthetic": _percent_or_missing(ref["exact_by_source"]["synthetic"]),
        "mean_kappa": fixed(ref["mean_kappa"]),
        "weights": ref["weights"],
        "readers": [
            {
                "reader": r["reader"],
                "n": r["n"],
                "exact": percent_ci_page(Figure.of(r["exact"])),
                "within_one": percent_ci_page(Figure.of(r["within_one"]))
                if ordinal
                else None,
                "kappa": ci_page(Figure.of(r["kappa"]), 2),
            }
            for r in ref["readers"]
        ],
        "confusion": [
            {
                "source": source,
                "rows": [
                    {"code": code, "counts": list(row)}
                    for code, row in zip(
                        q["codes"], ref["confusion"][source], strict=True
                    )
                ],
            }
            for source in ("real", "synthetic")
        ],
        "note": ref.get("note") or "",
    }


def _questions_view(data: Report) -> list[dict[str, Any]]:
    """The study's own choice questions: agreement and spread, for display."""
    out = []
    for q in data.questions or ():
        spread = {s["source"]: s for s in q["by_source"]}
        kappa = fixed(q["kappa"])
        if q["n_pairs"]:
            kappa += f" ({fixed(q['kappa_min'])} to {fixed(q['kappa_max'])})"
        out.append(
            {
                "reference": _reference_view(q),
                "codes": list(q["codes"]),
                "phase": q["phase"],
                "key": q["key"],
                "title": q["title"],
                "kind": q["kind"],
                "weights": q["weights"],
                "n_readers": q["n_readers"],
                "n_images": q["n_images"],
                "kappa": kappa,
                "note": q.get("note") or "",
                "real_mean": fixed(spread["real"]["mean"]),
                "synthetic_mean": fixed(spread["synthetic"]["mean"]),
                "values": [
                    {
                        "code": code,
                        "label": label,
                        "real": spread["real"]["counts"][i],
                        "synthetic": spread["synthetic"]["counts"][i],
                    }
                    for i, (code, label) in enumerate(
                        zip(q["codes"], q["labels"], strict=True)
                    )
                ],
            }
        )
    return out


def _full_html(stored: StudyReport) -> str:
    # Rendering a large study's Markdown takes 0.3-0.5 s, which every view of
    # the page would pay again; a rebuilt report has a new key.
    key = f"study-report-html:{stored.pk}:{stored.built_at.timestamp()}"
    html = cache.get(key)
    if html is None:
        # Escaped first: reader codes and generator names are user input.
        html = markdown.markdown(
            escape(report_markdown(Report.from_json(stored.data))),
            extensions=["extra"],
        )
        cache.set(key, html, 7 * 24 * 3600)
    return mark_safe(html)


def study_totals(*, study: Study) -> dict[str, Any]:
    """What a complete study would analyse: its main cases and its readers.

    Figures name their n against these ("32 of 60 images"), so a study read
    in part says so instead of passing for the whole.
    """
    by_source = {
        row["image__source"]: row["n"]
        for row in study.cases.filter(role=Case.Role.MAIN)
        .values("image__source")
        .annotate(n=Count("id"))
    }
    # Machine readers are reported apart, so they are not among these.
    readers = study.enrollments.exclude(reader__kind=Reader.Kind.MACHINE).aggregate(
        consented=Count("id", filter=Q(consented_at__isnull=False)),
        completed=Count("id", filter=Q(completed_at__isnull=False)),
    )
    return {
        "cases": sum(by_source.values()),
        "real": by_source.get("real", 0),
        "synthetic": by_source.get("synthetic", 0),
        "readers": readers["consented"],
        "readers_completed": readers["completed"],
    }


def _partial(views: list[dict[str, Any]], totals: Mapping[str, Any]) -> bool:
    return any(
        v["n_cases"] < totals["cases"] or v["n_readers"] < totals["readers"]
        for v in views
    )


def report_page(*, study: Study) -> dict[str, Any] | None:
    """What the staff page shows of the stored report, formatted for display.

    None while no report is stored (a large study before its first build).
    """
    page = study_report_for_page(study=study)
    stored = page.stored
    if stored is None:
        return None
    data = Report.from_json(stored.data)
    phases = ("grading", "detection", "combined")
    detection, grading = data.detection, data.grading
    totals = study_totals(study=study)
    detection_views = [_detection_view(detection[p]) for p in phases if p in detection]
    grading_views = [_grading_view(grading[p]) for p in phases if p in grading]
    return {
        "totals": totals,
        "partial": _partial(detection_views + grading_views, totals)
        or totals["readers_completed"] < totals["readers"],
        "stale": page.stale,
        "answers_now": page.answers_count,
        "built_at": stored.built_at,
        "build_seconds": stored.build_seconds,
        "answers_count": stored.answers_count,
        "counts": data.counts,
        "n_readers": len(data.readers),
        "attention": data.attention,
        "messages": data.messages,
        "detection": detection_views,
        "grading": grading_views,
        "thumbnails": _thumbnails(detection),
        "machines": _machines_view(data),
        "retest": _retest_view(data),
        "questions": _questions_view(data),
        "humans": humans_label(data.readers),
        "n_simulated": sum(r.kind == "simulated" for r in data.readers),
        "plots": [(name, title) for name, (title, _) in PLOTS.items()],
        "full_html": _full_html(stored),
    }
