"""Wasserstein GANs with gradient penalty for grayscale knee radiographs.

Two models share one set of building blocks:

- ``seed``: the reference study's approach, one unconditional WGAN-GP per KL
  grade: a DCGAN-style generator (transposed convolutions, batch norm, ReLU)
  and a critic without batch norm (the gradient penalty is per sample).
- ``default``: one class-conditional WGAN-GP for all grades: the grade enters
  the generator through its embedding (conditional batch norm), the critic
  scores it by projection and sees each small group's spread (minibatch
  standard deviation, against a generator that ignores its latent), both real
  and fake go through the same differentiable augmentation, the critic learns
  faster than the generator, and an exponential moving average of the
  generator's weights is what gets sampled.

Both are packed into :class:`KneeGAN` so a checkpoint of either samples the
same way: ``seed`` simply holds one generator and one critic per grade.

References
----------
.. [1] Arjovsky, Chintala, Bottou. Wasserstein GAN. ICML 2017.
       arXiv:1701.07875
.. [2] Gulrajani et al. Improved Training of Wasserstein GANs. NeurIPS 2017.
       arXiv:1704.00028
.. [3] Radford, Metz, Chintala. Unsupervised Representation Learning with Deep
       Convolutional GANs. ICLR 2016. arXiv:1511.06434
.. [4] Miyato, Koyama. cGANs with Projection Discriminator. ICLR 2018.
       arXiv:1802.05637
.. [5] de Vries et al. Modulating early visual processing by language
       (conditional batch norm). NeurIPS 2017. arXiv:1707.00683
.. [6] Zhao et al. Differentiable Augmentation for Data-Efficient GAN
       Training. NeurIPS 2020. arXiv:2006.10738
.. [7] Karras et al. Progressive Growing of GANs (minibatch standard
       deviation, generator weight averaging, drift penalty). ICLR 2018.
       arXiv:1710.10196
.. [10] Heusel et al. GANs Trained by a Two Time-Scale Update Rule Converge
       to a Local Nash Equilibrium. NeurIPS 2017. arXiv:1706.08500
.. [8] Yazıcı et al. The Unusual Effectiveness of Averaging in GAN Training.
       ICLR 2019. arXiv:1806.04498
.. [11] Liu et al. Towards Faster and Stabilized GAN Training for High-fidelity
       Few-shot Image Synthesis (FastGAN: skip-layer excitation,
       self-supervised discriminator). ICLR 2021. arXiv:2101.04775
.. [12] Lim, Ye. Geometric GAN (hinge loss). arXiv:1705.02894; Miyato et al.
       Spectral Normalization for GANs. ICLR 2018. arXiv:1802.05957
.. [13] Mao et al. Mode Seeking Generative Adversarial Networks for Diverse
       Image Synthesis. CVPR 2019. arXiv:1903.05628
.. [9] Prezja et al. Deep learning synthetic knee X-rays with WGAN-GP; a
       visual Turing test. Sci Rep 12, 18573 (2022).
       doi:10.1038/s41598-022-23081-4
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import nn

from turingtest.domain.scales import KL

N_GRADES = KL.count  # class labels are the grades' codes, from 0


# -----------------------------------------------------------------------------
# configuration


@dataclass
class GANConfig:
    name: str = "default"
    # architecture
    resolution: int = 224  # square, base * 2**n with base in 3..7 (224 = 7 * 2**5)
    channels: int = 32  # feature maps at the output resolution; doubled per halving
    max_channels: int = 512
    z_dim: int = 128
    n_classes: int = N_GRADES
    conditional: bool = True  # one conditional model, else one model per grade
    arch: str = "dcgan"  # "dcgan" (WGAN-GP [2, 3]) | "lite" (FastGAN-style [11])
    loss: str = "wgan-gp"  # "wgan-gp" [2] | "hinge" [12]
    spectral_norm: bool = True  # lite critic: spectral norm [12], else none
    mode_seeking: float = 0.0  # diversity term of the generator's loss [13]
    recon: float = 0.0  # weight of the lite critic's self-supervised decoder [11]
    # optimisation
    batch_size: int = 64
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    betas: tuple[float, float] = (0.0, 0.9)
    n_critic: int = 5  # critic steps per generator step
    gp_lambda: float = 10.0
    drift: float = 0.0  # keeps critic outputs near zero [7]
    diffaugment: str = ""  # comma-separated DiffAugment policy [6], "" for none
    mbstd_group: int = 0  # critic sees the spread of groups of this size [7]; 0: off
    ema_decay: float = 0.0  # 0: the sampled generator is the trained one
    ema_rampup: float = 10.0  # effective decay min(decay, (1+t)/(rampup+t))
    mirror: bool = False  # flip real images left-right at random (L and R knees)
    # bookkeeping during training
    sample_every: int = 500
    checkpoint_every: int = 1000
    snapshot_every: int = 0  # keep the EMA weights every N steps (training curve)
    log_every: int = 10

    @classmethod
    def from_dict(cls, d: dict) -> GANConfig:
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, GANConfig] = {
    # Prezja et al. [9]: WGAN-GP per grade with the hyper-parameters of [2].
    "seed": GANConfig(
        name="seed",
        z_dim=100,
        conditional=False,
        lr_g=1e-4,
        lr_d=1e-4,
        n_critic=5,
    ),
    # One conditional lite pair (FastGAN-style [11]) with hinge loss [12]: no
    # gradient penalty, one critic step per generator step, so a step costs
    # about a third of WGAN-GP's. 128 px native (served at the pool's size);
    # width 8 at full resolution keeps it near 20 images/s on one CPU core.
    # The critic learns 8x faster than the generator [10] and is not
    # spectrally normalised: on 2,600 knees, a normalised critic, equal rates
    # or 4x never got ahead of the generator, which collapsed towards one
    # image per grade within 10k images (bench/RESULTS.md).
    "default": GANConfig(
        name="default",
        arch="lite",
        loss="hinge",
        spectral_norm=False,
        recon=1.0,
        resolution=128,
        channels=8,
        max_channels=128,
        z_dim=128,
        conditional=True,
        batch_size=16,
        lr_g=5e-5,
        lr_d=4e-4,
        betas=(0.5, 0.999),
        n_critic=1,
        diffaugment="color,translation,cutout",
        mirror=True,
        mbstd_group=4,
        mode_seeking=0.1,  # from step 2,000 of the shipped run, after it collapsed
        ema_decay=0.999,
        sample_every=500,
        checkpoint_every=500,
        snapshot_every=500,
    ),
    # The reference study's critic and loss, at test size (for the seed path).
    "tiny-wgan": GANConfig(
        name="tiny-wgan",
        resolution=32,
        channels=8,
        max_channels=64,
        z_dim=32,
        conditional=True,
        batch_size=8,
        lr_g=2e-4,
        lr_d=2e-4,
        n_critic=2,
        drift=1e-3,
        diffaugment="color,translation,cutout",
        mbstd_group=2,
        ema_decay=0.9,
        sample_every=50,
        checkpoint_every=50,
        log_every=1,
    ),
}


# Every code path of `default`, small enough for CPU tests.
PRESETS["tiny"] = replace(
    PRESETS["default"],
    name="tiny",
    resolution=32,
    max_channels=64,
    z_dim=32,
    batch_size=8,
    lr_g=2e-4,
    lr_d=2e-4,
    mbstd_group=2,
    ema_decay=0.9,
    sample_every=50,
    checkpoint_every=50,
    snapshot_every=50,
    log_every=1,
)


def config_preset(name: str, **overrides) -> GANConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown config {name!r}; choose from {sorted(PRESETS)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return replace(PRESETS[name], **overrides)


def resolution_ladder(resolution: int) -> tuple[int, int]:
    """(base, n_up) with base * 2**n_up == resolution and base in 3..7."""
    base, n_up = resolution, 0
    while base > 7 and base % 2 == 0:
        base, n_up = base // 2, n_up + 1
    if not 3 <= base <= 7 or n_up < 1:
        raise ValueError(f"resolution {resolution} is not base * 2**n with base 3..7")
    return base, n_up


def channels_at(cfg: GANConfig, res: int) -> int:
    return min(cfg.max_channels, cfg.channels * cfg.resolution // res)


# -----------------------------------------------------------------------------
# generator


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose scale and shift come from the grade's embedding [5]."""

    def __init__(self, channels: int, n_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.embed = nn.Embedding(n_classes, 2 * channels)
        nn.init.ones_(self.embed.weight[:, :channels])
        nn.init.zeros_(self.embed.weight[:, channels:])

    def forward(self, x, y):
        # x: (B, C, H, W), y: (B,) grades
        gamma, beta = self.embed(y).chunk(2, dim=1)  # (B, C) each
        return self.bn(x) * gamma[:, :, None, None] + beta[:, :, None, None]


class UpBlock(nn.Module):
    """DCGAN step [3]: 4x4 transposed conv, stride 2, then (C)BN and ReLU."""

    def __init__(self, c_in: int, c_out: int, n_classes: int | None):
        super().__init__()
        self.conv = nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False)
        self.norm = (
            ConditionalBatchNorm2d(c_out, n_classes)
            if n_classes
            else nn.BatchNorm2d(c_out)
        )

    def forward(self, x, y=None):
        x = self.conv(x)  # (B, c_out, 2H, 2W)
        x = self.norm(x, y) if y is not None else self.norm(x)
        return F.relu(x)


