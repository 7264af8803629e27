"""Nonparametric ROC area with DeLong's variance.

References
----------
.. [1] DeLong, E. R., DeLong, D. M., & Clarke-Pearson, D. L. (1988). Comparing
   the areas under two or more correlated receiver operating characteristic
   curves: a nonparametric approach. *Biometrics* 44(3), 837-845.
   doi:10.2307/2531595
.. [2] Sun, X., & Xu, W. (2014). Fast implementation of DeLong's algorithm for
   comparing the areas under correlated receiver operating characteristic
   curves. *IEEE Signal Process Lett* 21(11), 1389-1393.
   doi:10.1109/LSP.2014.2337313
.. [3] Hanley, J. A., & McNeil, B. J. (1982). The meaning and use of the area
   under a receiver operating characteristic (ROC) curve. *Radiology*
   143(1), 29-36. doi:10.1148/radiology.143.1.7063747
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from turingtest.stats._base import Result, nan_ci, z_quantile

__all__ = [
    "AUCResult",
    "AUCComparison",
    "auc_delong",
    "auc_compare_delong",
    "placement_values",
    "roc_points",
]


@dataclass(frozen=True)
class AUCResult(Result):
    """Area under the ROC curve with DeLong standard error."""

    estimate: float
    se: float
    ci: tuple[float, float]
    p_value: float
    n_positive: int
    n_negative: int
    note: str | None = None


@dataclass(frozen=True)
class AUCComparison(Result):
    """Difference of two correlated AUCs (``auc_a - auc_b``) on the same cases."""

    estimate: float
    se: float
    ci: tuple[float, float]
    p_value: float
    auc_a: float
    auc_b: float
    correlation: float
    n_positive: int
    n_negative: int
    note: str | None = None


def _truth(truth: ArrayLike) -> np.ndarray:
    t = np.asarray(truth)
    if t.dtype == bool:
        return t
    if not np.all(np.isin(t, (0, 1))):
        raise ValueError("truth must be boolean or 0/1 (1 = positive class)")
    return t.astype(bool)


def placement_values(
    truth: ArrayLike, scores: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DeLong's placement values for one or many readers.

    Parameters
    ----------
    truth : array_like of bool, shape (n_cases,)
        True for the positive class.
    scores : array_like, shape (n_cases,) or (n_readers, n_cases)
        Higher means more likely positive. No missing values.

    Returns
    -------
    auc : ndarray, shape (n_readers,)
    v10 : ndarray, shape (n_readers, n_positive)
        For each positive case the fraction of negatives it outscores (ties
        count one half).
    v01 : ndarray, shape (n_readers, n_negative)
        For each negative case the fraction of positives that outscore it.

    Notes
    -----
    Computed from mid-ranks, as in Sun & Xu (2014) [2]_: the rank of a
    positive among all cases minus its rank among the positives counts the
    negatives below it. This costs one sort per reader instead of the
    ``m * n`` comparisons of the definition.
    """
    t = _truth(truth)
    s = np.atleast_2d(np.asarray(scores, dtype=float))
    if s.shape[1] != t.shape[0]:
        raise ValueError("scores must have one column per case")
    m, n = int(t.sum()), int((~t).sum())
    ranks = stats.rankdata(s, axis=1)
    v10 = (ranks[:, t] - stats.rankdata(s[:, t], axis=1)) / n
    v01 = 1.0 - (ranks[:, ~t] - stats.rankdata(s[:, ~t], axis=1)) / m
    return v10.mean(axis=1), v10, v01


def _check_classes(t: np.ndarray) -> str | None:
    m, n = int(t.sum()), int((~t).sum())
    if m == 0 or n == 0:
        return "The AUC needs at least one case of each class."
    if m < 2 or n < 2:
        return "DeLong's variance needs at least two cases of each class."
    return None


def auc_delong(
    truth: ArrayLike, scores: ArrayLike, *, level: float = 0.95
) -> AUCResult:
    """AUC with DeLong's nonparametric standard error and test against 0.5.

    Parameters
    ----------
    truth : array_like of bool or 0/1
        1 (True) for the positive class; in a Turing test the positive class
        is "synthetic".
    scores : array_like of float
        Higher means more likely positive (the 6-point scale where
        6 = definitely synthetic). Ties are allowed and count one half.
    level : float
        Confidence level.

    Returns
    -------
    AUCResult
        ``ci`` is the Wald interval ``auc +/- z * se`` clipped to [0, 1];
        ``p_value`` is the two-sided z-test of AUC = 0.5.

    Notes
    -----
    The AUC is the Mann-Whitney statistic ``U / (m n)`` (Hanley & McNeil
    1982 [3]_). DeLong et al. (1988) [1]_ estimate its variance as
    ``var(V10) / m + var(V01) / n`` from the placement values (see
    :func:`placement_values`).

    References
    ----------
    .. [1] DeLong, DeLong & Clarke-Pearson (1988), doi:10.2307/2531595
    .. [2] Sun & Xu (2014), doi:10.1109/LSP.2014.2337313
    .. [3] Hanley & McNeil (1982), doi:10.1148/radiology.143.1.7063747
    """
    t = _truth(truth)
    s = np.asarray(scores, dtype=float)
    if s.shape != t.shape:
        raise ValueError("truth and scores must have the same length")
    if np.isnan(s).any():
        raise ValueError("scores may not contain NaN; drop unrated cases first")
    m, n = int(t.sum()), int((~t).sum())
    problem = _check_classes(t)
    if problem and (m == 0 or n == 0):
        return AUCResult(math.nan, math.nan, nan_ci(), math.nan, m, n, note=problem)
    auc, v10, v01 = placement_values(t, s)
    a = float(auc[0])
    if problem:
        return AUCResult(a, math.nan, nan_ci(), math.nan, m, n, note=problem)
    var = v10[0].var(ddof=1) / m + v01[0].var(ddof=1) / n
    se = math.sqrt(var)
    q = z_quantile(level)
    ci = (max(0.0, a - q * se), min(1.0, a + q * se))
    if se > 0:
        p = float(2 * stats.norm.sf(abs(a - 0.5) / se))
        note = None
    else:
        p = math.nan
        note = (
            "Every score is the same: the AUC is chance, with no spread."
            if a == 0.5
            else "The reader separates the classes perfectly; DeLong's SE is zero."
        )
    return AUCResult(a, float(se), ci, p, m, n, note=note)


