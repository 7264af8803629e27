"""The answers to a study's own questions: inter-reader agreement and spread.

A study admin may ask questions beside the built-in ones (a BI-RADS
category, a realism Likert, a nominal choice). For each, the readers'
agreement is the mean over reader pairs of Cohen's kappa on the images both
answered: quadratic-weighted on an ordinal scale (Cohen 1968), unweighted on
a nominal one. How the answers spread is given per source (real, synthetic):
the count of each value and, on an ordinal scale, the mean code.

Where the pool holds reference values on the question's scale (a BI-RADS
category per mammogram), :func:`reference_agreement` scores the answers
against them as the KL grades are scored in the reference study: exact and
within-one agreement (pooled with readers and images as crossed clusters,
and per reader with Wilson intervals), each reader's kappa against the
reference, and the confusion matrix per source.

Pure numpy, no Django.

References
----------
.. [1] Cohen J. Weighted kappa. Psychol Bull 1968;70(4):213-220.
   doi:10.1037/h0026256
.. [2] Light RJ. Measures of response agreement for qualitative data: some
   generalizations and alternatives. Psychol Bull 1971;76(5):365-377.
   doi:10.1037/h0031643
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from turingtest.stats._base import Result
from turingtest.stats.accuracy import pooled_accuracy_gee
from turingtest.stats.agreement import cohen_kappa, cohen_kappa_matrix
from turingtest.stats.proportions import proportion_ci

__all__ = [
    "QuestionSummary",
    "ReaderReference",
    "ReferenceAgreement",
    "SourceSpread",
    "question_summary",
    "reference_agreement",
]


@dataclass(frozen=True)
class SourceSpread(Result):
    """The answers given on images of one source."""

    source: str
    n: int
    counts: tuple[int, ...]  # per value of the scale, in its order
    mean: float | None  # ordinal scales only; None where no answers


@dataclass(frozen=True)
class ReaderReference(Result):
    """One reader's answers against the reference values."""

    reader: str
    n: int
    exact: dict  # proportion_ci(...).to_dict()
    within_one: dict | None  # ordinal scales only
    kappa: dict | None  # cohen_kappa(...).to_dict(); None where undefined


@dataclass(frozen=True)
class ReferenceAgreement(Result):
    """A question's answers against the images' reference values.

    ``exact`` and ``within_one`` are pooled over every answer with a
    reference (:func:`turingtest.stats.accuracy.pooled_accuracy_gee`, readers
    and images as crossed clusters); ``exact_by_source`` gives the share per
    source, the comparison a Turing test is after (are synthetic images
    graded as their reference says as often as real ones?). ``confusion``
    counts answers by reference value (rows) and answer (columns), in the
    scale's order, per source.
    """

    scale: str
    kind: str  # "ordinal" | "nominal"
    n_images: int
    n_answers: int
    exact: dict | None
    within_one: dict | None
    exact_by_source: dict[str, float | None]
    mean_kappa: float | None
    weights: str
    readers: tuple[ReaderReference, ...]
    confusion: dict[str, tuple[tuple[int, ...], ...]]
    note: str | None = None


@dataclass(frozen=True)
class QuestionSummary(Result):
    """One question's agreement and spread.

    ``kappa`` is the mean of the pairwise kappas that are defined
    (``n_pairs`` of them), with their range; None where no pair of readers
    shares an image with variation in its answers (see ``note``), so the
    result goes into a JSON report as it is.
    """

    key: str
    kind: str  # "ordinal" | "nominal"
    codes: tuple[object, ...]
    labels: tuple[str, ...]
    weights: str  # "quadratic" | "none"
    n_readers: int
    n_images: int
    n_answers: int
    kappa: float | None
    kappa_min: float | None
    kappa_max: float | None
    n_pairs: int
    by_source: tuple[SourceSpread, ...]
    note: str | None = None
    reference: ReferenceAgreement | None = None


