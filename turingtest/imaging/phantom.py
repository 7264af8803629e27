"""Procedural knee phantom: seeded AP knee radiographs graded by Kellgren-Lawrence.

The phantom fills demo pools and test datasets when no real radiographs are
given. Bones are drawn as approximate signed-distance fields in "anatomical"
coordinates (x points medially, y points down, the joint line at y = 0, one
unit is half the image width at scale 1), then projected, enhanced and
mapped to 8-bit like the CLAHE-enhanced crops of the Chen 2018 dataset.

A seed is one patient: anatomy, side, positioning and exposure come from the
seed alone, so the same seed at two grades shows the same knee with more or
less osteoarthritis. The grade changes only the features that the KL scale
names (its labels are in :data:`turingtest.domain.scales.KL`): joint-space
narrowing, osteophytes, subchondral sclerosis and deformity of the bone ends,
each growing with the grade as :data:`KL_FEATURES` sets out.

Narrowing affects the medial compartment more than the lateral one, as in
primary knee osteoarthritis.

References
----------
Kellgren JH, Lawrence JS. Radiological assessment of osteo-arthrosis.
Ann Rheum Dis 1957;16:494-502. doi:10.1136/ard.16.4.494

Chen P, Gao L, Shi X, Allen K, Yang L. Fully automatic knee osteoarthritis
severity grading using deep neural networks with a novel ordinal loss.
Comput Med Imaging Graph 2019;75:84-92. doi:10.1016/j.compmedimag.2019.06.002
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from turingtest.domain.scales import KL

GRADES = KL.codes


@dataclass(frozen=True)
class KLFeatures:
    """What one KL grade does to a knee, relative to the patient's healthy knee."""

    jsw_medial: float  # fraction of the healthy medial joint space width
    jsw_lateral: float
    osteophyte: float  # spur length at the medial tibial margin, anatomical units
    sclerosis: float  # added density of the subchondral band
    sclerosis_depth: float
    deformity: float  # 0: normal bone ends, 1: flattened and depressed
    cysts: int


# One row per grade of the scale, from none to severe (strict: a scale with
# another number of grades fails here, at import).
KL_FEATURES = dict(
    zip(
        KL.codes,
        (
            KLFeatures(1.00, 1.00, 0.000, 0.00, 0.03, 0.0, 0),
            KLFeatures(0.88, 0.97, 0.035, 0.00, 0.03, 0.0, 0),
            KLFeatures(0.70, 0.92, 0.070, 0.00, 0.04, 0.0, 0),
            KLFeatures(0.45, 0.84, 0.110, 0.70, 0.09, 0.35, 1),
            KLFeatures(0.14, 0.70, 0.160, 0.85, 0.13, 1.0, 3),
        ),
        strict=True,
    )
)


@dataclass(frozen=True)
class Patient:
    """Anatomy, positioning and exposure drawn from a seed."""

    right: bool  # right knee: medial side on the image's right
    scale: float
    angle: float  # radians
    shift_x: float
    shift_y: float
    femur_taper: float
    condyle_hw: float
    condyle_curve: float
    condyle_round: float
    notch_width: float
    notch_height: float
    plateau_hw: float
    tibia_shaft_hw: float
    tibia_flare: float
    femur_scar: float
    tibia_scar: float
    spine_height: float
    fibula_x: float
    fibula_y: float
    patella_x: float
    patella_y: float
    soft_hw: float
    soft_density: float
    jsw_medial: float
    jsw_lateral: float
    exposure: float
    gamma: float
    local_contrast: float
    clahe_scale: float
    noise: float
    texture: float
    blur: float


@dataclass(frozen=True)
class PhantomLandmarks:
    """Where the graded features lie in a phantom image, in pixel coordinates.

    Tests and figures use these to measure the image without guessing where
    the joint is.
    """

    right: bool
    joint_row: float
    medial_col: float  # centre of the medial compartment
    lateral_col: float
    medial_margin_col: float  # healthy medial edge of the tibial plateau
    jsw_medial_px: float  # joint space width drawn at the compartment centre
    jsw_lateral_px: float


def _u64(seed: int) -> int:
    """Any integer seed, negative ones included, as a SeedSequence entry."""
    return int(seed) % 2**64


