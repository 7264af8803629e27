"""Intervals stay inside the range their statistic can take."""

import numpy as np

from turingtest.stats import cohen_kappa, fleiss_kappa


def test_cohen_kappa_interval_stays_within_minus_one_and_one():
    # Six items on which two readers disagree almost perfectly: the Wald
    # interval of this strongly negative kappa would reach below -1.
    a = np.array([0, 4, 0, 4, 2, 2])
    b = np.array([4, 0, 4, 0, 2, 1])
    result = cohen_kappa(a, b, weights="quadratic")
    low, high = result.ci
    assert -1.0 <= low <= result.estimate <= high <= 1.0
    unclipped_low = result.estimate - 1.959963984540054 * result.se
    assert unclipped_low < -1.0  # the case really needed clipping


def test_fleiss_kappa_interval_stays_within_minus_one_and_one():
    counts = np.array([[1, 1], [1, 1], [2, 0]])
    result = fleiss_kappa(counts)
    assert -1.0 <= result.ci[0] <= result.ci[1] <= 1.0


def test_mrmc_interval_stays_within_zero_and_one():
    from scipy import stats

    from turingtest.stats import mrmc_auc

    # Two good readers, ten cases: Hillis' df is small and the t limit
    # would pass 1.
    truth = np.array([0] * 5 + [1] * 5)
    scores = truth * 2.5 + np.random.default_rng(3).normal(size=(2, 10))
    result = mrmc_auc(truth, scores)
    assert 0.0 <= result.ci[0] <= result.estimate <= result.ci[1] <= 1.0
    unclipped_high = result.estimate + stats.t.ppf(0.975, result.df) * result.se
    assert unclipped_high > 1.0  # the case really needed clipping
