"""Train a conditional knee radiograph GAN from the command line.

    python -m generator.train --data ../shared/data/knee-kl --config default \\
        --out runs/default --minutes 60

One *step* is one generator update after ``n_critic`` critic updates; with the
``seed`` config a step updates every grade's pair once. The run folder gets
``training_options.json`` (everything needed to repeat the run),
``metrics.jsonl``, ``samples/step-*.png`` (one row per grade, fixed latents)
and ``checkpoint.pt`` (config, weights, EMA weights, optimiser states, step,
random states, version; ``--resume`` continues from it).

Several GPUs: ``torchrun --nproc_per_node N -m generator.train ...`` trains
with DistributedDataParallel (NCCL on GPUs, gloo on CPU); ``--batch-size`` is
the global batch, split across processes. CUDA runs use bf16 autocast, and
so do CPU runs where the CPU has bf16 instructions (``--precision``).

See :mod:`generator.networks` for the models and their references.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from PIL import Image
from torch.nn.parallel import DistributedDataParallel as DDP

from generator.data import load_dataset
from generator.networks import (
    CHECKPOINT_VERSION,
    GANConfig,
    KneeGAN,
    checkpoint_load,
    config_preset,
    count_parameters,
    diff_augment,
)


@dataclass
class TrainOptions:
    data: str
    out: str
    config: str = "default"
    steps: int | None = None
    minutes: float | None = None
    resume: bool = False
    seed: int = 0
    split: str = "train"
    # overrides of the preset
    resolution: int | None = None
    batch_size: int | None = None
    channels: int | None = None
    n_critic: int | None = None
    mode_seeking: float | None = None
    sample_every: int | None = None
    checkpoint_every: int | None = None
    # environment
    device: str = "auto"
    precision: str = "auto"  # auto | bf16 | fp32
    threads: int | None = None
    progress: bool = True


# -----------------------------------------------------------------------------
# losses


def critic_loss(
    D, real, fake, y, cfg: GANConfig, autocast
) -> tuple[torch.Tensor, dict]:
    """The critic's loss on one real and one fake batch, and what to log."""
    if cfg.diffaugment:
        real, fake = (
            diff_augment(real, cfg.diffaugment),
            diff_augment(fake, cfg.diffaugment),
        )
    if cfg.loss == "hinge":
        return _hinge_critic_loss(D, real, fake, y, cfg, autocast)
    return _wgan_gp_critic_loss(D, real, fake, y, cfg, autocast)


def _wgan_gp_critic_loss(D, real, fake, y, cfg: GANConfig, autocast):
    """WGAN-GP critic loss [Gulrajani et al. 2017, Algorithm 1].

    The penalty is taken on interpolates of what the critic actually sees
    (augmented real and fake), and real, fake and interpolates go through one
    forward pass so that a DDP critic reduces its gradients once.
    """
    B = real.shape[0]
    alpha = torch.rand(B, 1, 1, 1, device=real.device)
    interp = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    x = torch.cat([real, fake, interp])  # (3B, 1, R, R)
    yy = None if y is None else y.repeat(3)
    with autocast():
        out = D(x, yy).float()  # (3B,)
    d_real, d_fake, d_interp = out.split(B)
    (grad,) = torch.autograd.grad(d_interp.sum(), interp, create_graph=True)
    gp = ((grad.float().flatten(1).norm(dim=1) - 1) ** 2).mean()
    wdist = d_real.mean() - d_fake.mean()
    loss = -wdist + cfg.gp_lambda * gp
    if cfg.drift:
        loss = loss + cfg.drift * d_real.pow(2).mean()
    return loss, {"d_loss": loss.item(), "wdist": wdist.item(), "gp": gp.item()}


