"""Training images per second of each generator recipe, side by side.

    .venv/bin/python bench/train_step.py [--resolution 128] [--threads 1] [--steps 6]

One training step (critic update, then generator update, then EMA) as
``generator.train`` runs it, on random images, for:

(a) ``seed``-style WGAN-GP with the DCGAN pair (conditional, like the old
    ``default``), fp32, the reference point;
(b) the lite pair with hinge loss (the new ``default``), fp32, NCHW;
(c) (b) with the critic in channels_last;
(d) (c) under bf16 autocast (what ``--precision auto`` picks on CPUs with
    AVX512-BF16 or AMX, and on CUDA).

Each is timed after two warm-up steps; printed as images/s and as the ratio
to (a). Ratios, not absolute figures, are what carry across machines.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def images_per_second(
    preset: str, *, resolution: int, bf16: bool, channels_last: bool, steps: int
) -> float:
    import torch

    from generator.networks import KneeGAN, config_preset
    from generator.train import critic_loss, generator_loss

    overrides = {"resolution": resolution}
    if preset == "dcgan":
        preset, overrides = "tiny-wgan", overrides | {"channels": 8, "z_dim": 128}
        overrides |= {"max_channels": 128, "batch_size": 16}
    cfg = config_preset(preset, **overrides)
    torch.manual_seed(0)
    model = KneeGAN(cfg)
    (_, G, D), *_ = model.pairs()
    if channels_last:
        D.to(memory_format=torch.channels_last)
    opt_g = torch.optim.Adam(G.parameters(), cfg.lr_g, cfg.betas)
    opt_d = torch.optim.Adam(D.parameters(), cfg.lr_d, cfg.betas)

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()

    B = cfg.batch_size
    real = torch.rand(B, 1, resolution, resolution) * 2 - 1
    y = torch.randint(0, 5, (B,))

    def step(i: int) -> None:
        for _ in range(cfg.n_critic):
            with torch.no_grad(), autocast():
                fake = G(torch.randn(B, cfg.z_dim), y).float()
            loss, _ = critic_loss(D, real, fake, y, cfg, autocast)
            opt_d.zero_grad(set_to_none=True)
            loss.backward()
            opt_d.step()
        D.requires_grad_(False)
        with autocast():
            fake = G(torch.randn(B, cfg.z_dim), y).float()
        g_loss = generator_loss(D, fake, y, cfg, autocast)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        D.requires_grad_(True)
        model.update_ema(i + 1)

    for i in range(2):
        step(i)
    t0 = time.perf_counter()
    for i in range(steps):
        step(i)
    return B * steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=6)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    runs = [
        ("(a) WGAN-GP, DCGAN pair, fp32", "dcgan", False, False),
        ("(b) lite pair, hinge, fp32", "default", False, False),
        ("(c) (b) + critic channels_last", "default", False, True),
        ("(d) (c) + bf16 autocast", "default", True, True),
    ]
    print(
        f"{args.resolution} px, {args.threads} thread(s), batch 16, "
        f"{args.steps} timed steps each, torch {torch.__version__}"
    )
    base = None
    for label, preset, bf16, cl in runs:
        rate = images_per_second(
            preset,
            resolution=args.resolution,
            bf16=bf16,
            channels_last=cl,
            steps=args.steps,
        )
        base = base or rate
        print(f"{label:36s} {rate:7.1f} img/s  {rate / base:5.2f}x")


if __name__ == "__main__":
    main()
