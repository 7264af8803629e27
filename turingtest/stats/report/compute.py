"""Building the study report: every figure a visual Turing test paper reports.

:func:`build_report` takes a study's final answers as plain dicts (the rows
of ``judgments.csv`` plus ``role``) or as :class:`AnswerColumns` and returns
a :class:`~turingtest.stats.report.results.Report`. Nothing here touches
Django: the caller reads the database.

The sections are computed as plain values and checked once, whole, before
they become the report's dataclasses: figures that cannot be computed are
None next to a ``note`` that says why; any other non-finite number is also
turned into None and listed in ``Report.messages`` with its path, so a NaN
never passes silently.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, overload

import numpy as np
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from turingtest.domain.scales import KL
from turingtest.stats._base import plain
from turingtest.stats.accuracy import (
    equivalence_test,
    paired_difference_test,
    pooled_accuracy_gee,
    tost,
)
from turingtest.stats.agreement import (
    Weights,
    cohen_kappa,
    cohen_kappa_matrix,
    fleiss_kappa,
    krippendorff_alpha,
)
from turingtest.stats.mrmc import mrmc_auc, mrmc_percent_correct
from turingtest.stats.proportions import (
    REAL,
    SYNTHETIC,
    detection_summary,
    proportion_ci,
)
from turingtest.stats.report.results import RETEST_KAPPA_MIN, Report
from turingtest.stats.roc import roc_points

__all__ = [
    "REPORT_VERSION",
    "AnswerColumns",
    "ROW_KEYS",
    "build_report",
    "experience_band",
    "split_readers",
    "split_repeats",
    "RETEST_KAPPA_MIN",
]

REPORT_VERSION = 4
PHASES = ("grading", "detection", "combined")
ROLES = ("main", "practice", "attention")
KL_GRADES = KL.codes
EXPERIENCE_BANDS = ((0, 4, "0-4 years"), (5, 9, "5-9 years"), (10, 19, "10-19 years"))
ROW_KEYS = (
    "study",
    "reader",
    "reader_profession",
    "reader_experience_years",
    "reader_kind",
    "reader_model",
    "phase",
    "position",
    "repeat",
    "case",
    "image",
    "role",
    "truth",
    "reference_kl",
    "generator",
    "answer",
    "confidence",
    "kl_grade",
    "correct",
    "duration_ms",
)
SOURCES = (REAL, SYNTHETIC)
MACHINE = "machine"
SIMULATED = "simulated"


@overload
def split_readers(
    rows: AnswerColumns,
) -> tuple[AnswerColumns, list[Mapping[str, Any]]]: ...
@overload
def split_readers(
    rows: Iterable[Mapping[str, Any]],
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]: ...
def split_readers(
    rows: Iterable[Mapping[str, Any]] | AnswerColumns,
) -> tuple[list[Mapping[str, Any]] | AnswerColumns, list[Mapping[str, Any]]]:
    """(human readers' rows, machine readers' rows).

    The one place where machine readers leave the human statistics: every
    figure about readers (accuracy, agreement, ROC, MRMC, iMRMC files) is
    computed from the first part only. Simulated readers stand in for people
    and stay in it, labelled by their ``reader_kind``. Columns stay columns
    (without the machines' answers); the machines' few answers become rows.
    Second showings of repeated cases are in neither part (see
    :func:`split_repeats`).
    """
    rows, _ = split_repeats(rows)
    if isinstance(rows, AnswerColumns):
        return _split_columns(rows)
    human: list[Mapping[str, Any]] = []
    machine: list[Mapping[str, Any]] = []
    for r in rows:
        (machine if r.get("reader_kind") == MACHINE else human).append(r)
    return human, machine


@overload
def split_repeats(
    rows: AnswerColumns,
) -> tuple[AnswerColumns, list[dict[str, Any]]]: ...
@overload
def split_repeats(
    rows: Iterable[Mapping[str, Any]],
) -> tuple[list[Mapping[str, Any]], list[dict[str, Any]]]: ...
def split_repeats(
    rows: Iterable[Mapping[str, Any]] | AnswerColumns,
) -> tuple[list[Mapping[str, Any]] | AnswerColumns, list[dict[str, Any]]]:
    """(the answers without second showings, the repeated cases' answer pairs).

    The one place where intra-reader repeats (rows whose ``repeat`` is true)
    leave the statistics: every figure is computed on a case's first showing
    only. Each pair holds the reader, phase and case with the ``first`` and
    ``second`` answers (``answer``, ``kl_grade``), for :func:`_retest`.
    """
    if isinstance(rows, AnswerColumns):
        return _split_repeat_columns(rows)
    rows = list(rows)
    if not any(r.get("repeat") for r in rows):
        return rows, []
    first: dict[tuple[Any, Any, Any], Mapping[str, Any]] = {}
    kept, repeats = [], []
    for r in rows:
        if r.get("repeat"):
            repeats.append(r)
        else:
            kept.append(r)
            first.setdefault((r["reader"], r["phase"], r["case"]), r)
    pairs = []
    for r in repeats:
        f = first.get((r["reader"], r["phase"], r["case"]))
        if f is not None:
            pairs.append(_pair(r, f, r))
    return kept, pairs


def _pair(
    who: Mapping[str, Any], first: Mapping[str, Any], second: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "reader": who["reader"],
        "reader_kind": who.get("reader_kind") or "human",
        "phase": who["phase"],
        "case": who["case"],
        "role": who.get("role"),
        "first": {"answer": first.get("answer"), "kl_grade": first.get("kl_grade")},
        "second": {"answer": second.get("answer"), "kl_grade": second.get("kl_grade")},
    }


def _split_repeat_columns(
    c: AnswerColumns,
) -> tuple[AnswerColumns, list[dict[str, Any]]]:
    if c.repeat is None or not np.any(c.repeat):
        return c, []
    repeat = np.asarray(c.repeat, bool)
    reader = np.asarray(c.reader, np.int64)
    phase = np.asarray(c.phase, np.int64)
    case = np.asarray(c.case, np.int64)
    key = (reader * (len(c.phases) + 1) + phase) * (len(c.cases) + 1) + case
    firsts = np.flatnonzero(~repeat)
    by_key = firsts[np.argsort(key[firsts], kind="stable")]
    labels = {-1: None, 0: REAL, 1: SYNTHETIC}

    def answer(i: int) -> dict[str, Any]:
        grade = c.kl_grade[i]
        return {
            "answer": labels[int(c.answer[i])],
            "kl_grade": None if math.isnan(grade) else grade,
        }

    pairs = []
    for i in np.flatnonzero(repeat):
        at = int(np.searchsorted(key[by_key], key[i]))
        if at == len(by_key) or key[by_key[at]] != key[i]:
            continue
        r, k = int(reader[i]), int(case[i])
        who = {
            "reader": c.readers[r],
            "reader_kind": c.reader_kind[r],
            "phase": c.phases[phase[i]],
            "case": c.cases[k],
            "role": c.case_role[k],
        }
        pairs.append(_pair(who, answer(int(by_key[at])), answer(int(i))))
    keep = ~repeat
    per_answer = ("reader", "case", "phase", "answer", "confidence", "kl_grade")
    kept = replace(
        c,
        **{name: np.asarray(getattr(c, name))[keep] for name in per_answer},
        duration_ms=np.asarray(c.duration_ms)[keep],
        repeat=None,
    )
    return kept, pairs


def _retest(pairs: list[dict[str, Any]], level: float) -> dict[str, Any]:
    """Each reader's test-retest agreement per phase and question.

    The KL grade by quadratic-weighted kappa over all its grades, the
    real/synthetic call by Cohen's kappa; readers below
    :data:`RETEST_KAPPA_MIN` are flagged. Machine readers, which answer the
    same image the same way, are left out.
    """
    groups: dict[tuple[Any, str], list[dict[str, Any]]] = {}
    for p in pairs:
        if p["reader_kind"] == MACHINE or p["role"] not in (None, "main"):
            continue
        groups.setdefault((p["reader"], p["phase"]), []).append(p)
    # (question, answer field, kappa weights, categories)
    questions: list[tuple[str, str, Weights, tuple[object, ...]]] = [
        ("kl_grade", "kl_grade", "quadratic", KL_GRADES),
        ("real_synthetic", "answer", None, SOURCES),
    ]
    out = []
    for reader, phase in sorted(groups, key=lambda k: (str(k[0]), str(k[1]))):
        group = groups[(reader, phase)]
        for question, field, weights, categories in questions:
            both = [
                (p["first"][field], p["second"][field])
                for p in group
                if p["first"][field] is not None and p["second"][field] is not None
            ]
            if not both:
                continue
            a, b = zip(*both, strict=True)
            k = cohen_kappa(
                list(a), list(b), weights=weights, categories=categories, level=level
            )
            estimate = k.estimate
            out.append(
                {
                    "reader": reader,
                    "kind": group[0]["reader_kind"],
                    "phase": phase,
                    "question": question,
                    "weights": weights or "none",
                    "n": len(both),
                    "same": sum(x == y for x, y in both),
                    "kappa": estimate,
                    "ci": list(k.ci),
                    "flagged": bool(
                        np.isfinite(estimate) and estimate < RETEST_KAPPA_MIN
                    ),
                    "note": k.note,
                }
            )
    return {"threshold": RETEST_KAPPA_MIN, "readers": out}


def _split_columns(
    c: AnswerColumns,
) -> tuple[AnswerColumns, list[Mapping[str, Any]]]:
    is_machine = np.array([k == MACHINE for k in c.reader_kind] + [False])
    at = (
        is_machine[np.asarray(c.reader, np.int64)]
        if len(c.reader)
        else np.zeros(0, bool)
    )
    if not np.any(at):
        return c, []
    keep = ~at
    per_answer = ("reader", "case", "phase", "answer", "confidence", "kl_grade")
    human = replace(
        c,
        **{name: np.asarray(getattr(c, name))[keep] for name in per_answer},
        duration_ms=np.asarray(c.duration_ms)[keep],
    )
    labels = {-1: None, 0: REAL, 1: SYNTHETIC}

    def number(x: float) -> float | None:
        return None if math.isnan(x) else x

    machine: list[Mapping[str, Any]] = [
        {
            "study": c.study,
            "reader": c.readers[r],
            "reader_profession": c.reader_profession[r],
            "reader_experience_years": c.reader_experience_years[r],
            "reader_kind": c.reader_kind[r],
            "reader_model": c.reader_model[r],
            "phase": c.phases[c.phase[i]],
            "case": c.cases[k],
            "role": c.case_role[k],
            "truth": c.case_truth[k],
            "image": c.case_image[k],
            "reference_kl": c.case_reference_kl[k],
            "generator": c.case_generator[k],
            "answer": labels[int(c.answer[i])],
            "confidence": number(c.confidence[i]),
            "kl_grade": number(c.kl_grade[i]),
            "duration_ms": number(c.duration_ms[i]),
        }
        for i in np.flatnonzero(at)
        for r, k in [(int(c.reader[i]), int(c.case[i]))]
    ]
    return human, machine


def experience_band(years: float | str | None) -> str:
    """The experience band a reader falls in ("unknown" when not given)."""
    if years is None or (isinstance(years, float) and math.isnan(years)):
        return "unknown"
    y = float(years)
    for low, high, label in EXPERIENCE_BANDS:
        if low <= y <= high:
            return label
    return "20+ years"


# ---------------------------------------------------------------- input


@dataclass(frozen=True)
class AnswerColumns:
    """Final answers as columns: what :func:`build_report` takes as rows, read
    from a database into arrays with no work per answer.

    Per answer, in the order rows would come: ``reader`` and ``case`` are
    indices into the per-reader and per-case lists; ``phase`` indexes
    ``phases``; ``answer`` is -1 (none), 0 (real) or 1 (synthetic);
    ``confidence``, ``kl_grade`` and ``duration_ms`` are floats with NaN
    where missing.
    """

    study: str | None
    reader: np.ndarray  # (n,) int
    case: np.ndarray  # (n,) int
    phase: np.ndarray  # (n,) int
    answer: np.ndarray  # (n,) int8
    confidence: np.ndarray  # (n,) float
    kl_grade: np.ndarray  # (n,) float
    duration_ms: np.ndarray  # (n,) float
    phases: list[str]
    readers: list[Any]  # reader ids
    reader_profession: list[Any]
    reader_experience_years: list[Any]
    reader_kind: list[Any]
    reader_model: list[Any]
    cases: list[Any]  # case ids
    case_role: list[Any]
    case_truth: list[Any]
    case_image: list[Any]
    case_reference_kl: list[Any]
    case_generator: list[Any]
    # (n,) bool: the answer is a case's second showing (Study.repeat_cases).
    repeat: np.ndarray | None = None


class _Table:
    """The rows as columns of numpy arrays, with integer codes for ids.

    Only the per-answer fields become columns; fields that belong to a case
    (image, generator) or a reader (profession, experience) are read from
    the first row that has them, which keeps 800,000 rows fast.
    """

    # One or the other: the rows it was built from, or the columns.
    rows: list[Mapping[str, Any]] | None
    columns: AnswerColumns | None

    def __init__(self, rows: list[Mapping[str, Any]], messages: list[str]) -> None:
        n = len(rows)
        self.n = n
        self.rows, self.columns = rows, None

        def col(key: str) -> list[Any]:
            try:
                return [r[key] for r in rows]
            except KeyError:
                return [r.get(key) for r in rows]

        def factor(key: str) -> tuple[np.ndarray, list[Any]]:
            values = col(key)
            seen = list(dict.fromkeys(values))
            index = {v: i for i, v in enumerate(seen)}
            return np.fromiter(map(index.__getitem__, values), np.int64, n), seen

        self.reader, self.reader_ids = factor("reader")
        self.case, self.case_ids = factor("case")
        self.phase_code, phases = factor("phase")
        self.role_code, roles = factor("role")
        self.truth_code, truths = factor("truth")
        self.study = rows[0].get("study") if n else None

        phase_names = np.array([p if p in PHASES else None for p in phases] + [None])
        role_names = np.array([r if r in ROLES else None for r in roles] + [None])
        self.phase = phase_names[self.phase_code]
        self.role = role_names[self.role_code]
        truth_map = np.array(
            [{REAL: 0, SYNTHETIC: 1}.get(t, -1) for t in truths] + [-1]
        )
        self.truth = truth_map[self.truth_code]
        for name, values, allowed in (
            ("phase", phases, PHASES),
            ("role", roles, ROLES),
            ("truth", truths, SOURCES),
        ):
            bad = [v for v in values if v not in allowed]
            if bad:
                messages.append(
                    f"Rows with an unknown {name} {sorted(map(str, bad))} were ignored."
                )
        answer_code, answers = factor("answer")
        answer_map = {None: -1, "": -1, REAL: 0, SYNTHETIC: 1}
        bad_answers = [a for a in answers if a not in answer_map]
        if bad_answers:
            messages.append(
                f"Unknown answers {sorted(map(str, bad_answers))} were treated as missing."
            )
        lookup = np.array([answer_map.get(a, -1) for a in answers] + [-1], np.int8)
        self.answer = lookup[answer_code]
        self.confidence = _floats(col("confidence"))
        self.kl = _floats(col("kl_grade"))
        # The reference grade belongs to the case: read it once per case.
        case_first = (
            np.unique(self.case, return_index=True)[1] if n else np.zeros(0, np.int64)
        )
        reference = _floats(self.field("reference_kl", case_first))
        self.reference_kl = reference[self.case] if n else np.array([])
        self.duration = _floats(col("duration_ms"))
        self.valid = (self.truth >= 0) & (self.phase != None) & (self.role != None)  # noqa: E711

        first = (
            np.unique(self.reader, return_index=True)[1] if n else np.zeros(0, np.int64)
        )
        self.reader_info = {
            self.reader_ids[self.reader[i]]: (
                rows[i].get("reader_profession") or "unknown",
                rows[i].get("reader_experience_years"),
                rows[i].get("reader_kind") or "human",
            )
            for i in first
        }

    @classmethod
    def from_columns(cls, c: AnswerColumns, messages: list[str]) -> _Table:
        """The same table from columns: codes are taken as they come."""
        table = cls.__new__(cls)
        n = len(c.reader)
        table.n, table.rows, table.columns = n, None, c
        table.study = c.study
        table.reader, table.reader_ids = np.asarray(c.reader, np.int64), list(c.readers)
        table.case, table.case_ids = np.asarray(c.case, np.int64), list(c.cases)
        for name, values, allowed in (
            ("phase", c.phases, PHASES),
            ("role", c.case_role, ROLES),
            ("truth", c.case_truth, SOURCES),
        ):
            bad = sorted({str(v) for v in values if v not in allowed})
            if bad:
                messages.append(f"Rows with an unknown {name} {bad} were ignored.")
        phase_names = np.array([p if p in PHASES else None for p in c.phases] + [None])
        table.phase = phase_names[np.asarray(c.phase, np.int64)]
        roles = np.array([r if r in ROLES else None for r in c.case_role] + [None])
        table.role = roles[table.case]
        truths = np.array(
            [{REAL: 0, SYNTHETIC: 1}.get(t, -1) for t in c.case_truth] + [-1]
        )
        table.truth = truths[table.case]
        table.answer = np.asarray(c.answer, np.int8)
        table.confidence = np.asarray(c.confidence, float)
        table.kl = np.asarray(c.kl_grade, float)
        table.reference_kl = _floats(list(c.case_reference_kl))[table.case]
        table.duration = np.asarray(c.duration_ms, float)
        table.valid = (table.truth >= 0) & (table.phase != None) & (table.role != None)  # noqa: E711
        present = np.unique(table.reader)
        table.reader_info = {
            c.readers[r]: (
                c.reader_profession[r] or "unknown",
                c.reader_experience_years[r],
                c.reader_kind[r] or "human",
            )
            for r in present
        }
        return table

    def field(self, key: str, index: Iterable[int | np.integer]) -> list[Any]:
        """One field of the rows at ``index`` (case- or reader-level data)."""
        if self.rows is None:
            assert self.columns is not None
            per_case = {
                "image": self.columns.case_image,
                "generator": self.columns.case_generator,
                "reference_kl": self.columns.case_reference_kl,
            }[key]
            return [per_case[self.case[i]] for i in index]
        return [self.rows[i].get(key) for i in index]


def _floats(values: list[Any]) -> np.ndarray:
    try:
        # numpy turns None into NaN on its own.
        return np.array(values, dtype=float).reshape(len(values))
    except (TypeError, ValueError):
        return np.array(
            [math.nan if v is None or v == "" else float(v) for v in values], float
        ).reshape(len(values))


class _Phase:
    """One phase's main cases as readers x cases matrices (NaN / -1 missing)."""

    def __init__(self, table: _Table, phase: str, messages: list[str]) -> None:
        mask = table.valid & (table.phase == phase) & (table.role == "main")
        idx = np.nonzero(mask)[0]
        self.name = phase
        r_codes, r_inv, _ = _relabel(table.reader[idx], len(table.reader_ids))
        c_codes, c_inv, c_first = _relabel(table.case[idx], len(table.case_ids))
        # Readers in a stable, readable order (by id), cases likewise.
        r_order = np.argsort([str(table.reader_ids[c]) for c in r_codes], kind="stable")
        c_order = np.argsort([str(table.case_ids[c]) for c in c_codes], kind="stable")
        r_rank = np.empty_like(r_order)
        r_rank[r_order] = np.arange(len(r_order))
        c_rank = np.empty_like(c_order)
        c_rank[c_order] = np.arange(len(c_order))
        ri, ci = r_rank[r_inv], c_rank[c_inv]
        self.readers = [table.reader_ids[r_codes[j]] for j in r_order]
        self.cases = [table.case_ids[c_codes[j]] for j in c_order]
        first = idx[c_first[c_order]]
        self.images = [
            str(v) if v is not None else "" for v in table.field("image", first)
        ]
        self.truth = table.truth[first] == 1
        self.generator = [g or "" for g in table.field("generator", first)]
        self.reference_kl = table.reference_kl[first]
        n_r, n_c = len(self.readers), len(self.cases)
        self.n_rows = len(idx)
        flat = ri * n_c + ci
        dup = len(flat) - int((np.bincount(flat, minlength=n_r * n_c) > 0).sum())
        if dup:
            messages.append(
                f"{phase}: {dup} repeated answers by the same reader to the same case; "
                "the last one is used."
            )
        if len(idx):
            conflict = table.truth[idx] != self.truth[ci].astype(int)
            if conflict.any():
                messages.append(
                    f"{phase}: some cases have conflicting truth labels; the first "
                    "row's label is used."
                )

        def matrix(values: np.ndarray, fill: float, dtype: Any) -> np.ndarray:
            out = np.full((n_r, n_c), fill, dtype=dtype)
            out[ri, ci] = values[idx]
            return out

        self.answer = matrix(table.answer, -1, np.int8)
        self.confidence = matrix(table.confidence, math.nan, float)
        self.kl = matrix(table.kl, math.nan, float)
        self.duration = matrix(table.duration, math.nan, float)
        self.info = [table.reader_info[r] for r in self.readers]


# ---------------------------------------------------------------- helpers


def _relabel(codes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codes present, each entry's position among them, and each's first entry.

    The same as ``np.unique(codes, return_inverse=True, return_index=True)``
    for codes in ``0..size-1``, in linear time.
    """
    present = np.bincount(codes, minlength=size) > 0
    used = np.nonzero(present)[0]
    position = np.cumsum(present) - 1
    first = np.full(size, len(codes), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(codes)))
    return used, position[codes], first[used]


def _grade(value: float) -> int | None:
    return None if math.isnan(value) else int(value)


def _missing(note: str) -> dict[str, Any]:
    return {"estimate": None, "note": note}


def _t_mean(
    values: np.ndarray, level: float = 0.95, bounds: tuple[float, float] = (0.0, 1.0)
) -> dict[str, Any]:
    """Mean across readers with a t interval, kept inside the possible range."""
    x = np.asarray(values, float)
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return {"estimate": None, "n": 0, "note": "No readers with a value."}
    mean = float(x.mean())
    if n < 2:
        return {
            "estimate": mean,
            "se": None,
            "ci": None,
            "n": 1,
            "note": "One reader: no interval across readers.",
        }
    se = float(x.std(ddof=1) / math.sqrt(n))
    q = float(stats.t.ppf(0.5 + level / 2, n - 1))
    ci = [max(mean - q * se, bounds[0]), min(mean + q * se, bounds[1])]
    return {"estimate": mean, "se": se, "ci": ci, "n": n}


def _wilson_arrays(
    k: np.ndarray, n: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore", divide="ignore"):
        low, high = proportion_confint(k, np.maximum(n, 1), 1 - level, method="wilson")
        est = np.where(n > 0, k / np.maximum(n, 1), np.nan)
    low = np.where(n > 0, np.minimum(low, est), np.nan)
    high = np.where(n > 0, np.maximum(high, est), np.nan)
    return est, low, high


# A place in the report, built only when a value there needs a message:
# (parent, key, is_index), or the root's name.
_Path = tuple[Any, Any, bool] | str


def _path_text(path: _Path) -> str:
    parts = []
    while isinstance(path, tuple):
        path, key, is_index = path
        parts.append(f"[{key}]" if is_index else f".{key}")
    return path + "".join(reversed(parts))


def _clean(value: Any, path: _Path, messages: list[str], explained: bool) -> Any:
    """The report as plain JSON values: NaN and infinities become null, each
    named in ``messages`` unless a ``note`` beside it explains it. Plain
    values, by far the most, are checked first (800,000-answer reports hold
    some 100,000 of them)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        if math.isfinite(value):
            return value
    elif kind is dict:
        here = bool(value.get("note"))
        return {
            str(k): _clean(v, (path, k, False), messages, here)
            for k, v in value.items()
        }
    elif kind is list or kind is tuple:
        return [
            _clean(v, (path, i, True), messages, explained) for i, v in enumerate(value)
        ]
    elif kind is np.ndarray:
        if value.dtype.kind in "iub" or (
            value.dtype.kind == "f" and np.isfinite(value).all()
        ):
            return value.tolist()
        return _clean(value.tolist(), path, messages, explained)
    else:
        converted = plain(value)
        if type(converted) is not float:
            return (
                _clean(converted, path, messages, explained)
                if converted is not value
                else converted
            )
        value = converted
        if math.isfinite(value):
            return value
    if not explained:
        text = "infinite" if math.isinf(value) else "not computable"
        messages.append(f"{_path_text(path)}: {text}, shown as null.")
    return None


# ---------------------------------------------------------------- detection


def _detection(
    ph: _Phase, *, margin: float, level: float, n_boot: int, seed: int
) -> dict[str, Any]:
    n_r, n_c = ph.answer.shape
    truth = ph.truth
    truth_labels = np.where(truth, SYNTHETIC, REAL).astype(object)
    answered = ph.answer >= 0
    label_of = np.array([None, REAL, SYNTHETIC], dtype=object)
    has_conf = bool(np.isfinite(ph.confidence).any())
    notes = []

    readers = []
    accuracies = np.full(n_r, np.nan)
    far = np.full(n_r, np.nan)
    raf = np.full(n_r, np.nan)
    for j, reader in enumerate(ph.readers):
        conf = ph.confidence[j] if has_conf else None
        s = detection_summary(
            truth_labels, label_of[ph.answer[j] + 1], conf, level=level
        )
        accuracies[j] = s.accuracy.estimate
        far[j] = s.fake_as_real.estimate
        raf[j] = s.real_as_fake.estimate
        row = {
            "reader": reader,
            "profession": ph.info[j][0],
            "experience_years": ph.info[j][1],
            "kind": ph.info[j][2],
        }
        row.update(s.to_dict())
        d = ph.duration[j][answered[j]]
        d = d[np.isfinite(d)]
        row["median_seconds"] = float(np.median(d) / 1000) if len(d) else None
        readers.append(row)

    correct = np.where(answered, (ph.answer == truth[None, :]).astype(float), np.nan)
    reader_idx = np.repeat(np.arange(n_r), n_c)
    case_idx = np.tile(np.arange(n_c), n_r)
    flat = correct.reshape(-1)
    pooled = pooled_accuracy_gee(flat, reader_idx, case_idx, level=level)
    pc = mrmc_percent_correct(correct, level=level)
    if has_conf:
        auc = mrmc_auc(truth, ph.confidence, level=level).to_dict()
    else:
        auc = _missing("No confidence ratings in this phase: no ROC analysis.")

    syn_answers = answered & truth[None, :]
    real_answers = answered & ~truth[None, :]
    asym = {
        "fake_as_real": {
            "pooled": proportion_ci(
                int((syn_answers & (ph.answer == 0)).sum()), int(syn_answers.sum())
            ).to_dict(),
            "mean_over_readers": _t_mean(far, level),
        },
        "real_as_fake": {
            "pooled": proportion_ci(
                int((real_answers & (ph.answer == 1)).sum()), int(real_answers.sum())
            ).to_dict(),
            "mean_over_readers": _t_mean(raf, level),
        },
        "difference": paired_difference_test(far, raf, level=level).to_dict(),
    }
    asym["difference"]["description"] = (
        "fake-as-real rate minus real-as-fake rate, paired by reader"
    )

    equivalence = {
        "margin": margin,
        "readers": equivalence_test(accuracies, margin=margin).to_dict(),
    }
    if math.isfinite(pc.se):
        equivalence["mrmc"] = tost(
            pc.estimate, pc.se, pc.df, 0.5 - margin, 0.5 + margin, n=pc.n_readers
        ).to_dict()
    else:
        equivalence["mrmc"] = _missing("No MRMC percent correct to test.")

    answers_f = np.where(answered, ph.answer.astype(float), np.nan)
    agreement: dict[str, Any] = {}
    if n_r >= 2:
        complete = answered.all(axis=0)
        n_syn_calls = (ph.answer[:, complete] == 1).sum(axis=0)
        counts = np.stack([n_r - n_syn_calls, n_syn_calls], axis=1)
        fk = fleiss_kappa(counts, level=level).to_dict()
        if (~complete).any():
            fk["note"] = " ".join(
                filter(
                    None,
                    [
                        fk.get("note"),
                        f"{int((~complete).sum())} cases not answered by every "
                        "reader were left out.",
                    ],
                )
            )
        agreement["fleiss_kappa"] = fk
        agreement["krippendorff_alpha"] = krippendorff_alpha(
            answers_f, "nominal", n_boot=n_boot, seed=seed, confidence_level=level
        ).to_dict()
        if has_conf:
            agreement["krippendorff_alpha_confidence"] = krippendorff_alpha(
                ph.confidence,
                "ordinal",
                n_boot=n_boot,
                seed=seed,
                confidence_level=level,
            ).to_dict()
        km = cohen_kappa_matrix(answers_f, categories=[0.0, 1.0])
        off = km.estimate[~np.eye(n_r, dtype=bool)]
        agreement["cohen_kappa"] = {
            "readers": list(ph.readers),
            "matrix": km.estimate,
            "n": km.n,
            "mean": float(np.nanmean(off)) if np.isfinite(off).any() else None,
            "note": km.note,
        }
    else:
        msg = "Agreement between readers needs at least two readers."
        agreement = {
            "fleiss_kappa": _missing(msg),
            "krippendorff_alpha": _missing(msg),
            "cohen_kappa": _missing(msg),
        }

    n_ans = answered.sum(axis=0)
    n_real_calls = (ph.answer == 0).sum(axis=0)
    frac, low, high = _wilson_arrays(n_real_calls, n_ans, level)
    with np.errstate(invalid="ignore"):
        conf_sum = np.nansum(ph.confidence, axis=0)
        conf_n = np.isfinite(ph.confidence).sum(axis=0)
        mean_conf = np.where(conf_n > 0, conf_sum / np.maximum(conf_n, 1), np.nan)
    order = sorted(
        range(n_c), key=lambda i: (-np.nan_to_num(frac[i], nan=-1), str(ph.cases[i]))
    )
    images = []
    for rank, i in enumerate(order, start=1):
        images.append(
            {
                "rank": rank,
                "case": ph.cases[i],
                "image": ph.images[i],
                "truth": SYNTHETIC if truth[i] else REAL,
                "generator": ph.generator[i],
                "reference_kl": None
                if np.isnan(ph.reference_kl[i])
                else int(ph.reference_kl[i]),
                "n": int(n_ans[i]),
                "n_called_real": int(n_real_calls[i]),
                "fraction_real": frac[i],
                "ci": [low[i], high[i]],
                "mean_confidence": mean_conf[i] if conf_n[i] else None,
                "note": None if n_ans[i] else "No reader answered this case.",
            }
        )

    called_real = np.where(answered, (ph.answer == 0).astype(float), np.nan)
    generators = []
    gen = np.array(ph.generator, dtype=object)
    for g in sorted({ph.generator[i] for i in range(n_c) if truth[i]}):
        cols = truth & (gen == g)
        share = pooled_accuracy_gee(
            called_real[:, cols].reshape(-1),
            np.repeat(np.arange(n_r), cols.sum()),
            np.tile(np.nonzero(cols)[0], n_r),
            level=level,
        ).to_dict()
        share["description"] = "share of answers calling these synthetic images real"
        generators.append(
            {
                "generator": g or "(not recorded)",
                "n_images": int(cols.sum()),
                "called_real": share,
            }
        )

    subgroups = {
        "profession": _subgroups(
            ph, correct, accuracies, [i[0] for i in ph.info], level
        ),
        "experience": _subgroups(
            ph, correct, accuracies, [experience_band(i[1]) for i in ph.info], level
        ),
    }

    timing = _reading_time(ph, answered, level)

    roc: dict[str, Any] = {"readers": [], "pooled": None}
    if has_conf:
        for j, reader in enumerate(ph.readers):
            fpr, tpr = roc_points(truth, ph.confidence[j])
            roc["readers"].append(
                {
                    "reader": reader,
                    "fpr": fpr,
                    "tpr": tpr,
                    "auc": readers[j]["auc"]["estimate"],
                    "note": readers[j]["auc"]["note"],
                }
            )
        fpr, tpr = roc_points(np.tile(truth, n_r), ph.confidence.reshape(-1))
        roc["pooled"] = {
            "fpr": fpr,
            "tpr": tpr,
            "note": "Ratings of all readers pooled; its area is not the reader-averaged AUC.",
        }
    else:
        roc["note"] = "No confidence ratings: no ROC curves."

    n_missing = int((~answered).sum())
    if n_missing:
        notes.append(f"{n_missing} reader-case pairs have no real/synthetic answer.")
    return {
        "phase": ph.name,
        "n_readers": n_r,
        "n_cases": n_c,
        "n_real": int((~truth).sum()),
        "n_synthetic": int(truth.sum()),
        "n_answers": int(answered.sum()),
        "n_missing": n_missing,
        "readers": readers,
        "pooled_accuracy": pooled.to_dict(),
        "mrmc_percent_correct": pc.to_dict(),
        "mrmc_auc": auc,
        "error_asymmetry": asym,
        "equivalence": equivalence,
        "agreement": agreement,
        "images": images,
        "by_generator": generators,
        "subgroups": subgroups,
        "reading_time": timing,
        "roc": roc,
        "note": " ".join(notes) or None,
    }


def _subgroups(
    ph: _Phase,
    correct: np.ndarray,
    accuracies: np.ndarray,
    labels: list[Any],
    level: float,
) -> list[dict[str, Any]]:
    out = []
    names = np.array([str(x) for x in labels], dtype=object)
    n_c = correct.shape[1]
    band_order = [b[2] for b in EXPERIENCE_BANDS] + ["20+ years", "unknown"]
    for g in sorted(
        set(names), key=lambda x: (band_order.index(x) if x in band_order else -1, x)
    ):
        rows = np.nonzero(names == g)[0]
        sub = correct[rows]
        pooled = pooled_accuracy_gee(
            sub.reshape(-1),
            np.repeat(np.arange(len(rows)), n_c),
            np.tile(np.arange(n_c), len(rows)),
            level=level,
        )
        out.append(
            {
                "group": g,
                "n_readers": len(rows),
                "readers": [ph.readers[i] for i in rows],
                "mean_accuracy": _t_mean(accuracies[rows], level),
                "pooled_accuracy": pooled.to_dict(),
            }
        )
    return out


def _reading_time(ph: _Phase, answered: np.ndarray, level: float) -> dict[str, Any]:
    d = np.where(answered, ph.duration, np.nan) / 1000.0
    out: dict[str, Any] = {"unit": "seconds"}
    medians = {}
    for name, cols in ((REAL, ~ph.truth), (SYNTHETIC, ph.truth)):
        x = d[:, cols]
        v = x[np.isfinite(x)]
        if len(v):
            q1, med, q3 = np.percentile(v, [25, 50, 75])
            out[name] = {
                "n": len(v),
                "median": med,
                "q1": q1,
                "q3": q3,
                "mean": v.mean(),
            }
        else:
            out[name] = {"n": 0, "median": None, "note": "No timed answers."}
        with warnings.catch_warnings():
            # A reader with no timed answer on one kind of image has no median.
            warnings.simplefilter("ignore", RuntimeWarning)
            medians[name] = (
                np.nanmedian(x, axis=1) if x.shape[1] else np.full(len(x), np.nan)
            )
    diff = paired_difference_test(
        medians[REAL], medians[SYNTHETIC], level=level
    ).to_dict()
    diff["description"] = "per-reader median time on real minus on synthetic images"
    out["difference"] = diff
    return out


# ---------------------------------------------------------------- grading


def _grading(ph: _Phase, *, level: float, n_boot: int, seed: int) -> dict[str, Any]:
    n_r, n_c = ph.kl.shape
    graded = np.isfinite(ph.kl)
    ref = ph.reference_kl
    has_ref = np.isfinite(ref)
    notes = []
    bad = graded & ~np.isin(ph.kl, KL_GRADES)
    if bad.any():
        notes.append(
            f"{int(bad.sum())} grades outside {KL.range_text('-')} were ignored."
        )
        graded &= ~bad
    kl = np.where(graded, ph.kl, np.nan)
    if (~has_ref).any():
        notes.append(
            f"{int((~has_ref).sum())} cases have no reference grade and are left out "
            "of agreement with the reference."
        )
    masks = {REAL: ~ph.truth & has_ref, SYNTHETIC: ph.truth & has_ref, "all": has_ref}
    readers = []
    kappas = {REAL: np.full(n_r, np.nan), SYNTHETIC: np.full(n_r, np.nan)}
    for j, reader in enumerate(ph.readers):
        row: dict[str, Any] = {
            "reader": reader,
            "profession": ph.info[j][0],
            "experience_years": ph.info[j][1],
            "kind": ph.info[j][2],
        }
        for source, cols in masks.items():
            g = kl[j, cols]
            r_ = ref[cols]
            ok = np.isfinite(g)
            g, r_ = g[ok], r_[ok]
            n = len(g)
            if n == 0:
                row[source] = {
                    "n": 0,
                    "note": "No graded images with a reference grade.",
                }
                continue
            kappa = cohen_kappa(
                g, r_, weights="quadratic", categories=KL_GRADES, level=level
            )
            if source in kappas:
                kappas[source][j] = kappa.estimate
            diff = g - r_
            row[source] = {
                "n": n,
                "kappa_quadratic": kappa.to_dict(),
                "exact": proportion_ci(
                    int((diff == 0).sum()), n, level=level
                ).to_dict(),
                "within_one": proportion_ci(
                    int((np.abs(diff) <= 1).sum()), n, level=level
                ).to_dict(),
                "mean_difference": float(diff.mean()),
            }
        readers.append(row)

    summary: dict[str, Any] = {}
    for source in SOURCES:
        cols = masks[source]
        sub = kl[:, cols]
        exact = np.where(
            np.isfinite(sub), (sub == ref[cols][None, :]).astype(float), np.nan
        )
        pooled_exact = pooled_accuracy_gee(
            exact.reshape(-1),
            np.repeat(np.arange(n_r), cols.sum()),
            np.tile(np.nonzero(cols)[0], n_r),
            level=level,
        ).to_dict()
        # A test against 50 % means nothing for grading agreement.
        pooled_exact.pop("p_value")
        pooled_exact.pop("null")
        pooled_exact["description"] = "share of grades equal to the reference grade"
        summary[source] = {
            "mean_kappa_quadratic": _t_mean(kappas[source], level, (-1.0, 1.0)),
            "pooled_exact": pooled_exact,
        }
    kdiff = paired_difference_test(
        kappas[REAL], kappas[SYNTHETIC], level=level
    ).to_dict()
    kdiff["description"] = (
        "per-reader quadratic kappa on real minus on synthetic images"
    )
    summary["kappa_difference"] = kdiff

    confusion: dict[str, Any] = {"grades": list(KL_GRADES)}
    for source in SOURCES:
        cols = masks[source]
        g = kl[:, cols]
        r_ = np.broadcast_to(ref[cols], g.shape)
        ok = np.isfinite(g)
        table = np.zeros((5, 5), dtype=int)
        np.add.at(table, (r_[ok].astype(int), g[ok].astype(int)), 1)
        confusion[source] = table
    confusion["orientation"] = "rows: reference grade, columns: reader's grade"

    alpha: dict[str, Any] = {}
    for name, cols in (
        ("all", np.ones(n_c, bool)),
        (REAL, ~ph.truth),
        (SYNTHETIC, ph.truth),
    ):
        if n_r < 2:
            alpha[name] = _missing(
                "Agreement between readers needs at least two readers."
            )
        elif not cols.any():
            alpha[name] = _missing(f"No {name} images.")
        else:
            alpha[name] = krippendorff_alpha(
                kl[:, cols], "ordinal", n_boot=n_boot, seed=seed, confidence_level=level
            ).to_dict()

    images = []
    for i in range(n_c):
        g = kl[:, i]
        g = g[np.isfinite(g)]
        r_i = None if np.isnan(ref[i]) else int(ref[i])
        entry: dict[str, Any] = {
            "case": ph.cases[i],
            "image": ph.images[i],
            "truth": SYNTHETIC if ph.truth[i] else REAL,
            "generator": ph.generator[i],
            "reference_kl": r_i,
            "n": len(g),
        }
        if len(g):
            counts = np.bincount(g.astype(int), minlength=5)
            entry.update(
                mean_grade=float(g.mean()),
                modal_grade=int(counts.argmax()),
                counts=counts,
                exact=float((g == r_i).mean()) if r_i is not None else None,
                within_one=float((np.abs(g - r_i) <= 1).mean())
                if r_i is not None
                else None,
            )
        else:
            entry["note"] = "No reader graded this image."
        images.append(entry)

    n_missing = int((~graded).sum())
    if n_missing:
        notes.append(f"{n_missing} reader-case pairs have no {KL.abbreviation} grade.")
    return {
        "phase": ph.name,
        "n_readers": n_r,
        "n_cases": n_c,
        "n_real": int((~ph.truth).sum()),
        "n_synthetic": int(ph.truth.sum()),
        "n_grades": int(graded.sum()),
        "n_missing": n_missing,
        "readers": readers,
        "summary": summary,
        "confusion": confusion,
        "inter_reader_alpha": alpha,
        "images": images,
        "note": " ".join(notes) or None,
    }


# ---------------------------------------------------------------- attention


def _attention(table: _Table) -> dict[str, Any]:
    idx = np.nonzero(table.valid & (table.role == "attention"))[0]
    per_reader: dict[Any, dict[str, Any]] = {}
    for i in idx:
        reader = table.reader_ids[table.reader[i]]
        entry = per_reader.setdefault(
            reader,
            {"reader": reader, "n": 0, "n_failed": 0, "n_unanswered": 0, "failed": []},
        )
        entry["n"] += 1
        checks = []
        if table.answer[i] >= 0:
            checks.append(("realism", int(table.answer[i]) == int(table.truth[i])))
        if np.isfinite(table.kl[i]) and np.isfinite(table.reference_kl[i]):
            checks.append(("grade", table.kl[i] == table.reference_kl[i]))
        if not checks:
            entry["n_unanswered"] += 1
            continue
        wrong = [name for name, ok in checks if not ok]
        if wrong:
            entry["n_failed"] += 1
            entry["failed"].append(
                {
                    "phase": table.phase[i],
                    "case": table.case_ids[table.case[i]],
                    "image": table.field("image", [i])[0],
                    "failed": wrong,
                    "truth": SYNTHETIC if table.truth[i] == 1 else REAL,
                    "answer": [None, REAL, SYNTHETIC][table.answer[i] + 1],
                    "reference_kl": _grade(table.reference_kl[i]),
                    "kl_grade": _grade(table.kl[i]),
                }
            )
    readers = sorted(per_reader.values(), key=lambda e: str(e["reader"]))
    note = None if readers else "The study has no answered attention checks."
    return {
        "n_checks": int(len(idx)),
        "n_readers_failing": sum(1 for e in readers if e["n_failed"]),
        "readers": readers,
        "rule": (
            "An attention check fails when the real/synthetic answer differs from the "
            f"truth or the {KL.abbreviation} grade differs from the reference grade."
        ),
        "note": note,
    }


# ---------------------------------------------------------------- machine readers


def _grade_agreement(g: np.ndarray, ref: np.ndarray, level: float) -> dict[str, Any]:
    ok = np.isfinite(g) & np.isfinite(ref) & np.isin(g, KL_GRADES)
    g, ref = g[ok], ref[ok]
    if not len(g):
        return {"n": 0, "note": "No graded images with a reference grade."}
    diff = g - ref
    return {
        "n": len(g),
        "kappa_quadratic": cohen_kappa(
            g, ref, weights="quadratic", categories=KL_GRADES, level=level
        ).to_dict(),
        "exact": proportion_ci(int((diff == 0).sum()), len(g), level=level).to_dict(),
    }


def _machine_readers(
    rows: list[Mapping[str, Any]], level: float, messages: list[str]
) -> list[dict[str, Any]]:
    """Each machine reader's figures per phase, on the same main cases as people.

    A classifier is one fixed reader: its accuracy has a Wilson interval over
    images and its AUC DeLong's, with no reader variance to add.
    """
    if not rows:
        return []
    table = _Table(rows, messages)
    models: dict[Any, str] = {}
    for r in rows:
        models.setdefault(r["reader"], r.get("reader_model") or "")
    label_of = np.array([None, REAL, SYNTHETIC], dtype=object)
    out = []
    for phase in PHASES:
        if not (table.valid & (table.role == "main") & (table.phase == phase)).any():
            continue
        ph = _Phase(table, phase, messages)
        truth_labels = np.where(ph.truth, SYNTHETIC, REAL).astype(object)
        for j, reader in enumerate(ph.readers):
            entry: dict[str, Any] = {
                "reader": reader,
                "model": models[reader],
                "phase": phase,
                "detection": None,
                "grading": None,
            }
            if (ph.answer[j] >= 0).any():
                conf = ph.confidence[j]
                entry["detection"] = detection_summary(
                    truth_labels,
                    label_of[ph.answer[j] + 1],
                    conf if np.isfinite(conf).any() else None,
                    level=level,
                ).to_dict()
            if np.isfinite(ph.kl[j]).any():
                entry["grading"] = {
                    source: _grade_agreement(
                        ph.kl[j, cols], ph.reference_kl[cols], level
                    )
                    for source, cols in ((REAL, ~ph.truth), (SYNTHETIC, ph.truth))
                }
            out.append(entry)
    return out


# ---------------------------------------------------------------- public


def build_report(
    rows: Iterable[Mapping[str, Any]] | AnswerColumns,
    *,
    study: str | None = None,
    margin: float = 0.1,
    level: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
    kl_grading: bool = True,
) -> Report:
    """Build the full study report from final answers.

    Parameters
    ----------
    rows : iterable of dict, or AnswerColumns
        One per final answer (or the same as columns), with the keys of ``judgments.csv`` plus
        ``role``: ``study, reader, reader_profession, reader_experience_years,
        phase, position, case, image, role, truth, reference_kl, generator,
        answer, confidence, kl_grade, correct, duration_ms``.
    study : str, optional
        Study name; by default the ``study`` of the first row.
    kl_grading : bool
        Whether the study's protocol asks for KL grades. A study that grades
        on its own questions instead (BI-RADS, say) is not told that it has
        no KL grades.
    margin : float
        Equivalence margin around 50 % accuracy for the TOST.
    level : float
        Confidence level of every interval.
    n_boot : int
        Bootstrap resamples for Krippendorff's alpha.
    seed : int
        Seed of those bootstraps, so the same answers give the same report.

    Returns
    -------
    Report
        ``study, version, settings, counts, readers, attention, detection,
        grading, machine_readers, retest, messages``; :meth:`Report.to_json`
        gives it as JSON. ``detection`` and
        ``grading`` map a phase name to its section; a phase with
        real/synthetic answers (a detection or combined phase) gets a
        detection section, a phase with KL grades a grading section. Practice
        and attention-check cases are excluded from every statistic;
        attention-check failures are listed per reader. Rows whose
        ``reader_kind`` is "machine" are in none of these: they get their
        own figures per reader and phase in ``machine_readers`` (see
        :func:`split_readers`); each reader entry says its ``kind``.

    Notes
    -----
    Which statistic answers which question, and why each method was chosen,
    is set out in ``docs/statistics.md``. In short: per-reader rates with
    Wilson intervals [1]_; pooled accuracy by GEE with readers and images as
    crossed clusters [2]_; reader-averaged percent correct and AUC by
    Obuchowski-Rockette with Hillis' df [3]_ [4]_; equivalence to chance by
    TOST [5]_; agreement by Fleiss' kappa and Krippendorff's alpha; grades
    against the reference by quadratic-weighted kappa, separately for real
    and synthetic images.

    References
    ----------
    .. [1] Wilson (1927), doi:10.1080/01621459.1927.10502953
    .. [2] Cameron, Gelbach & Miller (2011), doi:10.1198/jbes.2010.07136
    .. [3] Obuchowski & Rockette (1995), doi:10.1080/03610919508813243
    .. [4] Hillis (2007), doi:10.1002/sim.2532
    .. [5] Schuirmann (1987), doi:10.1007/BF01068419
    """
    rows, repeat_pairs = split_repeats(rows)
    rows, machine_rows = split_readers(rows)
    messages: list[str] = []
    if isinstance(rows, AnswerColumns):
        table = _Table.from_columns(rows, messages)
    else:
        table = _Table(list(rows), messages)
    main = table.valid & (table.role == "main")
    report: dict[str, Any] = {
        "study": study if study is not None else table.study,
        "version": REPORT_VERSION,
        "settings": {"level": level, "margin": margin, "n_boot": n_boot, "seed": seed},
        "counts": {
            "rows": table.n,
            "main": int(main.sum()),
            "practice": int((table.valid & (table.role == "practice")).sum()),
            "attention": int((table.valid & (table.role == "attention")).sum()),
            "ignored": int((~table.valid).sum()),
            "machine": len(machine_rows),
            "repeats": len(repeat_pairs),
        },
    }
    per_phase = {
        p: np.bincount(
            table.reader[main & (table.phase == p)], minlength=len(table.reader_ids)
        )
        for p in PHASES
    }
    readers = []
    for reader in sorted(table.reader_info, key=str):
        prof, years, kind = table.reader_info[reader]
        code = table.reader_ids.index(reader)
        readers.append(
            {
                "reader": reader,
                "profession": prof,
                "experience_years": years,
                "experience_band": experience_band(years),
                "kind": kind,
                "answers": {p: int(per_phase[p][code]) for p in PHASES},
            }
        )
    report["readers"] = readers
    report["attention"] = _attention(table)

    detection: dict[str, Any] = {}
    grading: dict[str, Any] = {}
    for phase in PHASES:
        in_phase = main & (table.phase == phase)
        if not in_phase.any():
            continue
        ph = _Phase(table, phase, messages)
        if (table.answer[in_phase] >= 0).any():
            detection[phase] = _detection(
                ph, margin=margin, level=level, n_boot=n_boot, seed=seed
            )
        elif phase != "grading":
            messages.append(f"The {phase} phase has no real/synthetic answers yet.")
        if np.isfinite(table.kl[in_phase]).any():
            grading[phase] = _grading(ph, level=level, n_boot=n_boot, seed=seed)
        elif phase == "grading" and kl_grading:
            messages.append(f"The grading phase has no {KL.abbreviation} grades yet.")
    if not detection:
        messages.append("No real/synthetic answers: no detection statistics.")
    if not grading and kl_grading:
        messages.append(f"No {KL.abbreviation} grades: no grading statistics.")
    report["detection"] = detection
    report["grading"] = grading
    report["machine_readers"] = _machine_readers(machine_rows, level, messages)
    report["retest"] = _retest(repeat_pairs, level)
    cleaned = _clean(report, "report", messages, False)
    cleaned["messages"] = messages
    return Report.from_json(cleaned)