def _hinge_critic_loss(D, real, fake, y, cfg: GANConfig, autocast):
    """Hinge loss [Lim & Ye 2017], plus the self-supervised decoder [FastGAN].

    No gradient penalty: the lite critic is spectrally normalised, so one
    backward pass per step suffices.
    """
    B = real.shape[0]
    x = torch.cat([real, fake])  # (2B, 1, R, R)
    yy = None if y is None else y.repeat(2)
    with autocast():
        if cfg.recon:
            out, decoded = D(x, yy, decode=B)  # decoded: (B, 1, r, r) of real
        else:
            out = D(x, yy)
    d_real, d_fake = out.float().split(B)
    loss = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
    stats = {"wdist": (d_real.mean() - d_fake.mean()).item()}
    if cfg.recon:
        target = F.adaptive_avg_pool2d(real, decoded.shape[-1])
        recon = F.mse_loss(decoded.float(), target)
        loss = loss + cfg.recon * recon
        stats["recon"] = recon.item()
    return loss, {"d_loss": loss.item()} | stats


def mode_seeking_term(fake: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """How far apart two images of one grade are, per unit of latent distance.

    Mode-seeking regularisation [Mao et al. 2019, arXiv:1903.05628]: the
    generator's loss adds ``weight / term``, so a generator that ignores its
    latent (one image per grade, a common collapse of small conditional GANs)
    pays for it. The batch's two halves are pairs with the same grade.
    """
    a, b = fake.chunk(2)
    za, zb = z.chunk(2)
    return (a - b).abs().mean() / (za - zb).abs().mean()


def generator_loss(D, fake, y, cfg: GANConfig, autocast) -> torch.Tensor:
    if cfg.diffaugment:
        fake = diff_augment(fake, cfg.diffaugment)
    with autocast():
        return -D(fake, y).float().mean()


# -----------------------------------------------------------------------------
# data in memory


class Batches:
    """Random batches (with replacement) from an in-memory uint8 dataset."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        device,
        seed: int,
        mirror: bool = False,
    ):
        self.mirror = mirror
        self.images = torch.from_numpy(images).to(device)  # (N, R, R) uint8
        self.labels = torch.from_numpy(labels).to(device)  # (N,)
        self.by_grade = {
            g: torch.from_numpy(np.flatnonzero(labels == g)).to(device)
            for g in np.unique(labels).tolist()
        }
        self.rng = torch.Generator(device="cpu").manual_seed(seed)

    def __call__(self, n: int, grade: int | None = None):
        pool = self.by_grade[grade] if grade is not None else None
        size = len(pool) if pool is not None else len(self.labels)
        idx = torch.randint(size, (n,), generator=self.rng).to(self.images.device)
        if pool is not None:
            idx = pool[idx]
        x = self.images[idx].unsqueeze(1).float() / 127.5 - 1.0  # (n, 1, R, R)
        if self.mirror:
            flip = torch.rand(n, generator=self.rng) < 0.5
            x = torch.where(flip.to(x.device)[:, None, None, None], x.flip(-1), x)
        return x, self.labels[idx]


# -----------------------------------------------------------------------------
# helpers


def autocast_bf16(precision: str, device: torch.device) -> bool:
    """Whether to train under bf16 autocast.

    ``auto`` takes it on CUDA and on CPUs with native bf16 (AVX512-BF16 or
    AMX), where it measured 1.5x an fp32 step of the lite pair on one core.
    """
    if precision == "fp32":
        return False
    if precision == "bf16":
        return True
    if device.type == "cuda":
        return True
    return device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def setup_distributed(options: TrainOptions) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if options.device == "auto":
        device = torch.device(
            f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
        )
    else:
        device = torch.device(options.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def resolve_config(options: TrainOptions) -> GANConfig:
    return config_preset(
        options.config,
        resolution=options.resolution,
        batch_size=options.batch_size,
        channels=options.channels,
        n_critic=options.n_critic,
        mode_seeking=options.mode_seeking,
        sample_every=options.sample_every,
        checkpoint_every=options.checkpoint_every,
    )


def sample_grid(model: KneeGAN, n_per_grade: int = 8) -> np.ndarray:
    """(grades * R, n * R) uint8: one row per grade, the same latents in each."""
    device = next(model.g_ema.parameters()).device
    z = torch.randn(
        n_per_grade, model.cfg.z_dim, generator=torch.Generator().manual_seed(1234)
    ).to(device)
    rows = []
    for g in range(model.cfg.n_classes):
        x = model.generate(z, g)[:, 0]  # (n, R, R)
        rows.append(torch.cat(list(x), dim=1))  # (R, n R)
    grid = torch.cat(rows, dim=0)
    return ((grid.float().clamp(-1, 1) + 1) * 127.5).round().byte().cpu().numpy()


def atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def rng_state(batches: Batches) -> dict:
    state = {"torch": torch.get_rng_state(), "data": batches.rng.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict, batches: Batches) -> None:
    torch.set_rng_state(state["torch"])
    batches.rng.set_state(state["data"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


# -----------------------------------------------------------------------------
# training

_SHOWN = ("d_loss", "g_loss", "wdist", "gp", "recon", "diversity")


def train(options: TrainOptions) -> Path:
    """Run (or continue) training; returns the checkpoint path."""
    if options.steps is None and options.minutes is None:
        raise ValueError("give --steps or --minutes")
    if options.threads:
        torch.set_num_threads(options.threads)
    rank, world, device = setup_distributed(options)
    out = Path(options.out)
    ckpt_path = out / "checkpoint.pt"
    ckpt = None
    if options.resume and ckpt_path.exists():
        ckpt = checkpoint_load(ckpt_path)
        cfg = GANConfig.from_dict(ckpt["config"])
        if options.mode_seeking is not None:
            # a loss weight, not the architecture: it may change mid-run
            cfg = replace(cfg, mode_seeking=options.mode_seeking)
    else:
        cfg = resolve_config(options)
    if cfg.batch_size % world:
        raise ValueError(f"batch size {cfg.batch_size} not divisible by {world}")
    local_batch = cfg.batch_size // world

    # Identical initial weights everywhere; then each process its own stream.
    torch.manual_seed(options.seed)
    model = KneeGAN(cfg).to(device)
    dataset = load_dataset(options.data, cfg.resolution, options.split)
    batches = Batches(
        dataset.images,
        dataset.labels,
        device,
        options.seed * 1000 + rank,
        mirror=cfg.mirror,
    )
    torch.manual_seed(options.seed * 1000 + rank)
    pairs = model.pairs()
    opt_g = [torch.optim.Adam(G.parameters(), cfg.lr_g, cfg.betas) for _, G, _ in pairs]
    opt_d = [torch.optim.Adam(D.parameters(), cfg.lr_d, cfg.betas) for _, _, D in pairs]
    step, elapsed_before = 0, 0.0
    if ckpt is not None:
        model.G.load_state_dict(ckpt["weights"]["G"])
        model.D.load_state_dict(ckpt["weights"]["D"])
        model.g_ema.load_state_dict(ckpt["ema"])
        # A released checkpoint (generator.release) keeps no optimiser state
        # or random streams: Adam's moments start afresh, the weights go on.
        if "optim" in ckpt:
            for o, s in zip(opt_g, ckpt["optim"]["g"], strict=True):
                o.load_state_dict(s)
            for o, s in zip(opt_d, ckpt["optim"]["d"], strict=True):
                o.load_state_dict(s)
        step = int(ckpt["step"])
        elapsed_before = float(ckpt.get("elapsed_s", 0.0))
        if world == 1 and "rng" in ckpt:
            set_rng_state(ckpt["rng"], batches)
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        wrapped: list[tuple[int | None, torch.nn.Module, torch.nn.Module]] = [
            (g, DDP(G, device_ids=ids), DDP(D, device_ids=ids)) for g, G, D in pairs
        ]
    else:
        wrapped = pairs
    use_amp = autocast_bf16(options.precision, device)
    if device.type == "cpu":
        # oneDNN's convolutions run fastest on NHWC; batch norm's backward does
        # not, so only the critic (no batch norm) changes layout.
        for D in model.D:
            # Module.to takes memory_format; torch's stubs leave it out.
            D.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def autocast():
        if use_amp:
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return nullcontext()

    data_description = dataset.description()
    if rank == 0:
        (out / "samples").mkdir(parents=True, exist_ok=True)
        record = {
            "options": asdict(options),
            "config": cfg.to_dict(),
            "data": data_description,
            "resumed_from_step": step if ckpt is not None else None,
            "world_size": world,
            "device": str(device),
            "autocast": "bf16" if use_amp else None,
            "threads": torch.get_num_threads(),
            "parameters": {
                "G": count_parameters(model.G),
                "D": count_parameters(model.D),
            },
            "torch": torch.__version__,
            "python": platform.python_version(),
            "command": sys.argv,
            "started_at": datetime.now(UTC).isoformat(),
        }
        name = "training_options.json"
        if ckpt is not None:
            name = f"training_options.resume-{step:06d}.json"
        (out / name).write_text(json.dumps(record, indent=2) + "\n")

    def save(at_step: int, checkpoint: bool = True) -> None:
        if rank != 0:
            return
        model.refresh_ema_norms()
        grid = sample_grid(model)
        Image.fromarray(grid).save(out / "samples" / f"step-{at_step:06d}.png")
        if not checkpoint:
            return
        atomic_save(
            {
                "version": CHECKPOINT_VERSION,
                "config": cfg.to_dict(),
                "step": at_step,
                "weights": {"G": model.G.state_dict(), "D": model.D.state_dict()},
                "ema": model.g_ema.state_dict(),
                "optim": {
                    "g": [o.state_dict() for o in opt_g],
                    "d": [o.state_dict() for o in opt_d],
                },
                "rng": rng_state(batches),
                "data": data_description,
                "options": asdict(options),
                "elapsed_s": elapsed_before + time.monotonic() - t0,
            },
            ckpt_path,
        )

    def snapshot(at_step: int) -> None:
        # The averaged generator alone, for the training curve (FD, grades).
        (out / "snapshots").mkdir(exist_ok=True)
        model.refresh_ema_norms()
        atomic_save(
            {
                "version": CHECKPOINT_VERSION,
                "config": cfg.to_dict(),
                "step": at_step,
                "ema": {k: v.half() for k, v in model.g_ema.state_dict().items()},
                "data": data_description,
                "elapsed_s": elapsed_before + time.monotonic() - t0,
            },
            out / "snapshots" / f"step-{at_step:06d}.pt",
        )

    t0 = time.monotonic()
    bar = None
    if rank == 0 and options.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=options.steps, initial=step, unit="step", dynamic_ncols=True)
    log: dict[str, list[float]] = {}
    metrics = open(out / "metrics.jsonl", "a") if rank == 0 else None  # noqa: SIM115
    model.train()
    try:
        while True:
            done = options.steps is not None and step >= options.steps
            if options.minutes is not None:
                done |= time.monotonic() - t0 >= options.minutes * 60
            if world > 1:
                flag = torch.tensor([float(done)], device=device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                done = bool(flag.item())
            if done:
                break
            for (grade, G, D), (_, G_raw, D_raw), og, od in zip(
                wrapped, pairs, opt_g, opt_d, strict=True
            ):
                # critic: n_critic updates on fresh real and fake batches
                D_raw.requires_grad_(True)
                for _ in range(cfg.n_critic):
                    real, y = batches(local_batch, grade)
                    y = y if cfg.conditional else None
                    z = torch.randn(local_batch, cfg.z_dim, device=device)
                    with torch.no_grad(), autocast():
                        fake = G_raw(z, y).float()
                    loss, stats = critic_loss(D, real, fake, y, cfg, autocast)
                    od.zero_grad(set_to_none=True)
                    loss.backward()
                    od.step()
                    for k, v in stats.items():
                        log.setdefault(k, []).append(v)
                # generator: grades drawn as often as they occur in the data
                D_raw.requires_grad_(False)
                _, y = batches(local_batch, grade)
                if cfg.mode_seeking:
                    # pairs of latents share a grade: the second half mirrors
                    # the first half's grades
                    y = y.view(2, -1)[0].repeat(2)
                y = y if cfg.conditional else None
                z = torch.randn(local_batch, cfg.z_dim, device=device)
                with autocast():
                    fake = G(z, y).float()
                g_loss = generator_loss(D_raw, fake, y, cfg, autocast)
                if cfg.mode_seeking:
                    diversity = mode_seeking_term(fake, z)
                    g_loss = g_loss + cfg.mode_seeking / (diversity + 1e-5)
                    log.setdefault("diversity", []).append(diversity.item())
                og.zero_grad(set_to_none=True)
                g_loss.backward()
                og.step()
                D_raw.requires_grad_(True)
                log.setdefault("g_loss", []).append(g_loss.item())
            step += 1
            model.update_ema(step)

            if metrics is not None and (step % cfg.log_every == 0):  # rank 0
                row = {k: float(np.mean(v)) for k, v in log.items()}
                if not all(math.isfinite(v) for v in row.values()):
                    raise FloatingPointError(f"step {step}: non-finite losses {row}")
                seconds = time.monotonic() - t0
                row = {
                    "step": step,
                    "time_s": round(elapsed_before + seconds, 3),
                    "kimg": step * cfg.batch_size * len(pairs) / 1000,
                } | row
                metrics.write(json.dumps(row) + "\n")
                metrics.flush()
                if bar is not None:
                    bar.set_postfix({k: f"{row[k]:.3f}" for k in _SHOWN if k in row})
                log.clear()
            if bar is not None:
                bar.update(1)
            if step % cfg.checkpoint_every == 0:
                save(step)
            elif step % cfg.sample_every == 0:
                save(step, checkpoint=False)
            if cfg.snapshot_every and step % cfg.snapshot_every == 0 and rank == 0:
                snapshot(step)
        if step % cfg.checkpoint_every:
            save(step)
    finally:
        if bar is not None:
            bar.close()
        if metrics is not None:
            metrics.close()
        if world > 1:
            # Leave together: a rank that tears gloo down while rank 0 is
            # still writing the checkpoint aborts ("terminate called without
            # an active exception").
            dist.barrier()
            dist.destroy_process_group()
    return ckpt_path


def parse_args(argv: list[str] | None = None) -> tuple[TrainOptions, bool]:
    ap = argparse.ArgumentParser(
        prog="python -m generator.train",
        description="Train a conditional knee radiograph GAN (default: lite pair, hinge loss).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--data", required=True, help="grade folders, split root or .npz")
    ap.add_argument(
        "--config", default="default", help="seed | default | tiny | tiny-wgan"
    )
    ap.add_argument("--out", required=True, help="run folder, e.g. runs/NAME")
    length = ap.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="total generator steps")
    length.add_argument("--minutes", type=float, help="wall-clock budget")
    ap.add_argument("--resume", action="store_true", help="continue OUT/checkpoint.pt")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", default="train", help="split folder under --data")
    ap.add_argument("--resolution", type=int, help="override the preset")
    ap.add_argument("--batch-size", type=int, help="global batch; override")
    ap.add_argument("--channels", type=int, help="width at full resolution; override")
    ap.add_argument("--n-critic", type=int, help="critic steps per G step; override")
    ap.add_argument(
        "--mode-seeking", type=float, help="diversity weight; override (resume too)"
    )
    ap.add_argument("--sample-every", type=int, help="steps between sample grids")
    ap.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    ap.add_argument("--precision", default="auto", help="auto | bf16 | fp32")
    ap.add_argument("--threads", type=int, help="torch CPU threads")
    ap.add_argument("--no-progress", dest="progress", action="store_false")
    ap.add_argument("--dry-run", action="store_true", help="print options and exit")
    args = vars(ap.parse_args(argv))
    dry_run = args.pop("dry_run")
    return TrainOptions(**args), dry_run


def main(argv: list[str] | None = None) -> None:
    options, dry_run = parse_args(argv)
    if dry_run:
        print(
            json.dumps(
                {
                    "options": asdict(options),
                    "config": resolve_config(options).to_dict(),
                },
                indent=2,
            )
        )
        return
    train(options)


if __name__ == "__main__":
    main()
