"""Multi-reader multi-case (MRMC) analysis: Obuchowski-Rockette with Hillis df.

One "modality" (the Turing test has one: the images as shown), readers and
cases both random. The reader-averaged figure of merit (AUC or percent
correct) gets a standard error that counts reader-to-reader variation and
case sampling, with the denominator degrees of freedom of Hillis (2007).

References
----------
.. [1] Obuchowski, N. A., & Rockette, H. E. (1995). Hypothesis testing of
   diagnostic accuracy for multiple readers and multiple tests: an ANOVA
   approach with dependent observations. *Commun Stat Simul Comput* 24(2),
   285-308. doi:10.1080/03610919508813243
.. [2] Hillis, S. L. (2007). A comparison of denominator degrees of freedom
   methods for multiple observer ROC analysis. *Stat Med* 26(3), 596-619.
   doi:10.1002/sim.2532
.. [3] Hillis, S. L., Obuchowski, N. A., Schartz, K. M., & Berbaum, K. S.
   (2005). A comparison of the Dorfman-Berbaum-Metz and Obuchowski-Rockette
   methods for receiver operating characteristic (ROC) data. *Stat Med*
   24(10), 1579-1607. doi:10.1002/sim.2024
.. [4] Hillis, S. L., Berbaum, K. S., & Metz, C. E. (2008). Recent
   developments in the Dorfman-Berbaum-Metz procedure for multireader ROC
   study analysis. *Acad Radiol* 15(5), 647-661.
   doi:10.1016/j.acra.2007.12.015
.. [5] Van Dyke, C. W., et al. (1993). Cine MRI in the diagnosis of thoracic
   aortic dissection. *Radiology* 187(S), 199.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from turingtest.stats._base import Result, join_notes, nan_ci, z_quantile
from turingtest.stats.roc import placement_values

__all__ = ["MRMCResult", "mrmc_auc", "mrmc_percent_correct", "jackknife_covariance"]


@dataclass(frozen=True)
class MRMCResult(Result):
    """Reader-averaged figure of merit, readers and cases random.

    ``se``, ``df``, ``ci`` and ``p_value`` treat readers and cases as random
    (Obuchowski-Rockette with Hillis' ``ddf_H``); the ``*_fixed_readers``
    fields treat only cases as random (conclusions about these readers only).
    ``var_error`` is the mean of the readers' error variances, ``cov2`` the
    mean error covariance between two readers, ``ms_r`` the mean square of
    the reader estimates.
    """

    estimate: float
    se: float
    df: float
    ci: tuple[float, float]
    p_value: float
    statistic: float
    null: float
    figure_of_merit: str
    covariance: str
    reader_estimates: tuple[float, ...]
    var_error: float
    cov2: float
    ms_r: float
    n_readers: int
    n_cases: int
    random_readers: bool
    se_fixed_readers: float
    ci_fixed_readers: tuple[float, float]
    p_value_fixed_readers: float
    level: float
    note: str | None = None


def _clip_unit(low: float, high: float) -> tuple[float, float]:
    """Limits inside [0, 1], where AUC and percent correct live. OR-DBM MRMC
    prints unclipped limits; they differ only when a limit leaves the range."""
    return max(low, 0.0), min(high, 1.0)


def jackknife_covariance(loo: np.ndarray) -> np.ndarray:
    """Jackknife covariance of readers' estimates from leave-one-case-out values.

    Parameters
    ----------
    loo : ndarray, shape (n_readers, n_cases)
        Each reader's estimate with case ``k`` left out.

    Returns
    -------
    ndarray, shape (n_readers, n_readers)
        ``(N - 1) / N * sum_k (loo_jk - mean_j)(loo_lk - mean_l)``.
    """
    n = loo.shape[1]
    dev = loo - loo.mean(axis=1, keepdims=True)
    return (n - 1) / n * (dev @ dev.T)


def _empty(
    figure: str, covariance: str, null: float, level: float, note: str
) -> MRMCResult:
    return MRMCResult(
        estimate=math.nan,
        se=math.nan,
        df=math.nan,
        ci=nan_ci(),
        p_value=math.nan,
        statistic=math.nan,
        null=null,
        figure_of_merit=figure,
        covariance=covariance,
        reader_estimates=(),
        var_error=math.nan,
        cov2=math.nan,
        ms_r=math.nan,
        n_readers=0,
        n_cases=0,
        random_readers=False,
        se_fixed_readers=math.nan,
        ci_fixed_readers=nan_ci(),
        p_value_fixed_readers=math.nan,
        level=level,
        note=note,
    )


def _obuchowski_rockette(
    theta: np.ndarray,
    cov: np.ndarray,
    n_cases: int,
    *,
    null: float,
    level: float,
    figure: str,
    covariance: str,
    note: str | None,
) -> MRMCResult:
    r = len(theta)
    est = float(theta.mean())
    var_error = float(np.trace(cov) / r)
    cov2 = float((cov.sum() - np.trace(cov)) / (r * (r - 1))) if r > 1 else math.nan

    # Readers fixed: the variance of the mean of r correlated estimates.
    var_fixed = max(float(cov.sum()) / r**2, 0.0)
    se_fixed = math.sqrt(var_fixed)
    q = z_quantile(level)
    ci_fixed = _clip_unit(est - q * se_fixed, est + q * se_fixed)
    p_fixed = (
        float(2 * stats.norm.sf(abs(est - null) / se_fixed))
        if se_fixed > 0
        else math.nan
    )

    notes = [note]
    if r >= 2:
        # Hillis (2007) single-treatment analysis, as OR-DBM MRMC part (c):
        # var = (MS(R) + r * max(Cov2, 0)) / r with ddf_H = (MS(R) +
        # r max(Cov2, 0))^2 / (MS(R)^2 / (r - 1)). Clipping Cov2 at zero
        # follows Hillis et al. (2008): a negative between-reader error
        # covariance is not plausible and would shrink the SE.
        ms_r = float(theta.var(ddof=1))
        num = ms_r + r * max(cov2, 0.0)
        se = math.sqrt(num / r)
        if ms_r > 0:
            df = num**2 / (ms_r**2 / (r - 1))
        else:
            df = math.inf
            notes.append(
                "Every reader has the same estimate, so Hillis' df is infinite and "
                "the normal distribution is used."
            )
        random_readers = True
    else:
        ms_r = math.nan
        se, df = se_fixed, math.inf
        random_readers = False
        notes.append(
            "One reader: the interval treats cases as random only (normal "
            "reference, df infinite) and does not generalise to other readers."
        )
    if se > 0:
        statistic = (est - null) / se
        tq = float(stats.t.ppf(0.5 + level / 2, df)) if math.isfinite(df) else q
        ci = _clip_unit(est - tq * se, est + tq * se)
        if math.isfinite(df):
            p = float(2 * stats.t.sf(abs(statistic), df))
        else:
            p = float(2 * stats.norm.sf(abs(statistic)))
    else:
        statistic, p = math.nan, math.nan
        ci = (est, est)
        notes.append(
            "Every reader has the same estimate and no case-sampling variance: "
            "the standard error is zero and no test is possible."
        )
    return MRMCResult(
        estimate=est,
        se=se,
        df=df,
        ci=ci,
        p_value=p,
        statistic=statistic,
        null=null,
        figure_of_merit=figure,
        covariance=covariance,
        reader_estimates=tuple(float(x) for x in theta),
        var_error=var_error,
        cov2=cov2,
        ms_r=ms_r,
        n_readers=r,
        n_cases=n_cases,
        random_readers=random_readers,
        se_fixed_readers=se_fixed,
        ci_fixed_readers=ci_fixed,
        p_value_fixed_readers=p_fixed,
        level=level,
        note=join_notes(*notes),
    )


def _complete_cases(x: np.ndarray) -> tuple[np.ndarray, str | None]:
    keep = ~np.isnan(x).any(axis=0)
    dropped = int((~keep).sum())
    if dropped == 0:
        return keep, None
    return keep, (
        f"{dropped} cases without an answer from every reader were left out "
        "(the analysis needs every reader to read every case)."
    )


def mrmc_auc(
    truth: ArrayLike,
    scores: ArrayLike,
    covariance: Literal["jackknife", "delong"] = "jackknife",
    *,
    null: float = 0.5,
    level: float = 0.95,
) -> MRMCResult:
    """Reader-averaged AUC, Obuchowski-Rockette with Hillis' df.

    Parameters
    ----------
    truth : array_like of bool or 0/1, shape (n_cases,)
        1 for the positive class ("synthetic" in a Turing test).
    scores : array_like, shape (n_readers, n_cases)
        Ratings, higher = more likely positive. Cases with a missing (NaN)
        rating from any reader are left out, with a note.
    covariance : {"jackknife", "delong"}
        How the readers' AUC error covariance matrix is estimated: the
        jackknife over cases (as OR-DBM MRMC) or DeLong's structural
        components.
    null : float
        AUC under the null hypothesis.
    level : float
        Confidence level.

    Returns
    -------
    MRMCResult

    Notes
    -----
    Reader ``j``'s AUC is the trapezoidal (Wilcoxon) area. The jackknife
    needs each reader's AUC with each case left out; leaving out a positive
    case ``i`` gives ``(m AUC - V10_i) / (m - 1)`` and a negative case ``k``
    gives ``(n AUC - V01_k) / (n - 1)`` from DeLong's placement values, so the
    whole jackknife is a few array operations rather than ``N`` AUCs.

    With ``r`` readers, ``MS(R)`` the sample variance of their AUCs,
    ``Cov2`` the mean error covariance of two different readers and
    ``Var(Error)`` the mean error variance, the single-modality analysis of
    Obuchowski & Rockette (1995) [1]_ with Hillis' (2007) [2]_ df is::

        SE^2 = (MS(R) + r max(Cov2, 0)) / r
        df   = (MS(R) + r max(Cov2, 0))^2 / (MS(R)^2 / (r - 1))

    and the interval is ``mean AUC +/- t(df) SE``. On the Van Dyke et al.
    (1993) data this reproduces OR-DBM MRMC 2.51 to the printed digits (see
    the tests).

    References
    ----------
    .. [1] Obuchowski & Rockette (1995), doi:10.1080/03610919508813243
    .. [2] Hillis (2007), doi:10.1002/sim.2532
    .. [3] Hillis et al. (2005), doi:10.1002/sim.2024
    .. [4] Hillis, Berbaum & Metz (2008), doi:10.1016/j.acra.2007.12.015
    """
    if covariance not in ("jackknife", "delong"):
        raise ValueError("covariance must be 'jackknife' or 'delong'")
    t = np.asarray(truth)
    if t.dtype != bool:
        if not np.all(np.isin(t, (0, 1))):
            raise ValueError("truth must be boolean or 0/1")
        t = t.astype(bool)
    s = np.atleast_2d(np.asarray(scores, dtype=float))
    if s.shape[1] != t.shape[0]:
        raise ValueError("scores must be readers x cases, one column per case")
    keep, note = _complete_cases(s)
    t, s = t[keep], s[:, keep]
    m, n = int(t.sum()), int((~t).sum())
    if s.shape[0] == 0:
        return _empty("auc", covariance, null, level, "No readers.")
    if m < 2 or n < 2:
        return _empty(
            "auc",
            covariance,
            null,
            level,
            join_notes(note, "The MRMC AUC needs at least two cases of each class.")
            or "",
        )
    auc, v10, v01 = placement_values(t, s)
    if covariance == "jackknife":
        loo = np.empty_like(s)
        loo[:, t] = (m * auc[:, None] - v10) / (m - 1)
        loo[:, ~t] = (n * auc[:, None] - v01) / (n - 1)
        cov = jackknife_covariance(loo)
    else:
        cov = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return _obuchowski_rockette(
        auc,
        cov,
        m + n,
        null=null,
        level=level,
        figure="auc",
        covariance=covariance,
        note=note,
    )


def mrmc_percent_correct(
    correct: ArrayLike, *, null: float = 0.5, level: float = 0.95
) -> MRMCResult:
    """Reader-averaged percent correct, readers and cases random.

    Parameters
    ----------
    correct : array_like, shape (n_readers, n_cases)
        1 where the reader was right, 0 where wrong, NaN where unanswered
        (such cases are left out for every reader, with a note).
    null : float
        Percent correct under the null hypothesis (0.5: guessing).
    level : float

    Returns
    -------
    MRMCResult

    Notes
    -----
    The same Obuchowski-Rockette / Hillis machinery as :func:`mrmc_auc`
    with the proportion correct as the figure of merit. Its leave-one-case-out
    value is ``(S_j - x_jk) / (N - 1)``, so the jackknife covariance equals
    the sample covariance of the readers' 0/1 answers across cases divided
    by ``N``.

    References
    ----------
    .. [1] Obuchowski & Rockette (1995), doi:10.1080/03610919508813243
    .. [2] Hillis (2007), doi:10.1002/sim.2532
    """
    x = np.atleast_2d(np.asarray(correct, dtype=float))
    keep, note = _complete_cases(x)
    x = x[:, keep]
    if x.shape[0] == 0:
        return _empty("percent_correct", "jackknife", null, level, "No readers.")
    n = x.shape[1]
    if n < 2:
        return _empty(
            "percent_correct",
            "jackknife",
            null,
            level,
            join_notes(note, "Percent correct needs at least two cases read by all.")
            or "",
        )
    if not np.all(np.isin(x, (0.0, 1.0))):
        raise ValueError("correct must hold 0, 1 or NaN")
    theta = x.mean(axis=1)
    loo = (x.sum(axis=1, keepdims=True) - x) / (n - 1)
    return _obuchowski_rockette(
        theta,
        jackknife_covariance(loo),
        n,
        null=null,
        level=level,
        figure="percent_correct",
        covariance="jackknife",
        note=note,
    )
