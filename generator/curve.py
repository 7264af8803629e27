"""The training curve: Fréchet distance and grade fidelity at each EMA snapshot.

    python -m generator.curve runs/default --train ../shared/data/knee-kl/train

``generator.train`` keeps the averaged generator every ``snapshot_every``
steps in ``RUN/snapshots/``. For each snapshot this draws 100 images per grade
(seeds 0-99, the same for every snapshot), and measures them with the KL
classifier of :mod:`generator.evaluate` (cached per training set):

- Fréchet distance between their features and the training images' features;
- the classifier's accuracy and quadratic-weighted kappa against the grade
  each image was made for.

Only training images are used, so choosing a snapshot by this curve never
looks at the held-out test split. The curve shows whether more training
would still help; the held-out figures come from ``generator.evaluate``.
Writes ``RUN/curve.json``, ``RUN/curve.md`` and ``RUN/curve.png``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from generator.data import load_dataset, resize_array
from generator.evaluate import (
    ANALYSIS_RESOLUTION,
    default_cache_dir,
    frechet_distance,
    grade_fidelity,
    kl_classifier,
    predict,
)
from generator.sample import Sampler
from turingtest.domain.scales import KL

N_GRADES = KL.count


def snapshots(run: Path) -> list[Path]:
    found = sorted((run / "snapshots").glob("step-*.pt"))
    return sorted(found, key=lambda p: int(re.findall(r"\d+", p.stem)[0]))


def curve(
    run: str | Path,
    train: str | Path,
    *,
    per_grade: int = 100,
    classifier_epochs: int = 20,
    cache: Path | None = None,
    progress: bool = True,
) -> list[dict]:
    """One row per snapshot: step, kimg, seconds, FD, grade accuracy and QWK."""
    run = Path(run)
    found = snapshots(run)
    if not found:
        raise FileNotFoundError(f"{run}/snapshots: no snapshots (step-*.pt)")
    first = Sampler(found[0], device="cpu")
    resolution = min(first.resolution, ANALYSIS_RESOLUTION)
    data = load_dataset(train, resolution, split="train")
    clf, _ = kl_classifier(
        data.images,
        data.labels,
        epochs=classifier_epochs,
        seed=0,
        cache=cache if cache is not None else default_cache_dir(),
        progress=progress,
    )
    _, f_train = predict(clf, data.images)
    labels = np.repeat(np.arange(N_GRADES), per_grade)
    rows = []
    for path in tqdm(found, desc="snapshots", disable=not progress):
        sampler = Sampler(path, device="cpu")
        images = np.concatenate(
            [sampler(g, range(per_grade)) for g in range(N_GRADES)]
        )  # (5 n, R, R) uint8
        probs, feats = predict(clf, resize_array(images, resolution))
        fidelity = grade_fidelity(labels, probs)
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        rows.append(
            {
                "step": sampler.step,
                "kimg": sampler.step * sampler.config.batch_size / 1000,
                "seconds": round(float(ckpt.get("elapsed_s", 0.0)), 1),
                "frechet_distance": frechet_distance(f_train, feats),
                "grade_accuracy": fidelity["accuracy"],
                "grade_qwk": fidelity["quadratic_weighted_kappa"],
            }
        )
    write(run, rows, n_train=len(data), per_grade=per_grade)
    return rows


def write(run: Path, rows: list[dict], *, n_train: int, per_grade: int) -> None:
    (run / "curve.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "# Training curve",
        "",
        f"{per_grade} images per grade at each snapshot against the features of "
        f"the {n_train} training images ({KL.abbreviation} classifier trained on them).",
        "",
        "| step | kimg | minutes | Fréchet distance | grade accuracy | grade QWK |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['step']} | {r['kimg']:.0f} | {r['seconds'] / 60:.0f} | "
            f"{r['frechet_distance']:.1f} | {r['grade_accuracy']:.3f} | "
            f"{r['grade_qwk']:.3f} |"
        )
    (run / "curve.md").write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kimg = [r["kimg"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(kimg, [r["frechet_distance"] for r in rows], "o-", color="C0")
    ax.set(xlabel="thousands of training images shown", ylabel="Fréchet distance")
    ax.set_yscale("log")
    twin = ax.twinx()
    twin.plot(kimg, [r["grade_qwk"] for r in rows], "s--", color="C1")
    twin.set_ylabel("grade QWK", color="C1")
    fig.tight_layout()
    fig.savefig(run / "curve.png", dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m generator.curve", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("run", help="a run folder of generator.train")
    ap.add_argument("--train", required=True, help="the run's training images")
    ap.add_argument("--per-grade", type=int, default=100)
    ap.add_argument("--classifier-epochs", type=int, default=20)
    ap.add_argument("--cache", help="classifier cache folder")
    ap.add_argument("--threads", type=int)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    curve(
        args.run,
        args.train,
        per_grade=args.per_grade,
        classifier_epochs=args.classifier_epochs,
        cache=Path(args.cache) if args.cache else None,
    )
    print((Path(args.run) / "curve.md").read_text(), file=sys.stdout)


if __name__ == "__main__":
    main()