def auc_compare_delong(
    truth: ArrayLike, scores_a: ArrayLike, scores_b: ArrayLike, *, level: float = 0.95
) -> AUCComparison:
    """Compare two correlated AUCs measured on the same cases (DeLong 1988).

    Parameters
    ----------
    truth : array_like of bool or 0/1
    scores_a, scores_b : array_like of float
        Two sets of scores for the same cases (two readers, or one reader in
        two conditions).
    level : float

    Returns
    -------
    AUCComparison
        ``estimate = auc_a - auc_b`` with the z-test of no difference.

    Notes
    -----
    The covariance of the two AUCs is ``S10 / m + S01 / n`` where ``S10`` and
    ``S01`` are the 2 x 2 sample covariance matrices of the placement values
    (DeLong et al. 1988 [1]_, section 3).

    References
    ----------
    .. [1] DeLong, DeLong & Clarke-Pearson (1988), doi:10.2307/2531595
    """
    t = _truth(truth)
    s = np.vstack([np.asarray(scores_a, float), np.asarray(scores_b, float)])
    if s.shape[1] != t.shape[0]:
        raise ValueError("truth and scores must have the same length")
    if np.isnan(s).any():
        raise ValueError("scores may not contain NaN")
    m, n = int(t.sum()), int((~t).sum())
    problem = _check_classes(t)
    if problem:
        return AUCComparison(
            math.nan,
            math.nan,
            nan_ci(),
            math.nan,
            math.nan,
            math.nan,
            math.nan,
            m,
            n,
            note=problem,
        )
    auc, v10, v01 = placement_values(t, s)
    cov = np.cov(v10) / m + np.cov(v01) / n
    diff = float(auc[0] - auc[1])
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    denom = math.sqrt(cov[0, 0] * cov[1, 1])
    corr = float(cov[0, 1] / denom) if denom > 0 else math.nan
    se = math.sqrt(max(var, 0.0))
    q = z_quantile(level)
    if se > 0:
        p = float(2 * stats.norm.sf(abs(diff) / se))
        note = None
    else:
        p = math.nan
        note = "The two sets of scores give identical placements; the SE is zero."
    return AUCComparison(
        diff,
        se,
        (diff - q * se, diff + q * se),
        p,
        float(auc[0]),
        float(auc[1]),
        corr,
        m,
        n,
        note=note,
    )


def roc_points(truth: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Empirical ROC operating points, from (0, 0) to (1, 1).

    Parameters
    ----------
    truth : array_like of bool or 0/1
    scores : array_like of float
        Higher means more likely positive; NaN is dropped.

    Returns
    -------
    fpr, tpr : ndarray
        One point per distinct score used as the threshold "score >= x",
        from the highest threshold down, with (0, 0) prepended. Empty when a
        class is absent.

    Notes
    -----
    For ratings on a scale the trapezoidal area under these points equals
    the Mann-Whitney AUC of :func:`auc_delong` (Hanley & McNeil 1982 [3]_).

    References
    ----------
    .. [3] Hanley & McNeil (1982), doi:10.1148/radiology.143.1.7063747
    """
    t = _truth(truth)
    s = np.asarray(scores, dtype=float)
    keep = ~np.isnan(s)
    t, s = t[keep], s[keep]
    m, n = int(t.sum()), int((~t).sum())
    if m == 0 or n == 0:
        return np.array([]), np.array([])
    order = np.argsort(-s, kind="stable")
    s_sorted, t_sorted = s[order], t[order]
    # The last position of each distinct score is where "score >= x" ends.
    last = np.concatenate([np.nonzero(np.diff(s_sorted))[0], [len(s_sorted) - 1]])
    tp = np.cumsum(t_sorted)[last]
    fp = np.cumsum(~t_sorted)[last]
    fpr = np.concatenate([[0.0], fp / n])
    tpr = np.concatenate([[0.0], tp / m])
    return fpr, tpr
