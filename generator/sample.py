"""Sample a trained generator: the same (checkpoint, grade, seed) gives the same image.

    import generator
    images = generator.sample("runs/default/checkpoint.pt", grade=2, seeds=range(8))
    # (8, R, R) uint8

    python -m generator.sample runs/default/checkpoint.pt --grade 2 --seeds 0-999 \\
        --out samples/   # writes samples/2/seed-000000.png ...

Three kinds of generator sample the same way (``load(spec, kind=...)``):

- ``checkpoint``: a checkpoint written by ``generator.train``;
- ``torchscript``: a TorchScript file made by any code, with an integer
  attribute ``z_dim`` and ``forward(z, grade) -> images``, where ``z`` is
  (N, z_dim) float32 standard normal, ``grade`` (N,) int64 and ``images``
  (N, 1, H, W) or (N, H, W) float in [-1, 1];
- ``entrypoint``: ``package.module:function`` importable on the workers, a
  function ``(grade: int, seeds: list[int]) -> array`` returning (N, H, W)
  uint8, or float in [-1, 1], one image per seed, the same image for the
  same (grade, seed) whatever else is asked for.

For the first two, each image's latent is drawn from its own ``torch.Generator`` seeded with the
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
from typing import Any

import numpy as np
import torch
from PIL import Image

from generator.networks import KneeGAN, checkpoint_load, model_from_checkpoint
from turingtest.domain.scales import KL

KINDS = ("checkpoint", "torchscript", "entrypoint")


def latents(seeds: Sequence[int], z_dim: int) -> torch.Tensor:
    """(N, z_dim) on CPU, one independent standard-normal stream per seed."""
    z = torch.empty(len(seeds), z_dim)
    for i, s in enumerate(seeds):
        g = torch.Generator().manual_seed(int(s))
        z[i] = torch.randn(z_dim, generator=g)
    return z


def to_uint8(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Images (N, [1,] H, W), uint8 or float in [-1, 1], as (N, H, W) uint8."""
    if isinstance(x, np.ndarray) and x.dtype == np.uint8:
        out = x
    else:
        t = torch.as_tensor(x).detach().float().cpu()
        out = ((t.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    if out.ndim == 4 and out.shape[1] == 1:
        out = out[:, 0]
    if out.ndim != 3:
        raise ValueError(f"expected images (N, H, W) or (N, 1, H, W), got {out.shape}")
    return out


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

    kind = "checkpoint"

    def latents(self, seeds: Sequence[int]) -> torch.Tensor:
        return latents(seeds, self.config.z_dim)

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
            x = self.model.generate(z.to(self.device), int(grade))[: len(chunk)]
            yield to_uint8(x)  # (n, R, R)


class TorchScriptSampler:
    """A TorchScript generator of the documented signature (module docstring)."""

    kind = "torchscript"

    def __init__(self, path: str | Path, device: str | torch.device = "auto"):
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.path = Path(path)
        try:
            self.module = torch.jit.load(str(self.path), map_location=self.device)
        except Exception as exc:  # not a TorchScript archive
            raise ValueError(f"{self.path}: not a TorchScript file: {exc}") from exc
        z_dim = getattr(self.module, "z_dim", None)
        if not isinstance(z_dim, int) or z_dim < 1:
            raise ValueError(
                f"{self.path}: a TorchScript generator needs an integer attribute "
                "z_dim (the latent size)"
            )
        self.module.eval()
        self.z_dim = z_dim
        self.step = 0
        self.data: dict = {}
        self.resolution = None  # known after the first batch

    @torch.no_grad()
    def batches(
        self, grade: int, seeds: Iterable[int], batch_size: int = 64
    ) -> Iterator[np.ndarray]:
        seeds = [int(s) for s in seeds]
        for i in range(0, len(seeds), batch_size):
            chunk = seeds[i : i + batch_size]
            z = torch.zeros(batch_size, self.z_dim)
            z[: len(chunk)] = latents(chunk, self.z_dim)
            y = torch.full((batch_size,), int(grade), dtype=torch.long)
            out = to_uint8(self.module(z.to(self.device), y.to(self.device)))
            self.resolution = out.shape[-1]
            yield out[: len(chunk)]

    def __call__(self, grade: int, seeds: Iterable[int], batch_size: int = 64):
        return np.concatenate(list(self.batches(grade, seeds, batch_size)), axis=0)


class EntryPointSampler:
    """A function ``package.module:function`` (module docstring) as a sampler."""

    kind = "entrypoint"

    def __init__(self, spec: str):
        self.spec = spec
        self.function = resolve_entry_point(spec)
        self.step = 0
        self.data: dict = {}
        self.resolution = None

    def batches(
        self, grade: int, seeds: Iterable[int], batch_size: int = 64
    ) -> Iterator[np.ndarray]:
        seeds = [int(s) for s in seeds]
        for i in range(0, len(seeds), batch_size):
            chunk = seeds[i : i + batch_size]
            out = to_uint8(self.function(int(grade), list(chunk)))
            if len(out) != len(chunk):
                raise ValueError(
                    f"{self.spec} returned {len(out)} images for {len(chunk)} seeds"
                )
            self.resolution = out.shape[-1]
            yield out

    def __call__(self, grade: int, seeds: Iterable[int], batch_size: int = 64):
        return np.concatenate(list(self.batches(grade, seeds, batch_size)), axis=0)


def resolve_entry_point(spec: str):
    """``package.module:function`` -> the function, with a clear error if not."""
    import importlib

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{spec!r}: expected package.module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"{spec!r}: cannot import {module_name}: {exc}") from exc
    function: Any = module
    for part in attr.split("."):
        function = getattr(function, part, None)
        if function is None:
            raise ValueError(f"{spec!r}: {module_name} has no {attr}")
    if not callable(function):
        raise ValueError(f"{spec!r}: {attr} is not callable")
    return function


@lru_cache(maxsize=4)
def _cached(kind: str, spec: str, mtime_ns: int, device: str):
    if kind == "checkpoint":
        return Sampler(spec, device)
    if kind == "torchscript":
        return TorchScriptSampler(spec, device)
    return EntryPointSampler(spec)


def load(spec: str | Path, device: str = "auto", kind: str = "checkpoint"):
    """A sampler of ``kind``, loaded once per process (and file version)."""
    if kind not in KINDS:
        raise ValueError(f"unknown generator kind {kind!r}; choose from {KINDS}")
    if kind == "entrypoint":
        return _cached(kind, str(spec), 0, device)
    path = Path(spec).resolve()
    return _cached(kind, str(path), path.stat().st_mtime_ns, device)


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
    ap.add_argument("checkpoint", help="checkpoint, TorchScript file or entry point")
    ap.add_argument("--kind", default="checkpoint", choices=KINDS)
    ap.add_argument(
        "--grade",
        default=KL.range_text("-"),
        help=f"e.g. 2, or {KL.range_text('-')}, or {KL.min},{KL.max}",
    )
    ap.add_argument("--seeds", default="0-99", help="e.g. 0-999 or 1,5,9")
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args(argv)
    sampler = load(args.checkpoint, args.device, kind=args.kind)
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
