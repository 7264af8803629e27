from pathlib import Path

import numpy as np
import pytest

# The shared reference data live beside the repository, never inside it.
MRMC_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "mrmc"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240601)


@pytest.fixture
def vandyke() -> np.ndarray:
    path = MRMC_DATA / "vandyke.csv"
    if not path.exists():
        pytest.skip(f"Van Dyke reference data not found at {path}")
    return np.loadtxt(path, delimiter=",", skiprows=1)
