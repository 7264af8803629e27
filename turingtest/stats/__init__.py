"""Statistics for visual Turing tests: pure numpy / scipy / statsmodels.

No Django and no torch here: the functions take arrays and return frozen
dataclasses (estimate, standard error, interval, p-value and a note where a
figure could not be computed). :mod:`turingtest.stats.report` turns a
study's answers into the full report; :mod:`turingtest.stats.plots` draws
its figures. ``docs/statistics.md`` explains every figure.
"""

from turingtest.stats.accuracy import (
    EquivalenceResult,
    PairedDifferenceResult,
    PooledAccuracyResult,
    equivalence_test,
    paired_difference_test,
    pooled_accuracy_gee,
    tost,
)
from turingtest.stats.agreement import (
    AlphaResult,
    FleissKappaResult,
    KappaMatrix,
    KappaResult,
    cohen_kappa,
    cohen_kappa_matrix,
    fleiss_kappa,
    krippendorff_alpha,
)
from turingtest.stats.mrmc import MRMCResult, mrmc_auc, mrmc_percent_correct
from turingtest.stats.power import PowerResult, power_simulation
from turingtest.stats.proportions import (
    BinomialTestResult,
    DetectionSummary,
    ProportionResult,
    binomial_test,
    detection_summary,
    proportion_ci,
)
from turingtest.stats.roc import (
    AUCComparison,
    AUCResult,
    auc_compare_delong,
    auc_delong,
    roc_points,
)

__all__ = [
    "AUCComparison",
    "AUCResult",
    "AlphaResult",
    "BinomialTestResult",
    "DetectionSummary",
    "EquivalenceResult",
    "FleissKappaResult",
    "KappaMatrix",
    "KappaResult",
    "MRMCResult",
    "PairedDifferenceResult",
    "PooledAccuracyResult",
    "PowerResult",
    "ProportionResult",
    "auc_compare_delong",
    "auc_delong",
    "binomial_test",
    "cohen_kappa",
    "cohen_kappa_matrix",
    "detection_summary",
    "equivalence_test",
    "fleiss_kappa",
    "krippendorff_alpha",
    "mrmc_auc",
    "mrmc_percent_correct",
    "paired_difference_test",
    "pooled_accuracy_gee",
    "power_simulation",
    "proportion_ci",
    "roc_points",
    "tost",
]
