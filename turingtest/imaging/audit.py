"""Blinding audit: can anything but the anatomy tell real from synthetic?

For each image of a study two groups of cues are measured:

- **file level**, what a browser or a curious reader could read without
  looking at the picture: served byte size, width, height, pixel mode and
  format, the PNG chunk list (JPEG marker list for a JPEG), the HTTP
  headers of the image response and the form of its URL. In canonical form
  these are identical for every image, so they must predict nothing.
- **image statistics**, cheap content measures: mean, standard deviation,
  percentiles, noise level (Immerkær 1996), sharpness (variance of the
  Laplacian, mean gradient magnitude) and histogram entropy. Differences here
  are part of what the study measures; they are reported, not judged.

Per group a logistic regression on standardised features predicts source
from cross-validated (stratified k-fold, seeded) out-of-fold scores; the AUC
of those scores gets a DeLong 95% confidence interval. File-level cues fail
the audit when the interval excludes 0.5 or the estimate exceeds 0.6.

References
----------
DeLong ER, DeLong DM, Clarke-Pearson DL. Comparing the areas under two or
more correlated receiver operating characteristic curves: a nonparametric
approach. Biometrics 1988;44:837-845. doi:10.2307/2531595

Immerkær J. Fast noise variance estimation. Computer Vision and Image
Understanding 1996;64:300-302. doi:10.1006/cviu.1996.0060
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image as PILImage

from turingtest.imaging.canonical import png_chunks
from turingtest.imaging.decode import decode, sniff
from turingtest.imaging.serving import image_response_headers
from turingtest.stats.roc import auc_delong

FILE_LEVEL = "file"
IMAGE_STATISTICS = "image"
MAX_AUC_AT_CHANCE = 0.6
TOP_FEATURES = 5


@dataclass(frozen=True)
class FeatureSeparation:
    """How well one feature alone separates the sources."""

    name: str
    auc: float  # the feature as a score for "synthetic"
    real_mean: float
    synthetic_mean: float

    @property
    def separation(self) -> float:
        return abs(self.auc - 0.5)

    @property
    def direction(self) -> str:
        return "higher in synthetic" if self.auc >= 0.5 else "lower in synthetic"


@dataclass(frozen=True)
class CueGroupResult:
    group: str
    label: str
    auc: float
    ci_low: float
    ci_high: float
    n_real: int
    n_synthetic: int
    must_be_at_chance: bool
    features: tuple[str, ...]
    top_features: tuple[FeatureSeparation, ...]

    @property
    def enough_data(self) -> bool:
        return not math.isnan(self.auc)

    @property
    def separates(self) -> bool:
        """The cues tell the sources apart (CI excludes 0.5 or AUC > 0.6)."""
        if not self.enough_data:
            return False
        return self.ci_low > 0.5 or self.ci_high < 0.5 or self.auc > MAX_AUC_AT_CHANCE

    @property
    def passed(self) -> bool:
        return not (self.must_be_at_chance and self.separates)

    @property
    def verdict(self) -> str:
        if not self.enough_data:
            return "not enough images of each source"
        if not self.separates:
            return "at chance"
        if self.must_be_at_chance:
            return "FAIL: these cues give the source away"
        return "separates (content; information only)"


@dataclass(frozen=True)
class AuditResult:
    label: str
    groups: tuple[CueGroupResult, ...]
    seed: int

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.groups)

    @property
    def file_level(self) -> CueGroupResult:
        return next(g for g in self.groups if g.group == FILE_LEVEL)

    @property
    def image_statistics(self) -> CueGroupResult:
        return next(g for g in self.groups if g.group == IMAGE_STATISTICS)

    def report(self) -> str:
        lines = [f"Blinding audit of {self.label} (seed {self.seed})"]
        for g in self.groups:
            lines.append(
                f"  {g.label}: AUC {g.auc:.3f} (95% CI {g.ci_low:.3f}–{g.ci_high:.3f}),"
                f" {g.n_real} real / {g.n_synthetic} synthetic: {g.verdict}"
            )
            for f in g.top_features:
                if f.separation > 0:
                    lines.append(
                        f"      {f.name}: AUC {f.auc:.3f}, {f.direction} "
                        f"(real {f.real_mean:.4g}, synthetic {f.synthetic_mean:.4g})"
                    )
        return "\n".join(lines)


# --------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------


def cross_validated_scores(
    features: np.ndarray, labels: np.ndarray, *, seed: int
) -> np.ndarray:
    """Out-of-fold decision scores of a standardised logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(features, dtype=np.float64)
    keep = np.ptp(x, axis=0) > 0 if x.size else np.zeros(0, dtype=bool)
    if not keep.any():
        # Identical cues for every image: nothing to learn, every score equal.
        return np.zeros(len(labels))
    x = x[:, keep]
    folds = min(5, int(np.bincount(labels.astype(int)).min()))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cross_val_predict(model, x, labels, cv=cv, method="decision_function")


