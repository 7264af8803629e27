import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from turingtest.stats import auc_compare_delong, auc_delong, roc_points


def _kernel(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """The Mann-Whitney kernel psi(x, y) for every positive-negative pair."""
    return (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])


def _delong_by_definition(truth, *scores):
    """AUCs and their covariance from DeLong et al. (1988), eqs. (2)-(5).

    Written from the pairwise kernel, independently of the rank shortcut.
    """
    t = np.asarray(truth, bool)
    m, n = t.sum(), (~t).sum()
    v10, v01, aucs = [], [], []
    for s in scores:
        psi = _kernel(np.asarray(s)[t], np.asarray(s)[~t])
        aucs.append(psi.mean())
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
    s10 = np.atleast_2d(np.cov(np.vstack(v10)))
    s01 = np.atleast_2d(np.cov(np.vstack(v01)))
    return np.array(aucs), s10 / m + s01 / n


def _ratings(rng, n=90, shift=0.8):
    truth = rng.random(n) < 0.45
    latent = rng.normal(size=n) + shift * truth
    return truth, np.digitize(latent, [-1.0, -0.3, 0.3, 1.0, 1.6]) + 1.0


def test_auc_matches_sklearn_and_mann_whitney(rng):
    for _ in range(20):
        truth, score = _ratings(rng)
        res = auc_delong(truth, score)
        assert res.estimate == pytest.approx(roc_auc_score(truth, score), abs=1e-12)
        u = stats.mannwhitneyu(score[truth], score[~truth]).statistic
        assert res.estimate == pytest.approx(u / (truth.sum() * (~truth).sum()))


def test_delong_variance_matches_the_pairwise_definition(rng):
    for _ in range(20):
        truth, score = _ratings(rng, n=int(rng.integers(10, 120)))
        res = auc_delong(truth, score)
        aucs, cov = _delong_by_definition(truth, score)
        assert res.estimate == pytest.approx(aucs[0], abs=1e-12)
        assert res.se**2 == pytest.approx(cov[0, 0], rel=1e-9, abs=1e-15)
        z = (res.estimate - 0.5) / res.se
        assert res.p_value == pytest.approx(2 * stats.norm.sf(abs(z)))


def test_continuous_scores_without_ties(rng):
    truth = rng.random(200) < 0.5
    score = rng.normal(size=200) + truth
    res = auc_delong(truth, score)
    _, cov = _delong_by_definition(truth, score)
    assert res.se == pytest.approx(math.sqrt(cov[0, 0]), rel=1e-9)


def test_compare_two_correlated_aucs_by_definition(rng):
    truth, a = _ratings(rng, n=150)
    b = np.clip(a + rng.integers(-1, 2, 150), 1, 6)
    res = auc_compare_delong(truth, a, b)
    aucs, cov = _delong_by_definition(truth, a, b)
    assert (res.auc_a, res.auc_b) == pytest.approx(tuple(aucs), abs=1e-12)
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    assert res.se == pytest.approx(math.sqrt(var), rel=1e-9)
    assert res.estimate == pytest.approx(aucs[0] - aucs[1])
    assert res.correlation == pytest.approx(
        cov[0, 1] / math.sqrt(cov[0, 0] * cov[1, 1])
    )
    same = auc_compare_delong(truth, a, a)
    assert same.estimate == 0 and same.se == 0 and same.note


def test_one_class_only_gives_a_clear_message():
    res = auc_delong([1, 1, 1], [1.0, 2.0, 3.0])
    assert math.isnan(res.estimate) and "each class" in res.note


def test_perfect_separation_has_zero_se_and_says_so():
    res = auc_delong([0, 0, 0, 1, 1, 1], [1, 2, 3, 4, 5, 6])
    assert res.estimate == 1.0 and res.se == 0.0
    assert math.isnan(res.p_value) and res.note


def test_missing_scores_must_be_dropped_by_the_caller():
    with pytest.raises(ValueError):
        auc_delong([0, 1], [1.0, float("nan")])


def test_roc_points_trapezoid_area_is_the_auc(rng):
    truth, score = _ratings(rng, n=120)
    fpr, tpr = roc_points(truth, score)
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert len(fpr) == len(np.unique(score)) + 1
    area = np.trapezoid(tpr, fpr)
    assert area == pytest.approx(roc_auc_score(truth, score), abs=1e-12)


def _midrank_delong(scores, labels):
    """Sun & Xu (2014) midrank DeLong, written independently as a cross-check."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    pos, neg = scores[labels], scores[~labels]
    m, n = len(pos), len(neg)
    tx, ty = stats.rankdata(pos), stats.rankdata(neg)
    tz = stats.rankdata(np.concatenate([pos, neg]))
    auc = tz[:m].sum() / (m * n) - (m + 1) / (2 * n)
    v01 = (tz[:m] - tx) / n
    v10 = 1 - (tz[m:] - ty) / m
    return auc, np.var(v01, ddof=1) / m + np.var(v10, ddof=1) / n


def test_delong_with_ties_matches_the_midrank_algorithm():
    rng = np.random.default_rng(1)
    labels = rng.random(80) < 0.4
    scores = np.round(rng.normal(labels * 0.8, 1.0), 1)  # with ties
    res = auc_delong(labels, scores)
    ref_auc, ref_var = _midrank_delong(scores, labels)
    assert res.estimate == pytest.approx(ref_auc)
    assert res.se == pytest.approx(np.sqrt(ref_var), rel=1e-9)
    lo, hi = res.ci
    assert (hi - lo) / 2 == pytest.approx(1.959964 * np.sqrt(ref_var), rel=1e-6)


def test_delong_se_agrees_with_a_bootstrap():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(80), np.ones(60)]
    s = rng.normal(size=140) + y
    boots = []
    for _ in range(400):
        i = np.r_[rng.choice(80, 80), 80 + rng.choice(60, 60)]
        boots.append(_midrank_delong(s[i], y[i].astype(bool))[0])
    assert auc_delong(y, s).se == pytest.approx(np.std(boots), rel=0.2)


def test_constant_scores_are_exactly_chance_and_say_so():
    res = auc_delong(np.arange(10) % 2, np.zeros(10))
    assert (res.estimate, res.se, res.ci) == (0.5, 0.0, (0.5, 0.5))
    assert "same" in res.note
