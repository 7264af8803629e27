"""Pooled accuracy, equivalence to chance, and paired comparisons across readers.

References
----------
.. [1] Schuirmann, D. J. (1987). A comparison of the two one-sided tests
   procedure and the power approach for assessing the equivalence of average
   bioavailability. *J Pharmacokinet Biopharm* 15(6), 657-680.
   doi:10.1007/BF01068419
.. [2] Liang, K.-Y., & Zeger, S. L. (1986). Longitudinal data analysis using
   generalized linear models. *Biometrika* 73(1), 13-22.
   doi:10.1093/biomet/73.1.13
.. [3] Cameron, A. C., Gelbach, J. B., & Miller, D. L. (2011). Robust
   inference with multiway clustering. *J Bus Econ Stat* 29(2), 238-249.
   doi:10.1198/jbes.2010.07136
.. [4] Wilcoxon, F. (1945). Individual comparisons by ranking methods.
   *Biometrics Bulletin* 1(6), 80-83. doi:10.2307/3001968
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats
from scipy.special import expit, logit
from statsmodels.stats.weightstats import DescrStatsW

from turingtest.stats._base import Result, join_notes, nan_ci

__all__ = [
    "EquivalenceResult",
    "PooledAccuracyResult",
    "PairedDifferenceResult",
    "equivalence_test",
    "tost",
    "pooled_accuracy_gee",
    "paired_difference_test",
]


@dataclass(frozen=True)
class EquivalenceResult(Result):
    """Two one-sided tests (TOST) that a mean lies inside ``(low, high)``.

    ``p_value`` is the larger of the two one-sided p-values; ``equivalent``
    is ``p_value < alpha``, which is the same as the ``1 - 2 alpha``
    interval ``ci`` lying inside the bounds.
    """

    estimate: float
    se: float
    df: float
    ci: tuple[float, float]
    p_value: float
    p_lower: float
    p_upper: float
    low: float
    high: float
    alpha: float
    equivalent: bool
    n: int | None
    note: str | None = None


@dataclass(frozen=True)
class PooledAccuracyResult(Result):
    """Accuracy over all answers, readers and images as crossed clusters."""

    estimate: float
    se: float
    df: float
    ci: tuple[float, float]
    p_value: float
    null: float
    n_answers: int
    n_readers: int
    n_images: int
    method: str
    level: float
    note: str | None = None


@dataclass(frozen=True)
class PairedDifferenceResult(Result):
    """Mean of paired differences ``a - b`` (one pair per reader)."""

    estimate: float
    se: float
    ci: tuple[float, float]
    p_value: float
    p_value_wilcoxon: float
    n: int
    level: float
    note: str | None = None


def tost(
    estimate: float,
    se: float,
    df: float,
    low: float,
    high: float,
    *,
    alpha: float = 0.05,
    n: int | None = None,
) -> EquivalenceResult:
    """TOST from an estimate, its standard error and degrees of freedom.

    Parameters
    ----------
    estimate, se : float
    df : float
        Degrees of freedom of the t reference distribution (``inf`` for z).
    low, high : float
        Equivalence bounds.
    alpha : float
        Level of each one-sided test.
    n : int, optional
        Sample size, only recorded.

    Returns
    -------
    EquivalenceResult

    Notes
    -----
    Schuirmann (1987) [1]_: reject "mean <= low" with ``t1 = (est - low) /
    se`` and "mean >= high" with ``t2 = (est - high) / se``; equivalence is
    shown when both are rejected. Use it with the SE and df of
    :func:`turingtest.stats.mrmc_percent_correct` to let both readers and
    images vary.

    References
    ----------
    .. [1] Schuirmann (1987), doi:10.1007/BF01068419
    """
    if not low < high:
        raise ValueError("need low < high")
    if not (math.isfinite(estimate) and math.isfinite(se)):
        return EquivalenceResult(
            estimate,
            se,
            df,
            nan_ci(),
            math.nan,
            math.nan,
            math.nan,
            low,
            high,
            alpha,
            False,
            n,
            note="No estimate or standard error.",
        )
    dist = stats.t(df) if math.isfinite(df) else stats.norm()
    if se > 0:
        p_lower = float(dist.sf((estimate - low) / se))
        p_upper = float(dist.cdf((estimate - high) / se))
        q = float(dist.ppf(1 - alpha))
        ci = (estimate - q * se, estimate + q * se)
        note = None
    else:
        inside = low < estimate < high
        p_lower = 0.0 if estimate > low else 1.0
        p_upper = 0.0 if estimate < high else 1.0
        ci = (estimate, estimate)
        note = (
            "The standard error is zero; the test reduces to whether the estimate "
            f"lies {'inside' if inside else 'outside'} the bounds."
        )
    if not math.isfinite(df):
        note = join_notes(note, "Normal reference distribution (infinite df).")
    p = max(p_lower, p_upper)
    return EquivalenceResult(
        estimate, se, df, ci, p, p_lower, p_upper, low, high, alpha, p < alpha, n, note
    )


def equivalence_test(
    accuracies: ArrayLike,
    margin: float = 0.1,
    *,
    null: float = 0.5,
    alpha: float = 0.05,
) -> EquivalenceResult:
    """TOST that readers' mean accuracy lies within ``null +/- margin``.

    Parameters
    ----------
    accuracies : array_like
        One accuracy per reader (NaN dropped).
    margin : float
        Half-width of the equivalence region; 0.1 asks whether readers are
        within 40 %-60 % correct, i.e. practically unable to tell real from
        synthetic.
    null : float
        Centre of the region (0.5, chance).
    alpha : float

    Returns
    -------
    EquivalenceResult

    Notes
    -----
    A non-significant test of "accuracy = 0.5" does not show that readers
    cannot tell the images apart; equivalence needs its own test (Schuirmann
    1987 [1]_). This one treats the readers as the sample (one-sample t-test
    on their accuracies, via :meth:`statsmodels.stats.weightstats.DescrStatsW.ttost_mean`);
    it ignores that a different set of images could give different
    accuracies. The study report also gives the TOST on the MRMC percent
    correct (:func:`tost`), where readers and images are both random.

    References
    ----------
    .. [1] Schuirmann (1987), doi:10.1007/BF01068419
    """
    if margin <= 0:
        raise ValueError("margin must be positive")
    x = np.asarray(accuracies, dtype=float).reshape(-1)
    x = x[~np.isnan(x)]
    low, high = null - margin, null + margin
    n = len(x)
    if n < 2:
        mean = float(x.mean()) if n else math.nan
        return EquivalenceResult(
            mean,
            math.nan,
            math.nan,
            nan_ci(),
            math.nan,
            math.nan,
            math.nan,
            low,
            high,
            alpha,
            False,
            n,
            note="The equivalence test across readers needs at least two readers.",
        )
    d = DescrStatsW(x)
    if d.std == 0:
        return tost(float(d.mean), 0.0, n - 1.0, low, high, alpha=alpha, n=n)
    p, (_, p1, df1), (_, p2, _) = d.ttost_mean(low, high)
    se = float(d.std_mean)
    q = float(stats.t.ppf(1 - alpha, df1))
    mean = float(d.mean)
    return EquivalenceResult(
        mean,
        se,
        float(df1),
        (mean - q * se, mean + q * se),
        float(p),
        float(p1),
        float(p2),
        low,
        high,
        alpha,
        bool(p < alpha),
        n,
    )


def _codes(x: ArrayLike) -> tuple[np.ndarray, int]:
    """Integer codes 0..G-1 for group labels, and G."""
    arr = np.asarray(x).reshape(-1)
    if (
        arr.dtype.kind in "iub"
        and len(arr)
        and arr.min() >= 0
        and arr.max() < 4 * len(arr)
    ):
        # Small non-negative integers (the report's codes): relabel in O(n).
        present = np.bincount(arr.astype(np.int64)) > 0
        relabel = np.cumsum(present) - 1
        return relabel[arr], int(present.sum())
    if arr.dtype.kind not in "iub":
        arr = arr.astype(str)
    uniq, inverse = np.unique(arr, return_inverse=True)
    return inverse.reshape(-1), len(uniq)


def pooled_accuracy_gee(
    correct: ArrayLike,
    reader: ArrayLike,
    image: ArrayLike,
    *,
    null: float = 0.5,
    level: float = 0.95,
) -> PooledAccuracyResult:
    """Accuracy pooled over all answers, with readers and images as clusters.

    Parameters
    ----------
    correct : array_like
        1 (right) or 0 (wrong) per answer; NaN answers are dropped.
    reader, image : array_like
        Who answered and which image, one per answer.
    null : float
        Accuracy under the null hypothesis.
    level : float

    Returns
    -------
    PooledAccuracyResult
        ``estimate`` is the share of correct answers; ``ci`` is back-
        transformed from the logit scale (so it stays in [0, 1]); ``se`` is
        on the probability scale; ``p_value`` tests ``estimate = null``.

    Notes
    -----
    The model is a marginal logistic regression with an intercept only,
    fitted by its generalised estimating equation with an independence
    working correlation (Liang & Zeger 1986 [2]_), which gives the plain
    share of correct answers. Answers are correlated within a reader (some
    readers are better) and within an image (some fakes fool everyone), and
    the two groupings cross. The variance is therefore the two-way
    cluster-robust sandwich of Cameron, Gelbach & Miller (2011) [3]_::

        V = V_reader + V_image - V_reader-and-image

    each one-way term with the small-sample factor ``G / (G - 1)``, and the
    interval uses a t distribution with ``min(G_reader, G_image) - 1`` df.
    When the sum is negative (possible in small samples) the larger one-way
    variance is used instead, as Cameron et al. suggest.

    For an intercept-only model the sandwich has a closed form (score
    ``y - p``, information ``N p (1 - p)``). statsmodels' ``GLM`` with
    ``cov_type="cluster"`` and two group columns computes the same numbers
    (the tests check it to 1e-9) but takes seconds on 400,000 answers, so
    the closed form is used here.

    A crossed random-effects logistic model (readers and images as random
    intercepts) would estimate the accuracy of the typical reader on the
    typical image, a conditional quantity; the marginal share of correct
    answers is what visual Turing test papers report, and the sandwich needs
    no distributional assumption about reader and image effects.

    References
    ----------
    .. [2] Liang & Zeger (1986), doi:10.1093/biomet/73.1.13
    .. [3] Cameron, Gelbach & Miller (2011), doi:10.1198/jbes.2010.07136
    """
    y = np.asarray(correct, dtype=float).reshape(-1)
    r_raw = np.asarray(reader).reshape(-1)
    i_raw = np.asarray(image).reshape(-1)
    if not (len(y) == len(r_raw) == len(i_raw)):
        raise ValueError("correct, reader and image must have the same length")
    keep = ~np.isnan(y)
    y, r_raw, i_raw = y[keep], r_raw[keep], i_raw[keep]
    if not np.all(np.isin(y, (0.0, 1.0))):
        raise ValueError("correct must hold 0, 1 or NaN")
    n = len(y)
    r, g_r = _codes(r_raw)
    im, g_i = _codes(i_raw)
    method = "GEE (independence), two-way cluster-robust: readers x images"
    if n == 0:
        return PooledAccuracyResult(
            math.nan,
            math.nan,
            math.nan,
            nan_ci(),
            math.nan,
            null,
            0,
            0,
            0,
            method,
            level,
            note="No answers.",
        )
    p = float(y.mean())
    if p in (0.0, 1.0):
        k = int(y.sum())
        ci = stats.binomtest(k, n).proportion_ci(level, method="exact")
        p_value = float(stats.binomtest(k, n, null).pvalue)
        return PooledAccuracyResult(
            p,
            0.0,
            math.nan,
            (float(ci.low), float(ci.high)),
            p_value,
            null,
            n,
            g_r,
            g_i,
            "exact binomial (clustering ignored)",
            level,
            note=(
                "Every answer is " + ("correct" if p == 1 else "wrong") + ": the "
                "cluster-robust interval is undefined, so the exact Clopper-Pearson "
                "interval on the pooled answers is shown; it ignores clustering."
            ),
        )
    e = y - p

    def meat(codes: np.ndarray, groups: int) -> float:
        total = float((np.bincount(codes, weights=e, minlength=groups) ** 2).sum())
        return groups / (groups - 1) * total

    notes = []
    pair, g_pair = _codes(r.astype(np.int64) * g_i + im)
    terms = []
    if g_r >= 2:
        terms.append(meat(r, g_r))
    if g_i >= 2:
        terms.append(meat(im, g_i))
    if g_r >= 2 and g_i >= 2:
        m = terms[0] + terms[1] - meat(pair, g_pair)
        if m <= 0:
            m = max(terms)
            notes.append(
                "The two-way variance was not positive; the larger one-way "
                "(reader or image) variance is used."
            )
        df = float(min(g_r, g_i) - 1)
    elif terms:
        m = terms[0]
        df = float((g_i if g_r < 2 else g_r) - 1)
        notes.append(
            "Only one "
            + ("reader" if g_r < 2 else "image")
            + ": clustered by "
            + ("image" if g_r < 2 else "reader")
            + " only."
        )
        method = "GEE (independence), one-way cluster-robust"
    else:
        return PooledAccuracyResult(
            p,
            math.nan,
            math.nan,
            nan_ci(),
            math.nan,
            null,
            n,
            g_r,
            g_i,
            method,
            level,
            note="One reader and one image: no variance can be estimated.",
        )
    # Sandwich on the logit scale: bread 1 / (N p (1 - p)), meat m.
    info = n * p * (1 - p)
    se_logit = math.sqrt(m) / info
    tq = float(stats.t.ppf(0.5 + level / 2, df))
    b = float(logit(p))
    ci = (float(expit(b - tq * se_logit)), float(expit(b + tq * se_logit)))
    if 0 < null < 1:
        t_stat = (b - float(logit(null))) / se_logit
        p_value = float(2 * stats.t.sf(abs(t_stat), df))
    else:
        p_value = math.nan
        notes.append("The null value must lie strictly between 0 and 1 for a test.")
    return PooledAccuracyResult(
        p,
        math.sqrt(m) / n,
        df,
        ci,
        p_value,
        null,
        n,
        g_r,
        g_i,
        method,
        level,
        note=join_notes(*notes),
    )


def paired_difference_test(
    a: ArrayLike, b: ArrayLike, *, level: float = 0.95
) -> PairedDifferenceResult:
    """Paired t-test and Wilcoxon signed-rank test of ``a - b`` across readers.

    Parameters
    ----------
    a, b : array_like
        One value each per reader (e.g. fake-taken-for-real rate and
        real-taken-for-fake rate). Pairs with a NaN are dropped.
    level : float

    Returns
    -------
    PairedDifferenceResult
        ``estimate`` is the mean difference with a t interval; ``p_value`` is
        the paired t-test and ``p_value_wilcoxon`` the signed-rank test
        (Wilcoxon 1945 [4]_), which does not assume normal differences.

    Notes
    -----
    Used for within-reader contrasts such as the fake-taken-for-real rate
    against the real-taken-for-fake rate: each reader is their own control,
    so reader-to-reader differences in overall skill cancel. Readers are the
    sample; the images are held fixed.

    References
    ----------
    .. [4] Wilcoxon (1945), doi:10.2307/3001968
    """
    x = np.asarray(a, dtype=float).reshape(-1)
    y = np.asarray(b, dtype=float).reshape(-1)
    if x.shape != y.shape:
        raise ValueError("a and b must have the same length")
    keep = ~(np.isnan(x) | np.isnan(y))
    d = x[keep] - y[keep]
    n = len(d)
    if n < 2:
        est = float(d.mean()) if n else math.nan
        return PairedDifferenceResult(
            est,
            math.nan,
            nan_ci(),
            math.nan,
            math.nan,
            n,
            level,
            note="A paired comparison needs at least two readers.",
        )
    mean = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(n))
    tq = float(stats.t.ppf(0.5 + level / 2, n - 1))
    if se == 0:
        p_t = 1.0 if mean == 0 else 0.0
        p_w = 1.0 if mean == 0 else math.nan
        note = (
            "Every reader has the same difference"
            + (" (zero)" if mean == 0 else "")
            + "; the t-test is degenerate."
        )
        if mean != 0:
            note += " The signed-rank test is not computed."
        return PairedDifferenceResult(
            mean, 0.0, (mean, mean), p_t, p_w, n, level, note=note
        )
    p_t = float(stats.ttest_1samp(d, 0.0).pvalue)
    if np.all(d == 0):
        p_w = 1.0
    else:
        p_w = float(stats.wilcoxon(d).pvalue)
    return PairedDifferenceResult(
        mean, se, (mean - tq * se, mean + tq * se), p_t, p_w, n, level
    )