def _separations(
    names: Sequence[str], x: np.ndarray, labels: np.ndarray
) -> tuple[FeatureSeparation, ...]:
    out = []
    for j, name in enumerate(names):
        col = x[:, j]
        auc = auc_delong(labels, col).estimate
        out.append(
            FeatureSeparation(
                name=name,
                auc=auc,
                real_mean=float(col[~labels].mean()),
                synthetic_mean=float(col[labels].mean()),
            )
        )
    out.sort(key=lambda f: -f.separation if not math.isnan(f.auc) else 0.0)
    return tuple(out[:TOP_FEATURES])


def _group_result(
    group: str,
    label: str,
    names: list[str],
    x: np.ndarray,
    labels: np.ndarray,
    *,
    seed: int,
    must_be_at_chance: bool,
) -> CueGroupResult:
    n_syn = int(labels.sum())
    n_real = int(len(labels) - n_syn)
    if n_syn < 2 or n_real < 2:
        auc = lo = hi = math.nan
        top: tuple[FeatureSeparation, ...] = ()
    else:
        scores = cross_validated_scores(x, labels, seed=seed)
        found = auc_delong(labels, scores)
        auc, (lo, hi) = found.estimate, found.ci
        top = _separations(names, x, labels)
    return CueGroupResult(
        group=group,
        label=label,
        auc=auc,
        ci_low=lo,
        ci_high=hi,
        n_real=n_real,
        n_synthetic=n_syn,
        must_be_at_chance=must_be_at_chance,
        features=tuple(names),
        top_features=top,
    )


# --------------------------------------------------------------------------
# Cues
# --------------------------------------------------------------------------


def _response_headers(image) -> dict[str, str]:
    # The headers the image view really sends, so the audit sees what a
    # browser sees.
    return {str(k): str(v) for k, v in image_response_headers(image).items()}


def _image_url(image) -> str:
    from django.urls import NoReverseMatch, reverse

    try:
        return reverse("api-image", args=[image.token])
    except NoReverseMatch:
        return f"/api/v1/images/{image.token}"


def jpeg_markers(data: bytes) -> list[str]:
    """Marker segments of a JPEG up to the start of scan."""
    markers, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        markers.append(f"FF{marker:02X}")
        if marker == 0xDA:
            break
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return markers


def file_cues(image, data: bytes) -> dict[str, object]:
    """File-level cues of one image: numbers and categories."""
    cues: dict[str, object] = {"byte size": len(data)}
    kind = sniff(data) or "unknown"
    try:
        with PILImage.open(io.BytesIO(data)) as im:
            cues["width"], cues["height"] = im.size
            cues["mode"] = f"{im.format} {im.mode}"
    except Exception:  # noqa: BLE001 - e.g. DICOM kept as is
        cues["width"], cues["height"] = image.width, image.height
        cues["mode"] = kind
    if kind == "PNG":
        cues["chunks"] = " ".join(png_chunks(data))
    elif kind == "JPEG":
        cues["chunks"] = " ".join(jpeg_markers(data))
    else:
        cues["chunks"] = kind
    for name, value in _response_headers(image).items():
        key = f"header {name}"
        cues[key] = int(value) if name.lower() == "content-length" else value
    url = _image_url(image)
    cues["url length"] = len(url)
    cues["url form"] = url.replace(image.token, "<token>")
    return cues


