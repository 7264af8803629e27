import math

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import cohens_kappa as sm_cohens_kappa

from turingtest.stats import (
    cohen_kappa,
    cohen_kappa_matrix,
    fleiss_kappa,
    krippendorff_alpha,
)

NAN = np.nan


def _pairs_from_table(table) -> tuple[np.ndarray, np.ndarray]:
    table = np.asarray(table)
    k = table.shape[0]
    cells = np.array([(i, j) for i in range(k) for j in range(k)])
    pairs = np.repeat(cells, table.ravel(), axis=0)
    return pairs[:, 0], pairs[:, 1]


def _fce_variance(table, weights) -> float:
    """Fleiss, Cohen & Everitt (1969) large-sample variance of weighted kappa.

    Written from the paper (agreement weights w_ij, eq. 5), independently of
    statsmodels.
    """
    p = np.asarray(table, float)
    n = p.sum()
    p = p / n
    k = p.shape[0]
    i, j = np.indices((k, k))
    if weights is None:
        w = (i == j).astype(float)
    elif weights == "linear":
        w = 1 - abs(i - j) / (k - 1)
    else:
        w = 1 - ((i - j) / (k - 1)) ** 2
    row, col = p.sum(1), p.sum(0)
    po, pe = (w * p).sum(), (w * np.outer(row, col)).sum()
    w_row, w_col = w @ col, w.T @ row
    core = (w * (1 - pe) - (w_row[:, None] + w_col[None, :]) * (1 - po)) ** 2
    return ((p * core).sum() - (po * pe - 2 * pe + po) ** 2) / (n * (1 - pe) ** 4)


def test_cohen_kappa_matches_sas_proc_freq():
    # SAS PROC FREQ AGREE output for this 3 x 3 table, as pinned in
    # statsmodels' test_inter_rater.py (table10): kappa, ASE, ASE under H0.
    a, b = _pairs_from_table([[0, 4, 1], [0, 8, 0], [0, 1, 5]])
    res = cohen_kappa(a, b)
    assert round(res.estimate, 4) == 0.4842
    assert round(res.se, 4) == 0.1380
    assert np.round(res.ci, 4) == pytest.approx((0.2137, 0.7547))
    assert round(res.se0, 4) == 0.1484
    assert round(res.z, 4) == 3.2626
    assert round(res.p_value, 4) == 0.0011
    linear = cohen_kappa(a, b, weights="linear")
    assert round(linear.estimate, 4) == 0.4701
    assert round(linear.se, 4) == 0.1457
    assert round(linear.se0, 4) == 0.1426


def test_cohen_kappa_fleiss_cohen_everitt_1969_table():
    # Fleiss, Cohen & Everitt (1969), Table 1: 200 patients, proportions
    # .53 .05 .02 / .11 .14 .05 / .01 .06 .03; p_o = .70, p_e = .475, so
    # kappa = .225 / .525 = .429 as printed.
    table = np.array([[106, 10, 4], [22, 28, 10], [2, 12, 6]])
    a, b = _pairs_from_table(table)
    res = cohen_kappa(a, b)
    assert round(res.estimate, 3) == 0.429
    assert res.observed_agreement == pytest.approx(0.70)
    assert res.expected_agreement == pytest.approx(0.475)
    for weights in (None, "linear", "quadratic"):
        got = cohen_kappa(a, b, weights=weights).se ** 2
        assert got == pytest.approx(_fce_variance(table, weights), rel=1e-9)


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_cohen_kappa_cross_checks_on_random_data(rng, weights):
    for _ in range(25):
        n = int(rng.integers(20, 200))
        a = rng.integers(0, 5, n)
        b = np.where(rng.random(n) < 0.6, a, rng.integers(0, 5, n))
        res = cohen_kappa(a, b, weights=weights, categories=range(5))
        ref = cohen_kappa_score(a, b, weights=weights, labels=list(range(5)))
        assert res.estimate == pytest.approx(ref, abs=1e-9)
        table = np.zeros((5, 5))
        np.add.at(table, (a, b), 1)
        sm = sm_cohens_kappa(table, wt=weights) if weights else sm_cohens_kappa(table)
        assert res.se == pytest.approx(math.sqrt(sm.var_kappa), abs=1e-9)
        assert res.se == pytest.approx(
            math.sqrt(_fce_variance(table, weights)), abs=1e-9
        )


