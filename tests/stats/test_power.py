import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import expit

from turingtest.stats import mrmc_percent_correct, power_simulation
from turingtest.stats.power import (
    _binomial_rejects,
    _or_percent_correct_batch,
    marginal_intercept,
)


@pytest.mark.parametrize("n", [1, 7, 60, 900])
def test_rejection_region_matches_scipy_binomtest(n):
    region = _binomial_rejects(n, 0.5, 0.05)
    ks = range(n + 1) if n < 100 else range(400, 500)
    for k in ks:
        assert region[k] == (stats.binomtest(k, n, 0.5).pvalue < 0.05), k


def test_power_matches_the_closed_form_binomial_power():
    # With identical readers and images every answer is Bernoulli(accuracy),
    # so the exact test's power is a sum of binomial probabilities.
    n_readers, n_cases, accuracy = 15, 60, 0.53
    n = n_readers * n_cases
    region = np.array([stats.binomtest(k, n, 0.5).pvalue < 0.05 for k in range(n + 1)])
    exact = stats.binom.pmf(np.arange(n + 1), n, accuracy)[region].sum()
    res = power_simulation(
        n_readers, n_cases, accuracy, 0.0, 0.0, n_sim=4000, seed=1, method="binomial"
    )
    assert abs(res.power - exact) < 4 * math.sqrt(exact * (1 - exact) / 4000)


def test_mrmc_power_holds_its_size_at_chance():
    res = power_simulation(10, 60, 0.5, 0.5, 0.8, n_sim=2000, seed=2)
    low, high = stats.binom.ppf([0.0005, 0.9995], 2000, 0.05) / 2000
    assert low <= res.power <= high, res.power


def test_mrmc_power_grows_with_the_effect():
    small = power_simulation(10, 60, 0.55, 0.3, 0.5, n_sim=500, seed=3).power
    large = power_simulation(10, 60, 0.70, 0.3, 0.5, n_sim=500, seed=3).power
    assert small < large and large > 0.9


def test_batch_analysis_equals_mrmc_percent_correct(rng):
    x = (rng.random((5, 7, 40)) < 0.6).astype(float)
    est, se, df, p = _or_percent_correct_batch(x, 0.5)
    for i in range(5):
        res = mrmc_percent_correct(x[i])
        assert (est[i], se[i], df[i], p[i]) == pytest.approx(
            (res.estimate, res.se, res.df, res.p_value), rel=1e-10
        )


def test_marginal_intercept_gives_the_population_accuracy():
    mu = marginal_intercept(0.7, 1.2)
    z = np.random.default_rng(0).normal(size=400_000)
    assert expit(mu + 1.2 * z).mean() == pytest.approx(0.7, abs=0.003)
    assert marginal_intercept(0.7, 0.0) == pytest.approx(math.log(0.7 / 0.3))


def test_power_result_is_reproducible_and_documented():
    a = power_simulation(5, 30, 0.6, 0.5, 0.5, n_sim=200, seed=9)
    b = power_simulation(5, 30, 0.6, 0.5, 0.5, n_sim=200, seed=9)
    assert a == b and a.ci[0] <= a.power <= a.ci[1]
    inflated = power_simulation(5, 30, 0.6, 0.5, 0.5, n_sim=50, method="binomial")
    assert "ignores" in inflated.note
