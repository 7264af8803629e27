import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats
from sklearn.metrics import roc_auc_score

from turingtest.stats import binomial_test, detection_summary, proportion_ci

# Newcombe (1998), Stat Med 17:857, Table II: methods 3 (Wilson score) and 5
# (Clopper-Pearson exact) for his four worked examples, to 4 decimals.
NEWCOMBE = [
    ((81, 263), (0.2553, 0.3662), (0.2527, 0.3676)),
    ((15, 148), (0.0624, 0.1605), (0.0578, 0.1617)),
    ((0, 20), (0.0000, 0.1611), (0.0000, 0.1684)),
    ((1, 29), (0.0061, 0.1718), (0.0009, 0.1776)),
]


@pytest.mark.parametrize(("kn", "wilson", "exact"), NEWCOMBE)
def test_intervals_match_newcombe_1998(kn, wilson, exact):
    k, n = kn
    assert np.round(proportion_ci(k, n).ci, 4) == pytest.approx(wilson, abs=1e-12)
    cp = proportion_ci(k, n, method="clopper-pearson").ci
    assert np.round(cp, 4) == pytest.approx(exact, abs=1e-12)


@given(st.integers(0, 400).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_interval_holds_the_estimate_and_stays_in_unit_range(kn):
    k, n = kn
    res = proportion_ci(k, n)
    if n == 0:
        assert math.isnan(res.estimate) and res.note
        return
    low, high = res.ci
    assert 0.0 <= low <= res.estimate <= high <= 1.0


def test_bad_counts_are_rejected():
    with pytest.raises(ValueError):
        proportion_ci(5, 3)
    with pytest.raises(ValueError):
        proportion_ci(1, 3, method="wald")


def test_binomial_test_matches_scipy():
    for k, n in [(35, 60), (0, 10), (60, 60), (28, 60)]:
        res = binomial_test(k, n)
        ref = stats.binomtest(k, n, 0.5)
        assert res.p_value == pytest.approx(ref.pvalue, rel=1e-12)
        ci = ref.proportion_ci(0.95, method="exact")
        assert res.ci == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert binomial_test(40, 60, alternative="greater").p_value == pytest.approx(
        stats.binomtest(40, 60, alternative="greater").pvalue
    )
    empty = binomial_test(0, 0)
    assert math.isnan(empty.p_value) and empty.note


def test_detection_summary_counts_and_rates():
    truth = ["synthetic"] * 6 + ["real"] * 4
    answer = ["synthetic"] * 4 + ["real"] * 2 + ["real"] * 3 + ["synthetic"]
    s = detection_summary(truth, answer)
    assert (s.hits, s.misses, s.false_alarms, s.correct_rejections) == (4, 2, 1, 3)
    assert s.accuracy.estimate == pytest.approx(0.7)
    assert s.sensitivity.estimate == pytest.approx(4 / 6)
    assert s.specificity.estimate == pytest.approx(3 / 4)
    assert s.fake_as_real.estimate == pytest.approx(2 / 6)
    assert s.real_as_fake.estimate == pytest.approx(1 / 4)
    assert s.p_value == pytest.approx(stats.binomtest(7, 10).pvalue)
    # Log-linear correction (Hautus 1995) applied to every reader.
    h, f = 4.5 / 7, 1.5 / 5
    assert s.d_prime == pytest.approx(stats.norm.ppf(h) - stats.norm.ppf(f))
    assert s.criterion == pytest.approx(-(stats.norm.ppf(h) + stats.norm.ppf(f)) / 2)
    assert s.auc is None


def test_reader_who_answers_everything_real():
    truth = ["synthetic", "real"] * 15
    s = detection_summary(truth, ["real"] * 30)
    assert s.sensitivity.estimate == 0.0 and s.specificity.estimate == 1.0
    assert s.fake_as_real.estimate == 1.0 and s.real_as_fake.estimate == 0.0
    assert s.accuracy.estimate == 0.5
    # Equal corrected rates: no sensitivity, a strong lean towards "real".
    assert s.d_prime == pytest.approx(0.0, abs=1e-12)
    assert s.criterion > 1.5
    assert math.isfinite(s.d_prime_se)


def test_missing_answers_are_left_out_and_counted():
    truth = ["synthetic", "real", "synthetic", "real"]
    s = detection_summary(truth, ["synthetic", None, float("nan"), "real"])
    assert s.n == 2 and s.n_missing == 2
    assert s.accuracy.estimate == 1.0
    assert "unanswered" in s.note


def test_detection_auc_from_confidence_matches_sklearn(rng):
    truth = np.where(rng.random(80) < 0.5, "synthetic", "real")
    conf = rng.integers(1, 7, 80).astype(float)
    conf[truth == "synthetic"] += rng.integers(0, 2, (truth == "synthetic").sum())
    conf = np.clip(conf, 1, 6)
    answer = np.where(conf >= 4, "synthetic", "real")
    s = detection_summary(truth, answer, conf)
    assert s.auc.estimate == pytest.approx(roc_auc_score(truth == "synthetic", conf))


def test_detection_needs_both_classes_for_d_prime():
    s = detection_summary(["real"] * 5, ["real", "synthetic", "real", "real", "real"])
    assert math.isnan(s.d_prime) and "both real and synthetic" in s.note
    assert math.isnan(s.sensitivity.estimate) and s.sensitivity.note


def test_unknown_labels_are_rejected():
    with pytest.raises(ValueError):
        detection_summary(["real"], ["fake"])
