"""Pack a training run's checkpoint for shipping: fp16 weights, no optimiser.

    python -m generator.release runs/default/checkpoint.pt --out assets/weights/knee-default.pt

The released file samples exactly like the run's (``generator.sample``) and
can be trained further: ``python -m generator.train --resume`` reads it
(copied as ``OUT_DIR/checkpoint.pt``), starting Adam's moments afresh. Half
precision halves the file; the averaged generator's images change by at most
one grey level in a few pixels. The run's ``training_options.json`` (and any
``training_options.resume-*.json``) are copied beside it as
``<name>.training_options.json``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from generator.networks import checkpoint_load


def _half(state: dict) -> dict:
    return {k: v.half() if torch.is_floating_point(v) else v for k, v in state.items()}


def _portable(value, root: str):
    """Paths under ``root`` (the working folder) made relative: a shipped file
    names no folder of the machine that trained it."""
    if isinstance(value, str):
        return value[len(root) :] if value.startswith(root) else value
    if isinstance(value, dict):
        return {k: _portable(v, root) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_portable(v, root) for v in value)
    return value


def release(checkpoint: str | Path, out: str | Path) -> Path:
    """Write the slim checkpoint to ``out``; returns its path."""
    root = str(Path.cwd()) + os.sep
    ckpt = checkpoint_load(checkpoint)
    slim = {
        "version": ckpt["version"],
        "config": ckpt["config"],
        "step": ckpt["step"],
        "weights": {name: _half(ckpt["weights"][name]) for name in ("G", "D")},
        "ema": _half(ckpt["ema"]),
        "data": _portable(ckpt.get("data", {}), root),
        "options": _portable(ckpt.get("options", {}), root),
        "elapsed_s": ckpt.get("elapsed_s", 0.0),
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    torch.save(slim, tmp)
    os.replace(tmp, out)
    run = Path(checkpoint).parent
    records = [
        run / "training_options.json",
        *sorted(run.glob("training_options.resume-*.json")),
    ]
    history = [
        _portable(json.loads(p.read_text()), root) for p in records if p.exists()
    ]
    if history:
        (out.parent / f"{out.stem}.training_options.json").write_text(
            json.dumps(history, indent=2) + "\n"
        )
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m generator.release", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("checkpoint")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    path = release(args.checkpoint, args.out)
    print(f"{path}: {path.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