class Generator(nn.Module):
    """z (B, z_dim) [+ grade (B,)] -> image (B, 1, R, R) in [-1, 1]."""

    def __init__(self, cfg: GANConfig):
        super().__init__()
        self.cfg = cfg
        self.base, n_up = resolution_ladder(cfg.resolution)
        n_classes = cfg.n_classes if cfg.conditional else None
        c0 = channels_at(cfg, self.base)
        # The grade's embedding joins z at the input as well as in every norm.
        self.embed = nn.Embedding(cfg.n_classes, cfg.z_dim) if n_classes else None
        z_in = cfg.z_dim * (2 if n_classes else 1)
        self.fc = nn.Linear(z_in, c0 * self.base * self.base, bias=False)
        self.norm0 = (
            ConditionalBatchNorm2d(c0, n_classes) if n_classes else nn.BatchNorm2d(c0)
        )
        res, blocks = self.base, []
        for _ in range(n_up):
            blocks.append(
                UpBlock(channels_at(cfg, res), channels_at(cfg, 2 * res), n_classes)
            )
            res *= 2
        self.blocks = nn.ModuleList(blocks)
        self.to_image = nn.Conv2d(channels_at(cfg, res), 1, 3, 1, 1)
        self.apply(_init_dcgan)

    def forward(self, z, y=None):
        # z: (B, z_dim); y: (B,) long, only when conditional
        cond = y if self.embed is not None else None
        if self.embed is not None and cond is not None:
            z = torch.cat([z, self.embed(cond)], dim=1)  # (B, 2 z_dim)
        x = self.fc(z).view(z.shape[0], -1, self.base, self.base)  # (B, C0, b, b)
        x = F.relu(self.norm0(x, cond) if cond is not None else self.norm0(x))
        for block in self.blocks:
            x = block(x, cond)  # (B, C, 2H, 2W)
        return torch.tanh(self.to_image(x))  # (B, 1, R, R)


