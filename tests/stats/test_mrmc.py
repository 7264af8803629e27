import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import expit

from turingtest.stats import mrmc_auc, mrmc_percent_correct
from turingtest.stats.power import marginal_intercept
from turingtest.stats.roc import placement_values


def _modality(data: np.ndarray, modality: int) -> tuple[np.ndarray, np.ndarray]:
    rows = data[data[:, 1] == modality]
    readers = np.unique(rows[:, 0]).astype(int)
    cases = np.unique(rows[:, 2]).astype(int)
    scores = np.full((len(readers), len(cases)), np.nan)
    truth = np.zeros(len(cases), dtype=bool)
    for reader, _, case, t, score in rows:
        scores[np.searchsorted(readers, reader), np.searchsorted(cases, case)] = score
        truth[np.searchsorted(cases, case)] = t == 1
    return truth, scores


def test_reproduces_or_dbm_mrmc_on_van_dyke_modality_1(vandyke):
    # OR-DBM MRMC 2.51 output for the Van Dyke et al. (1993) data
    # (RJafroc inst/IowaResults/VanDyke.txt): analysis 1, random readers and
    # cases, part (c) single-modality CI for modality 1, jackknife covariance.
    truth, scores = _modality(vandyke, 1)
    res = mrmc_auc(truth, scores)

    def printed(value: float, reference: float, decimals: int) -> None:
        assert abs(value - reference) <= 0.5 * 10**-decimals, (value, reference)

    reference_aucs = [0.91964573, 0.85877617, 0.90386473, 0.97310789, 0.82979066]
    for got, ref in zip(res.reader_estimates, reference_aucs, strict=True):
        printed(got, ref, 8)
    printed(res.estimate, 0.89703704, 8)
    printed(res.se, 0.03317360, 8)
    printed(res.df, 12.74, 2)
    printed(res.ci[0], 0.82522360, 8)
    printed(res.ci[1], 0.96885048, 8)
    printed(res.var_error, 0.00101410, 8)
    printed(res.cov2, 0.00048396, 8)
    printed(res.ms_r, 0.00308263, 8)
    assert (res.n_readers, res.n_cases) == (5, 114)
    assert res.random_readers and res.p_value < 1e-4


def test_van_dyke_delong_covariance_is_close_to_the_jackknife(vandyke):
    truth, scores = _modality(vandyke, 1)
    jack = mrmc_auc(truth, scores)
    delong = mrmc_auc(truth, scores, covariance="delong")
    assert delong.estimate == jack.estimate
    assert delong.var_error == pytest.approx(jack.var_error, rel=0.05)
    assert delong.cov2 == pytest.approx(jack.cov2, rel=0.05)


def test_vectorised_jackknife_equals_recomputing_every_auc(rng):
    n_readers, n_cases = 4, 30
    truth = np.arange(n_cases) % 3 == 0
    scores = rng.integers(1, 7, (n_readers, n_cases)).astype(float)
    scores[:, truth] += 1
    res = mrmc_auc(truth, scores)
    loo = np.empty((n_readers, n_cases))
    for k in range(n_cases):
        keep = np.arange(n_cases) != k
        loo[:, k] = placement_values(truth[keep], scores[:, keep])[0]
    dev = loo - loo.mean(axis=1, keepdims=True)
    cov = (n_cases - 1) / n_cases * dev @ dev.T
    assert res.var_error == pytest.approx(np.trace(cov) / n_readers, rel=1e-12)
    off = (cov.sum() - np.trace(cov)) / (n_readers * (n_readers - 1))
    assert res.cov2 == pytest.approx(off, rel=1e-10)


def test_percent_correct_jackknife_is_the_sample_covariance(rng):
    x = (rng.random((6, 50)) < 0.6).astype(float)
    res = mrmc_percent_correct(x)
    cov = np.cov(x) / 50
    assert res.var_error == pytest.approx(np.trace(cov) / 6, rel=1e-12)
    assert res.cov2 == pytest.approx((cov.sum() - np.trace(cov)) / 30, rel=1e-10)
    assert res.ms_r == pytest.approx(x.mean(axis=1).var(ddof=1))
    num = res.ms_r + 6 * max(res.cov2, 0)
    assert res.se == pytest.approx(math.sqrt(num / 6))
    assert res.df == pytest.approx(num**2 / (res.ms_r**2 / 5))
    t = (res.estimate - 0.5) / res.se
    assert res.p_value == pytest.approx(2 * stats.t.sf(abs(t), res.df))


