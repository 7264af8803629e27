"""Sample a trained generator: the same (checkpoint, grade, seed) gives the same image.

    import generator
    images = generator.sample("runs/default/checkpoint.pt", grade=2, seeds=range(8))
    # (8, R, R) uint8

    python -m generator.sample runs/default/checkpoint.pt --grade 2 --seeds 0-999 \\
        --out samples/   # writes samples/2/seed-000000.png ...

Each image's latent is drawn from its own ``torch.Generator`` seeded with the
image's seed, the averaged generator runs in eval mode (batch norm uses
stored statistics), and every forward pass has the same batch shape (a short
last batch is padded), so an image depends on neither the other seeds asked
for nor their order. With the same ``batch_size`` on one device and build the
bytes repeat exactly; another batch size or device may round a pixel by one.
"""

from __future__ import annotations

import argparse
import sys
import types
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from generator.networks import KneeGAN, checkpoint_load, model_from_checkpoint


class Sampler:
    """A loaded checkpoint, ready to turn (grade, seeds) into uint8 images."""

    def __init__(self, checkpoint: str | Path, device: str | torch.device = "auto"):
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.path = Path(checkpoint)
        ckpt = checkpoint_load(self.path, map_location="cpu")
        self.model: KneeGAN = model_from_checkpoint(ckpt, ema_only=True)
        self.model.g_ema.to(self.device).eval()
        self.config = self.model.cfg
        self.step = int(ckpt.get("step", 0))
        self.data = ckpt.get("data", {})
        self.resolution = self.config.resolution

    def latents(self, seeds: Sequence[int]) -> torch.Tensor:
        """(N, z_dim) on CPU, one independent stream per seed."""
        z = torch.empty(len(seeds), self.config.z_dim)
        for i, s in enumerate(seeds):
            g = torch.Generator().manual_seed(int(s))
            z[i] = torch.randn(self.config.z_dim, generator=g)
        return z

    @torch.no_grad()
    def __call__(self, grade: int, seeds: Iterable[int], batch_size: int = 64):
        """(N, R, R) uint8 for ``grade`` and each of ``seeds``, in order."""
        return np.concatenate(list(self.batches(grade, seeds, batch_size)), axis=0)

    @torch.no_grad()
    def batches(
        self, grade: int, seeds: Iterable[int], batch_size: int = 64
    ) -> Iterator[np.ndarray]:
        """The same images as ``__call__``, a batch (n, R, R) at a time."""
        if not 0 <= int(grade) < self.config.n_classes:
            raise ValueError(f"grade {grade} outside 0..{self.config.n_classes - 1}")
        seeds = [int(s) for s in seeds]
        if not seeds:
            yield np.empty((0, self.resolution, self.resolution), np.uint8)
            return
        for i in range(0, len(seeds), batch_size):
            chunk = seeds[i : i + batch_size]
            z = torch.zeros(batch_size, self.config.z_dim)
            z[: len(chunk)] = self.latents(chunk)
            # Always the same batch shape: kernels chosen per shape round
            # differently in the last bits, which can flip a pixel by one.
            x = self.model.generate(z.to(self.device), int(grade))[: len(chunk), 0]
            x = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
            yield x.cpu().numpy()  # (n, R, R)


@lru_cache(maxsize=4)
def _cached(path: str, mtime_ns: int, device: str) -> Sampler:
    return Sampler(path, device)


def load(checkpoint: str | Path, device: str = "auto") -> Sampler:
    """A :class:`Sampler`, loaded once per process and checkpoint file version."""
    path = Path(checkpoint).resolve()
    return _cached(str(path), path.stat().st_mtime_ns, device)


def sample(
    checkpoint: str | Path,
    grade: int,
    seeds: Iterable[int],
    *,
    device: str = "auto",
    batch_size: int = 64,
) -> np.ndarray:
    """(N, R, R) uint8 images of ``grade``, one per seed; deterministic."""
    return load(checkpoint, device)(grade, seeds, batch_size)


def parse_ranges(text: str) -> list[int]:
    """``"0-3,7,10-11"`` -> ``[0, 1, 2, 3, 7, 10, 11]``."""
    out: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        lo, sep, hi = part.partition("-")
        out += list(range(int(lo), int(hi) + 1)) if sep else [int(lo)]
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m generator.sample",
        description="Write PNGs from a checkpoint: OUT/{grade}/seed-NNNNNN.png",
    )
    ap.add_argument("checkpoint")
    ap.add_argument("--grade", default="0-4", help="e.g. 2, or 0-4, or 0,4")
    ap.add_argument("--seeds", default="0-99", help="e.g. 0-999 or 1,5,9")
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args(argv)
    sampler = load(args.checkpoint, args.device)
    seeds = parse_ranges(args.seeds)
    for grade in parse_ranges(args.grade):
        folder = Path(args.out) / str(grade)
        folder.mkdir(parents=True, exist_ok=True)
        done = 0
        for batch in sampler.batches(grade, seeds, args.batch_size):
            for img in batch:
                path = folder / f"seed-{seeds[done]:06d}.png"
                Image.fromarray(img).save(path)
                done += 1
        print(f"grade {grade}: {done} images in {folder}")


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return sample(*args, **kwargs)


# `generator.sample` names this module; calling it samples.
sys.modules[__name__].__class__ = _CallableModule


if __name__ == "__main__":
    main()