# -----------------------------------------------------------------------------
# critic


class MinibatchStd(nn.Module):
    """Append the mean standard deviation over a group of samples as a channel [7].

    A critic that scores samples one at a time cannot see a generator that
    makes the same image for every latent; this gives it the batch's spread.
    Groups are contiguous so that a batch concatenated from real, fake and
    interpolated parts (each a multiple of the group) never mixes them.
    """

    def __init__(self, group: int):
        super().__init__()
        self.group = group

    def forward(self, x):
        B, C, H, W = x.shape
        g = math.gcd(self.group, B)
        y = x.float().view(B // g, g, C, H, W)
        y = (y.var(dim=1, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (B/g,)
        y = y.repeat_interleave(g).view(B, 1, 1, 1).expand(B, 1, H, W).to(x.dtype)
        return torch.cat([x, y], dim=1)  # (B, C + 1, H, W)


class Critic(nn.Module):
    """image (B, 1, R, R) [+ grade (B,)] -> score (B,). No batch norm [2].

    Conditional critics add the projection term <embed(y), phi(x)> [4].
    """

    def __init__(self, cfg: GANConfig):
        super().__init__()
        self.cfg = cfg
        base, n_up = resolution_ladder(cfg.resolution)
        res, layers = cfg.resolution, []
        c_in = 1
        for _ in range(n_up):
            c_out = channels_at(cfg, res // 2)
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.LeakyReLU(0.2)]
            c_in, res = c_out, res // 2
        if cfg.mbstd_group > 1:
            layers += [
                MinibatchStd(cfg.mbstd_group),
                nn.Conv2d(c_in + 1, c_in, 3, 1, 1),
                nn.LeakyReLU(0.2),
            ]
        self.features = nn.Sequential(*layers)  # (B, C, b, b)
        self.n_features = c_in * base * base
        self.linear = nn.Linear(self.n_features, 1)
        self.embed = (
            nn.Embedding(cfg.n_classes, self.n_features) if cfg.conditional else None
        )
        self.apply(_init_dcgan)
        if self.embed is not None:
            nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, x, y=None):
        phi = self.features(x).flatten(1)  # (B, n_features)
        out = self.linear(phi).squeeze(1)  # (B,)
        if self.embed is not None:
            out = out + (self.embed(y) * phi).sum(dim=1)
        return out


# -----------------------------------------------------------------------------
# the lite pair: FastGAN-style [11], lean enough to learn on two CPU cores


class LiteUp(nn.Module):
    """Nearest-neighbour upsampling, then (3x3 conv, (conditional) BN, GLU) x n [11]."""

    def __init__(self, c_in: int, c_out: int, n_classes: int | None, convs: int):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(c_in if i == 0 else c_out, 2 * c_out, 3, 1, 1, bias=False)
            for i in range(convs)
        )
        self.norms = nn.ModuleList(
            ConditionalBatchNorm2d(2 * c_out, n_classes)
            if n_classes
            else nn.BatchNorm2d(2 * c_out)
            for _ in range(convs)
        )

    def forward(self, x, y=None):
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")  # (B, c_in, 2H, 2W)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = conv(x)  # (B, 2 c_out, 2H, 2W)
            x = F.glu(norm(x, y) if y is not None else norm(x), dim=1)
        return x  # (B, c_out, 2H, 2W)


class SkipExcitation(nn.Module):
    """Skip-layer excitation [11]: a coarse map gates the channels of a fine one.

    The coarse layout (where the joint is) steers the fine texture without the
    cost of a full skip connection: a 4x4 summary becomes a per-channel gate.
    """

    def __init__(self, c_coarse: int, c_fine: int):
        super().__init__()
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(4),
            nn.Conv2d(c_coarse, c_fine, 4, 1, 0, bias=False),  # (B, c_fine, 1, 1)
            nn.SiLU(),
            nn.Conv2d(c_fine, c_fine, 1, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, coarse, fine):
        return fine * self.gate(coarse)


class LiteGenerator(nn.Module):
    """z (B, z_dim) [+ grade (B,)] -> image (B, 1, R, R) in [-1, 1].

    Width halves as the side doubles, so every level costs about the same;
    the two finest levels have one convolution each, the coarser ones two.
    Levels 16x apart are joined by skip-layer excitation.
    """

    def __init__(self, cfg: GANConfig):
        super().__init__()
        self.cfg = cfg
        self.base, n_up = resolution_ladder(cfg.resolution)
        n_classes = cfg.n_classes if cfg.conditional else None
        self.embed = nn.Embedding(cfg.n_classes, cfg.z_dim) if n_classes else None
        z_in = cfg.z_dim * (2 if n_classes else 1)
        c0 = channels_at(cfg, self.base)
        self.fc = nn.Linear(z_in, 2 * c0 * self.base * self.base, bias=False)
        self.norm0 = (
            ConditionalBatchNorm2d(2 * c0, n_classes)
            if n_classes
            else nn.BatchNorm2d(2 * c0)
        )
        res, chans, blocks = self.base, [c0], []
        for i in range(n_up):
            c_out = channels_at(cfg, 2 * res)
            convs = 1 if i >= n_up - 2 else 2
            blocks.append(LiteUp(chans[-1], c_out, n_classes, convs))
            chans.append(c_out)
            res *= 2
        self.blocks = nn.ModuleList(blocks)
        self.excite = nn.ModuleDict(
            {str(i): SkipExcitation(chans[i - 4], chans[i]) for i in range(4, n_up + 1)}
        )
        self.to_image = nn.Conv2d(chans[-1], 1, 3, 1, 1)

    def forward(self, z, y=None):
        # z: (B, z_dim); y: (B,) long, only when conditional
        cond = y if self.embed is not None else None
        if self.embed is not None and cond is not None:
            z = torch.cat([z, self.embed(cond)], dim=1)  # (B, 2 z_dim)
        x = self.fc(z).view(z.shape[0], -1, self.base, self.base)  # (B, 2 C0, b, b)
        x = F.glu(self.norm0(x, cond) if cond is not None else self.norm0(x), dim=1)
        levels = [x]
        for i, block in enumerate(self.blocks, start=1):
            x = block(x, cond)  # (B, C_i, b 2^i, b 2^i)
            if str(i) in self.excite:
                x = self.excite[str(i)](levels[i - 4], x)
            levels.append(x)
        return torch.tanh(self.to_image(x))  # (B, 1, R, R)


def _sn(module: nn.Module, on: bool = True) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(module) if on else module


class LiteDown(nn.Module):
    """Residual downsampling [11]: strided convs beside average pooling."""

    def __init__(self, c_in: int, c_out: int, sn: bool):
        super().__init__()
        self.main = nn.Sequential(
            _sn(nn.Conv2d(c_in, c_out, 4, 2, 1), sn),
            nn.LeakyReLU(0.2),
            _sn(nn.Conv2d(c_out, c_out, 3, 1, 1), sn),
            nn.LeakyReLU(0.2),
        )
        self.skip = nn.Sequential(nn.AvgPool2d(2), _sn(nn.Conv2d(c_in, c_out, 1), sn))

    def forward(self, x):
        return (self.main(x) + self.skip(x)) * 0.5  # (B, c_out, H/2, W/2)


class LiteCritic(nn.Module):
    """image (B, 1, R, R) [+ grade (B,)] -> score (B,), spectrally normalised [12].

    With ``cfg.recon`` the critic also decodes a small copy of each real image
    from its features at twice the base side (FastGAN's self-supervision
    [11]): a critic that must describe real images cannot merely memorise
    them, which is what keeps it useful on a few thousand images.
    """

    def __init__(self, cfg: GANConfig):
        super().__init__()
        self.cfg = cfg
        base, n_up = resolution_ladder(cfg.resolution)
        sn = cfg.spectral_norm
        res = cfg.resolution // 2
        stem_c = channels_at(cfg, res)
        layers: list[nn.Module] = [
            _sn(nn.Conv2d(1, stem_c, 4, 2, 1), sn),
            nn.LeakyReLU(0.2),
        ]  # (B, C, R/2, R/2)
        c_in = stem_c
        downs = []
        while res > base:
            c_out = channels_at(cfg, res // 2)
            downs.append(LiteDown(c_in, c_out, sn))
            c_in, res = c_out, res // 2
        self.stem = nn.Sequential(*layers)
        self.downs = nn.ModuleList(downs)  # the last-but-one ends at 2 * base
        head: list[nn.Module] = []
        if cfg.mbstd_group > 1:
            head.append(MinibatchStd(cfg.mbstd_group))
        head += [
            _sn(nn.Conv2d(c_in + (cfg.mbstd_group > 1), c_in, 3, 1, 1), sn),
            nn.LeakyReLU(0.2),
        ]
        self.head = nn.Sequential(*head)  # (B, C, b, b)
        self.n_features = c_in * base * base
        self.linear = _sn(nn.Linear(self.n_features, 1), sn)
        self.embed = (
            _sn(nn.Embedding(cfg.n_classes, self.n_features), sn)
            if cfg.conditional
            else None
        )
        self.decoder: nn.Module | None = None
        if cfg.recon > 0:
            c_mid = channels_at(cfg, 2 * base)
            self.decoder = nn.Sequential(  # (B, C, 2b, 2b) -> (B, 1, 8b, 8b)
                LiteUp(c_mid, max(8, c_mid // 2), None, 1),
                LiteUp(max(8, c_mid // 2), max(8, c_mid // 4), None, 1),
                nn.Conv2d(max(8, c_mid // 4), 1, 3, 1, 1),
                nn.Tanh(),
            )

    def forward(self, x, y=None, decode: int = 0):
        """Scores (B,); with ``decode=n``, also the first n images decoded."""
        h = self.stem(x)
        for i, down in enumerate(self.downs):
            h = down(h)
            if i == len(self.downs) - 2:
                mid = h  # (B, C, 2b, 2b)
        phi = self.head(h).flatten(1)  # (B, n_features)
        out = self.linear(phi).squeeze(1)  # (B,)
        if self.embed is not None:
            out = out + (self.embed(y) * phi).sum(dim=1)
        if decode:
            assert self.decoder is not None, "decoding needs cfg.recon > 0"
            return out, self.decoder(mid[:decode])
        return out


def _init_dcgan(m: nn.Module) -> None:
    # N(0, 0.02) as in [3]; it also keeps the initial critic near-linear.
    if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


ARCHITECTURES: dict[str, tuple[type[nn.Module], type[nn.Module]]] = {
    "dcgan": (Generator, Critic),
    "lite": (LiteGenerator, LiteCritic),
}


# -----------------------------------------------------------------------------
# the whole model


class KneeGAN(nn.Module):
    """One conditional pair, or one unconditional pair per grade.

    ``g_ema`` is what gets sampled; with ``ema_decay == 0`` it is a copy of the
    trained generator kept in step.
    """

    def __init__(self, cfg: GANConfig):
        super().__init__()
        self.cfg = cfg
        n = 1 if cfg.conditional else cfg.n_classes
        G, D = ARCHITECTURES[cfg.arch]
        self.G = nn.ModuleList([G(cfg) for _ in range(n)])
        self.D = nn.ModuleList([D(cfg) for _ in range(n)])
        self.g_ema = copy.deepcopy(self.G).requires_grad_(False).eval()

    def train(self, mode: bool = True) -> KneeGAN:
        super().train(mode)
        self.g_ema.eval()  # sampling never depends on the rest of the batch
        return self

    def pairs(self) -> list[tuple[int | None, nn.Module, nn.Module]]:
        """(grade the pair is for, or None for all grades; G; D)."""
        if self.cfg.conditional:
            return [(None, self.G[0], self.D[0])]
        return [(g, self.G[g], self.D[g]) for g in range(self.cfg.n_classes)]

    def sampler(self, grade: int) -> nn.Module:
        return self.g_ema[0 if self.cfg.conditional else grade]

    @torch.no_grad()
    def generate(self, z, grade: int):
        # z: (B, z_dim) -> (B, 1, R, R) from the averaged generator
        net = self.sampler(grade)
        y = torch.full((z.shape[0],), grade, dtype=torch.long, device=z.device)
        return net(z, y if self.cfg.conditional else None)

    @torch.no_grad()
    def update_ema(self, step: int) -> None:
        decay = self.cfg.ema_decay
        if decay > 0:
            ramp = (1 + step) / (self.cfg.ema_rampup + step)
            decay = min(decay, ramp)
        for g, e in zip(self.G, self.g_ema, strict=True):
            ps: list[torch.Tensor] = list(g.parameters())
            pe: list[torch.Tensor] = list(e.parameters())
            if decay > 0:
                torch._foreach_lerp_(pe, ps, 1.0 - decay)
            else:
                torch._foreach_copy_(pe, ps)

    @torch.no_grad()
    def refresh_ema_norms(self, n_batches: int = 8, batch_size: int = 64) -> None:
        """Recompute the averaged generators' batch-norm statistics.

        Sampling runs in eval mode so that an image depends on its own seed
        only, not on what else is in the batch. Averaged weights need their
        own statistics (as in SWA's bn_update); a private RNG keeps this from
        disturbing the training run's random stream.
        """
        device = next(self.g_ema.parameters()).device
        rng = torch.Generator(device="cpu").manual_seed(0)
        for grade_or_all, net in zip(
            [None] if self.cfg.conditional else range(self.cfg.n_classes),
            self.g_ema,
            strict=True,
        ):
            norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
            for m in norms:
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the batches below
            net.train()
            for _ in range(n_batches):
                z = torch.randn(batch_size, self.cfg.z_dim, generator=rng).to(device)
                if grade_or_all is None:
                    y = torch.randint(
                        0, self.cfg.n_classes, (batch_size,), generator=rng
                    )
                    net(z, y.to(device))
                else:
                    net(z)
            net.eval()
            for m in norms:
                m.momentum = 0.1


# -----------------------------------------------------------------------------
# differentiable augmentation [6], for one grayscale channel in [-1, 1]


def diff_augment(x, policy: str):
    """Apply the same kind of random transform to real and fake images.

    Gradients flow through every op, so the generator learns the un-augmented
    distribution while the critic never sees the same real image twice.
    """
    for name in filter(None, (p.strip() for p in policy.split(","))):
        for fn in _AUGMENTS[name]:
            x = fn(x)
    return x


def _brightness(x):
    return x + (torch.rand(x.shape[0], 1, 1, 1, device=x.device) - 0.5)


def _contrast(x):
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(x.shape[0], 1, 1, 1, device=x.device) + 0.5) + mean


def _translation(x, ratio: float = 0.125):
    B, _, H, W = x.shape
    sh, sw = int(H * ratio + 0.5), int(W * ratio + 0.5)
    th = torch.randint(-sh, sh + 1, (B, 1, 1), device=x.device)
    tw = torch.randint(-sw, sw + 1, (B, 1, 1), device=x.device)
    gb, gh, gw = torch.meshgrid(
        torch.arange(B, device=x.device),
        torch.arange(H, device=x.device),
        torch.arange(W, device=x.device),
        indexing="ij",
    )
    gh = torch.clamp(gh + th + 1, 0, H + 1)
    gw = torch.clamp(gw + tw + 1, 0, W + 1)
    padded = F.pad(x, [1, 1, 1, 1])  # (B, C, H+2, W+2), zero border
    return padded.permute(0, 2, 3, 1)[gb, gh, gw].permute(0, 3, 1, 2)


def _cutout(x, ratio: float = 0.5):
    B, _, H, W = x.shape
    ch, cw = int(H * ratio + 0.5), int(W * ratio + 0.5)
    oh = torch.randint(0, H + (1 - ch % 2), (B, 1, 1), device=x.device)
    ow = torch.randint(0, W + (1 - cw % 2), (B, 1, 1), device=x.device)
    gb, gh, gw = torch.meshgrid(
        torch.arange(B, device=x.device),
        torch.arange(ch, device=x.device),
        torch.arange(cw, device=x.device),
        indexing="ij",
    )
    gh = torch.clamp(gh + oh - ch // 2, 0, H - 1)
    gw = torch.clamp(gw + ow - cw // 2, 0, W - 1)
    mask = torch.ones(B, H, W, dtype=x.dtype, device=x.device)
    mask[gb, gh, gw] = 0
    return x * mask.unsqueeze(1)


# "saturation" of the original policy has no meaning for one channel.
_AUGMENTS: dict[str, list[Callable[[torch.Tensor], torch.Tensor]]] = {
    "color": [_brightness, _contrast],
    "translation": [_translation],
    "cutout": [_cutout],
}


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# -----------------------------------------------------------------------------
# checkpoints

CHECKPOINT_VERSION = 1


def checkpoint_load(path, map_location="cpu") -> dict:
    """Read a checkpoint written by ``generator.train`` (tensors and plain data)."""
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(ckpt, dict) or "config" not in ckpt or "ema" not in ckpt:
        raise ValueError(f"{path}: not a turingtest generator checkpoint")
    if ckpt.get("version", 0) > CHECKPOINT_VERSION:
        raise ValueError(
            f"{path}: checkpoint version {ckpt['version']} is newer than this code "
            f"({CHECKPOINT_VERSION})"
        )
    return ckpt


def model_from_checkpoint(ckpt: dict, *, ema_only: bool = False) -> KneeGAN:
    model = KneeGAN(GANConfig.from_dict(ckpt["config"]))
    model.g_ema.load_state_dict(ckpt["ema"])
    if not ema_only:
        model.G.load_state_dict(ckpt["weights"]["G"])
        model.D.load_state_dict(ckpt["weights"]["D"])
    return model


__all__ = [
    "GANConfig",
    "PRESETS",
    "config_preset",
    "Generator",
    "Critic",
    "MinibatchStd",
    "KneeGAN",
    "count_parameters",
    "diff_augment",
    "CHECKPOINT_VERSION",
    "checkpoint_load",
    "model_from_checkpoint",
]
