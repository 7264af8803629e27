"""The rows of the report's CSV exports and the iMRMC files.

The ``*_COLUMNS`` tuples are the exported files' headers: a contract with
the scripts that read them, so names are only ever added. Numbers stay
unformatted (the CSV writer prints them at full precision); flags are
written by :func:`~turingtest.stats.report.formatting.csv_flag`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from turingtest.stats.proportions import SYNTHETIC
from turingtest.stats.report.compute import MACHINE, SOURCES, split_readers
from turingtest.stats.report.formatting import csv_flag
from turingtest.stats.report.results import (
    DetectionFigures,
    DetectionImage,
    Figure,
    GradingImage,
    Report,
)

__all__ = [
    "IMAGE_COLUMNS",
    "READER_COLUMNS",
    "RETEST_COLUMNS",
    "image_summary_rows",
    "imrmc_rows",
    "imrmc_text",
    "reader_summary_rows",
    "retest_rows",
]

RETEST_COLUMNS = (
    "reader",
    "reader_kind",
    "phase",
    "question",
    "weights",
    "pairs",
    "same_answer",
    "kappa",
    "ci_low",
    "ci_high",
    "flagged",
    "note",
)


def retest_rows(report: Report) -> list[dict[str, Any]]:
    """The rows of ``retest.csv``: each reader's test-retest kappa per phase
    and question."""
    rows = []
    for e in report.retest.readers:
        ci = e.ci or [None, None]
        rows.append(
            {
                "reader": e.reader,
                "reader_kind": e.kind,
                "phase": e.phase,
                "question": e.question,
                "weights": e.weights,
                "pairs": e.n,
                "same_answer": e.same,
                "kappa": e.kappa,
                "ci_low": ci[0],
                "ci_high": ci[1],
                "flagged": csv_flag(e.flagged),
                "note": e.note or "",
            }
        )
    return rows


READER_COLUMNS = (
    "study", "reader", "reader_kind", "machine_model", "profession", "experience_years", "phase", "n", "n_missing",
    "accuracy", "accuracy_low", "accuracy_high", "p_value", "sensitivity",
    "specificity", "fake_as_real", "real_as_fake", "d_prime", "criterion", "auc",
    "auc_low", "auc_high", "median_seconds", "kappa_real", "kappa_synthetic",
    "exact_real", "exact_synthetic", "within_one_real", "within_one_synthetic",
    "attention_checks", "attention_failed",
)  # fmt: skip

IMAGE_COLUMNS = (
    "study", "phase", "case", "image", "truth", "generator", "reference_kl",
    "n_realism_answers", "n_called_real", "fraction_real", "fraction_real_low",
    "fraction_real_high", "mean_confidence", "realism_rank", "n_grades",
    "mean_grade", "modal_grade", "exact_agreement", "within_one",
)  # fmt: skip


def reader_summary_rows(report: Report) -> list[dict[str, Any]]:
    """One row per reader and phase for ``reader_summary.csv``.

    Every row has the keys of ``READER_COLUMNS``; figures that do not apply
    to a phase are None.
    """
    attention = {e.reader: e for e in report.attention.readers}
    kinds = {r.reader: r.kind or "human" for r in report.readers}
    rows: dict[tuple[Any, str], dict[str, Any]] = {}

    def row(reader: Any, phase: str, profession: Any, years: Any) -> dict[str, Any]:
        key = (reader, phase)
        if key not in rows:
            r: dict[str, Any] = dict.fromkeys(READER_COLUMNS)
            att = attention.get(reader)
            r.update(
                study=report.study,
                reader=reader,
                reader_kind=kinds.get(reader, "human"),
                machine_model="",
                profession=profession,
                experience_years=years,
                phase=phase,
                attention_checks=att.n if att else 0,
                attention_failed=att.n_failed if att else 0,
            )
            rows[key] = r
        return rows[key]

    for phase, d in report.detection.items():
        for reader in d.readers:
            out = row(reader.reader, phase, reader.profession, reader.experience_years)
            out.update(_detection_cells(reader), median_seconds=reader.median_seconds)
    for phase, g in report.grading.items():
        for grader in g.readers:
            out = row(grader.reader, phase, grader.profession, grader.experience_years)
            for source in SOURCES:
                agreement = getattr(grader, source)
                if agreement.n:
                    out[f"kappa_{source}"] = _estimate(agreement.kappa_quadratic)
                    out[f"exact_{source}"] = _estimate(agreement.exact)
                    out[f"within_one_{source}"] = _estimate(agreement.within_one)
    # Machine readers last, labelled: they are in no figure about readers.
    for m in report.machine_readers:
        out = row(m.reader, m.phase, None, None)
        out.update(reader_kind=MACHINE, machine_model=m.model)
        if m.detection:
            out.update(_detection_cells(m.detection))
        for source, agreement in (m.grading or {}).items():
            if agreement.n:
                out[f"kappa_{source}"] = _estimate(agreement.kappa_quadratic)
                out[f"exact_{source}"] = _estimate(agreement.exact)
    return list(rows.values())


def _estimate(figure: Figure | None) -> Any:
    return None if figure is None else figure.estimate


def _detection_cells(d: DetectionFigures) -> dict[str, Any]:
    """A reader's detection figures as ``reader_summary.csv`` cells."""
    acc_ci = d.accuracy.ci or [None, None]
    cells = {
        "n": d.n,
        "n_missing": d.n_missing,
        "accuracy": d.accuracy.estimate,
        "accuracy_low": acc_ci[0],
        "accuracy_high": acc_ci[1],
        "p_value": d.p_value,
        "sensitivity": d.sensitivity.estimate,
        "specificity": d.specificity.estimate,
        "fake_as_real": d.fake_as_real.estimate,
        "real_as_fake": d.real_as_fake.estimate,
        "d_prime": d.d_prime,
        "criterion": d.criterion,
    }
    if d.auc:
        auc_ci = d.auc.ci or [None, None]
        cells.update(auc=d.auc.estimate, auc_low=auc_ci[0], auc_high=auc_ci[1])
    return cells


