import numpy as np
import torch
from PIL import Image

import generator
from generator.networks import checkpoint_load, model_from_checkpoint
from generator.sample import Sampler, main, parse_ranges, sample


def test_seeded_sampling_is_deterministic_and_batch_independent(tiny_checkpoint):
    seeds = [5, 6, 7, 8, 9, 10, 11]
    a = sample(tiny_checkpoint, 2, seeds, batch_size=4)
    assert a.dtype == np.uint8 and a.shape == (7, 32, 32)
    fresh = Sampler(tiny_checkpoint)  # not the cached one
    assert np.array_equal(a, fresh(2, seeds, batch_size=4))
    # other companions, other order, other positions in the batch
    assert np.array_equal(
        a[::-1], sample(tiny_checkpoint, 2, seeds[::-1], batch_size=4)
    )
    for k, s in enumerate(seeds):
        assert np.array_equal(a[k], sample(tiny_checkpoint, 2, [s], batch_size=4)[0])
    # another batch size may only round differently
    b = sample(tiny_checkpoint, 2, seeds, batch_size=1)
    assert np.abs(a.astype(int) - b).max() <= 1
    assert not np.array_equal(a[0], a[1])  # different seeds, different images


def test_conditional_samples_differ_by_grade(tiny_checkpoint):
    seeds = range(6)
    per_grade = [sample(tiny_checkpoint, g, seeds).astype(float) for g in range(5)]
    for g in range(1, 5):
        assert np.abs(per_grade[g] - per_grade[0]).mean() > 0.5


def test_checkpoint_round_trip(tiny_checkpoint, tmp_path):
    ckpt = checkpoint_load(tiny_checkpoint)
    model = model_from_checkpoint(ckpt)
    for key, value in model.g_ema.state_dict().items():
        assert torch.equal(value, ckpt["ema"][key])
    for key, value in model.D.state_dict().items():
        assert torch.equal(value, ckpt["weights"]["D"][key])
    copy = tmp_path / "copy.pt"
    torch.save(ckpt | {"ema": model.g_ema.state_dict()}, copy)
    assert np.array_equal(sample(copy, 1, [3]), sample(tiny_checkpoint, 1, [3]))


def test_the_package_is_callable_as_generator_sample(tiny_checkpoint):
    assert np.array_equal(
        generator.sample(tiny_checkpoint, 0, [1]), sample(tiny_checkpoint, 0, [1])
    )


def test_cli_writes_grade_folders(tiny_checkpoint, tmp_path):
    assert parse_ranges("0-2,9") == [0, 1, 2, 9]
    main(
        [str(tiny_checkpoint), "--grade", "3", "--seeds", "0-2", "--out", str(tmp_path)]
    )
    files = sorted((tmp_path / "3").glob("*.png"))
    assert [f.name for f in files] == [f"seed-00000{i}.png" for i in range(3)]
    expected = sample(tiny_checkpoint, 3, [2])[0]
    assert np.array_equal(np.asarray(Image.open(files[2])), expected)