def _patient(seed: int) -> Patient:
    rng = np.random.default_rng([_u64(seed), 0x4B4E4545])
    u = rng.uniform
    condyle_hw = u(0.80, 0.88)
    jsw_medial = u(0.07, 0.095)
    return Patient(
        right=bool(rng.integers(2)),
        scale=u(0.92, 1.05),
        angle=np.deg2rad(u(-4.0, 4.0)),
        shift_x=u(-0.03, 0.03),
        shift_y=u(0.08, 0.2),
        femur_taper=u(0.1, 0.25),
        condyle_hw=condyle_hw,
        condyle_curve=u(0.8, 1.1),
        condyle_round=u(0.14, 0.2),
        notch_width=u(0.11, 0.15),
        notch_height=u(0.08, 0.13),
        plateau_hw=condyle_hw + u(-0.02, 0.03),
        tibia_shaft_hw=u(0.68, 0.78),
        tibia_flare=u(0.3, 0.5),
        femur_scar=u(-0.6, -0.4),
        tibia_scar=u(0.3, 0.45),
        spine_height=u(0.08, 0.12),
        fibula_x=u(0.62, 0.7),
        fibula_y=u(0.45, 0.58),
        patella_x=u(-0.12, 0.04),
        patella_y=u(-0.55, -0.40),
        soft_hw=u(1.3, 2.2),
        soft_density=u(0.5, 0.7),
        jsw_medial=jsw_medial,
        jsw_lateral=jsw_medial * u(1.05, 1.25),
        exposure=u(0.8, 1.25),
        gamma=u(0.8, 1.25),
        local_contrast=u(0.55, 0.8),
        clahe_scale=u(0.06, 0.12),
        noise=u(0.002, 0.008),
        texture=u(0.6, 1.3),
        blur=u(0.3, 0.8),
    )


def _grade_jitter(seed: int, grade: int) -> np.random.Generator:
    return np.random.default_rng([_u64(seed), int(grade), 0x4B4C])


# Signed-distance helpers: negative inside, roughly in anatomical units.


def _ellipse(x, y, cx, cy, a, b, p=2.0):
    """Approximate signed distance to the superellipse |dx/a|^p + |dy/b|^p = 1."""
    if p == 2.0:
        dx = (x - cx) / a
        dy = (y - cy) / b
        g = dx * dx + dy * dy - 1.0
        grad = 2.0 * np.sqrt((dx / a) ** 2 + (dy / b) ** 2)
        return g / np.maximum(grad, 1e-6)
    dx = np.abs(x - cx) / a
    dy = np.abs(y - cy) / b
    g = dx**p + dy**p - 1.0
    gx = p * dx ** (p - 1.0) / a
    gy = p * dy ** (p - 1.0) / b
    return g / np.maximum(np.hypot(gx, gy), 1e-6)


def _smin(a, b, r):
    """Union of two fields with a fillet of radius r."""
    h = np.clip(0.5 + 0.5 * (b - a) / r, 0.0, 1.0)
    return b + (a - b) * h - r * h * (1.0 - h)