def image_summary_rows(report: Report) -> list[dict[str, Any]]:
    """One row per image and phase for ``image_summary.csv``."""
    rows: dict[tuple[Any, str], dict[str, Any]] = {}

    def row(i: DetectionImage | GradingImage, phase: str) -> dict[str, Any]:
        key = (i.case, phase)
        if key not in rows:
            r: dict[str, Any] = dict.fromkeys(IMAGE_COLUMNS)
            r.update(
                study=report.study,
                phase=phase,
                case=i.case,
                image=i.image,
                truth=i.truth,
                generator=i.generator,
                reference_kl=i.reference_kl,
            )
            rows[key] = r
        return rows[key]

    for phase, d in report.detection.items():
        for i in d.images:
            ci = i.ci or [None, None]
            row(i, phase).update(
                n_realism_answers=i.n,
                n_called_real=i.n_called_real,
                fraction_real=i.fraction_real,
                fraction_real_low=ci[0],
                fraction_real_high=ci[1],
                mean_confidence=i.mean_confidence,
                realism_rank=i.rank,
            )
    for phase, g in report.grading.items():
        for image in g.images:
            row(image, phase).update(
                n_grades=image.n,
                mean_grade=image.mean_grade,
                modal_grade=image.modal_grade,
                exact_agreement=image.exact,
                within_one=image.within_one,
            )
    return list(rows.values())


def _imrmc_id(value: Any) -> str:
    # iMRMC splits on commas and strips whitespace inside fields.
    return "".join("_" if ch in ", \t\r\n" else ch for ch in str(value))


