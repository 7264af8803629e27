"""Power of a visual Turing test to show that readers beat chance.

References
----------
.. [1] Obuchowski, N. A., & Rockette, H. E. (1995). Hypothesis testing of
   diagnostic accuracy for multiple readers and multiple tests: an ANOVA
   approach with dependent observations. *Commun Stat Simul Comput* 24(2),
   285-308. doi:10.1080/03610919508813243
.. [2] Hillis, S. L. (2007). A comparison of denominator degrees of freedom
   methods for multiple observer ROC analysis. *Stat Med* 26(3), 596-619.
   doi:10.1002/sim.2532
.. [3] Chen, W., Wunderlich, A., Petrick, N., & Gallas, B. D. (2014).
   Multireader multicase reader studies with binary agreement data:
   simulation, analysis, validation, and sizing. *J Med Imaging* 1(3),
   031011. doi:10.1117/1.JMI.1.3.031011
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy import optimize, stats
from scipy.special import expit
from statsmodels.stats.proportion import proportion_confint

from turingtest.stats._base import Result, join_notes

__all__ = ["PowerResult", "power_simulation", "marginal_intercept"]

# Answers simulated per chunk: keeps memory near 50 MB whatever the design.
_CHUNK = 6_000_000


@dataclass(frozen=True)
class PowerResult(Result):
    """Simulated power with its Monte Carlo uncertainty."""

    power: float
    se: float
    ci: tuple[float, float]
    n_sim: int
    n_readers: int
    n_cases: int
    accuracy: float
    reader_sd: float
    case_sd: float
    alpha: float
    method: str
    intercept: float
    mean_estimate: float
    n_degenerate: int
    seed: int | None
    note: str | None = None


def marginal_intercept(accuracy: float, sd: float) -> float:
    """Logit intercept whose population-average accuracy is ``accuracy``.

    Solves ``E[expit(mu + sd Z)] = accuracy`` for ``mu`` with ``Z`` standard
    normal, using 40-point Gauss-Hermite quadrature.
    """
    if not 0.0 < accuracy < 1.0:
        raise ValueError("accuracy must lie strictly between 0 and 1")
    if sd == 0:
        return float(math.log(accuracy / (1 - accuracy)))
    nodes, weights = hermegauss(40)
    weights = weights / weights.sum()

    def gap(mu: float) -> float:
        return float((weights * expit(mu + sd * nodes)).sum() - accuracy)

    return float(optimize.brentq(gap, -50.0, 50.0, xtol=1e-12))


def _or_percent_correct_batch(
    x: np.ndarray, null: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Obuchowski-Rockette / Hillis test of percent correct for many studies.

    ``x`` is (studies, readers, cases) of 0/1; returns estimate, se, df and
    the two-sided p-value per study, the same numbers as
    :func:`turingtest.stats.mrmc_percent_correct` (the tests check this).
    """
    _, r, c = x.shape
    theta = x.mean(axis=2)
    est = theta.mean(axis=1)
    # Jackknife covariance of the readers' percent correct is the sample
    # covariance of their 0/1 answers over cases divided by c; its trace and
    # its total (the variance of the per-case sums) are all OR needs.
    trace = x.var(axis=2, ddof=1).sum(axis=1) / c
    total = x.sum(axis=1).var(axis=1, ddof=1) / c
    if r >= 2:
        ms_r = theta.var(axis=1, ddof=1)
        cov2 = (total - trace) / (r * (r - 1))
        num = ms_r + r * np.maximum(cov2, 0.0)
        se = np.sqrt(num / r)
        with np.errstate(divide="ignore", invalid="ignore"):
            df = np.where(ms_r > 0, num**2 / (ms_r**2 / (r - 1)), np.inf)
    else:
        se = np.sqrt(np.maximum(total, 0.0))
        df = np.full(len(est), np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (est - null) / se
        p = np.where(
            np.isfinite(df), 2 * stats.t.sf(np.abs(t), df), 2 * stats.norm.sf(np.abs(t))
        )
    return est, se, df, p


def _binomial_rejects(n: int, null: float, alpha: float) -> np.ndarray:
    """Outcomes k of Binomial(n, null) that the two-sided exact test rejects.

    Two-sided p-value as :func:`scipy.stats.binomtest`: the total probability
    of outcomes no more likely than k (with scipy's relative tolerance).
    """
    k = np.arange(n + 1)
    pmf = stats.binom.pmf(k, n, null)
    order = np.sort(pmf)
    cum = np.cumsum(order)
    idx = np.searchsorted(order, pmf * (1 + 1e-7), side="right") - 1
    pvalue = np.minimum(cum[idx], 1.0)
    return pvalue < alpha


def power_simulation(
    n_readers: int,
    n_cases: int,
    accuracy: float,
    reader_sd: float,
    case_sd: float,
    alpha: float = 0.05,
    n_sim: int = 1000,
    seed: int | None = 0,
    *,
    method: Literal["mrmc", "binomial"] = "mrmc",
    null: float = 0.5,
) -> PowerResult:
    """Simulated power to show that readers' accuracy differs from chance.

    Parameters
    ----------
    n_readers, n_cases : int
        Planned design; every reader reads every case.
    accuracy : float
        Population-average accuracy to detect (e.g. 0.6).
    reader_sd, case_sd : float
        Standard deviations of reader skill and case difficulty on the logit
        scale (0 for identical readers or images; 0.5-1 is typical).
    alpha : float
        Two-sided significance level.
    n_sim : int
        Simulated studies.
    seed : int or None
        Seed of the simulation.
    method : {"mrmc", "binomial"}
        The analysis each simulated study gets: the Obuchowski-Rockette /
        Hillis test of percent correct with readers and cases random (what
        the study report uses), or the exact binomial test of all answers
        pooled (valid only when both SDs are zero).
    null : float
        Accuracy under the null hypothesis.

    Returns
    -------
    PowerResult
        ``power`` is the share of simulated studies that reject the null;
        ``ci`` its Wilson interval over the simulations.

    Notes
    -----
    Each answer is correct with probability ``expit(mu + b_r + c_k)``, with
    ``b_r ~ N(0, reader_sd^2)`` and ``c_k ~ N(0, case_sd^2)`` (a logistic
    crossed random-effects model, the binary counterpart of the Roe-Metz
    simulation used for MRMC studies, cf. Chen et al. 2014 [3]_). ``mu`` is
    chosen by :func:`marginal_intercept` so that ``accuracy`` is the
    population-average accuracy, the quantity the analysis estimates.

    A simulated study whose standard error is zero (every answer the same)
    counts as rejecting when its estimate differs from ``null``; their
    number is reported as ``n_degenerate``.

    References
    ----------
    .. [1] Obuchowski & Rockette (1995), doi:10.1080/03610919508813243
    .. [2] Hillis (2007), doi:10.1002/sim.2532
    .. [3] Chen et al. (2014), doi:10.1117/1.JMI.1.3.031011
    """
    if n_readers < 1 or n_cases < 2:
        raise ValueError("need at least one reader and two cases")
    if n_sim < 1:
        raise ValueError("n_sim must be positive")
    if reader_sd < 0 or case_sd < 0:
        raise ValueError("standard deviations must be non-negative")
    if method not in ("mrmc", "binomial"):
        raise ValueError("method must be 'mrmc' or 'binomial'")
    mu = marginal_intercept(accuracy, math.hypot(reader_sd, case_sd))
    rng = np.random.default_rng(seed)
    per_study = n_readers * n_cases
    chunk = max(1, _CHUNK // per_study)
    rejected = 0
    degenerate = 0
    estimates = []
    rejects_k = (
        _binomial_rejects(per_study, null, alpha) if method == "binomial" else None
    )
    done = 0
    while done < n_sim:
        s = min(chunk, n_sim - done)
        b = rng.normal(0.0, reader_sd, size=(s, n_readers, 1))
        c = rng.normal(0.0, case_sd, size=(s, 1, n_cases))
        x = (rng.random((s, n_readers, n_cases)) < expit(mu + b + c)).astype(np.float64)
        if rejects_k is not None:  # method == "binomial"
            k = x.sum(axis=(1, 2)).astype(np.int64)
            rejected += int(rejects_k[k].sum())
            estimates.append(k / per_study)
        else:
            est, se, _, p = _or_percent_correct_batch(x, null)
            zero = ~(se > 0)
            degenerate += int(zero.sum())
            rejected += int((p[~zero] < alpha).sum()) + int((est[zero] != null).sum())
            estimates.append(est)
        done += s
    power = rejected / n_sim
    low, high = proportion_confint(rejected, n_sim, alpha=0.05, method="wilson")
    notes = []
    if method == "binomial" and (reader_sd > 0 or case_sd > 0):
        notes.append(
            "The pooled binomial test ignores reader and case variation; its "
            "type I error is inflated when either SD is above zero."
        )
    if n_readers == 1 and method == "mrmc":
        notes.append("One reader: the test treats cases as random only.")
    return PowerResult(
        power=power,
        se=math.sqrt(power * (1 - power) / n_sim),
        ci=(float(low), float(high)),
        n_sim=n_sim,
        n_readers=n_readers,
        n_cases=n_cases,
        accuracy=accuracy,
        reader_sd=reader_sd,
        case_sd=case_sd,
        alpha=alpha,
        method=method,
        intercept=mu,
        mean_estimate=float(np.concatenate(estimates).mean()),
        n_degenerate=degenerate,
        seed=seed,
        note=join_notes(*notes),
    )