def _smax(a, b, r):
    return -_smin(-a, -b, r)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; wide ones run on a block-averaged copy, which is ~10x faster."""
    f = int(sigma // 3)
    if f < 2:
        return ndimage.gaussian_filter(img, sigma)
    h, w = img.shape
    ph, pw = -h % f, -w % f
    padded = np.pad(img, ((0, ph), (0, pw)), mode="edge")
    small = padded.reshape((h + ph) // f, f, (w + pw) // f, f).mean(axis=(1, 3))
    small = ndimage.gaussian_filter(small, np.sqrt(max(sigma**2 / f**2 - 1 / 12, 0.1)))
    big = ndimage.zoom(small, f, order=1, mode="nearest", grid_mode=True)
    return big[:h, :w]


def _smoothstep(e0, e1, x):
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _coords(size: int, pt: Patient):
    """Anatomical coordinates of each pixel centre."""
    c = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    px, py = np.meshgrid(c, c)
    dx, dy = px - pt.shift_x, py - pt.shift_y
    cos, sin = np.cos(pt.angle), np.sin(pt.angle)
    x = (cos * dx + sin * dy) / pt.scale
    y = (-sin * dx + cos * dy) / pt.scale
    return (x if pt.right else -x), y


def _to_pixel(x: float, y: float, size: int, pt: Patient) -> tuple[float, float]:
    """Pixel (row, col) of an anatomical point; the inverse of ``_coords``."""
    x = x if pt.right else -x
    cos, sin = np.cos(pt.angle), np.sin(pt.angle)
    px = pt.shift_x + pt.scale * (cos * x - sin * y)
    py = pt.shift_y + pt.scale * (sin * x + cos * y)
    return (py + 1.0) / 2.0 * size - 0.5, (px + 1.0) / 2.0 * size - 0.5


def _geometry(pt: Patient, kl: KLFeatures, jit: np.random.Generator) -> dict:
    jsw_m = pt.jsw_medial * kl.jsw_medial * jit.uniform(0.94, 1.06)
    jsw_l = pt.jsw_lateral * kl.jsw_lateral * jit.uniform(0.96, 1.04)
    a = pt.condyle_hw / 2.0
    return {
        "jsw_m": jsw_m,
        "jsw_l": jsw_l,
        "a": a,
        "c_m": a,  # compartment centres sit under the condyle centres
        "c_l": -a,
        "osteo": kl.osteophyte * jit.uniform(0.8, 1.2),
    }


def _femur_bottom(x, pt: Patient, kl: KLFeatures, geo: dict):
    """Lower outline of the condyles; flattening widens the medial one's flat."""
    k_m = pt.condyle_curve * (1.0 - 0.7 * kl.deformity)
    bot_m = -geo["jsw_m"] / 2.0 - k_m * (x - geo["c_m"]) ** 2
    bot_l = -geo["jsw_l"] / 2.0 - pt.condyle_curve * (x - geo["c_l"]) ** 2
    return _smax(bot_m, bot_l, 0.04)


def _femur(x, y, pt: Patient, kl: KLFeatures, geo: dict):
    bottom = _femur_bottom(x, pt, kl, geo)
    # The metaphysis tapers almost straight up from the epicondyles.
    rise = np.clip(-0.3 - y, 0.0, None)
    hw = pt.condyle_hw - pt.femur_taper * rise - 0.04 * _smoothstep(0.0, 0.3, rise)
    f = _smax(np.abs(x) - hw, y - bottom, pt.condyle_round)
    # The intercondylar notch opens into the joint as a rounded arch.
    notch_y = float(_femur_bottom(np.float32(0.0), pt, kl, geo))
    notch = _ellipse(x, y, 0.0, notch_y, pt.notch_width, pt.notch_height)
    f = _smax(f, -notch, 0.03)
    lucent = _smax(notch, y - bottom, 0.02)
    if geo["osteo"] > 0:
        for side, scale in ((1.0, 0.8), (-1.0, 0.5)):
            length = geo["osteo"] * scale * (0.5 if kl.jsw_medial > 0.8 else 1.0)
            ax = side * (pt.condyle_hw - 0.03)
            ay = float(_femur_bottom(np.float32(ax), pt, kl, geo)) - 0.07
            f = _smin(f, _spur(x, y, ax, ay, side, 1.0, length), 0.03)
    return f, notch_y, lucent


def _spur(x, y, ax, ay, side, rise, length):
    """A marginal osteophyte: a beak from (ax, ay) pointing out and along ``rise``."""
    d = np.array([side, rise])
    d /= np.hypot(*d)
    cx = ax + d[0] * length * 0.55
    cy = ay + d[1] * length * 0.55
    u = (x - cx) * d[0] + (y - cy) * d[1]
    v = -(x - cx) * d[1] + (y - cy) * d[0]
    return _ellipse(u, v, 0.0, 0.0, length * 0.7, length * 0.42)


