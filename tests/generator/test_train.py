import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from generator.data import load_dataset, save_npz
from generator.networks import CHECKPOINT_VERSION, checkpoint_load
from generator.train import TrainOptions, train


def test_tiny_run_writes_checkpoint_options_metrics_and_grids(tiny_checkpoint):
    run = tiny_checkpoint.parent
    ckpt = checkpoint_load(tiny_checkpoint)
    assert ckpt["version"] == CHECKPOINT_VERSION
    assert ckpt["step"] == 4
    assert ckpt["config"]["name"] == "tiny"
    assert set(ckpt["weights"]) == {"G", "D"} and ckpt["ema"]
    assert len(ckpt["optim"]["g"]) == len(ckpt["optim"]["d"]) == 1
    assert ckpt["data"]["n_images"] == 40  # the train split only

    options = json.loads((run / "training_options.json").read_text())
    assert options["options"]["steps"] == 4 and options["config"]["resolution"] == 32
    rows = [
        json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all(np.isfinite([r["d_loss"], r["g_loss"], r["recon"]]).all() for r in rows)
    grid = np.asarray(Image.open(run / "samples" / "step-000004.png"))
    assert grid.shape == (5 * 32, 8 * 32)  # a row per grade


def _weights(path):
    return checkpoint_load(path)["weights"]["G"]


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_seeded_runs_repeat_and_resume_continues_the_same_run(tmp_path, knee_data):
    def run(name, steps, resume=False, seed=0):
        options = TrainOptions(
            data=str(knee_data),
            out=str(tmp_path / name),
            config="tiny",
            steps=steps,
            resume=resume,
            seed=seed,
            progress=False,
        )
        return train(options)

    straight = run("a", 3)
    assert _same(_weights(straight), _weights(run("b", 3)))
    run("d", 2)
    resumed = run("d", 3, resume=True)
    assert checkpoint_load(resumed)["step"] == 3
    assert _same(_weights(straight), _weights(resumed))
    assert (tmp_path / "d" / "training_options.resume-000002.json").exists()


def test_seed_config_trains_a_pair_per_grade(tmp_path, knee_data):
    options = TrainOptions(
        data=str(knee_data / "train"),
        out=str(tmp_path / "seed"),
        config="seed",
        steps=1,
        resolution=32,
        channels=2,
        batch_size=4,
        n_critic=1,
        progress=False,
    )
    ckpt = checkpoint_load(train(options))
    assert ckpt["config"]["conditional"] is False
    assert len(ckpt["optim"]["g"]) == 5


def test_packed_npz_reads_like_the_folders(tmp_path, knee_data):
    folders = load_dataset(knee_data, 16)
    save_npz(folders, tmp_path / "k.npz")
    packed = load_dataset(tmp_path / "k.npz")
    assert np.array_equal(folders.images, packed.images)
    assert np.array_equal(folders.labels, packed.labels)
    assert folders.description()["sha256"] == packed.description()["sha256"]
    # the held-out split is only read when asked for
    assert len(load_dataset(knee_data, split="test")) == 20


def test_dry_run_prints_resolved_options(knee_data, tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "generator.train",
            "--data",
            str(knee_data),
            "--config",
            "seed",
            "--out",
            str(tmp_path / "x"),
            "--steps",
            "5",
            "--resolution",
            "64",
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    resolved = json.loads(out)
    assert resolved["config"]["resolution"] == 64
    assert resolved["config"]["n_critic"] == 5
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("bad", [["--steps", "1", "--minutes", "1"]])
def test_steps_and_minutes_exclude_each_other(bad, knee_data, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "generator.train",
            "--data",
            str(knee_data),
            "--out",
            str(tmp_path),
            *bad,
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0


def test_a_released_checkpoint_samples_alike_and_trains_on(
    tiny_checkpoint, knee_data, tmp_path
):
    from generator.release import release
    from generator.sample import Sampler

    shipped = release(tiny_checkpoint, tmp_path / "weights" / "tiny.pt")
    assert shipped.stat().st_size < tiny_checkpoint.stat().st_size / 2
    assert (tmp_path / "weights" / "tiny.training_options.json").exists()
    a = Sampler(tiny_checkpoint, "cpu")(1, range(6)).astype(int)
    b = Sampler(shipped, "cpu")(1, range(6)).astype(int)
    assert np.abs(a - b).max() <= 2  # fp16 weights: a grey level or two at most

    run = tmp_path / "again"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(shipped.read_bytes())
    options = TrainOptions(
        data=str(knee_data),
        out=str(run),
        config="tiny",
        steps=6,
        resume=True,
        progress=False,
    )
    assert checkpoint_load(train(options))["step"] == 6