def test_weighted_kappa_with_a_grade_nobody_used():
    a = [0, 1, 1, 2, 3, 3, 1, 0]
    b = [0, 1, 2, 2, 3, 2, 1, 1]
    res = cohen_kappa(a, b, weights="quadratic", categories=range(5))
    ref = cohen_kappa_score(a, b, weights="quadratic", labels=[0, 1, 2, 3, 4])
    assert res.estimate == pytest.approx(ref)
    assert res.categories == (0, 1, 2, 3, 4)


def test_kappa_undefined_when_both_raters_use_one_category():
    res = cohen_kappa(["real"] * 10, ["real"] * 10)
    assert math.isnan(res.estimate) and "undefined" in res.note


def test_kappa_leaves_out_missing_pairs():
    res = cohen_kappa(
        ["real", None, "synthetic", "real"], ["real", "real", None, "real"]
    )
    assert res.n == 2 and res.n_missing == 2


def test_kappa_matrix_equals_pairwise_kappa(rng):
    labels = rng.integers(0, 3, (7, 60)).astype(float)
    labels[rng.random(labels.shape) < 0.05] = np.nan
    for weights in (None, "quadratic"):
        m = cohen_kappa_matrix(labels, weights=weights, categories=[0, 1, 2])
        for i in range(7):
            for j in range(7):
                k = cohen_kappa(labels[i], labels[j], weights, categories=[0, 1, 2])
                assert m.estimate[i, j] == pytest.approx(k.estimate, abs=1e-12)
                assert m.n[i, j] == k.n


def test_kappa_matrix_on_string_labels():
    labels = [["real", "synthetic", "real"], ["real", "synthetic", "synthetic"]]
    m = cohen_kappa_matrix(labels)
    assert m.estimate[0, 1] == pytest.approx(cohen_kappa(*labels).estimate)


def _fleiss_1971_counts() -> np.ndarray:
    # Fleiss (1971), Table 1: 30 patients, 6 psychiatrists each, 5 diagnoses
    # (rows of the diagnoses as given by statsmodels' test_inter_rater.py and
    # R's irr::diagnoses).
    diagnoses = [
        [4, 4, 4, 4, 4, 4], [2, 2, 2, 5, 5, 5], [2, 3, 3, 3, 3, 5],
        [5, 5, 5, 5, 5, 5], [2, 2, 2, 4, 4, 4], [1, 1, 3, 3, 3, 3],
        [3, 3, 3, 3, 5, 5], [1, 1, 3, 3, 3, 4], [1, 1, 4, 4, 4, 4],
        [5, 5, 5, 5, 5, 5], [1, 4, 4, 4, 4, 4], [1, 2, 4, 4, 4, 4],
        [2, 2, 2, 3, 3, 3], [1, 4, 4, 4, 4, 4], [2, 2, 4, 4, 4, 5],
        [3, 3, 3, 3, 3, 5], [1, 1, 1, 4, 5, 5], [1, 1, 1, 1, 1, 2],
        [2, 2, 4, 4, 4, 4], [1, 3, 3, 5, 5, 5], [5, 5, 5, 5, 5, 5],
        [2, 4, 4, 4, 4, 4], [2, 2, 4, 5, 5, 5], [1, 1, 4, 4, 4, 4],
        [1, 4, 4, 4, 4, 5], [2, 2, 2, 2, 2, 4], [1, 1, 1, 1, 5, 5],
        [2, 2, 4, 4, 4, 4], [1, 3, 3, 3, 3, 3], [5, 5, 5, 5, 5, 5],
    ]  # fmt: skip
    d = np.asarray(diagnoses)
    return np.stack([(d == c).sum(axis=1) for c in range(1, 6)], axis=1)


