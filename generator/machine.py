"""Machine readers: the machine Turing test's classifiers answering a study.

``python manage.py add_machine_reader`` (Django) picks the images and writes
the answers; this module (no Django) only trains and scores:

- :func:`realism_scores`: a classifier two-sample test's CNN (Lopez-Paz and
  Oquab [1]_, as in :func:`generator.evaluate.c2st`) trained on real against
  synthetic images that are not in the study, then asked for each case's
  probability of being synthetic.
- :func:`grade_probabilities`: the real-trained KL classifier of
  :func:`generator.evaluate.kl_classifier` (cached by the fingerprint of its
  training images), asked for each case's KL-grade probabilities.

References
----------
.. [1] Lopez-Paz, Oquab. Revisiting Classifier Two-Sample Tests. ICLR 2017.
       arXiv:1610.06545
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from generator.data import resize_array
from generator.evaluate import fit_cnn, kl_classifier, predict
from turingtest.domain.scales import KL

# The demo's cases are 224 px; 64 px keeps the classifiers' training on one
# CPU thread within seconds for a hundred images, and still shows the
# texture and shape that separate a poor fake from a radiograph.
RESOLUTION = 64


@dataclass(frozen=True)
class RealismScores:
    p_synthetic: np.ndarray  # (N,) for the query images
    n_per_class: int  # real and synthetic training images each


def realism_scores(
    real: np.ndarray,
    synthetic: np.ndarray,
    query: np.ndarray,
    *,
    resolution: int = RESOLUTION,
    epochs: int = 20,
    seed: int = 0,
    progress: bool = False,
) -> RealismScores:
    """Train real (0) against synthetic (1) and score ``query``.

    Both training sets are subsampled to the same size, so that 0.5 means
    no lean either way. Images are (N, H, W) uint8.
    """
    rng = np.random.default_rng(seed)
    n = min(len(real), len(synthetic))
    if n < 2:
        raise ValueError("The two-sample classifier needs two images of each kind.")
    real = real[rng.choice(len(real), n, replace=False)]
    synthetic = synthetic[rng.choice(len(synthetic), n, replace=False)]
    x = resize_array(np.concatenate([real, synthetic]), resolution)
    y = np.r_[np.zeros(n, int), np.ones(n, int)]
    net = fit_cnn(
        x,
        y,
        2,
        epochs=epochs,
        seed=seed,
        batch_size=32,
        shift=max(1, resolution // 32),
        desc="real vs synthetic" if progress else None,
    )
    probs, _ = predict(net, resize_array(query, resolution))
    return RealismScores(p_synthetic=probs[:, 1].astype(float), n_per_class=n)


def grade_probabilities(
    images: np.ndarray,
    labels: np.ndarray,
    query: np.ndarray,
    *,
    resolution: int = RESOLUTION,
    epochs: int = 20,
    seed: int = 0,
    cache: Path | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, bool]:
    """KL-grade probabilities (N, 5) of ``query``; and whether the classifier was cached."""
    if len(set(labels.tolist())) < 2:
        raise ValueError(
            f"The {KL.abbreviation} classifier needs real images of at least two grades."
        )
    net, cached = kl_classifier(
        resize_array(images, resolution),
        np.asarray(labels, dtype=np.int64),
        epochs=epochs,
        seed=seed,
        cache=cache,
        progress=progress,
    )
    probs, _ = predict(net, resize_array(query, resolution))
    return probs.astype(float), cached
