import json
import subprocess
import sys

from generator.networks import checkpoint_load


def test_two_process_gloo_training(knee_data, tmp_path):
    out = tmp_path / "ddp"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "generator.train",
            "--data",
            str(knee_data),
            "--config",
            "tiny",
            "--out",
            str(out),
            "--steps",
            "2",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--no-progress",
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    options = json.loads((out / "training_options.json").read_text())
    assert options["world_size"] == 2
    ckpt = checkpoint_load(out / "checkpoint.pt")
    assert ckpt["step"] == 2