def _roe_metz_like(rng, n_readers, n_pos, n_neg, mu, tau, sigma_c, sigma_rc):
    """Continuous ratings with reader-specific separation mu + tau_r.

    Reader r's population AUC is Phi((mu + tau_r) / s) with
    s^2 = 2 (sigma_c^2 + sigma_rc^2 + 1), so the reader-averaged AUC over the
    reader population is Phi(mu / sqrt(s^2 + tau^2)).
    """
    n = n_pos + n_neg
    truth = np.arange(n) < n_pos
    sep = mu + rng.normal(0, tau, (n_readers, 1))
    case = rng.normal(0, sigma_c, (1, n))
    scores = (
        case + rng.normal(0, sigma_rc, (n_readers, n)) + rng.normal(size=(n_readers, n))
    )
    scores = scores + sep * truth
    s2 = 2 * (sigma_c**2 + sigma_rc**2 + 1)
    return truth, scores, stats.norm.cdf(mu / math.sqrt(s2 + tau**2))


def _within_binomial_tolerance(hits: int, n: int, level: float = 0.95) -> bool:
    # Two-sided 99.9% acceptance region of Binomial(n, level).
    low, high = stats.binom.ppf([0.0005, 0.9995], n, level)
    return low <= hits <= high


def test_auc_interval_covers_the_true_reader_averaged_auc(rng):
    n_sim, hits, aucs = 400, 0, []
    for _ in range(n_sim):
        truth, scores, true_auc = _roe_metz_like(rng, 6, 40, 40, 1.2, 0.3, 0.6, 0.4)
        res = mrmc_auc(truth, scores)
        hits += res.ci[0] <= true_auc <= res.ci[1]
        aucs.append(res.estimate)
    assert _within_binomial_tolerance(hits, n_sim), hits / n_sim
    assert np.mean(aucs) == pytest.approx(true_auc, abs=0.01)


def test_percent_correct_interval_covers_the_true_accuracy(rng):
    accuracy, reader_sd, case_sd = 0.65, 0.5, 0.8
    mu = marginal_intercept(accuracy, math.hypot(reader_sd, case_sd))
    n_sim, hits = 400, 0
    for _ in range(n_sim):
        b = rng.normal(0, reader_sd, (8, 1))
        c = rng.normal(0, case_sd, (1, 60))
        x = (rng.random((8, 60)) < expit(mu + b + c)).astype(float)
        res = mrmc_percent_correct(x)
        hits += res.ci[0] <= accuracy <= res.ci[1]
    assert _within_binomial_tolerance(hits, n_sim), hits / n_sim


def test_one_reader_falls_back_to_random_cases_only(rng):
    truth = np.arange(40) % 2 == 0
    scores = rng.integers(1, 7, (1, 40)).astype(float)
    res = mrmc_auc(truth, scores)
    assert not res.random_readers and math.isinf(res.df)
    assert res.se == pytest.approx(res.se_fixed_readers)
    assert "One reader" in res.note


def test_cases_missing_a_rating_are_dropped_with_a_note(rng):
    truth = np.arange(40) % 2 == 0
    scores = rng.integers(1, 7, (3, 40)).astype(float)
    full = mrmc_auc(truth[1:], scores[:, 1:])
    scores[1, 0] = np.nan
    res = mrmc_auc(truth, scores)
    assert res.n_cases == 39 and res.estimate == full.estimate
    assert "left out" in res.note


def test_identical_perfect_readers_give_zero_se_with_a_note():
    res = mrmc_percent_correct(np.ones((3, 20)))
    assert res.estimate == 1.0 and res.se == 0.0
    assert math.isnan(res.p_value) and "zero" in res.note


def test_too_few_cases_of_a_class():
    res = mrmc_auc([1, 0, 0, 0], np.ones((2, 4)))
    assert math.isnan(res.estimate) and "two cases of each class" in res.note