def _tibia(x, y, pt: Patient, kl: KLFeatures, geo: dict, jit):
    c_m, c_l = geo["c_m"], geo["c_l"]
    w = geo["a"]
    ul = (x - c_l) / w
    # The plateau follows the condyles, so the joint space stays an even band
    # that opens slightly towards the margins; the medial plateau is the more
    # concave. Between compartments the surface rises into the intercondylar
    # eminence and its two spines.
    t = _smoothstep(-0.2, 0.2, x)
    jsw = geo["jsw_l"] * (1.0 - t) + geo["jsw_m"] * t
    femur = _femur_bottom(x, pt, kl, geo) + jsw / 2.0
    top = jsw / 2.0 + (0.55 + 0.15 * t) * femur + 0.01 * ul**2 * (1.0 - t)
    sharp = min(geo["osteo"] / 0.16, 1.0)
    spine_w = 0.06 * (1.0 - 0.3 * sharp)
    top = top - 0.05 * np.exp(-((x / 0.17) ** 2))
    top = top - pt.spine_height * (1.0 + 0.4 * sharp) * (
        np.exp(-(((x - 0.06) / spine_w) ** 2))
        + 0.85 * np.exp(-(((x + 0.07) / spine_w) ** 2))
    )
    # Advanced disease depresses and tilts the medial plateau unevenly.
    if kl.deformity > 0:
        wob = jit.uniform(0, 2 * np.pi, 3)
        bumps = sum(
            np.sin(x * f + ph) for f, ph in zip((23.0, 41.0, 67.0), wob, strict=True)
        )
        medial = _smoothstep(0.1, 0.3, x)
        top = top + kl.deformity * medial * (
            0.04 * np.clip(x - c_m, -1, 1) + 0.005 * bumps
        )
    hw = pt.tibia_shaft_hw + (pt.plateau_hw - pt.tibia_shaft_hw) * np.exp(
        -np.clip(y - 0.14, 0.0, None) / pt.tibia_flare
    )
    f = _smax(top - y, np.abs(x) - hw, 0.11)
    if geo["osteo"] > 0:
        for side, scale in ((1.0, 1.0), (-1.0, 0.6)):
            length = geo["osteo"] * scale
            ax = side * (pt.plateau_hw - 0.02)
            ay = (geo["jsw_m"] if side > 0 else geo["jsw_l"]) / 2.0 + 0.04
            f = _smin(f, _spur(x, y, ax, ay, side, -0.6, length), 0.03)
    return f


def _fibula(x, y, pt: Patient):
    head = _ellipse(x, y, -pt.fibula_x, pt.fibula_y, 0.14, 0.17)
    neck_x = -pt.fibula_x + 0.08 * (y - pt.fibula_y)
    shaft = _smax(np.abs(x - neck_x) - 0.075, pt.fibula_y - y, 0.02)
    return _smin(head, shaft, 0.1)


def _bone(field, pixel, cortex_w, tex, texture_amp):
    """Projected density of one bone: bright cortex rim, textured medulla."""
    inside = np.clip(0.5 - field / pixel, 0.0, 1.0)
    depth = np.clip(-field, 0.0, None)
    cortex = np.exp(-depth / cortex_w)
    thick = np.sqrt(np.clip(depth / 0.2, 0.0, 1.0))
    return inside * (
        0.40 + 0.18 * thick + 0.6 * cortex + texture_amp * tex * (1.0 - cortex)
    )


def _trabecular(rng: np.random.Generator, size: int) -> np.ndarray:
    """A network of thin struts, mostly vertical, like cancellous bone.

    The zero crossings of band-passed noise form connected lines; stretching
    the noise vertically first orients them along the load axis.
    """
    k = size / 224.0
    n = rng.standard_normal((size, size)).astype(np.float32)
    band = ndimage.gaussian_filter(n, (2.2 * k, 0.8 * k))
    band -= ndimage.gaussian_filter(band, 3.0 * k)
    band /= band.std() + 1e-6
    struts = np.exp(-((band / 0.4) ** 2)) + 0.3 * band
    coarse = _blur(rng.standard_normal((size, size)).astype(np.float32), 8.0 * k)
    coarse /= coarse.std() + 1e-6
    return (struts - struts.mean() + 0.25 * coarse).astype(np.float32)


