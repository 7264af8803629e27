"""Proportions, the binomial test and one reader's real-vs-synthetic summary.

References
----------
.. [1] Wilson, E. B. (1927). Probable inference, the law of succession, and
   statistical inference. *JASA* 22(158), 209-212. doi:10.1080/01621459.1927.10502953
.. [2] Clopper, C. J., & Pearson, E. S. (1934). The use of confidence or
   fiducial limits illustrated in the case of the binomial. *Biometrika*
   26(4), 404-413. doi:10.1093/biomet/26.4.404
.. [3] Newcombe, R. G. (1998). Two-sided confidence intervals for the single
   proportion: comparison of seven methods. *Stat Med* 17(8), 857-872.
   doi:10.1002/(SICI)1097-0258(19980430)17:8<857::AID-SIM777>3.0.CO;2-E
.. [4] Hautus, M. J. (1995). Corrections for extreme proportions and their
   biasing effects on estimated values of d'. *Behav Res Methods Instrum
   Comput* 27(1), 46-51. doi:10.3758/BF03203619
.. [5] Macmillan, N. A., & Creelman, C. D. (2005). *Detection Theory: A
   User's Guide* (2nd ed.). Erlbaum. doi:10.4324/9781410611147
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from turingtest.stats._base import Result, join_notes, nan_ci, z_quantile
from turingtest.stats.roc import AUCResult, auc_delong

__all__ = [
    "REAL",
    "SYNTHETIC",
    "ProportionResult",
    "BinomialTestResult",
    "DetectionSummary",
    "proportion_ci",
    "binomial_test",
    "detection_summary",
]

REAL = "real"
SYNTHETIC = "synthetic"

_METHODS = {"wilson": "wilson", "clopper-pearson": "beta"}


@dataclass(frozen=True)
class ProportionResult(Result):
    """A proportion ``k / n`` with its confidence interval."""

    estimate: float
    ci: tuple[float, float]
    k: int
    n: int
    method: str
    level: float
    note: str | None = None


@dataclass(frozen=True)
class BinomialTestResult(Result):
    """Exact binomial test of ``k`` successes in ``n`` against ``p = null``."""

    estimate: float
    ci: tuple[float, float]
    p_value: float
    k: int
    n: int
    null: float
    alternative: str
    note: str | None = None


@dataclass(frozen=True)
class DetectionSummary(Result):
    """One reader's real-vs-synthetic calls; synthetic is the positive class."""

    n: int
    n_real: int
    n_synthetic: int
    n_missing: int
    hits: int
    misses: int
    false_alarms: int
    correct_rejections: int
    accuracy: ProportionResult
    sensitivity: ProportionResult
    specificity: ProportionResult
    fake_as_real: ProportionResult
    real_as_fake: ProportionResult
    p_value: float
    d_prime: float
    d_prime_se: float
    d_prime_ci: tuple[float, float]
    criterion: float
    auc: AUCResult | None
    note: str | None = None


def _check_counts(k: int, n: int) -> tuple[int, int]:
    k_int, n_int = int(k), int(n)
    if k_int != k or n_int != n:
        raise ValueError(f"counts must be whole numbers, got k={k}, n={n}")
    if n_int < 0 or k_int < 0 or k_int > n_int:
        raise ValueError(f"need 0 <= k <= n, got k={k_int}, n={n_int}")
    return k_int, n_int


