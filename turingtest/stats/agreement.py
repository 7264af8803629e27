"""Agreement between readers: Cohen's kappa, Fleiss' kappa, Krippendorff's alpha.

References
----------
.. [1] Cohen, J. (1960). A coefficient of agreement for nominal scales.
   *Educ Psychol Meas* 20(1), 37-46. doi:10.1177/001316446002000104
.. [2] Cohen, J. (1968). Weighted kappa: nominal scale agreement with
   provision for scaled disagreement or partial credit. *Psychol Bull* 70(4),
   213-220. doi:10.1037/h0026256
.. [3] Fleiss, J. L., Cohen, J., & Everitt, B. S. (1969). Large sample
   standard errors of kappa and weighted kappa. *Psychol Bull* 72(5),
   323-327. doi:10.1037/h0028106
.. [4] Fleiss, J. L. (1971). Measuring nominal scale agreement among many
   raters. *Psychol Bull* 76(5), 378-382. doi:10.1037/h0031619
.. [5] Fleiss, J. L., Nee, J. C. M., & Landis, J. R. (1979). Large sample
   variance of kappa in the case of different sets of raters. *Psychol Bull*
   86(5), 974-977. doi:10.1037/0033-2909.86.5.974
.. [6] Gwet, K. L. (2008). Computing inter-rater reliability and its variance
   in the presence of high agreement. *Br J Math Stat Psychol* 61(1), 29-48.
   doi:10.1348/000711006X126600
.. [7] Krippendorff, K. (2011). Computing Krippendorff's alpha-reliability.
   Departmental Papers (ASC), University of Pennsylvania, 43.
   https://repository.upenn.edu/asc_papers/43
.. [8] Hayes, A. F., & Krippendorff, K. (2007). Answering the call for a
   standard reliability measure for coding data. *Commun Methods Meas* 1(1),
   77-89. doi:10.1080/19312450709336664
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats
from statsmodels.stats import inter_rater

from turingtest.stats._base import Result, join_notes, nan_ci, z_quantile

__all__ = [
    "KappaResult",
    "KappaMatrix",
    "FleissKappaResult",
    "AlphaResult",
    "cohen_kappa",
    "cohen_kappa_matrix",
    "fleiss_kappa",
    "krippendorff_alpha",
]

Weights = Literal["linear", "quadratic"] | None


@dataclass(frozen=True)
class KappaResult(Result):
    """Cohen's (weighted) kappa of two raters.

    ``se`` is the large-sample standard error of Fleiss, Cohen & Everitt
    (1969), used for ``ci``; ``se0`` is the standard error under kappa = 0,
    used for ``z`` and ``p_value``.
    """

    estimate: float
    se: float
    ci: tuple[float, float]
    p_value: float
    se0: float
    z: float
    n: int
    n_missing: int
    weights: str
    categories: tuple[object, ...]
    observed_agreement: float
    expected_agreement: float
    level: float
    note: str | None = None


@dataclass(frozen=True)
class KappaMatrix(Result):
    """Pairwise Cohen's kappa for many raters (estimates only)."""

    estimate: np.ndarray
    n: np.ndarray
    weights: str
    categories: tuple[object, ...]
    note: str | None = None


@dataclass(frozen=True)
class FleissKappaResult(Result):
    """Fleiss' kappa for many raters.

    ``se`` is the delta-method (linearisation) standard error that does not
    assume kappa = 0 (Gwet 2008), used for ``ci``; ``se0`` is the standard
    error under kappa = 0 of Fleiss, Nee & Landis (1979), used for ``z`` and
    ``p_value``.
    """

    estimate: float
    se: float
    ci: tuple[float, float]
    p_value: float
    se0: float
    z: float
    n_items: int
    n_raters: int
    observed_agreement: float
    expected_agreement: float
    level: float
    note: str | None = None


@dataclass(frozen=True)
class AlphaResult(Result):
    """Krippendorff's alpha with a bootstrap interval over units."""

    estimate: float
    se: float
    ci: tuple[float, float]
    level_of_measurement: str
    n_units: int
    n_values: int
    n_boot: int
    observed_disagreement: float
    expected_disagreement: float
    confidence_level: float
    note: str | None = None


def _is_missing(v: object) -> bool:
    if v is None:
        return True
    if isinstance(v, (float, np.floating)) and math.isnan(v):
        return True
    return False


