"""Synthetic images per second, from the generator alone to the image pool.

    .venv/bin/python bench/generation.py [--n 64] [--batch 16] [--threads 1]

Measured side by side, same model, same process settings:

(a) the generator's forward pass alone (the ``default`` config, 224×224);
(b) forward pass + PNG encoding (what ``python -m generator.sample`` does);
(c) the whole Celery path: ``generation_job_create`` → broker → a real
    ``celery worker`` process (warmed up: torch and the checkpoint already
    loaded) → ``image_create`` into the pool, timed until the job is done.

Printed as images/s and as the ratios (b)/(a) and (c)/(a). The weights are
untrained: speed does not depend on them. Runs on CUDA where available (the
worker too), else on CPU; scratch database, broker and media live in a
temporary folder (SQLite and the filesystem broker, the embedded defaults).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_checkpoint(path: Path, resolution: int) -> None:
    import torch

    from generator.networks import CHECKPOINT_VERSION, KneeGAN, config_preset

    torch.manual_seed(0)
    cfg = config_preset("default", resolution=resolution)
    model = KneeGAN(cfg)
    model.refresh_ema_norms(n_batches=1, batch_size=8)
    torch.save(
        {
            "version": CHECKPOINT_VERSION,
            "config": cfg.to_dict(),
            "step": 0,
            "weights": {"G": model.G.state_dict(), "D": model.D.state_dict()},
            "ema": model.g_ema.state_dict(),
            "optim": {"g": [], "d": []},
            "data": {},
        },
        path,
    )


def rate(fn, n: int, repeats: int = 2) -> float:
    """Best images/s of ``repeats`` runs of ``fn()``, which makes ``n`` images."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=64, help="images per measurement")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bench-generation-"))
    env = {
        "DJANGO_SETTINGS_MODULE": "turingtest.settings",
        "DATABASE_URL": f"sqlite:///{scratch / 'db.sqlite3'}",
        "BROKER_DIR": str(scratch / "broker"),
        "MEDIA_ROOT": str(scratch / "media"),
        "TURINGTEST_GENERATION_BATCH_SIZE": str(args.batch),
        "OMP_NUM_THREADS": str(args.threads),
        "LOG_LEVEL": "WARNING",
    }
    os.environ.pop("REDIS_URL", None)
    os.environ.update(env)
    for sub in ("queue", "processed"):
        (scratch / "broker" / sub).mkdir(parents=True)

    import torch
    from PIL import Image

    torch.set_num_threads(args.threads)
    from generator.sample import Sampler

    ckpt = scratch / "checkpoint.pt"
    make_checkpoint(ckpt, args.resolution)
    sampler = Sampler(ckpt)
    seeds = list(range(args.n))
    sampler(0, seeds[: args.batch], args.batch)  # warm-up

    def forward():
        for _ in sampler.batches(2, seeds, args.batch):
            pass

    def forward_png():
        for batch in sampler.batches(2, seeds, args.batch):
            for img in batch:
                Image.fromarray(img).save(io.BytesIO(), format="PNG")

    a = rate(forward, args.n)
    b = rate(forward_png, args.n)

    # (c) through a real worker process
    import django

    django.setup()
    from django.core.management import call_command

    from turingtest.generation.models import GenerationJob
    from turingtest.generation.services import generation_job_create, generator_register

    call_command("migrate", verbosity=0)
    gen = generator_register(checkpoint=ckpt, name="bench")
    worker_log = open(scratch / "worker.log", "w")  # noqa: SIM115
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "turingtest",
            "worker",
            "-Q",
            "gpu",
            "--pool",
            "solo",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            "-l",
            "warning",
        ],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=worker_log,
        stderr=subprocess.STDOUT,
    )

    def job(per_grade: dict[int, int]) -> float:
        t = time.perf_counter()
        j = generation_job_create(generator=gen, per_grade=per_grade)
        while True:
            j.refresh_from_db()
            if j.status in (GenerationJob.Status.DONE, GenerationJob.Status.FAILED):
                break
            time.sleep(0.02)
        if j.status != GenerationJob.Status.DONE:
            raise SystemExit(f"job failed: {j.error}")
        return time.perf_counter() - t

    try:
        job({0: args.batch})  # warm-up: worker loads torch and the checkpoint
        c = args.n / min(job({2: args.n}), job({3: args.n}))
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)

    device = str(sampler.device)
    figures = {
        "device": device,
        "threads": args.threads,
        "resolution": args.resolution,
        "images": args.n,
        "batch": args.batch,
        "a_forward_images_per_s": a,
        "b_forward_png_images_per_s": b,
        "c_celery_pool_images_per_s": c,
        "b_over_a": b / a,
        "c_over_a": c / a,
    }
    print(
        f"generation at {args.resolution}x{args.resolution} on {device} "
        f"({args.threads} thread(s)), {args.n} images, batch {args.batch}\n"
        f"  (a) forward pass          {a:8.2f} images/s\n"
        f"  (b) forward + PNG         {b:8.2f} images/s   (b)/(a) = {b / a:.3f}\n"
        f"  (c) Celery job into pool  {c:8.2f} images/s   (c)/(a) = {c / a:.3f}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