def image_statistics(pixels: np.ndarray) -> dict[str, float]:
    """Cheap content statistics of a gray image on the 0..255 scale."""
    x = np.asarray(pixels, dtype=np.float64)
    h, w = x.shape
    out = {"mean": float(x.mean()), "std": float(x.std())}
    levels = (1, 5, 25, 50, 75, 95, 99)
    for q, v in zip(levels, np.percentile(x, levels), strict=True):
        out[f"p{q}"] = float(v)
    c = x[1:-1, 1:-1]
    n, s, e, wst = x[:-2, 1:-1], x[2:, 1:-1], x[1:-1, 2:], x[1:-1, :-2]
    corners = x[:-2, :-2] + x[:-2, 2:] + x[2:, :-2] + x[2:, 2:]
    # Immerkær's mask [[1,-2,1],[-2,4,-2],[1,-2,1]] cancels image structure
    # up to second order, leaving mostly noise.
    residual = corners - 2 * (n + s + e + wst) + 4 * c
    out["noise sigma"] = float(
        math.sqrt(math.pi / 2) * np.abs(residual).sum() / (6.0 * (w - 2) * (h - 2))
    )
    out["laplacian variance"] = float((n + s + e + wst - 4 * c).var())
    gy, gx = np.gradient(x)
    out["gradient magnitude"] = float(np.hypot(gx, gy).mean())
    hist = np.bincount(
        np.clip(np.rint(x), 0, 255).astype(np.int64).ravel(), minlength=256
    )
    p = hist[hist > 0] / hist.sum()
    out["histogram entropy"] = float(-(p * np.log2(p)).sum())
    return out


def _encode(rows: list[dict[str, object]]) -> tuple[list[str], np.ndarray]:
    """Numbers as they are; categories one-hot."""
    keys = sorted({k for r in rows for k in r})
    names: list[str] = []
    columns: list[np.ndarray] = []
    for key in keys:
        values = [r.get(key) for r in rows]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            names.append(key)
            columns.append(np.array(values, dtype=np.float64))
        else:
            for level in sorted({str(v) for v in values}):
                names.append(f"{key} = {level}")
                columns.append(np.array([str(v) == level for v in values], dtype=float))
    x = np.column_stack(columns) if columns else np.zeros((len(rows), 0))
    return names, x


def audit_images(
    images: Sequence, *, seed: int = 0, label: str = "images"
) -> AuditResult:
    """Audit a set of pool images (each an ``imaging.Image``)."""
    file_rows, stat_rows, labels = [], [], []
    for image in images:
        with image.file.open("rb") as fh:
            data = fh.read()
        file_rows.append(file_cues(image, data))
        stat_rows.append(image_statistics(decode(data, image.file.name).pixels))
        labels.append(image.source == "synthetic")
    y = np.array(labels, dtype=bool)
    file_names, file_x = _encode(file_rows)
    stat_names, stat_x = _encode(stat_rows)
    groups = (
        _group_result(
            FILE_LEVEL,
            "File-level cues",
            file_names,
            file_x,
            y,
            seed=seed,
            must_be_at_chance=True,
        ),
        _group_result(
            IMAGE_STATISTICS,
            "Image statistics",
            stat_names,
            stat_x,
            y,
            seed=seed,
            must_be_at_chance=False,
        ),
    )
    return AuditResult(label=label, groups=groups, seed=seed)


def audit_study(study, *, seed: int | None = None) -> AuditResult:
    """Audit the images of a study's main cases."""
    cases = study.cases.filter(role="main").select_related("image").order_by("number")
    images = [case.image for case in cases]
    seed = study.seed if seed is None else seed
    return audit_images(images, seed=int(seed) % (2**32), label=f"study {study.slug}")
