"""Synthetic images beside real ones, one row pair per grade, as one PNG.

    python -m generator.montage assets/weights/knee-default.pt \\
        --real ../shared/data/knee-kl/test --out docs/img/knee-montage.png

Each grade gets two rows: ``--per-grade`` synthetic images (seeds 0..n-1)
and as many real ones drawn with a fixed seed, all at the generator's
native side. The grade is written at the left of each row pair.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from generator.data import load_dataset
from generator.sample import load
from turingtest.domain.scales import KL

GAP = 4
LABEL = 56


def montage(checkpoint, real, out, *, per_grade: int = 8, seed: int = 0) -> Path:
    sampler = load(checkpoint, "cpu")
    side = sampler.resolution
    data = load_dataset(real, side, split="test")
    rng = np.random.default_rng(seed)
    rows = []
    for grade in KL.codes:
        fake = sampler(grade, range(per_grade))
        pool = np.flatnonzero(data.labels == grade)
        picked = data.images[rng.choice(pool, min(per_grade, len(pool)), replace=False)]
        rows.append((grade, "synthetic", fake))
        rows.append((grade, "real", picked))
    width = LABEL + per_grade * (side + GAP)
    height = len(rows) * (side + GAP) + KL.count * GAP
    canvas = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(canvas)
    y = 0
    for i, (grade, kind, images) in enumerate(rows):
        draw.text((4, y + side // 2 - 12), KL.value_text(grade), fill=0)
        draw.text((4, y + side // 2 + 2), kind, fill=0)
        for k, img in enumerate(images):
            canvas.paste(Image.fromarray(img), (LABEL + k * (side + GAP), y))
        y += side + GAP + (GAP if i % 2 else 0)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out, optimize=True)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m generator.montage", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("checkpoint")
    ap.add_argument("--real", required=True, help="real images, {grade}/ folders")
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-grade", type=int, default=8)
    args = ap.parse_args(argv)
    print(montage(args.checkpoint, args.real, args.out, per_grade=args.per_grade))


if __name__ == "__main__":
    main()