def question_summary(
    *,
    key: str,
    kind: str,
    codes: Sequence[object],
    labels: Sequence[str],
    ratings: Sequence[Sequence[object]] | np.ndarray,
    sources: Sequence[str],
) -> QuestionSummary:
    """Agreement and spread of the answers to one question.

    Parameters
    ----------
    key, kind : str
        The question's key and its scale's kind ("ordinal" or "nominal").
    codes, labels : sequence
        The scale's values in order, and their labels.
    ratings : array_like, shape (n_readers, n_images)
        Each reader's answer per image, None where not answered.
    sources : sequence of str, length n_images
        Each image's source ("real" or "synthetic").

    Returns
    -------
    QuestionSummary

    Notes
    -----
    The pairwise kappas come from
    :func:`turingtest.stats.agreement.cohen_kappa_matrix` with the scale's
    codes as categories, so the quadratic weights follow the scale's order
    even where a value was never used; the mean over pairs is Light's
    generalisation of kappa to many raters [2]_.
    """
    arr = np.asarray(ratings, dtype=object)
    if arr.ndim != 2:
        arr = arr.reshape(0, len(sources))
    ordinal = kind == "ordinal"
    weights: Literal["quadratic"] | None = "quadratic" if ordinal else None
    answered = np.vectorize(lambda v: v is not None, otypes=[bool])(arr)
    readers_used = answered.any(axis=1) if arr.size else np.zeros(0, bool)
    images_used = answered.any(axis=0) if arr.size else np.zeros(0, bool)
    kappa: float | None = None
    low: float | None = None
    high: float | None = None
    pairs = 0
    note = None
    active = arr[readers_used]
    if len(active) >= 2:
        matrix = cohen_kappa_matrix(active, weights=weights, categories=list(codes))
        upper = matrix.estimate[np.triu_indices(len(active), k=1)]
        defined = upper[~np.isnan(upper)]
        pairs = int(len(defined))
        if pairs:
            kappa = float(defined.mean())
            low, high = float(defined.min()), float(defined.max())
        if pairs < len(upper):
            note = matrix.note
    else:
        note = "Agreement needs two readers or more."
    spreads = []
    src = np.asarray(sources, dtype=object)
    for source in ("real", "synthetic"):
        values = [v for v in arr[:, src == source].ravel() if v is not None]
        counts = tuple(sum(1 for v in values if v == c) for c in codes)
        mean = None
        if ordinal and values:
            mean = float(np.mean([float(v) for v in values]))
        spreads.append(SourceSpread(source, len(values), counts, mean))
    return QuestionSummary(
        key=key,
        kind=kind,
        codes=tuple(codes),
        labels=tuple(labels),
        weights=weights or "none",
        n_readers=int(readers_used.sum()),
        n_images=int(images_used.sum()),
        n_answers=int(answered.sum()),
        kappa=kappa,
        kappa_min=low,
        kappa_max=high,
        n_pairs=pairs,
        by_source=tuple(spreads),
        note=note,
    )