def test_fleiss_kappa_reproduces_fleiss_1971():
    res = fleiss_kappa(_fleiss_1971_counts())
    assert round(res.estimate, 3) == 0.430  # Fleiss (1971), p. 381
    # irr::kappam.fleiss(diagnoses) prints z = 17.7 with the Fleiss, Nee &
    # Landis (1979) null variance.
    assert round(res.z, 1) == 17.7
    assert (res.n_items, res.n_raters) == (30, 6)


def test_fleiss_kappa_wikipedia_example():
    # The worked example on Wikipedia (14 raters, 10 items), kappa = 0.210.
    table = [
        [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1], [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
    ]  # fmt: skip
    assert round(fleiss_kappa(table).estimate, 3) == 0.210


def test_fleiss_kappa_se_is_close_to_the_jackknife():
    counts = _fleiss_1971_counts()
    res = fleiss_kappa(counts)
    n = len(counts)
    loo = np.array([fleiss_kappa(np.delete(counts, i, 0)).estimate for i in range(n)])
    jack = math.sqrt((n - 1) / n * ((loo - loo.mean()) ** 2).sum())
    assert res.se == pytest.approx(jack, rel=0.05)
    assert res.ci[0] < res.estimate < res.ci[1]


def test_fleiss_kappa_needs_equal_ratings_per_item():
    with pytest.raises(ValueError, match="same number of ratings"):
        fleiss_kappa([[2, 1], [1, 1]])
    same = fleiss_kappa([[3, 0], [3, 0]])
    assert math.isnan(same.estimate) and "undefined" in same.note


# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", section C:
# 4 observers, 12 units, values 1-5, with missing data.
KRIPPENDORFF_2011 = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
        [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
    ]
)


@pytest.mark.parametrize(
    ("level", "expected"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)]
)
def test_alpha_reproduces_krippendorff_2011(level, expected):
    res = krippendorff_alpha(KRIPPENDORFF_2011, level)
    assert round(res.estimate, 3) == expected
    assert res.n_units == 11  # unit 12 has a single value and is not pairable


def test_alpha_binary_two_observer_example():
    # Krippendorff (2011), section A: two observers, ten units, alpha = 0.095.
    data = [[0, 1, 0, 0, 0, 0, 0, 0, 1, 0], [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]]
    assert round(krippendorff_alpha(data).estimate, 3) == 0.095


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_alpha_cross_checks_the_krippendorff_package(rng, level):
    for _ in range(20):
        data = rng.integers(0, 5, (int(rng.integers(2, 8)), 40)).astype(float)
        data[rng.random(data.shape) < 0.15] = np.nan
        ours = krippendorff_alpha(data, level, n_boot=0).estimate
        ref = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
        assert ours == pytest.approx(ref, abs=1e-9)


def test_alpha_bootstrap_is_seeded_and_brackets_the_estimate(rng):
    data = rng.integers(0, 3, (5, 80)).astype(float)
    data[1] = data[0]
    a = krippendorff_alpha(data, "ordinal", seed=3)
    b = krippendorff_alpha(data, "ordinal", seed=3)
    assert a.ci == b.ci and a.se == b.se
    assert a.ci[0] <= a.estimate <= a.ci[1]
    assert math.isnan(krippendorff_alpha(data, n_boot=0).ci[0])


def test_alpha_edge_cases_explain_themselves():
    constant = krippendorff_alpha(np.ones((3, 5)))
    assert math.isnan(constant.estimate) and "same" in constant.note
    lonely = krippendorff_alpha([[1.0, NAN], [NAN, 2.0]])
    assert math.isnan(lonely.estimate) and "two or more" in lonely.note
