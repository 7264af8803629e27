"""The answers to a study's own questions: inter-reader agreement and spread.

A study admin may ask questions beside the built-in ones (a BI-RADS
category, a realism Likert, a nominal choice). For each, the readers'
agreement is the mean over reader pairs of Cohen's kappa on the images both
answered: quadratic-weighted on an ordinal scale (Cohen 1968), unweighted on
a nominal one. How the answers spread is given per source (real, synthetic):
the count of each value and, on an ordinal scale, the mean code.

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
from turingtest.stats.agreement import cohen_kappa_matrix

__all__ = ["QuestionSummary", "SourceSpread", "question_summary"]


@dataclass(frozen=True)
class SourceSpread(Result):
    """The answers given on images of one source."""

    source: str
    n: int
    counts: tuple[int, ...]  # per value of the scale, in its order
    mean: float | None  # ordinal scales only; None where no answers


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