def reference_agreement(
    *,
    scale: str,
    kind: str,
    codes: Sequence[object],
    ratings: Sequence[Sequence[object]] | np.ndarray,
    reference: Sequence[object],
    sources: Sequence[str],
    readers: Sequence[str] | None = None,
    level: float = 0.95,
) -> ReferenceAgreement | None:
    """The answers to one question scored against the images' reference values.

    Parameters
    ----------
    scale : str
        The name of the question's scale (the reference values' key).
    kind : str
        "ordinal" or "nominal": within-one agreement and quadratic kappa
        weights are for ordinal scales only.
    codes : sequence
        The scale's values in order.
    ratings : array_like, shape (n_readers, n_images)
        Each reader's answer per image, None where not answered.
    reference : sequence, length n_images
        Each image's reference value on the scale, None where it has none.
    sources : sequence of str, length n_images
        "real" or "synthetic" per image.
    readers : sequence of str, optional
        The readers' names, in the rows' order.
    level : float
        Confidence level of every interval.

    Returns
    -------
    ReferenceAgreement, or None where no image has a reference value on the
    scale (then there is nothing to score against).

    Notes
    -----
    Within one counts steps in the scale's order, not code differences, so a
    custom ordinal scale with codes 1, 2, 5 has 2 and 5 one step apart.
    Reference values and answers outside the scale are left out, with a note.
    """
    codes = list(codes)
    rank = {code: i for i, code in enumerate(codes)}
    arr = np.asarray(ratings, dtype=object)
    if arr.ndim != 2:
        arr = arr.reshape(0, len(sources))
    n_r, n_c = arr.shape
    ref = np.array([rank.get(v, -1) if v is not None else -1 for v in reference])
    notes = []
    off_scale = sum(1 for v in reference if v is not None and v not in rank)
    if off_scale:
        notes.append(
            f"{off_scale} reference values are not on the scale and were left out."
        )
    has_ref = ref >= 0
    if not has_ref.any():
        return None
    given = np.full((n_r, n_c), -1)
    bad_answers = 0
    for (j, i), value in np.ndenumerate(arr):
        if value is None:
            continue
        if value in rank:
            given[j, i] = rank[value]
        else:
            bad_answers += 1
    if bad_answers:
        notes.append(f"{bad_answers} answers are not on the scale and were left out.")
    ordinal = kind == "ordinal"
    scored = (given >= 0) & has_ref[None, :]
    reader_idx, image_idx = np.nonzero(scored)
    diff = given[scored] - ref[image_idx]
    exact = (diff == 0).astype(float)
    near = (np.abs(diff) <= 1).astype(float)
    n = int(scored.sum())

    def pooled(values: np.ndarray, description: str) -> dict | None:
        if not n:
            return None
        result = pooled_accuracy_gee(values, reader_idx, image_idx, level=level)
        out = result.to_dict()
        out.pop("p_value")  # a test against 50 % means nothing here
        out.pop("null")
        out["description"] = description
        return out

    names = list(readers) if readers is not None else [str(j) for j in range(n_r)]
    weights: Literal["quadratic"] | None = "quadratic" if ordinal else None
    per_reader = []
    kappas = []
    for j in range(n_r):
        row = scored[j]
        k = int(row.sum())
        if not k:
            continue
        g, r = given[j, row], ref[row]
        kappa = cohen_kappa(
            g, r, weights=weights, categories=list(range(len(codes))), level=level
        )
        kappa_dict = kappa.to_dict() if np.isfinite(kappa.estimate) else None
        if kappa_dict is not None:
            kappas.append(kappa.estimate)
        per_reader.append(
            ReaderReference(
                reader=names[j],
                n=k,
                exact=proportion_ci(int((g == r).sum()), k, level=level).to_dict(),
                within_one=proportion_ci(
                    int((np.abs(g - r) <= 1).sum()), k, level=level
                ).to_dict()
                if ordinal
                else None,
                kappa=kappa_dict,
            )
        )
    src = np.asarray(sources, dtype=object)
    by_source: dict[str, float | None] = {}
    confusion: dict[str, tuple[tuple[int, ...], ...]] = {}
    for source in ("real", "synthetic"):
        in_source = src[image_idx] == source
        by_source[source] = float(exact[in_source].mean()) if in_source.any() else None
        table = np.zeros((len(codes), len(codes)), dtype=int)
        np.add.at(
            table,
            (ref[image_idx[in_source]], given[scored][in_source]),
            1,
        )
        confusion[source] = tuple(tuple(int(x) for x in row) for row in table)
    return ReferenceAgreement(
        scale=scale,
        kind=kind,
        n_images=int(has_ref.sum()),
        n_answers=n,
        exact=pooled(exact, "share of answers equal to the reference value"),
        within_one=pooled(
            near, "share of answers within one step of the reference value"
        )
        if ordinal
        else None,
        exact_by_source=by_source,
        mean_kappa=float(np.mean(kappas)) if kappas else None,
        weights=weights or "none",
        readers=tuple(per_reader),
        confusion=confusion,
        note=" ".join(notes) or None,
    )