def _sort_key(v: object) -> tuple[int, object]:
    return (0, v) if isinstance(v, (int, float, np.number)) else (1, str(v))


def _as_float(col: object) -> np.ndarray | None:
    try:
        return np.asarray(col, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        return None


def _encode(
    columns: Sequence[Sequence[object] | np.ndarray],
    categories: Sequence[object] | None,
) -> tuple[list[np.ndarray], tuple[object, ...]]:
    """Map labels to 0..K-1 and missing (None, NaN) to -1.

    Categories keep the given order; by default they are the sorted labels
    seen. Numeric labels take a vectorised path.
    """
    cats: tuple[object, ...]
    as_floats = [_as_float(c) for c in columns]
    floats = [f for f in as_floats if f is not None]
    cats_float = None if categories is None else _as_float(list(categories))
    if len(floats) == len(as_floats) and (categories is None or cats_float is not None):
        if categories is None:
            seen = np.concatenate([f[~np.isnan(f)] for f in floats] or [np.array([])])
            uniq = np.unique(seen)
            cats = tuple(int(u) if float(u).is_integer() else float(u) for u in uniq)
            cats_float = uniq
        else:
            cats = tuple(categories)
        assert cats_float is not None
        if len(np.unique(cats_float)) != len(cats_float):
            raise ValueError("categories must be distinct")
        order = np.argsort(cats_float)
        sorted_cats = cats_float[order]
        out = []
        for f in floats:
            codes: np.ndarray = np.full(f.shape, -1, dtype=np.int64)
            ok = ~np.isnan(f)
            pos = np.clip(np.searchsorted(sorted_cats, f[ok]), 0, len(cats) - 1)
            if len(cats) == 0 or not np.all(sorted_cats[pos] == f[ok]):
                bad = f[ok][(len(cats) == 0) | (sorted_cats[pos] != f[ok])][0]
                raise ValueError(f"value {bad!r} is not one of the categories {cats}")
            codes[ok] = order[pos]
            out.append(codes)
        return out, cats

    cols = [np.asarray(c, dtype=object).reshape(-1) for c in columns]
    if categories is None:
        seen_set = {v for c in cols for v in c if not _is_missing(v)}
        cats = tuple(sorted(seen_set, key=_sort_key))
    else:
        cats = tuple(categories)
        if len(set(cats)) != len(cats):
            raise ValueError("categories must be distinct")
    index = {c: i for i, c in enumerate(cats)}
    out = []
    for col in cols:
        codes = np.empty(len(col), dtype=np.int64)
        for i, v in enumerate(col):
            if _is_missing(v):
                codes[i] = -1
            elif v in index:
                codes[i] = index[v]
            else:
                raise ValueError(f"value {v!r} is not one of the categories {cats}")
        out.append(codes)
    return out, cats


def _disagreement_weights(k: int, weights: Weights) -> np.ndarray:
    idx = np.arange(k, dtype=float)
    diff = np.abs(idx[:, None] - idx[None, :])
    if weights is None:
        return (diff > 0).astype(float)
    scale = max(k - 1, 1)
    if weights == "linear":
        return diff / scale
    if weights == "quadratic":
        return (diff / scale) ** 2
    raise ValueError("weights must be None, 'linear' or 'quadratic'")


def cohen_kappa(
    a: Sequence[object] | np.ndarray,
    b: Sequence[object] | np.ndarray,
    weights: Weights = None,
    categories: Sequence[object] | None = None,
    *,
    level: float = 0.95,
) -> KappaResult:
    """Cohen's kappa (optionally weighted) between two raters.

    Parameters
    ----------
    a, b : sequence
        The two raters' labels for the same items. None or NaN marks a
        missing label; items missing from either rater are left out.
    weights : {None, "linear", "quadratic"}
        Unweighted kappa, or weighted kappa with linear (Cicchetti-Allison)
        or quadratic (Fleiss-Cohen) disagreement weights on equally spaced
        categories.
    categories : sequence, optional
        All possible categories, in order (needed for weighted kappa when
        some grade was never used, e.g. ``KL.codes`` of the domain scales). By
        default the sorted labels seen.
    level : float
        Confidence level.

    Returns
    -------
    KappaResult

    Notes
    -----
    ``kappa = (p_o - p_e) / (1 - p_e)`` with weighted agreement proportions
    (Cohen 1960 [1]_, 1968 [2]_). ``se`` and ``se0`` are the large-sample
    variances of Fleiss, Cohen & Everitt (1969) [3]_, as in SAS PROC FREQ
    and :func:`statsmodels.stats.inter_rater.cohens_kappa` (the tests check
    agreement with both to 1e-9; the formula is written out only because
    the statsmodels call is slow). Kappa is undefined when chance agreement is perfect
    (both raters used one and the same category); the result is then NaN
    with a note.

    References
    ----------
    .. [1] Cohen (1960), doi:10.1177/001316446002000104
    .. [2] Cohen (1968), doi:10.1037/h0026256
    .. [3] Fleiss, Cohen & Everitt (1969), doi:10.1037/h0028106
    """
    if len(a) != len(b):
        raise ValueError("a and b must have the same length")
    (ca, cb), cats = _encode([a, b], categories)
    both = (ca >= 0) & (cb >= 0)
    n_missing = int((~both).sum())
    ca, cb = ca[both], cb[both]
    n, k = len(ca), len(cats)
    wname = weights or "none"
    _disagreement_weights(max(k, 1), weights)

    def nan_result(observed: float, expected: float, note: str) -> KappaResult:
        return KappaResult(
            estimate=math.nan,
            se=math.nan,
            ci=nan_ci(),
            p_value=math.nan,
            se0=math.nan,
            z=math.nan,
            n=n,
            n_missing=n_missing,
            weights=wname,
            categories=cats,
            observed_agreement=observed,
            expected_agreement=expected,
            level=level,
            note=note,
        )

    if n == 0:
        return nan_result(math.nan, math.nan, "No items rated by both raters.")
    table = np.zeros((k, k))
    np.add.at(table, (ca, cb), 1)
    w = _disagreement_weights(k, weights)
    p = table / n
    expected = np.outer(p.sum(1), p.sum(0))
    po = 1.0 - float((w * p).sum())
    pe = 1.0 - float((w * expected).sum())
    if 1.0 - pe <= 1e-15:
        return nan_result(
            po,
            pe,
            "Kappa is undefined: both raters gave every item the same single "
            "category, so chance agreement is already perfect.",
        )
    # Fleiss, Cohen & Everitt (1969) variances in the agreement-weight form of
    # statsmodels' cohens_kappa (SAS PROC FREQ); the tests check both against
    # statsmodels to 1e-9. They are written out because statsmodels builds a
    # results object with frozen scipy distributions for every call, about
    # 5 ms each, which dominates a report with hundreds of readers.
    agree = 1.0 - w
    row, colm = p.sum(1), p.sum(0)
    w_row = agree @ colm
    w_col = agree.T @ row
    kappa = (po - pe) / (1.0 - pe)
    fac = 1.0 / ((1.0 - pe) ** 2 * n)
    term = (p * (agree - (w_col[None, :] + w_row[:, None]) * (1 - kappa)) ** 2).sum()
    var = (term - (kappa - pe * (1 - kappa)) ** 2) * fac
    term0 = (expected * (agree - (w_col[None, :] + w_row[:, None])) ** 2).sum()
    var0 = (term0 - pe**2) * fac
    se = math.sqrt(max(float(var), 0.0))
    se0 = math.sqrt(max(float(var0), 0.0))
    q = z_quantile(level)
    note = None
    if se0 > 0:
        z = kappa / se0
        p_value = float(2 * stats.norm.sf(abs(z)))
    else:
        z, p_value = math.nan, math.nan
        note = "The null standard error is zero; no test."
    if se == 0:
        note = join_notes(note, "The standard error is zero; the interval is a point.")
    return KappaResult(
        estimate=kappa,
        se=se,
        # Wald limits can leave kappa's range with few items; clip to [-1, 1].
        ci=(max(kappa - q * se, -1.0), min(kappa + q * se, 1.0)),
        p_value=p_value,
        se0=se0,
        z=z,
        n=n,
        n_missing=n_missing,
        weights=wname,
        categories=cats,
        observed_agreement=po,
        expected_agreement=pe,
        level=level,
        note=note,
    )


def cohen_kappa_matrix(
    labels: ArrayLike,
    weights: Weights = None,
    categories: Sequence[object] | None = None,
) -> KappaMatrix:
    """Cohen's kappa for every pair of raters at once.

    Parameters
    ----------
    labels : array_like, shape (n_raters, n_items)
        Labels, None or NaN for missing. Each pair uses the items both rated.
    weights : {None, "linear", "quadratic"}
    categories : sequence, optional

    Returns
    -------
    KappaMatrix
        ``estimate[i, j]`` is kappa between raters ``i`` and ``j`` (NaN where
        undefined, see :func:`cohen_kappa`), ``n[i, j]`` the items both rated.

    Notes
    -----
    Equal to :func:`cohen_kappa` pair by pair, but computed with ``2 K``
    matrix products over one-hot codes (``K`` categories), so 200 readers
    (19,900 pairs) take milliseconds. No standard errors; use
    :func:`cohen_kappa` for one pair's interval.

    References
    ----------
    .. [1] Cohen (1960), doi:10.1177/001316446002000104
    .. [2] Cohen (1968), doi:10.1037/h0026256
    """
    arr = np.asarray(labels, dtype=object)
    if arr.ndim != 2:
        raise ValueError("labels must be raters x items")
    codes, cats = _encode(list(arr), categories)
    c = np.vstack(codes) if codes else np.zeros((0, 0), dtype=np.int64)
    k = len(cats)
    rated = (c >= 0).astype(float)
    n = rated @ rated.T
    w = _disagreement_weights(max(k, 1), weights)[:k, :k]
    onehot = np.stack([(c == j).astype(float) for j in range(k)])  # (k, r, items)
    weighted = np.tensordot(w, onehot, axes=(1, 0))  # (k, r, items)
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = np.matmul(onehot, weighted.transpose(0, 2, 1)).sum(axis=0) / n
        # Rater i's category shares on the items it shares with j, and j's.
        share_i = np.matmul(onehot, rated.T) / n
        share_j = np.matmul(rated, onehot.transpose(0, 2, 1)) / n
        expected = np.einsum("xy,xij,yij->ij", w, share_i, share_j)
        kappa = 1.0 - observed / expected
    kappa[(n == 0) | ~(expected > 1e-15)] = math.nan
    note = None
    if np.isnan(kappa).any():
        note = (
            "Some pairs have no kappa: they share no items, or both used a single "
            "category on the shared items (on the diagonal: a rater who used one "
            "category only)."
        )
    return KappaMatrix(kappa, n.astype(int), weights or "none", cats, note)


def fleiss_kappa(counts: ArrayLike, *, level: float = 0.95) -> FleissKappaResult:
    """Fleiss' kappa for a fixed number of raters per item.

    Parameters
    ----------
    counts : array_like, shape (n_items, n_categories)
        ``counts[i, j]`` raters who put item ``i`` in category ``j``; every
        row must sum to the same number of raters (at least two).
    level : float

    Returns
    -------
    FleissKappaResult

    Notes
    -----
    The estimate is :func:`statsmodels.stats.inter_rater.fleiss_kappa`
    (Fleiss 1971 [4]_). statsmodels gives no variance, so two are written
    here:

    * ``se0``, under the hypothesis kappa = 0, from Fleiss, Nee & Landis
      (1979) [5]_, eq. 12::

          var0 = 2 / (N n (n - 1)) * ((sum p q)^2 - sum p q (q - p)) / (sum p q)^2

      with ``p_j`` the share of category ``j`` and ``q_j = 1 - p_j``.
    * ``se``, for the interval, the linearisation (delta-method) variance of
      Gwet (2008) [6]_: with ``kappa_i*`` the per-item influence
      ``kappa_i - 2 (1 - kappa) (pe_i - pe) / (1 - pe)``,
      ``var = sum (kappa_i* - kappa)^2 / (N (N - 1))``. It does not assume
      kappa = 0, which the 1979 variance does.

    References
    ----------
    .. [4] Fleiss (1971), doi:10.1037/h0031619
    .. [5] Fleiss, Nee & Landis (1979), doi:10.1037/0033-2909.86.5.974
    .. [6] Gwet (2008), doi:10.1348/000711006X126600
    """
    table = np.asarray(counts, dtype=float)
    if table.ndim != 2:
        raise ValueError("counts must be items x categories")
    if (table < 0).any() or not np.allclose(table, np.round(table)):
        raise ValueError("counts must be non-negative whole numbers")
    n_items = table.shape[0]
    raters = table.sum(axis=1)
    nan = dict(
        estimate=math.nan,
        se=math.nan,
        ci=nan_ci(),
        p_value=math.nan,
        se0=math.nan,
        z=math.nan,
        n_items=n_items,
        level=level,
    )
    if n_items == 0:
        return FleissKappaResult(
            **nan,
            n_raters=0,
            observed_agreement=math.nan,
            expected_agreement=math.nan,
            note="No items.",
        )
    if not np.all(raters == raters[0]):
        raise ValueError(
            "Fleiss' kappa needs the same number of ratings for every item; "
            "drop incompletely rated items or use krippendorff_alpha"
        )
    nr = int(raters[0])
    if nr < 2:
        return FleissKappaResult(
            **nan,
            n_raters=nr,
            observed_agreement=math.nan,
            expected_agreement=math.nan,
            note="Fleiss' kappa needs at least two raters per item.",
        )
    share = table.sum(axis=0) / (n_items * nr)
    pa_i = (table * (table - 1)).sum(axis=1) / (nr * (nr - 1))
    pa = float(pa_i.mean())
    pe = float((share**2).sum())
    if 1.0 - pe <= 1e-15:
        return FleissKappaResult(
            **nan,
            n_raters=nr,
            observed_agreement=pa,
            expected_agreement=pe,
            note=(
                "Fleiss' kappa is undefined: every rating is the same category, "
                "so chance agreement is already perfect."
            ),
        )
    kappa = float(inter_rater.fleiss_kappa(table, method="fleiss"))
    pq = share * (1 - share)
    spq = float(pq.sum())
    var0 = (
        2.0
        / (n_items * nr * (nr - 1))
        * (spq**2 - float((pq * (1 - 2 * share)).sum()))
        / spq**2
    )
    se0 = math.sqrt(max(var0, 0.0))
    note = None
    if n_items >= 2:
        pe_i = table @ share / nr
        influence = (pa_i - pe) / (1 - pe) - 2 * (1 - kappa) * (pe_i - pe) / (1 - pe)
        se = float(
            math.sqrt(((influence - kappa) ** 2).sum() / (n_items * (n_items - 1)))
        )
    else:
        se = math.nan
        note = "One item: no standard error for the interval."
    q = z_quantile(level)
    z = kappa / se0 if se0 > 0 else math.nan
    p_value = float(2 * stats.norm.sf(abs(z))) if se0 > 0 else math.nan
    return FleissKappaResult(
        estimate=kappa,
        se=se,
        ci=(max(kappa - q * se, -1.0), min(kappa + q * se, 1.0))
        if math.isfinite(se)
        else nan_ci(),
        p_value=p_value,
        se0=se0,
        z=z,
        n_items=n_items,
        n_raters=nr,
        observed_agreement=pa,
        expected_agreement=pe,
        level=level,
        note=note,
    )


def _alpha_from_coincidence(
    o: np.ndarray, values: np.ndarray, level: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Alpha, D_o and D_e for one or a stack of coincidence matrices."""
    nc = o.sum(axis=-1)
    total = nc.sum(axis=-1)
    if level == "nominal":
        d2 = 1.0 - np.eye(len(values))
        d2 = np.broadcast_to(d2, o.shape)
    elif level == "interval":
        d2 = np.broadcast_to((values[:, None] - values[None, :]) ** 2, o.shape)
    else:
        # Ordinal metric (Krippendorff 2011, eq. for ordinal data): the
        # squared difference of "mid-cumulative" frequencies
        # cum_c - n_c / 2, which equals sum_{g=c..k} n_g - (n_c + n_k) / 2.
        mid = np.cumsum(nc, axis=-1) - nc / 2.0
        d2 = (mid[..., :, None] - mid[..., None, :]) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        d_o = (o * d2).sum(axis=(-2, -1)) / total
        d_e = (nc[..., :, None] * nc[..., None, :] * d2).sum(axis=(-2, -1)) / (
            total * (total - 1)
        )
        alpha = 1.0 - d_o / d_e
    return alpha, d_o, d_e


def krippendorff_alpha(
    data: ArrayLike,
    level: Literal["nominal", "ordinal", "interval"] = "nominal",
    *,
    n_boot: int = 1000,
    seed: int | None = 0,
    confidence_level: float = 0.95,
) -> AlphaResult:
    """Krippendorff's alpha for any number of raters, with missing data.

    Parameters
    ----------
    data : array_like, shape (n_raters, n_units)
        Numeric values, NaN where a rater did not rate a unit. For nominal
        data the numbers are only labels.
    level : {"nominal", "ordinal", "interval"}
        Level of measurement, which fixes the difference function.
    n_boot : int
        Bootstrap resamples of units for the interval (0 for none).
    seed : int or None
        Seed of the bootstrap, so that the same data give the same interval.
    confidence_level : float

    Returns
    -------
    AlphaResult
        ``se`` is the standard deviation of the bootstrap estimates.

    Notes
    -----
    Computed through the coincidence matrix of Krippendorff (2011) [7]_:
    each unit with ``m_u >= 2`` values adds ``n_uc (n_uk - [c = k]) /
    (m_u - 1)`` to cell ``(c, k)``, and ``alpha = 1 - D_o / D_e``. Units with
    fewer than two values are not pairable and are ignored.

    The interval is a percentile bootstrap over units (items resampled with
    replacement, readers kept), computed for all resamples at once as a
    weighted sum of per-unit coincidence matrices. Hayes & Krippendorff
    (2007) [8]_ describe a different bootstrap (resampling pairs of values);
    resampling units is the standard nonparametric choice when the units are
    a sample of images and the question is how alpha would vary over other
    images.

    References
    ----------
    .. [7] Krippendorff (2011), https://repository.upenn.edu/asc_papers/43
    .. [8] Hayes & Krippendorff (2007), doi:10.1080/19312450709336664
    """
    if level not in ("nominal", "ordinal", "interval"):
        raise ValueError("level must be 'nominal', 'ordinal' or 'interval'")
    z_quantile(confidence_level)
    x = np.asarray(data, dtype=float)
    if x.ndim != 2:
        raise ValueError("data must be raters x units")
    present = ~np.isnan(x)
    values, inverse = np.unique(x[present], return_inverse=True)
    n_units_all = x.shape[1]
    counts = np.zeros((n_units_all, len(values)))
    unit_of = np.nonzero(present)[1]
    np.add.at(counts, (unit_of, inverse), 1.0)
    m = counts.sum(axis=1)
    pairable = m >= 2
    counts, m = counts[pairable], m[pairable]
    n_units, n_values = int(pairable.sum()), int(m.sum())

    def result(estimate, se, ci, d_o, d_e, note):
        return AlphaResult(
            estimate=estimate,
            se=se,
            ci=ci,
            level_of_measurement=level,
            n_units=n_units,
            n_values=n_values,
            n_boot=n_boot,
            observed_disagreement=d_o,
            expected_disagreement=d_e,
            confidence_level=confidence_level,
            note=note,
        )

    if n_units == 0:
        return result(
            math.nan,
            math.nan,
            nan_ci(),
            math.nan,
            math.nan,
            "No unit has two or more values, so nothing can be compared.",
        )
    weight = 1.0 / (m - 1.0)
    # Per-unit coincidences, flattened to (units, V * V); the diagonal term
    # removes each value's pairing with itself.
    v = len(values)
    per_unit = (counts[:, :, None] * counts[:, None, :]).reshape(n_units, v * v)
    per_unit[:, :: v + 1] -= counts
    per_unit *= weight[:, None]
    o = per_unit.sum(axis=0).reshape(v, v)
    alpha, d_o, d_e = _alpha_from_coincidence(o, values, level)
    if not d_e > 0:
        return result(
            math.nan,
            math.nan,
            nan_ci(),
            float(d_o),
            float(d_e),
            "Alpha is undefined: every value is the same, so there is no "
            "variation to agree on.",
        )
    estimate = float(alpha)
    if n_boot <= 0:
        return result(estimate, math.nan, nan_ci(), float(d_o), float(d_e), None)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=n_boot)
    o_boot = (draws.astype(float) @ per_unit).reshape(n_boot, v, v)
    boot, _, _ = _alpha_from_coincidence(o_boot, values, level)
    boot = boot[np.isfinite(boot)]
    note = None
    if len(boot) < n_boot:
        note = (
            f"{n_boot - len(boot)} bootstrap resamples had no variation and were "
            "dropped."
        )
    if len(boot) < 2:
        return result(
            estimate,
            math.nan,
            nan_ci(),
            float(d_o),
            float(d_e),
            join_notes(note, "Too few usable bootstrap resamples for an interval."),
        )
    tail = (1 - confidence_level) / 2 * 100
    low, high = np.percentile(boot, [tail, 100 - tail])
    return result(
        estimate,
        float(boot.std(ddof=1)),
        (float(low), float(high)),
        float(d_o),
        float(d_e),
        note,
    )