def proportion_ci(
    k: int,
    n: int,
    method: Literal["wilson", "clopper-pearson"] = "wilson",
    level: float = 0.95,
) -> ProportionResult:
    """Confidence interval for a binomial proportion.

    Parameters
    ----------
    k, n : int
        Successes and trials, ``0 <= k <= n``.
    method : {"wilson", "clopper-pearson"}
        Wilson's score interval (the default; near-nominal coverage and never
        outside [0, 1]) or the exact Clopper-Pearson interval (conservative).
    level : float
        Confidence level.

    Returns
    -------
    ProportionResult
        With ``n == 0`` the estimate and interval are NaN and ``note`` says why.

    Notes
    -----
    The computation is :func:`statsmodels.stats.proportion.proportion_confint`
    (``method="wilson"`` or ``"beta"``). Newcombe (1998) [3]_ compares the
    methods and recommends the score interval for general use.

    References
    ----------
    .. [1] Wilson (1927), doi:10.1080/01621459.1927.10502953
    .. [2] Clopper & Pearson (1934), doi:10.1093/biomet/26.4.404
    .. [3] Newcombe (1998), doi:10.1002/(SICI)1097-0258(19980430)17:8<857::AID-SIM777>3.0.CO;2-E
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {sorted(_METHODS)}, got {method!r}")
    z_quantile(level)
    k, n = _check_counts(k, n)
    if n == 0:
        return ProportionResult(
            math.nan, nan_ci(), k, n, method, level, note="No observations."
        )
    low, high = proportion_confint(k, n, alpha=1 - level, method=_METHODS[method])
    est = k / n
    # Rounding can leave the Wilson bound a hair away from 0 or 1 at k = 0 or
    # k = n, where it is exactly the estimate.
    ci = (min(float(low), est), max(float(high), est))
    return ProportionResult(est, ci, k, n, method, level)


def _wilson_many(ks: list[int], ns: list[int], level: float) -> list[ProportionResult]:
    """Several Wilson intervals in one vectorised call (same as proportion_ci)."""
    k = np.asarray(ks, dtype=float)
    n = np.asarray(ns, dtype=float)
    low, high = proportion_confint(
        k, np.maximum(n, 1), alpha=1 - level, method="wilson"
    )
    out = []
    for kj, nj, lo, hi in zip(ks, ns, low, high, strict=True):
        if nj == 0:
            out.append(
                ProportionResult(
                    math.nan, nan_ci(), kj, nj, "wilson", level, note="No observations."
                )
            )
        else:
            est = kj / nj
            out.append(
                ProportionResult(
                    est,
                    (min(float(lo), est), max(float(hi), est)),
                    kj,
                    nj,
                    "wilson",
                    level,
                )
            )
    return out


def binomial_test(
    k: int,
    n: int,
    p: float = 0.5,
    alternative: Literal["two-sided", "greater", "less"] = "two-sided",
    level: float = 0.95,
) -> BinomialTestResult:
    """Exact binomial test that the success probability equals ``p``.

    Parameters
    ----------
    k, n : int
        Successes and trials.
    p : float
        Probability under the null hypothesis (0.5: readers guess).
    alternative : {"two-sided", "greater", "less"}
    level : float
        Level of the Clopper-Pearson interval reported with the test.

    Returns
    -------
    BinomialTestResult

    Notes
    -----
    Wraps :func:`scipy.stats.binomtest`; the two-sided p-value sums the
    probabilities of all outcomes no more likely than the one observed. The
    test treats the ``n`` answers as independent, which holds for one reader
    reading distinct images but not for answers pooled over readers (use
    :func:`turingtest.stats.pooled_accuracy_gee` or the MRMC analysis there).

    References
    ----------
    .. [1] Clopper & Pearson (1934), doi:10.1093/biomet/26.4.404
    """
    k, n = _check_counts(k, n)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must lie in [0, 1], got {p}")
    if n == 0:
        return BinomialTestResult(
            math.nan, nan_ci(), math.nan, k, n, p, alternative, note="No observations."
        )
    res = stats.binomtest(k, n, p=p, alternative=alternative)
    ci = res.proportion_ci(confidence_level=level, method="exact")
    return BinomialTestResult(
        k / n, (float(ci.low), float(ci.high)), float(res.pvalue), k, n, p, alternative
    )


def _labels(values: Sequence[object] | np.ndarray, name: str) -> np.ndarray:
    """Code "synthetic" as 1, "real" as 0 and missing (None, NaN, "") as -1."""
    arr = np.asarray(values, dtype=object).reshape(-1)
    out = np.full(arr.shape, -1, dtype=np.int8)
    syn = arr == SYNTHETIC
    real = arr == REAL
    out[syn] = 1
    out[real] = 0
    for v in arr[~(syn | real)]:
        if v is None or v == "" or (isinstance(v, float) and math.isnan(v)):
            continue
        raise ValueError(f"{name} values must be 'real' or 'synthetic', got {v!r}")
    return out


def _d_prime(
    hits: int, n_signal: int, false_alarms: int, n_noise: int, level: float
) -> tuple[float, float, tuple[float, float], float, str | None]:
    if n_signal == 0 or n_noise == 0:
        return (
            math.nan,
            math.nan,
            nan_ci(),
            math.nan,
            "d' and c need both real and synthetic images.",
        )
    # Log-linear correction (Hautus 1995): add 0.5 to each count and 1 to each
    # total, for every reader, so that rates of 0 or 1 stay finite and the
    # correction does not depend on whether a reader happened to hit them.
    h = (hits + 0.5) / (n_signal + 1.0)
    f = (false_alarms + 0.5) / (n_noise + 1.0)
    zh, zf = stats.norm.ppf(h), stats.norm.ppf(f)
    d = float(zh - zf)
    c = float(-(zh + zf) / 2.0)
    # Gourevitch & Galanter (1967) variance, Macmillan & Creelman (2005) eq. 13.4.
    var = h * (1 - h) / (n_signal * stats.norm.pdf(zh) ** 2) + f * (1 - f) / (
        n_noise * stats.norm.pdf(zf) ** 2
    )
    se = float(math.sqrt(var))
    q = z_quantile(level)
    return d, se, (d - q * se, d + q * se), c, None


def detection_summary(
    truth: Sequence[object] | np.ndarray,
    answer: Sequence[object] | np.ndarray,
    confidence: Sequence[float | None] | np.ndarray | None = None,
    *,
    level: float = 0.95,
) -> DetectionSummary:
    """Summarise one reader's real-vs-synthetic calls.

    Parameters
    ----------
    truth : sequence of {"real", "synthetic"}
        What each image is.
    answer : sequence of {"real", "synthetic", None}
        What the reader said; None (or NaN, "") is a missing answer and is
        left out of every rate.
    confidence : sequence of float, optional
        The 6-point scale, 1 = definitely real ... 6 = definitely synthetic.
        Higher means "more synthetic", so it is the ROC score with synthetic
        as the positive class. Missing values are left out of the AUC only.
    level : float
        Confidence level of all intervals.

    Returns
    -------
    DetectionSummary
        ``sensitivity`` is synthetic images called synthetic, ``specificity``
        real images called real, ``fake_as_real = 1 - sensitivity`` and
        ``real_as_fake = 1 - specificity``; every rate has a Wilson interval.
        ``p_value`` is the exact binomial test of accuracy against 0.5.

    Notes
    -----
    Signal detection: with hit rate H (synthetic called synthetic) and false
    alarm rate F (real called synthetic), ``d' = z(H) - z(F)`` and
    ``c = -(z(H) + z(F)) / 2``; ``c > 0`` means the reader leans towards
    "real". The log-linear correction of Hautus (1995) [4]_ (add 0.5 to each
    count and 1 to each total) is applied to every reader, which keeps d'
    finite for a reader who answers everything "real" and biases it less than
    replacing 0 and 1 by 1/(2N). The standard error of d' is the delta-method
    variance of Gourevitch & Galanter (1967), see Macmillan & Creelman
    (2005) [5]_.

    References
    ----------
    .. [1] Wilson (1927), doi:10.1080/01621459.1927.10502953
    .. [4] Hautus (1995), doi:10.3758/BF03203619
    .. [5] Macmillan & Creelman (2005), doi:10.4324/9781410611147
    """
    t = _labels(truth, "truth")
    a = _labels(answer, "answer")
    if len(t) != len(a):
        raise ValueError("truth and answer must have the same length")
    if np.any(t < 0):
        raise ValueError("truth may not be missing")
    answered = a >= 0
    n_missing = int((~answered).sum())
    ts, aa = t[answered], a[answered]
    hits = int(((ts == 1) & (aa == 1)).sum())
    misses = int(((ts == 1) & (aa == 0)).sum())
    false_alarms = int(((ts == 0) & (aa == 1)).sum())
    correct_rejections = int(((ts == 0) & (aa == 0)).sum())
    n_syn, n_real = hits + misses, false_alarms + correct_rejections
    n = n_syn + n_real
    correct = hits + correct_rejections

    accuracy, sensitivity, specificity, fake_as_real, real_as_fake = _wilson_many(
        [correct, hits, correct_rejections, misses, false_alarms],
        [n, n_syn, n_real, n_syn, n_real],
        level,
    )
    p_value = float(stats.binomtest(correct, n).pvalue) if n else math.nan
    d, d_se, d_ci, c, d_note = _d_prime(hits, n_syn, false_alarms, n_real, level)

    auc = None
    auc_note = None
    if confidence is not None:
        conf = np.array(
            [math.nan if v is None else float(v) for v in confidence], dtype=float
        )
        if len(conf) != len(t):
            raise ValueError("confidence must have the same length as truth")
        rated = ~np.isnan(conf)
        auc = auc_delong(t[rated] == 1, conf[rated], level=level)
        if not rated.all():
            auc_note = (
                f"AUC from the {int(rated.sum())} images with a confidence rating."
            )

    notes = []
    if n == 0:
        notes.append("The reader answered no images.")
    elif n_missing:
        notes.append(f"{n_missing} unanswered images left out.")
    return DetectionSummary(
        n=n,
        n_real=n_real,
        n_synthetic=n_syn,
        n_missing=n_missing,
        hits=hits,
        misses=misses,
        false_alarms=false_alarms,
        correct_rejections=correct_rejections,
        accuracy=accuracy,
        sensitivity=sensitivity,
        specificity=specificity,
        fake_as_real=fake_as_real,
        real_as_fake=real_as_fake,
        p_value=p_value,
        d_prime=d,
        d_prime_se=d_se,
        d_prime_ci=d_ci,
        criterion=c,
        auc=auc,
        note=join_notes(*notes, d_note, auc_note),
    )
