"""The machine Turing test: how real, how faithful and how private synthetic images are.

    python -m generator.evaluate --real ../shared/data/knee-kl/test \\
        --synthetic samples/ --train ../shared/data/knee-kl/train --out eval/

Before an expert spends an hour on a study, this answers four questions, each
beside the same figure for real images against real images (its floor):

1. **Can a machine tell them apart?** A classifier two-sample test (C2ST): a
   small CNN is trained to separate real from synthetic and scored on folds it
   did not see. Cross-validated AUC with a DeLong confidence interval; 0.5
   means indistinguishable to this classifier.
2. **Do they cover the real distribution?** Fréchet and kernel distances,
   precision/recall and density/coverage in the feature space of a KL-grade
   classifier trained here on the real training split (no pretrained
   Inception weights exist offline, and a domain network is the better ruler
   for radiographs anyway). Reference: one half of the real test images;
   compared: the other half (floor) and as many synthetic images.
3. **Do they show the grade they were made for?** The same classifier's
   accuracy and quadratic-weighted kappa on synthetic images against their
   conditioning grade, beside its accuracy on real test images.
4. **Are they copies?** Each synthetic image's nearest training image by pixel
   correlation and by feature distance; pairs closer than the closest pair
   between a real test image and the training set are flagged and saved side
   by side. Synthetic data exists to be shared without patient data.

Outputs in ``--out``: ``report.json``, ``report.md``, plots, and
``memorisation/`` with flagged pairs.

References
----------
.. [1] Lopez-Paz, Oquab. Revisiting Classifier Two-Sample Tests. ICLR 2017.
       arXiv:1610.06545
.. [2] DeLong, DeLong, Clarke-Pearson. Comparing the areas under two or more
       correlated ROC curves. Biometrics 44:837 (1988). doi:10.2307/2531595
.. [3] Sun, Xu. Fast implementation of DeLong's algorithm. IEEE SPL 21:1389
       (2014). doi:10.1109/LSP.2014.2337313
.. [4] Heusel et al. GANs trained by a two time-scale update rule converge to
       a local Nash equilibrium (FID). NeurIPS 2017. arXiv:1706.08500
.. [5] Bińkowski et al. Demystifying MMD GANs (KID). ICLR 2018.
       arXiv:1801.01401
.. [6] Kynkäänniemi et al. Improved Precision and Recall Metric for Assessing
       Generative Models. NeurIPS 2019. arXiv:1904.06991
.. [7] Naeem et al. Reliable Fidelity and Diversity Metrics for Generative
       Models (density, coverage). ICML 2020. arXiv:2002.09797
.. [8] Cohen. Weighted kappa. Psychol Bull 70:213 (1968). doi:10.1037/h0026256
.. [9] Carlini et al. Extracting Training Data from Diffusion Models. USENIX
       Security 2023. arXiv:2301.13188
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import linalg, stats
from sklearn.metrics import (
    cohen_kappa_score,
    confusion_matrix,
    roc_curve,
)
from sklearn.model_selection import StratifiedKFold
from torch import nn
from tqdm.auto import tqdm

from generator.data import Dataset, list_images, load_dataset
from turingtest.domain.scales import KL

# The project's one DeLong: turingtest.stats is pure NumPy/SciPy, and the
# generator may import it (never Django: see tests/generator/test_imports.py).
from turingtest.stats.roc import auc_delong

# -----------------------------------------------------------------------------
# a small CNN, for both the two-sample test and the KL-grade classifier


class SmallCNN(nn.Module):
    """(B, 1, R, R) -> logits (B, n_out); ``features`` gives (B, C) pooled."""

    def __init__(self, n_out: int, resolution: int, width: int = 16, max_width=128):
        super().__init__()
        layers, c_in, res, c = [], 1, resolution, width
        while res > 4:
            layers += [
                nn.Conv2d(c_in, c, 3, 1, 1, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            c_in, res, c = c, res // 2, min(max_width, 2 * c)
        layers += [nn.Conv2d(c_in, c_in, 3, 1, 1), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)  # (B, C, r, r)
        self.n_features = c_in
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(c_in, n_out))

    def features(self, x):
        return self.body(x).mean(dim=(2, 3))  # (B, C)

    def forward(self, x):
        return self.head(self.features(x))


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).unsqueeze(1).float() / 127.5 - 1.0


def _augment(x: torch.Tensor, shift: int, gen: torch.Generator) -> torch.Tensor:
    # Left and right knees both occur, so a flip keeps an image in distribution.
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if shift:
        R = x.shape[-1]
        padded = F.pad(x, [shift] * 4, mode="replicate")
        i, j = torch.randint(0, 2 * shift + 1, (2,), generator=gen).tolist()
        x = padded[..., i : i + R, j : j + R]
    return x


def _autocast():
    # bf16 where the CPU has it natively: 2-2.5x an fp32 step of SmallCNN.
    enabled = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)


def fit_cnn(
    images: np.ndarray,
    labels: np.ndarray,
    n_out: int,
    *,
    epochs: int,
    seed: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    shift: int = 0,
    balance: bool = False,
    desc: str | None = None,
) -> SmallCNN:
    """Train a SmallCNN; with ``desc``, a progress bar of that name on stderr."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = SmallCNN(n_out, images.shape[-1])
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    steps = max(1, epochs * int(np.ceil(len(labels) / batch_size)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    x_all, y_all = _to_tensor(images), torch.from_numpy(labels).long()
    weight = None
    if balance:
        counts = np.bincount(labels, minlength=n_out).astype(float)
        weight = torch.tensor(
            np.where(counts > 0, len(labels) / (n_out * np.maximum(counts, 1)), 0.0),
            dtype=torch.float32,
        )
    net.train()
    done = 0
    bar = tqdm(total=steps, desc=desc, unit="batch", leave=False, disable=desc is None)
    while done < steps:
        order = torch.randperm(len(labels), generator=gen)
        for k in range(0, len(order), batch_size):
            if done >= steps:
                break
            idx = order[k : k + batch_size]
            if len(idx) < 2:  # batch norm needs two
                continue
            x = _augment(x_all[idx], shift, gen)
            with _autocast():
                logits = net(x).float()
            loss = F.cross_entropy(logits, y_all[idx], weight=weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            done += 1
            bar.update(1)
    bar.close()
    _refresh_norms(net, x_all, batch_size)
    return net.eval()


@torch.no_grad()
def _refresh_norms(net: SmallCNN, x: torch.Tensor, batch_size: int) -> None:
    # Short training leaves momentum-averaged batch-norm statistics far from
    # the final weights' and miscalibrates eval-mode scores; recompute them
    # exactly over the training data.
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    net.train()
    for k in range(0, len(x), batch_size):
        with _autocast():
            net.features(x[k : k + batch_size])
    for m in norms:
        m.momentum = 0.1


@torch.no_grad()
def predict(net: SmallCNN, images: np.ndarray, batch_size: int = 256):
    """(probabilities (N, n_out), features (N, C))."""
    probs, feats = [], []
    for k in range(0, len(images), batch_size):
        x = _to_tensor(images[k : k + batch_size])
        with _autocast():
            f = net.features(x).float()
        probs.append(net.head(f).softmax(dim=1))
        feats.append(f)
    return torch.cat(probs).numpy(), torch.cat(feats).numpy().astype(np.float64)


# -----------------------------------------------------------------------------
# classifier two-sample test


@dataclass(frozen=True)
class C2STResult:
    """Cross-validated AUC of real (0) vs other (1), and the test of [1].

    ``auc`` is the mean of the per-fold AUCs and ``se`` combines the folds'
    DeLong variances (disjoint test folds); pooling out-of-fold scores instead
    would mix scores of differently calibrated models. ``accuracy`` counts
    every image once, scored by the model that did not see it.
    """

    auc: float
    se: float
    ci_low: float
    ci_high: float
    fold_aucs: list[float]
    accuracy: float
    p_value: float  # one-sided binomial test of accuracy > 0.5
    n_per_class: int
    roc: dict = field(repr=False, default_factory=dict)


def c2st(
    a: np.ndarray,
    b: np.ndarray,
    *,
    folds: int = 5,
    epochs: int = 10,
    seed: int = 0,
    desc: str | None = None,
) -> C2STResult:
    """Classifier two-sample test between image sets ``a`` and ``b``.

    Both sets are subsampled to the same size so that an AUC of 0.5 and an
    accuracy of 0.5 mean chance.
    """
    rng = np.random.default_rng(seed)
    n = min(len(a), len(b))
    a = a[rng.choice(len(a), n, replace=False)]
    b = b[rng.choice(len(b), n, replace=False)]
    x = np.concatenate([a, b])
    y = np.r_[np.zeros(n, int), np.ones(n, int)]
    folds = max(2, min(folds, n))
    score = np.zeros(2 * n)
    fold_aucs, fold_vars = [], []
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for k, (tr, te) in enumerate(splitter.split(x, y)):
        net = fit_cnn(
            x[tr],
            y[tr],
            2,
            epochs=epochs,
            seed=seed + k,
            desc=desc and f"{desc}, fold {k + 1}/{folds}",
        )
        p, _ = predict(net, x[te])
        score[te] = p[:, 1]
        fold = auc_delong(y[te], p[:, 1])
        fold_aucs.append(fold.estimate)
        fold_vars.append(fold.se**2)
    auc = float(np.mean(fold_aucs))
    se = float(np.sqrt(np.sum(fold_vars)) / len(fold_aucs))
    z = stats.norm.ppf(0.975)
    correct = int(((score > 0.5) == y.astype(bool)).sum())
    p_value = stats.binomtest(correct, 2 * n, 0.5, alternative="greater").pvalue
    fpr, tpr, _ = roc_curve(y, score)
    return C2STResult(
        auc=auc,
        se=se,
        ci_low=float(max(0.0, auc - z * se)),
        ci_high=float(min(1.0, auc + z * se)),
        fold_aucs=fold_aucs,
        accuracy=correct / (2 * n),
        p_value=float(p_value),
        n_per_class=n,
        roc={"fpr": fpr.tolist(), "tpr": tpr.tolist()},
    )


# -----------------------------------------------------------------------------
# distances in feature space


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets [4]."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    # tr sqrt(s1 s2) = tr sqrt(s1^½ s2 s1^½), a symmetric PSD matrix: eigh is
    # stable where sqrtm of the non-symmetric product is not.
    w, v = linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    tr_covmean = np.sqrt(np.clip(linalg.eigvalsh(root1 @ s2 @ root1), 0, None)).sum()
    return float(
        ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_covmean
    )


def kernel_distance(
    x: np.ndarray, y: np.ndarray, *, subsets: int = 50, size: int = 200, seed: int = 0
) -> tuple[float, float]:
    """KID [5]: unbiased MMD² with the cubic polynomial kernel; (mean, std)."""
    rng = np.random.default_rng(seed)
    d = x.shape[1]
    m = min(size, len(x), len(y))
    values = []
    for _ in range(subsets):
        a = x[rng.choice(len(x), m, replace=False)]
        b = y[rng.choice(len(y), m, replace=False)]
        kxx = (a @ a.T / d + 1) ** 3
        kyy = (b @ b.T / d + 1) ** 3
        kxy = (a @ b.T / d + 1) ** 3
        off = m * (m - 1)
        values.append(
            (kxx.sum() - np.trace(kxx)) / off
            + (kyy.sum() - np.trace(kyy)) / off
            - 2 * kxy.mean()
        )
    return float(np.mean(values)), float(np.std(values))


def _pairwise(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    d2 = (x**2).sum(1)[:, None] + (y**2).sum(1)[None, :] - 2 * x @ y.T
    return np.sqrt(np.maximum(d2, 0.0))


def _kth_neighbour_radius(x: np.ndarray, k: int) -> np.ndarray:
    d = _pairwise(x, x)
    return np.sort(d, axis=1)[:, min(k, len(x) - 1)]  # column 0 is the point itself


def precision_recall(
    real: np.ndarray, fake: np.ndarray, k: int = 3
) -> tuple[float, float]:
    """Improved precision and recall [6] with k-NN balls."""
    r_real, r_fake = _kth_neighbour_radius(real, k), _kth_neighbour_radius(fake, k)
    d = _pairwise(real, fake)  # (N_real, N_fake)
    precision = (d <= r_real[:, None]).any(axis=0).mean()
    recall = (d <= r_fake[None, :]).any(axis=1).mean()
    return float(precision), float(recall)


def density_coverage(
    real: np.ndarray, fake: np.ndarray, k: int = 5
) -> tuple[float, float]:
    """Density and coverage [7], k-NN balls around real samples only."""
    r_real = _kth_neighbour_radius(real, k)
    inside = _pairwise(real, fake) <= r_real[:, None]  # (N_real, N_fake)
    density = inside.sum() / (k * fake.shape[0])
    coverage = inside.any(axis=1).mean()
    return float(density), float(coverage)


def feature_metrics(reference, candidate, seed: int = 0) -> dict:
    p, r = precision_recall(reference, candidate)
    dens, cov = density_coverage(reference, candidate)
    kid, kid_std = kernel_distance(reference, candidate, seed=seed)
    return {
        "frechet_distance": frechet_distance(reference, candidate),
        "kernel_distance": kid,
        "kernel_distance_std": kid_std,
        "precision": p,
        "recall": r,
        "density": dens,
        "coverage": cov,
        "n_reference": int(len(reference)),
        "n_compared": int(len(candidate)),
    }


# -----------------------------------------------------------------------------
# grade fidelity and memorisation


def grade_fidelity(labels: np.ndarray, probs: np.ndarray) -> dict:
    pred = probs.argmax(1)
    return {
        "n": int(len(labels)),
        "accuracy": float((pred == labels).mean()),
        "quadratic_weighted_kappa": float(
            cohen_kappa_score(labels, pred, weights="quadratic", labels=list(KL.codes))
        ),
        "confusion": confusion_matrix(labels, pred, labels=list(KL.codes)).tolist(),
        "predicted_per_grade": np.bincount(pred, minlength=5).tolist(),
    }


def _standardise(images: np.ndarray) -> np.ndarray:
    x = images.reshape(len(images), -1).astype(np.float32)
    x -= x.mean(1, keepdims=True)
    x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-8
    return x


def nearest_by_correlation(query: np.ndarray, bank: np.ndarray, chunk: int = 512):
    """For each query image, (max Pearson correlation, index) over ``bank``."""
    b = _standardise(bank)
    best, arg = [], []
    for k in range(0, len(query), chunk):
        c = _standardise(query[k : k + chunk]) @ b.T
        arg.append(c.argmax(1))
        best.append(c.max(1))
    return np.concatenate(best).astype(np.float64), np.concatenate(arg)


def nearest_by_distance(query: np.ndarray, bank: np.ndarray, chunk: int = 512):
    best, arg = [], []
    for k in range(0, len(query), chunk):
        d = _pairwise(query[k : k + chunk], bank)
        arg.append(d.argmin(1))
        best.append(d.min(1))
    return np.concatenate(best), np.concatenate(arg)


# -----------------------------------------------------------------------------
# the whole test


# Classifiers judge images at this side at most (both sets are box-downsampled
# to it): at 224 px a SmallCNN step costs ~4x more and a 400-vs-400 run took
# over half an hour on two cores; 128 px keeps joint space and osteophytes.
ANALYSIS_RESOLUTION = 128
CACHE_VERSION = 1


def default_cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "turingtest" / "evaluate"


def _fingerprint(*parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(str((part.shape, part.dtype.str)).encode())
            h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()[:32]


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def kl_classifier(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    epochs: int,
    seed: int,
    cache: Path | None,
    progress: bool = True,
) -> tuple[SmallCNN, bool]:
    """The real-trained KL classifier, from the cache when it holds one.

    It depends only on the training images, labels and options, never on the
    synthetic images, so one training set pays for it once. Returns the
    network and whether it came from the cache.
    """
    key = _fingerprint("kl", CACHE_VERSION, images, labels, epochs, seed)
    path = cache / f"kl-classifier-{key}.pt" if cache else None
    if path is not None and path.exists():
        net = SmallCNN(KL.count, images.shape[-1])
        net.load_state_dict(torch.load(path, weights_only=True))
        return net.eval(), True
    net = fit_cnn(
        images,
        labels,
        KL.count,
        epochs=epochs,
        seed=seed,
        shift=max(1, images.shape[-1] // 32),
        balance=True,
        desc=f"{KL.abbreviation} classifier" if progress else None,
    )
    if path is not None:
        _atomic_write(path, lambda tmp: torch.save(net.state_dict(), tmp))
    return net, False


def c2st_cached(
    a: np.ndarray, b: np.ndarray, *, cache: Path | None, **kwargs
) -> tuple[C2STResult, bool]:
    """:func:`c2st`, remembered for the same two image sets and options.

    The floor (real test against real train) does not depend on the synthetic
    images; caching it halves the cost of every later run.
    """
    key = _fingerprint("c2st", CACHE_VERSION, a, b, {**kwargs, "desc": None})
    path = cache / f"c2st-{key}.json" if cache else None
    if path is not None and path.exists():
        return C2STResult(**json.loads(path.read_text())), True
    result = c2st(a, b, **kwargs)
    if path is not None:
        _atomic_write(path, lambda tmp: tmp.write_text(json.dumps(asdict(result))))
    return result, False


@dataclass
class EvalOptions:
    real: str
    synthetic: str
    out: str
    train: str | None = None
    resolution: int | None = None
    cache: str | None = None  # None: default_cache_dir(); "" : no cache
    progress: bool = True
    classifier_epochs: int = 20
    c2st_epochs: int = 10
    folds: int = 5
    seed: int = 0
    max_images: int | None = None  # per set, after loading
    max_flagged_saved: int = 50
    threads: int | None = None


def _subsample(ds: Dataset, n: int | None, rng) -> Dataset:
    if n is None or len(ds) <= n:
        return ds
    keep = np.sort(rng.choice(len(ds), n, replace=False))
    files = tuple(ds.files[i] for i in keep)
    return Dataset(ds.images[keep], ds.labels[keep], files, ds.source)


def evaluate(options: EvalOptions) -> dict:
    """Run every check; write the report; return it as a dict."""
    t_start = time.monotonic()
    if options.threads:
        torch.set_num_threads(options.threads)
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(options.seed)
    cache = _cache_dir(options)
    say = _stage_printer(options.progress, t_start)

    if Path(options.synthetic).suffix == ".npz":
        with np.load(options.synthetic) as z:
            native = int(z["images"].shape[-1])
    else:
        first = list_images(options.synthetic)[0][0]
        with Image.open(first) as img:
            native = min(img.size)
    resolution = options.resolution or min(native, ANALYSIS_RESOLUTION)
    say(f"loading images at {resolution} px (synthetic native {native} px)")
    synthetic = load_dataset(options.synthetic, resolution)
    real = load_dataset(options.real, resolution, split="test")
    train = (
        load_dataset(options.train, resolution, split="train")
        if options.train
        else None
    )
    synthetic = _subsample(synthetic, options.max_images, rng)
    real = _subsample(real, options.max_images, rng)

    # Real test images split in two: the reference, and the floor's stand-in
    # for synthetic images, stratified by grade.
    taken_a: list[int] = []
    taken_b: list[int] = []
    for g in KL.codes:
        idx = rng.permutation(np.flatnonzero(real.labels == g))
        taken_a += idx[: (len(idx) + 1) // 2].tolist()
        taken_b += idx[(len(idx) + 1) // 2 :].tolist()
    half_a, half_b = np.array(sorted(taken_a)), np.array(sorted(taken_b))

    if train is not None:
        clf_x, clf_y = train.images, train.labels
        test_idx = np.arange(len(real))
        classifier_data = f"{len(train)} real training images"
    else:
        # No training split: the classifier learns from one half and is judged
        # on the other, which then serves as both reference and floor.
        clf_x, clf_y = real.images[half_a], real.labels[half_a]
        test_idx = half_b
        rest = rng.permutation(half_b)
        half_a, half_b = (
            np.sort(rest[: len(rest) // 2]),
            np.sort(rest[len(rest) // 2 :]),
        )
        classifier_data = f"{len(clf_y)} real images (half of --real; no --train)"

    report: dict = {
        "options": asdict(options),
        "resolution": resolution,
        "n": {
            "real": len(real),
            "synthetic": len(synthetic),
            "train": len(train) if train is not None else None,
            "real_per_grade": real.counts(),
            "synthetic_per_grade": synthetic.counts(),
        },
    }

    # 1. classifier two-sample test, and its floor
    say(f"1/4 two-sample test: {len(real)} real vs {len(synthetic)} synthetic")
    c2st_syn = c2st(
        real.images,
        synthetic.images,
        folds=options.folds,
        epochs=options.c2st_epochs,
        seed=options.seed,
        desc="C2ST real vs synthetic" if options.progress else None,
    )
    if train is not None:
        floor_a, floor_b = real.images, train.images
        floor_name = "real test vs real train"
    else:
        floor_a, floor_b = real.images[half_a], real.images[half_b]
        floor_name = "real vs real (two halves)"
    c2st_floor, hit = c2st_cached(
        floor_a,
        floor_b,
        cache=cache,
        folds=options.folds,
        epochs=options.c2st_epochs,
        seed=options.seed + 1,
        desc=f"C2ST floor ({floor_name})" if options.progress else None,
    )
    say(f"1/4 floor: {floor_name}" + (" (cached)" if hit else ""))
    report["c2st"] = {"synthetic": asdict(c2st_syn), "floor": asdict(c2st_floor)}
    report["c2st"]["floor_compares"] = floor_name

    # 2. KL classifier, its features, and feature-space distances
    clf, hit = kl_classifier(
        clf_x,
        clf_y,
        epochs=options.classifier_epochs,
        seed=options.seed,
        cache=cache,
        progress=options.progress,
    )
    say(
        f"2/4 {KL.abbreviation} classifier on {classifier_data}"
        + (" (cached)" if hit else "")
        + "; feature distances"
    )
    p_real, f_real = predict(clf, real.images)
    p_syn, f_syn = predict(clf, synthetic.images)
    n_cmp = len(half_b)
    syn_cmp = rng.choice(len(synthetic), min(n_cmp, len(synthetic)), replace=False)
    report["features"] = {
        "space": f"{KL.abbreviation}-grade classifier penultimate layer ({f_real.shape[1]}-d), "
        f"trained on {classifier_data}",
        "synthetic": feature_metrics(f_real[half_a], f_syn[syn_cmp], options.seed),
        "floor": feature_metrics(f_real[half_a], f_real[half_b], options.seed),
    }

    # 3. grade fidelity
    say("3/4 grade fidelity")
    report["grade_fidelity"] = {
        "synthetic": grade_fidelity(synthetic.labels, p_syn),
        "real_test": grade_fidelity(real.labels[test_idx], p_real[test_idx]),
    }

    # 4. memorisation
    if train is not None:
        say(f"4/4 memorisation: nearest of {len(train)} training images")
        report["memorisation"] = memorisation(
            real, synthetic, train, clf, f_real, f_syn, out, options
        )
    else:
        report["memorisation"] = None

    report["seconds"] = round(time.monotonic() - t_start, 1)
    report["native_resolution"] = native
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    plots(report, real, synthetic, f_real, f_syn, p_real, p_syn, out)
    (out / "report.md").write_text(markdown(report))
    return report


def _cache_dir(options: EvalOptions) -> Path | None:
    if options.cache == "":
        return None
    return Path(options.cache) if options.cache else default_cache_dir()


def _stage_printer(enabled: bool, t0: float):
    def say(message: str) -> None:
        if enabled:
            tqdm.write(f"[{time.monotonic() - t0:6.1f} s] {message}", file=sys.stderr)

    return say


def memorisation(real, synthetic, train, clf, f_real, f_syn, out, options) -> dict:
    _, f_train = predict(clf, train.images)
    corr_syn, idx_syn = nearest_by_correlation(synthetic.images, train.images)
    corr_real, idx_real = nearest_by_correlation(real.images, train.images)
    dist_syn, fidx_syn = nearest_by_distance(f_syn, f_train)
    dist_real, _ = nearest_by_distance(f_real, f_train)
    corr_threshold = float(corr_real.max())
    dist_threshold = float(dist_real.min())
    by_corr = corr_syn > corr_threshold
    by_dist = dist_syn < dist_threshold
    flagged = np.flatnonzero(by_corr | by_dist)
    flagged = flagged[np.argsort(-corr_syn[flagged])]

    folder = out / "memorisation"
    folder.mkdir(exist_ok=True)
    saved = []
    for rank, i in enumerate(flagged[: options.max_flagged_saved]):
        j = idx_syn[i] if by_corr[i] else fidx_syn[i]
        pair = np.concatenate(
            [
                synthetic.images[i],
                np.full((synthetic.images.shape[1], 4), 255, np.uint8),
                train.images[j],
            ],
            axis=1,
        )
        name = f"flag-{rank:03d}-grade{synthetic.labels[i]}.png"
        Image.fromarray(pair).save(folder / name)
        saved.append(
            {
                "file": f"memorisation/{name}",
                "synthetic": synthetic.files[i],
                "train": train.files[j],
                "correlation": float(corr_syn[i]),
                "feature_distance": float(dist_syn[i]),
            }
        )
    closest = np.argsort(-corr_syn)[:8]
    closest_real = np.argsort(-corr_real)[:8]
    montage(
        [
            [(synthetic.images[i], train.images[idx_syn[i]]) for i in closest],
            [(real.images[i], train.images[idx_real[i]]) for i in closest_real],
        ],
        out / "closest_pairs.png",
    )
    q = [0.5, 0.95, 0.99, 1.0]
    return {
        "correlation_threshold": corr_threshold,
        "feature_distance_threshold": dist_threshold,
        "flagged_by_correlation": int(by_corr.sum()),
        "flagged_by_feature_distance": int(by_dist.sum()),
        "flagged": int(len(flagged)),
        "flagged_fraction": float(len(flagged) / max(1, len(synthetic))),
        "synthetic_nn_correlation_quantiles": dict(
            zip(map(str, q), np.quantile(corr_syn, q).tolist(), strict=True)
        ),
        "real_test_nn_correlation_quantiles": dict(
            zip(map(str, q), np.quantile(corr_real, q).tolist(), strict=True)
        ),
        "synthetic_above_real_p95": float(
            (corr_syn > np.quantile(corr_real, 0.95)).mean()
        ),
        "pairs": saved,
        "nearest": {
            "corr_syn": corr_syn.tolist(),
            "corr_real": corr_real.tolist(),
            "closest": [[synthetic.files[i], train.files[idx_syn[i]]] for i in closest],
            "closest_real": [
                [real.files[i], train.files[idx_real[i]]] for i in closest_real
            ],
        },
    }


def montage(rows: list[list[tuple[np.ndarray, np.ndarray]]], path: Path) -> None:
    """Rows of (image | nearest) pairs with white gutters, as one PNG."""
    tiles = []
    for row in rows:
        pairs = []
        for a, b in row:
            gap = np.full((a.shape[0], 2), 255, np.uint8)
            pairs += [a, gap, b, np.full((a.shape[0], 8), 255, np.uint8)]
        tiles.append(np.concatenate(pairs, axis=1))
    width = max(t.shape[1] for t in tiles)
    tiles = [
        np.pad(t, ((0, 8), (0, width - t.shape[1])), constant_values=255) for t in tiles
    ]
    Image.fromarray(np.concatenate(tiles, axis=0)).save(path)


# -----------------------------------------------------------------------------
# report


def plots(report, real, synthetic, f_real, f_syn, p_real, p_syn, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for key, label in [("synthetic", "real vs synthetic"), ("floor", "floor")]:
        r = report["c2st"][key]
        ax.plot(r["roc"]["fpr"], r["roc"]["tpr"], label=f"{label} (AUC {r['auc']:.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="C2ST")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "c2st_roc.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for ax, key, title in [
        (axes[0], "real_test", "real test"),
        (axes[1], "synthetic", "synthetic"),
    ]:
        cm = np.array(report["grade_fidelity"][key]["confusion"])
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
        g = report["grade_fidelity"][key]
        ax.set(
            xlabel=f"predicted {KL.abbreviation}",
            ylabel=f"reference {KL.abbreviation}",
            title=f"{title}: acc {g['accuracy']:.2f}, QWK {g['quadratic_weighted_kappa']:.2f}",
        )
    fig.tight_layout()
    fig.savefig(out / "grade_confusion.png", dpi=120)
    plt.close(fig)

    # PCA of the classifier features: where synthetic images sit among real ones
    mu = f_real.mean(0)
    _, _, vt = np.linalg.svd(f_real - mu, full_matrices=False)
    pr, ps = (f_real - mu) @ vt[:2].T, (f_syn - mu) @ vt[:2].T
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.scatter(pr[:, 0], pr[:, 1], s=6, alpha=0.5, label="real test")
    ax.scatter(ps[:, 0], ps[:, 1], s=6, alpha=0.5, label="synthetic")
    ax.set(
        title=f"{KL.abbreviation}-classifier features (PCA of real)",
        xlabel="PC1",
        ylabel="PC2",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "features_pca.png", dpi=120)
    plt.close(fig)

    mem = report.get("memorisation")
    if mem:
        nn_ = mem["nearest"]
        fig, ax = plt.subplots(figsize=(6, 4))
        bins = np.linspace(min(min(nn_["corr_syn"]), min(nn_["corr_real"])), 1.0, 50)
        # matplotlib's stub types bins as a Sequence; it takes any array.
        ax.hist(nn_["corr_real"], bins, alpha=0.6, density=True, label="real test")  # type: ignore[arg-type]
        ax.hist(nn_["corr_syn"], bins, alpha=0.6, density=True, label="synthetic")  # type: ignore[arg-type]
        ax.axvline(
            mem["correlation_threshold"],
            color="k",
            ls="--",
            lw=1,
            label="closest real-test pair",
        )
        ax.set(xlabel="correlation with the nearest training image", ylabel="density")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "nearest_train_correlation.png", dpi=120)
        plt.close(fig)


def markdown(report: dict) -> str:
    c, f = report["c2st"], report["features"]
    g = report["grade_fidelity"]
    lines = [
        "# Machine Turing test",
        "",
        f"Resolution {report['resolution']}×{report['resolution']}; "
        f"{report['n']['real']} real test images, {report['n']['synthetic']} synthetic"
        + (
            f", {report['n']['train']} training images."
            if report["n"]["train"]
            else "."
        ),
        "",
        "## Can a machine tell them apart? (classifier two-sample test)",
        "",
        "| | AUC | 95% CI | accuracy | p (accuracy > 0.5) | n per class |",
        "|---|---|---|---|---|---|",
    ]
    for key, label in [
        ("synthetic", "real vs synthetic"),
        ("floor", c["floor_compares"]),
    ]:
        r = c[key]
        lines.append(
            f"| {label} | {r['auc']:.3f} | {r['ci_low']:.3f}–{r['ci_high']:.3f} | "
            f"{r['accuracy']:.3f} | {r['p_value']:.2g} | {r['n_per_class']} |"
        )
    lines += [
        "",
        "0.5 means the classifier cannot separate the sets; the floor shows what "
        "real images score against real images with the same classifier.",
        "",
        "## Distribution in feature space",
        "",
        f"Features: {f['space']}. Reference: half of the real test images.",
        "",
        "| | synthetic | real (floor) |",
        "|---|---|---|",
    ]
    for key, label in [
        ("frechet_distance", "Fréchet distance ↓"),
        ("kernel_distance", "kernel distance (KID) ↓"),
        ("precision", "precision ↑"),
        ("recall", "recall ↑"),
        ("density", "density (≈1 real-like)"),
        ("coverage", "coverage ↑"),
        ("n_compared", "n compared"),
    ]:
        s, r = f["synthetic"][key], f["floor"][key]
        fmt = (lambda v: f"{v:.4g}") if isinstance(s, float) else str
        lines.append(f"| {label} | {fmt(s)} | {fmt(r)} |")
    lines += [
        "",
        f"## Grade fidelity (real-trained {KL.abbreviation} classifier)",
        "",
        "| | n | accuracy | quadratic weighted κ |",
        "|---|---|---|---|",
        f"| synthetic (vs conditioning grade) | {g['synthetic']['n']} | "
        f"{g['synthetic']['accuracy']:.3f} | "
        f"{g['synthetic']['quadratic_weighted_kappa']:.3f} |",
        f"| real test | {g['real_test']['n']} | {g['real_test']['accuracy']:.3f} | "
        f"{g['real_test']['quadratic_weighted_kappa']:.3f} |",
        "",
    ]
    m = report.get("memorisation")
    lines += ["## Memorisation", ""]
    if not m:
        lines += ["Not checked: no `--train` given.", ""]
    else:
        lines += [
            f"- Nearest training image by pixel correlation: a synthetic image is "
            f"flagged above {m['correlation_threshold']:.4f}, the closest any real "
            f"test image comes to the training set; "
            f"**{m['flagged_by_correlation']}** flagged.",
            f"- By feature distance: flagged below {m['feature_distance_threshold']:.4g}; "
            f"**{m['flagged_by_feature_distance']}** flagged.",
            f"- Flagged by either rule: **{m['flagged']}** of {report['n']['synthetic']} "
            f"({100 * m['flagged_fraction']:.1f}%); "
            f"{100 * m['synthetic_above_real_p95']:.1f}% of synthetic images are "
            "closer to a training image than 95% of real test images are.",
            "",
        ]
        for p in m["pairs"][:10]:
            lines.append(
                f"![{p['synthetic']} | {p['train']}]({p['file']}) "
                f"r={p['correlation']:.4f}"
            )
        lines.append("")
    lines += [
        "## Plots",
        "",
        "![C2ST ROC](c2st_roc.png) ![grade confusion](grade_confusion.png) "
        "![features](features_pca.png)"
        + (
            " ![nearest](nearest_train_correlation.png)\n\n"
            "Closest pairs (top: synthetic | nearest training image; bottom: real "
            "test | nearest training image): ![closest](closest_pairs.png)"
            if m
            else ""
        ),
        "",
        f"_{report['seconds']} s on {torch.get_num_threads()} CPU thread(s)._",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m generator.evaluate",
        description="Machine Turing test of synthetic images against real ones.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--real", required=True, help="held-out real images (test split)")
    ap.add_argument("--synthetic", required=True, help="{grade}/*.png")
    ap.add_argument("--train", help="the generator's real training images")
    ap.add_argument("--out", default="eval")
    ap.add_argument(
        "--resolution",
        type=int,
        help=f"analysis side; default: the synthetic size, at most {ANALYSIS_RESOLUTION}",
    )
    ap.add_argument(
        "--cache",
        help=f"folder for the {KL.abbreviation} classifier and the floor test; '' for none "
        "(default: $XDG_CACHE_HOME/turingtest/evaluate)",
    )
    ap.add_argument("--no-progress", dest="progress", action="store_false")
    ap.add_argument("--classifier-epochs", type=int, default=20)
    ap.add_argument("--c2st-epochs", type=int, default=10)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-images", type=int, help="cap each set (random subset)")
    ap.add_argument("--threads", type=int)
    options = EvalOptions(**vars(ap.parse_args(argv)))
    report = evaluate(options)
    c = report["c2st"]["synthetic"]
    g = report["grade_fidelity"]
    print(
        f"C2ST AUC {c['auc']:.3f} [{c['ci_low']:.3f}, {c['ci_high']:.3f}] "
        f"(floor {report['c2st']['floor']['auc']:.3f}); grade accuracy "
        f"{g['synthetic']['accuracy']:.3f} (real {g['real_test']['accuracy']:.3f}); "
        f"memorisation flags "
        f"{report['memorisation']['flagged'] if report['memorisation'] else 'n/a'}; "
        f"report in {options.out}/report.md"
    )


if __name__ == "__main__":
    main()
