"""The one scoring rule: whether an answer matches the reference.

The reader's own score, the practice round's feedback, the study report and
the CSV exports all call these functions, on the reader's final answer: the
latest revision where a study allows edits, else the first answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from turingtest.domain.scales import KL, Code, Scale


@dataclass(frozen=True)
class Given:
    """What a reader answered to one case; ``None`` where the phase did not ask."""

    answer: str | None  # "real" | "synthetic"
    confidence: int | None  # 1..6
    kl_grade: int | None  # 0..4


def final(first: Given, revisions: Iterable[tuple[int, Given]] = ()) -> Given:
    """The answer that counts: the highest-numbered revision, else the first."""
    latest = max(revisions, key=lambda r: r[0], default=None)
    return first if latest is None else latest[1]


def detection_correct(answer: str, truth: str) -> bool:
    return answer == truth


def grade_exact(given: Code, reference: Code, scale: Scale = KL) -> bool:
    """Whether a grade on ``scale`` (the KL grade by default) is the reference's."""
    return scale.level(given).code == scale.level(reference).code


def grade_within_one(given: Code, reference: Code, scale: Scale = KL) -> bool:
    """Whether a grade is at most one step of ``scale``'s order from the reference."""
    return scale.within_one(given, reference)


def is_correct(
    phase_kind: str,
    truth: str,
    reference_kl: int | None,
    answer: str | None,
    kl_grade: int | None,
) -> bool | None:
    """Correctness as each phase defines it: the real/synthetic call, else the KL grade.

    ``None`` where the answer has nothing to score (a grade given only
    alongside the real/synthetic call is scored by :func:`grade_exact`; an
    image of a pool without KL grades has no reference to score against).
    """
    if answer is not None:
        return detection_correct(answer, truth)
    if kl_grade is not None and phase_kind == "grading" and reference_kl is not None:
        return grade_exact(kl_grade, reference_kl)
    return None


@dataclass(frozen=True)
class Score:
    detection_total: int = 0
    detection_correct: int = 0
    grading_total: int = 0
    grading_exact: int = 0
    grading_within_one: int = 0


def score(rows: Iterable[tuple[Given, str, int | None]]) -> Score:
    """A reader's score over ``(final answer, truth, reference KL)`` rows;
    grades of images without a reference KL grade are not scored."""
    d_total = d_correct = g_total = g_exact = g_near = 0
    for given, truth, reference_kl in rows:
        if given.answer is not None:
            d_total += 1
            d_correct += detection_correct(given.answer, truth)
        if given.kl_grade is not None and reference_kl is not None:
            g_total += 1
            g_exact += grade_exact(given.kl_grade, reference_kl)
            g_near += grade_within_one(given.kl_grade, reference_kl)
    return Score(d_total, d_correct, g_total, g_exact, g_near)
