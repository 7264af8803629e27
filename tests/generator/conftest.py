"""Small knee-like datasets and one tiny trained checkpoint, shared by the tests."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

SIZE = 32


def knee_like(grade: int, seed: int, size: int = SIZE) -> np.ndarray:
    """The project's phantom where it exists, else a grade-dependent pattern."""
    try:
        from turingtest.imaging.phantom import knee_phantom
    except ImportError:
        rng = np.random.default_rng([grade, seed])
        y, x = np.mgrid[:size, :size] / size
        gap = 0.12 - 0.02 * grade  # the joint space narrows with grade
        bone = (np.abs(y - 0.5) > gap / 2) * (np.abs(x - 0.5) < 0.35)
        img = 40 + 150 * bone + rng.normal(0, 12, (size, size))
        return np.clip(img, 0, 255).astype(np.uint8)
    return knee_phantom(grade, seed, size=size)


def write_grades(root, per_grade: int, seed0: int, size: int = SIZE) -> None:
    for g in range(5):
        folder = root / str(g)
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_grade):
            img = knee_like(g, seed0 + 1000 * g + i, size)
            Image.fromarray(img).save(folder / f"k{g}-{i:03d}.png")


@pytest.fixture(scope="session")
def knee_data(tmp_path_factory):
    """``{train,test}/{grade}/*.png`` at 32x32: 8 training and 4 test images a grade."""
    root = tmp_path_factory.mktemp("knee")
    write_grades(root / "train", 8, seed0=0)
    write_grades(root / "test", 4, seed0=50_000)
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, knee_data):
    """A ``tiny`` run of four steps; returns its checkpoint path."""
    from generator.train import TrainOptions, train

    out = tmp_path_factory.mktemp("run") / "tiny"
    options = TrainOptions(
        data=str(knee_data), out=str(out), config="tiny", steps=4, progress=False
    )
    return train(options)
