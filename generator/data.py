"""Grayscale images with KL grades, read into memory as uint8.

Three layouts are understood:

- ``ROOT/{grade}/*.png``: one folder per KL grade (``turingtest.domain.scales.KL``);
- ``ROOT/{split}/{grade}/*``: the same under split folders (``train`` is read
  unless another split is asked for, so a held-out ``test`` split is never
  trained on by accident);
- a packed ``.npz`` with ``images`` (N, H, W) uint8 and ``labels`` (N,).

Images are centre-cropped to a square and resized with a box filter (an area
average, which does not alias when shrinking 224 to 64).

``python -m generator.data ROOT --resolution 64 --out packed.npz`` packs a
folder so later runs skip decoding.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from turingtest.domain.scales import KL

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
GRADES = tuple(int(c) for c in KL.codes)  # KL is ordinal: whole numbers


@dataclass(frozen=True)
class Dataset:
    images: np.ndarray  # (N, R, R) uint8
    labels: np.ndarray  # (N,) int64 KL grades
    files: tuple[str, ...]  # relative paths, or "" for packed arrays
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> dict[int, int]:
        return {g: int((self.labels == g).sum()) for g in GRADES}

    def description(self) -> dict:
        """What a model was trained on: where, how many, and a fingerprint."""
        h = hashlib.sha256()
        h.update(self.images.tobytes())
        h.update(self.labels.astype(np.int64).tobytes())
        return {
            "source": self.source,
            "n_images": len(self),
            "per_grade": {str(g): n for g, n in self.counts().items()},
            "resolution": int(self.images.shape[-1]) if len(self) else None,
            "sha256": h.hexdigest(),
        }


def grade_folders(root: Path, split: str = "train") -> Path:
    """The folder whose children are the grades' folders, following the split."""
    if any((root / str(g)).is_dir() for g in GRADES):
        return root
    if (root / split).is_dir():
        return grade_folders(root / split, split)
    raise FileNotFoundError(
        f"{root}: expected grade folders {KL.range_text('-')}, a {split!r} split "
        "holding them, "
        "or a packed .npz"
    )


def list_images(root: str | Path, split: str = "train") -> list[tuple[Path, int]]:
    folder = grade_folders(Path(root), split)
    out = []
    for g in GRADES:
        d = folder / str(g)
        if d.is_dir():
            files = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            out += [(p, g) for p in files]
    return out


def to_square(img: Image.Image, resolution: int | None) -> np.ndarray:
    img = img.convert("L")
    w, h = img.size
    if w != h:
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        img = img.crop((left, top, left + s, top + s))
    if resolution is not None and img.size[0] != resolution:
        img = img.resize((resolution, resolution), Image.Resampling.BOX)
    return np.asarray(img, dtype=np.uint8)


def resize_array(images: np.ndarray, resolution: int) -> np.ndarray:
    """(N, H, W) uint8 -> (N, R, R) uint8."""
    if images.shape[-1] == resolution and images.shape[-2] == resolution:
        return images
    return np.stack([to_square(Image.fromarray(a), resolution) for a in images])


def load_dataset(
    path: str | Path,
    resolution: int | None = None,
    split: str = "train",
    limit_per_grade: int | None = None,
) -> Dataset:
    """Read every image under ``path`` (see the module docstring) into memory."""
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path) as z:
            images, labels = z["images"], z["labels"].astype(np.int64)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise ValueError(f"{path}: images must be (N, H, W) uint8")
        if limit_per_grade is not None:
            keep = np.concatenate(
                [np.flatnonzero(labels == g)[:limit_per_grade] for g in GRADES]
            )
            images, labels = images[np.sort(keep)], labels[np.sort(keep)]
        if resolution is not None:
            images = resize_array(images, resolution)
        return Dataset(images, labels, ("",) * len(labels), str(path.resolve()))

    listed = list_images(path, split)
    if limit_per_grade is not None:
        per: dict[int, int] = {}
        kept = []
        for p, g in listed:
            if per.get(g, 0) < limit_per_grade:
                kept.append((p, g))
                per[g] = per.get(g, 0) + 1
        listed = kept
    if not listed:
        raise FileNotFoundError(f"{path}: no images found")
    arrays = []
    for p, _ in listed:
        with Image.open(p) as img:
            arrays.append(to_square(img, resolution))
    sizes = {a.shape for a in arrays}
    if len(sizes) > 1:
        side = min(s[0] for s in sizes)
        arrays = [to_square(Image.fromarray(a), side) for a in arrays]
    root = grade_folders(path, split)
    return Dataset(
        images=np.stack(arrays),
        labels=np.array([g for _, g in listed], dtype=np.int64),
        files=tuple(str(p.relative_to(root)) for p, _ in listed),
        source=str(root.resolve()),
    )


def save_npz(dataset: Dataset, out: str | Path) -> None:
    np.savez_compressed(out, images=dataset.images, labels=dataset.labels)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("path")
    ap.add_argument("--out", required=True, help="the .npz to write")
    ap.add_argument("--resolution", type=int)
    ap.add_argument("--split", default="train")
    args = ap.parse_args(argv)
    ds = load_dataset(args.path, args.resolution, args.split)
    save_npz(ds, args.out)
    print(json.dumps(ds.description(), indent=2))


if __name__ == "__main__":
    main()