def imrmc_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Rows in the long format read by the FDA iMRMC tool.

    Columns ``readerID, caseID, modalityID, score``. First one truth row per
    case (``readerID = "-1"``, ``modalityID = "truth"``, ``score`` 1 for
    synthetic, the positive class, and 0 for real), then one row per main
    answer with a confidence rating, the phase name as the modality and the
    6-point rating as the score.

    Written as CSV with a header this is the data frame of the iMRMC R
    package (``doIMRMC``); :func:`imrmc_text` writes the ``.imrmc`` file of
    the Java application.

    References
    ----------
    .. [1] Gallas, B. D. (2006). One-shot estimate of MRMC variance: AUC.
       *Acad Radiol* 13(3), 353-362. doi:10.1016/j.acra.2005.11.030
    """
    truth: dict[str, str] = {}
    scores: list[dict[str, str]] = []
    rows, _ = split_readers(rows)
    for r in rows:
        if r.get("role") != "main" or r.get("phase") not in ("detection", "combined"):
            continue
        if r.get("truth") not in SOURCES:
            continue
        case = _imrmc_id(r.get("case"))
        truth.setdefault(case, "1" if r["truth"] == SYNTHETIC else "0")
        conf = r.get("confidence")
        if conf is None or (isinstance(conf, float) and math.isnan(conf)):
            continue
        score = int(conf) if float(conf).is_integer() else float(conf)
        scores.append(
            {
                "readerID": _imrmc_id(r.get("reader")),
                "caseID": case,
                "modalityID": str(r["phase"]),
                "score": str(score),
            }
        )
    head = [
        {"readerID": "-1", "caseID": c, "modalityID": "truth", "score": t}
        for c, t in truth.items()
    ]
    return head + scores


def _imrmc_free_text(value: Any) -> str:
    # The program reads the header for "NR:", "N0:", "N1:" and "NM:" anywhere
    # in a line and for a line starting "BEGIN DATA:"; free text must not
    # contain a colon that could make one of them.
    return " ".join(str(value).replace(":", " -").split())


def imrmc_text(
    rows: Iterable[Mapping[str, Any]],
    title: str = "turingtest",
    *,
    study_name: str | None = None,
    exported_at: str | None = None,
) -> str:
    """The ``.imrmc`` input file of the iMRMC Java application.

    A free-text header (its first line is the program's record title) naming
    the study and the export time, the study size (``NR``, ``N0``, ``N1``,
    ``NM``) the program checks the data against, then ``BEGIN DATA:`` and the
    rows of :func:`imrmc_rows` with no header row.

    Notes
    -----
    The program (iMRMC 4.0.3, ``mrmc.core.InputFile``) takes ``.imrmc`` and
    ``.csv`` names alike but always looks for the ``BEGIN DATA:`` line, so a
    plain CSV with a header row is refused; R's ``iMRMC::doIMRMC`` takes the
    CSV as a data frame instead.
    """
    body = imrmc_rows(rows)
    truth = [r["score"] for r in body if r["readerID"] == "-1"]
    scored = [r for r in body if r["readerID"] != "-1"]
    lines = [
        f"{_imrmc_id(title)}: visual Turing test, synthetic images are the positive class",
    ]
    if study_name:
        lines.append(f"Study - {_imrmc_free_text(study_name)}")
    if exported_at:
        lines.append(f"Exported by turingtest at {_imrmc_free_text(exported_at)}")
    lines += [
        "Modality - the phase (detection or combined). Score - the reader's "
        "6-point confidence that the image is synthetic. Truth - 1 synthetic, 0 real.",
        "",
        f"NR: {len({r['readerID'] for r in scored})}",
        f"N0: {truth.count('0')}",
        f"N1: {truth.count('1')}",
        f"NM: {len({r['modalityID'] for r in scored})}",
        "",
        "BEGIN DATA:",
    ]
    lines += [
        f"{r['readerID']},{r['caseID']},{r['modalityID']},{r['score']}" for r in body
    ]
    return "\n".join(lines) + "\n"
