import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from scipy.special import expit
from statsmodels.stats.weightstats import DescrStatsW

from turingtest.stats import (
    equivalence_test,
    mrmc_percent_correct,
    paired_difference_test,
    pooled_accuracy_gee,
    tost,
)


def _crossed(rng, n_readers, n_images, mu=0.4, reader_sd=0.5, image_sd=0.8):
    reader = np.repeat(np.arange(n_readers), n_images)
    image = np.tile(np.arange(n_images), n_readers)
    eta = mu + rng.normal(0, reader_sd, n_readers)[reader]
    eta = eta + rng.normal(0, image_sd, n_images)[image]
    return (rng.random(len(reader)) < expit(eta)).astype(float), reader, image


def test_pooled_accuracy_equals_statsmodels_two_way_cluster_glm(rng):
    for n_readers, n_images in [(15, 60), (6, 25), (30, 12)]:
        y, reader, image = _crossed(rng, n_readers, n_images)
        ours = pooled_accuracy_gee(y, reader, image)
        fit = sm.GLM(y, np.ones((len(y), 1)), family=sm.families.Binomial()).fit(
            cov_type="cluster",
            cov_kwds={"groups": np.column_stack([reader, image])},
            use_t=True,
        )
        assert ours.estimate == pytest.approx(expit(fit.params[0]), abs=1e-12)
        assert ours.df == fit.df_resid_inference
        low, high = expit(fit.conf_int()[0])
        assert ours.ci == pytest.approx((low, high), abs=1e-9)
        assert ours.p_value == pytest.approx(fit.pvalues[0], abs=1e-9)
        p = ours.estimate
        assert ours.se == pytest.approx(p * (1 - p) * fit.bse[0], abs=1e-9)


def test_pooled_accuracy_with_string_ids_and_missing_answers(rng):
    y, reader, image = _crossed(rng, 5, 20)
    y[3] = np.nan
    res = pooled_accuracy_gee(y, [f"r{r}" for r in reader], [f"i{i}" for i in image])
    assert res.n_answers == 99 and res.n_readers == 5 and res.n_images == 20


def test_pooled_accuracy_coverage_on_crossed_data(rng):
    accuracy_hits, n_sim = 0, 300
    from turingtest.stats.power import marginal_intercept

    mu = marginal_intercept(0.6, math.hypot(0.5, 0.8))
    for _ in range(n_sim):
        y, reader, image = _crossed(rng, 30, 60, mu=mu)
        res = pooled_accuracy_gee(y, reader, image)
        accuracy_hits += res.ci[0] <= 0.6 <= res.ci[1]
    low, high = stats.binom.ppf([0.0005, 0.9995], n_sim, 0.95)
    assert low <= accuracy_hits <= high, accuracy_hits / n_sim


def test_pooled_accuracy_one_reader_and_all_correct():
    one = pooled_accuracy_gee([1, 0, 1, 1], ["a"] * 4, ["i1", "i2", "i3", "i4"])
    assert "Only one reader" in one.note and one.df == 3
    perfect = pooled_accuracy_gee([1, 1, 1, 1], ["a", "a", "b", "b"], [1, 2, 1, 2])
    assert perfect.estimate == 1.0 and "Clopper-Pearson" in perfect.note
    assert perfect.ci[1] == 1.0 and perfect.ci[0] < 1.0


def test_equivalence_test_matches_statsmodels_tost():
    acc = np.array([0.52, 0.47, 0.55, 0.5, 0.49, 0.58, 0.44])
    res = equivalence_test(acc, margin=0.1)
    p, (_, p1, _), (_, p2, _) = DescrStatsW(acc).ttost_mean(0.4, 0.6)
    assert res.p_value == pytest.approx(p)
    assert (res.p_lower, res.p_upper) == pytest.approx((p1, p2))
    se = acc.std(ddof=1) / math.sqrt(7)
    q = stats.t.ppf(0.95, 6)
    assert res.ci == pytest.approx((acc.mean() - q * se, acc.mean() + q * se))
    assert res.equivalent == (res.ci[0] > 0.4 and res.ci[1] < 0.6)


def test_equivalence_fails_for_readers_who_can_tell():
    res = equivalence_test([0.8, 0.75, 0.9, 0.85], margin=0.1)
    assert not res.equivalent and res.p_value > 0.5


def test_equivalence_edge_cases():
    one = equivalence_test([0.5])
    assert math.isnan(one.p_value) and "two readers" in one.note
    flat = equivalence_test([0.5, 0.5, 0.5])
    assert flat.equivalent and "zero" in flat.note


def test_tost_on_the_mrmc_percent_correct(rng):
    x = (rng.random((10, 200)) < 0.5).astype(float)
    m = mrmc_percent_correct(x)
    res = tost(m.estimate, m.se, m.df, 0.4, 0.6)
    t1 = (m.estimate - 0.4) / m.se
    t2 = (m.estimate - 0.6) / m.se
    expected = max(stats.t.sf(t1, m.df), stats.t.cdf(t2, m.df))
    assert res.p_value == pytest.approx(expected)


def test_paired_difference_matches_scipy(rng):
    a = rng.random(15)
    b = a - 0.1 + rng.normal(0, 0.1, 15)
    res = paired_difference_test(a, b)
    assert res.p_value == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert res.p_value_wilcoxon == pytest.approx(stats.wilcoxon(a - b).pvalue)
    assert res.estimate == pytest.approx((a - b).mean())


def test_paired_difference_edge_cases():
    same = paired_difference_test([0.2, 0.3], [0.2, 0.3])
    assert same.p_value == 1.0 and "zero" in same.note
    one = paired_difference_test([0.2], [0.1])
    assert math.isnan(one.p_value) and "two readers" in one.note
