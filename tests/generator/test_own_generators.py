"""A team's own model samples like a checkpoint of this package: TorchScript
files and ``package.module:function`` entry points."""

import numpy as np
import pytest
import torch
from torch import nn

from generator.sample import load


class _Ramp(nn.Module):
    """z (N, 8) and grade (N,) -> (N, 1, 24, 24): brightness from z, grade."""

    def __init__(self):
        super().__init__()
        self.z_dim = 8

    def forward(self, z: torch.Tensor, grade: torch.Tensor) -> torch.Tensor:
        level = torch.tanh(z.mean(dim=1, keepdim=True)) * 0.5 + grade[:, None] * 0.1
        return (level[:, :, None, None] - 0.2).expand(-1, 1, 24, 24)


@pytest.fixture
def torchscript_file(tmp_path):
    path = tmp_path / "ramp.pt"
    torch.jit.script(_Ramp()).save(str(path))
    return path


def test_a_torchscript_generator_samples_deterministically_per_seed(torchscript_file):
    sampler = load(torchscript_file, "cpu", kind="torchscript")
    a = sampler(3, [5, 6, 7], batch_size=2)
    assert a.shape == (3, 24, 24) and a.dtype == np.uint8
    alone = load(torchscript_file, "cpu", kind="torchscript")(3, [6], batch_size=2)
    assert np.array_equal(a[1], alone[0])  # an image depends on its seed only
    assert not np.array_equal(a[0], a[1])
    brighter = sampler(4, [5], batch_size=2)[0]
    assert brighter.mean() > a[0].mean()  # the grade reaches the model


def test_a_torchscript_file_without_z_dim_is_refused(tmp_path):
    class NoZ(nn.Module):
        def forward(self, z: torch.Tensor, grade: torch.Tensor) -> torch.Tensor:
            return z

    path = tmp_path / "noz.pt"
    torch.jit.script(NoZ()).save(str(path))
    with pytest.raises(ValueError, match="z_dim"):
        load(path, "cpu", kind="torchscript")


def test_a_file_that_is_not_torchscript_is_refused(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a TorchScript file"):
        load(path, "cpu", kind="torchscript")


def test_an_entry_point_samples_through_the_same_interface():
    spec = "tests.generator.entry_point_generator:make"
    sampler = load(spec, kind="entrypoint")
    batches = list(sampler.batches(2, [1, 2, 3], batch_size=2))
    assert [len(b) for b in batches] == [2, 1]
    images = np.concatenate(batches)
    assert images.shape == (3, 40, 40) and (images[:, :, :4] == 100).all()
    assert np.array_equal(images[2], sampler(2, [3])[0])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_colon_here", "package.module:function"),
        ("tests.generator.nowhere:make", "cannot import"),
        ("tests.generator.entry_point_generator:missing", "has no"),
    ],
)
def test_a_bad_entry_point_is_refused_clearly(spec, message):
    with pytest.raises(ValueError, match=message):
        load(spec, kind="entrypoint")