def _render(grade: int, seed: int, size: int) -> tuple[np.ndarray, Patient, dict]:
    if grade not in KL_FEATURES:
        raise ValueError(
            f"{KL.short_label} must be {KL.range_text('-')}, got {grade!r}"
        )
    if size < 8:
        raise ValueError(f"size must be at least 8, got {size!r}")
    pt = _patient(seed)
    kl = KL_FEATURES[grade]
    jit = _grade_jitter(seed, grade)
    geo = _geometry(pt, kl, jit)
    x, y = _coords(size, pt)
    pixel = 2.0 / (size * pt.scale)
    tex = _trabecular(np.random.default_rng([_u64(seed), int(size), 0x54]), size)
    amp = 0.11 * pt.texture

    fem, notch_y, lucent = _femur(x, y, pt, kl, geo)
    tib = _tibia(x, y, pt, kl, geo, jit)
    fib = _fibula(x, y, pt)
    fem_d = _bone(fem, pixel, 0.02, tex, amp)
    # Above the open arch the notch is lucent but not empty: the condyles
    # overlap behind it.
    roof = _ellipse(x, y, 0.0, notch_y, pt.notch_width * 1.2, pt.notch_height + 0.16)
    fem_d *= 1.0 - 0.25 * np.clip(0.5 - roof / 0.04, 0.0, 1.0)
    fem_d += 0.12 * np.exp(-np.abs(roof) / 0.012) * (y < notch_y) * (fem < 0)
    # Behind the open arch the posterior condyles still overlap.
    fem_d += 0.3 * np.clip(0.5 - lucent / 0.03, 0.0, 1.0)
    dens = fem_d + _bone(tib, pixel, 0.02, tex, amp)
    dens += 0.22 * _bone(fib, pixel, 0.018, tex, amp)
    # Physeal scars: faint transverse lines where the growth plates closed.
    for scar_y, fld in ((pt.femur_scar, fem), (pt.tibia_scar, tib)):
        wave = scar_y + 0.03 * np.sin(3.0 * x + scar_y * 40.0)
        dens += 0.08 * np.exp(-(((y - wave) / 0.012) ** 2)) * (fld < -0.03)
    # The tibial plateau's posterior rim projects as a second, fainter line.
    rim = np.roll(tib, max(1, round(0.025 * size * pt.scale)), axis=0)
    dens += 0.2 * np.exp(-np.abs(rim) / 0.01) * (tib < 0)
    # The posterior condyles project as arcs inside the distal femur.
    for side in (1.0, -1.0):
        arc = _ellipse(x, y, side * geo["a"], -0.3, geo["a"] * 0.85, 0.32)
        dens += 0.15 * np.exp(-np.abs(arc) / 0.01) * (fem < -0.02) * (y > -0.45)

    # The patella projects over the distal femur as a faint oval.
    pat = _ellipse(x, y, pt.patella_x, pt.patella_y, 0.34, 0.38)
    dens += 0.10 * np.sqrt(np.clip(-pat / 0.3, 0.0, 1.0))
    dens += 0.05 * np.exp(-np.abs(pat) / 0.012) * (fem < 0)

    # Subchondral sclerosis: a dense band under the loaded (medial) surfaces.
    # Dense bone is near the top of the exposure curve, where the local
    # equalisation would flatten it, so the band is laid on after it.
    sclerosis = np.zeros_like(x)
    if kl.sclerosis > 0:
        medial = _smoothstep(0.1, 0.3, x) * (1.0 - _smoothstep(0.85, 1.0, x))
        lateral = 0.4 * _smoothstep(0.1, 0.3, -x) * (kl.deformity > 0.5)
        near = np.exp(-((y / 0.3) ** 2))
        for fld in (fem, tib):
            depth = np.clip(-fld, 0, None) / kl.sclerosis_depth
            band = np.exp(-(depth**4)) * np.clip(0.5 - fld / pixel, 0.0, 1.0)
            sclerosis += kl.sclerosis * (medial + lateral) * near * band
        for _ in range(kl.cysts):
            cx = jit.uniform(0.25, 0.65)
            below = jit.integers(2)
            depth = jit.uniform(0.05, 0.1) + geo["jsw_m"] / 2
            r = jit.uniform(0.025, 0.045)
            cyst = _ellipse(x, y, cx, depth if below else -depth, r, r * 0.8)
            sclerosis -= 0.5 * np.clip(0.5 - cyst / 0.015, 0.0, 1.0)
            dens -= 0.06 * np.clip(0.5 - cyst / 0.015, 0.0, 1.0)

    # Soft tissue: a thick cylinder around the bones, dark air beyond it.
    sx = np.abs(x) / pt.soft_hw
    soft = np.sqrt(np.clip(1.0 - sx**2, 0.0, 1.0))
    dens = dens + pt.soft_density * soft

    img = 1.0 - np.exp(-1.2 * pt.exposure * dens)
    img = ndimage.gaussian_filter(img, pt.blur * size / 224.0)
    noise_rng = np.random.default_rng([_u64(seed), int(grade), int(size), 0x4E])
    img = img + pt.noise * noise_rng.standard_normal(img.shape)
    lo, hi = np.percentile(img, [0.5, 99.8])
    flat = np.clip((img - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    # CLAHE-like local equalisation, as in the reference crops: each pixel is
    # ranked against its neighbourhood (a squashed local z-score), so flat
    # soft tissue comes out mid-grey and thin dark gaps between bright bones
    # stay dark. The floor on the spread plays the part of CLAHE's clip limit.
    sigma = pt.clahe_scale * size
    mean = _blur(flat, sigma)
    spread = np.sqrt(np.clip(_blur(flat * flat, sigma) - mean**2, 0.0, None))
    local = 0.5 + 0.5 * np.tanh(0.9 * (flat - mean) / (spread + 0.06))
    w = pt.local_contrast
    img = (w * local + (1.0 - w) * flat) ** pt.gamma
    lo, hi = np.percentile(img, [0.3, 99.7])
    img = np.clip((img - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    if kl.sclerosis > 0:
        sclerosis = ndimage.gaussian_filter(sclerosis, 0.6 * size / 224.0)
        img = img + (0.97 - img) * np.clip(sclerosis, -0.8, 1.0)
    out = np.clip(img * 245.0 + 6.0, 0, 255).astype(np.uint8)
    return out, pt, geo


def knee_phantom(grade: int, seed: int, size: int = 224) -> np.ndarray:
    """An AP knee radiograph phantom of KL ``grade`` for patient ``seed``.

    Returns a 2-D ``uint8`` array of shape ``(size, size)``, the same for the
    same ``(grade, seed, size)``. The same seed at different grades shows the
    same knee.
    """
    return _render(int(grade), int(seed), int(size))[0]


def knee_phantom_landmarks(grade: int, seed: int, size: int = 224) -> PhantomLandmarks:
    """Where :func:`knee_phantom` drew the joint for ``(grade, seed, size)``."""
    pt = _patient(seed)
    kl = KL_FEATURES[int(grade)]
    geo = _geometry(pt, kl, _grade_jitter(seed, grade))
    joint_row, medial_col = _to_pixel(geo["c_m"], 0.0, size, pt)
    _, lateral_col = _to_pixel(geo["c_l"], 0.0, size, pt)
    _, margin_col = _to_pixel(pt.plateau_hw, 0.0, size, pt)
    px = size * pt.scale / 2.0
    return PhantomLandmarks(
        right=pt.right,
        joint_row=joint_row,
        medial_col=medial_col,
        lateral_col=lateral_col,
        medial_margin_col=margin_col,
        jsw_medial_px=geo["jsw_m"] * px,
        jsw_lateral_px=geo["jsw_l"] * px,
    )


def phantom_seed(seed: int, grade: int, index: int) -> int:
    """The patient seed of image ``index`` of ``grade`` in a dataset seeded ``seed``."""
    state = np.random.SeedSequence([_u64(seed), int(grade), int(index)])
    return int(state.generate_state(1, np.uint64)[0] >> np.uint64(1))


def phantom_dataset(
    out_dir: str | Path, per_grade: int, size: int = 224, seed: int = 0, progress=None
) -> list[Path]:
    """Write ``per_grade`` phantoms per KL grade as ``{grade}/phantom-{g}-{i:05d}.png``.

    Each image is a different patient. ``progress``, if given, is called once
    per written file (a tqdm ``update`` fits).
    """
    from PIL import Image

    out = Path(out_dir)
    paths = []
    for grade in GRADES:
        folder = out / str(grade)
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_grade):
            arr = knee_phantom(grade, phantom_seed(seed, grade, i), size)
            path = folder / f"phantom-{grade}-{i:05d}.png"
            Image.fromarray(arr).save(path)
            paths.append(path)
            if progress is not None:
                progress()
    return paths
