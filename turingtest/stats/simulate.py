"""Simulated studies: answer rows shaped like ``judgments.csv`` plus ``role``.

For tests, benchmarks and demonstrations of the report. Readers follow an
equal-variance Gaussian signal-detection model: each image has a latent
"looks synthetic" value ``d_r * synthetic + u_i + e``, where reader ``r``'s
sensitivity ``d_r`` and image ``i``'s oddness ``u_i`` vary at random; the
6-point rating cuts that value at the reader's criterion, and the
real/synthetic answer is rating >= 4. KL grades scatter around the reference
grade.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from turingtest.domain.scales import DETECTION, KL, detection_codes

__all__ = ["simulate_rows", "evidence_effects", "PROFESSIONS", "EVIDENCE_SD"]

PROFESSIONS = (
    "radiologist",
    "radiology_resident",
    "orthopaedic_surgeon",
    "orthopaedic_resident",
)


# Spread of the per-image "looks synthetic" effect drawn from a machine's
# evidence: a little wider than the random effect it replaces, since an image
# a classifier finds obvious should be obvious to most readers.
EVIDENCE_SD = 0.8


def evidence_effects(
    p_synthetic: np.ndarray, synthetic: np.ndarray, sd: float = EVIDENCE_SD
) -> np.ndarray:
    """Per-image "looks synthetic" effects from a machine's probabilities.

    The logit of each probability, centred within real and within synthetic
    images and scaled to ``sd`` by the pooled within-group spread. Centring
    leaves how well readers tell the groups apart to their own sensitivity;
    the machine decides only which images within a group look the most
    synthetic: a blob it is sure of is called synthetic by nearly everyone,
    a fake it takes for real fools many.

    Parameters
    ----------
    p_synthetic : array of float in [0, 1]
    synthetic : array of bool
        Which images are synthetic.
    sd : float

    Returns
    -------
    ndarray
        One effect per image, to add to the latent value.
    """
    p = np.clip(np.asarray(p_synthetic, float), 0.005, 0.995)
    z = np.log(p / (1 - p))
    synthetic = np.asarray(synthetic, bool)
    centred = np.zeros_like(z)
    for group in (synthetic, ~synthetic):
        if group.any():
            centred[group] = z[group] - z[group].mean()
    spread = float(np.sqrt((centred**2).sum() / max(1, len(z) - 2)))
    if spread == 0.0:
        return np.zeros_like(z)
    return sd * centred / spread


# The latent's cut points between the detection scale's ratings.
RATING_CUTS = np.array([-1.5, -0.7, 0.0, 0.7, 1.5])
assert len(RATING_CUTS) == DETECTION.count - 1


def simulate_rows(
    n_readers: int = 15,
    n_cases: int = 60,
    *,
    phases: tuple[str, ...] = ("grading", "detection"),
    d_prime: float = 0.6,
    reader_sd: float = 0.4,
    case_sd: float = 0.6,
    criterion: float = 0.3,
    grade_sd: float = 0.7,
    synthetic_share: float = 0.5,
    n_practice: int = 2,
    n_attention: int = 2,
    seed: int = 0,
    study: str = "simulated",
    evidence: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Simulate one final answer per reader, case and phase.

    Parameters
    ----------
    n_readers, n_cases : int
        Study size (main cases; practice and attention cases come on top).
    phases : tuple of {"grading", "detection", "combined"}
    d_prime : float
        Mean reader sensitivity to synthetic images.
    reader_sd, case_sd : float
        Spread of reader sensitivity and of image oddness.
    criterion : float
        Mean criterion; positive values lean towards answering "real".
    grade_sd : float
        Spread of KL grades around the reference grade.
    synthetic_share : float
    n_practice, n_attention : int
        Extra cases with those roles.
    seed : int
    study : str
    evidence : array of float, optional
        A machine's probability that each case (main, then practice, then
        attention) is synthetic; the cases' oddness is then drawn around it
        (:func:`evidence_effects` with SD ``case_sd``) instead of by chance.

    Returns
    -------
    list of dict
        The keys of ``judgments.csv`` plus ``role``.
    """
    rng = np.random.default_rng(seed)
    n_total = n_cases + n_practice + n_attention
    role = np.array(
        ["main"] * n_cases + ["practice"] * n_practice + ["attention"] * n_attention,
        dtype=object,
    )
    truth = rng.random(n_total) < synthetic_share
    if n_cases >= 2:
        truth[0], truth[1] = False, True
    reference = np.asarray(KL.codes)[np.arange(n_total) % KL.count]
    generator = np.where(
        truth, np.where(np.arange(n_total) % 3 == 0, "wgan-b", "wgan-a"), ""
    )
    oddness = rng.normal(0, case_sd, n_total)
    if evidence is not None:
        if len(evidence) != n_total:
            raise ValueError(f"evidence needs one probability per case ({n_total})")
        oddness = evidence_effects(np.asarray(evidence, float), truth, case_sd)
    # Attention checks are obvious: very real or very synthetic.
    oddness[role == "attention"] = np.where(truth[role == "attention"], 4.0, -4.0)
    readers = [f"R{j + 1:03d}" for j in range(n_readers)]
    profession = [PROFESSIONS[j % len(PROFESSIONS)] for j in range(n_readers)]
    years = rng.integers(1, 31, n_readers)
    sensitivity = d_prime + rng.normal(0, reader_sd, n_readers)
    crit = criterion + rng.normal(0, 0.3, n_readers)
    case_labels = [f"C{i + 1:05d}" for i in range(n_total)]
    image_labels = [f"img-{i + 1:05d}" for i in range(n_total)]

    rows: list[dict[str, Any]] = []
    for phase in phases:
        latent = (
            sensitivity[:, None] * truth[None, :]
            + oddness[None, :]
            + rng.normal(size=(n_readers, n_total))
        )
        confidence = np.asarray(DETECTION.codes)[
            np.searchsorted(RATING_CUTS, latent - crit[:, None])
        ]
        answer = np.where(
            np.isin(confidence, detection_codes("synthetic")), "synthetic", "real"
        )
        grade = np.clip(
            np.rint(reference[None, :] + rng.normal(0, grade_sd, (n_readers, n_total))),
            KL.min,
            KL.max,
        ).astype(int)
        grade[:, role == "attention"] = reference[role == "attention"]
        duration = rng.lognormal(
            np.log(6000) + 0.1 * truth[None, :], 0.4, (n_readers, n_total)
        )
        order = np.argsort(rng.random((n_readers, n_total)), axis=1)
        position = np.empty_like(order)
        np.put_along_axis(position, order, np.arange(n_total)[None, :], axis=1)
        realism = phase in ("detection", "combined")
        grades = phase in ("grading", "combined")
        truth_text = np.where(truth, "synthetic", "real")
        for j in range(n_readers):
            for i in range(n_total):
                ans = str(answer[j, i]) if realism else None
                rows.append(
                    {
                        "study": study,
                        "reader": readers[j],
                        "reader_profession": profession[j],
                        "reader_experience_years": int(years[j]),
                        "phase": phase,
                        "position": int(position[j, i]) + 1,
                        "case": case_labels[i],
                        "image": image_labels[i],
                        "role": role[i],
                        "truth": str(truth_text[i]),
                        "reference_kl": int(reference[i]),
                        "generator": str(generator[i]),
                        "answer": ans,
                        "confidence": int(confidence[j, i]) if realism else None,
                        "kl_grade": int(grade[j, i]) if grades else None,
                        "correct": (ans == truth_text[i]) if realism else None,
                        "duration_ms": int(duration[j, i]),
                    }
                )
    return rows
