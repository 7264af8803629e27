import json
import subprocess
import sys

from generator.networks import checkpoint_load

# Failures of the local rendezvous itself (a port taken between torchrun
# choosing it and binding it), not of the training code: worth one more try.
RENDEZVOUS_ERRORS = (
    "DistNetworkError",
    "RendezvousConnectionError",
    "EADDRINUSE",
    "Address already in use",
)


def _torchrun(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            *args,
        ],
        timeout=300,
        capture_output=True,
        text=True,
    )


def test_two_process_gloo_training(knee_data, tmp_path):
    out = tmp_path / "ddp"
    args = [
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
    ]
    run = _torchrun(args)
    if run.returncode != 0 and any(
        e in run.stdout + run.stderr for e in RENDEZVOUS_ERRORS
    ):
        run = _torchrun(args)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    options = json.loads((out / "training_options.json").read_text())
    assert options["world_size"] == 2
    ckpt = checkpoint_load(out / "checkpoint.pt")
    assert ckpt["step"] == 2
