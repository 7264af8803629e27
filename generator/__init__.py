"""Synthetic knee radiographs: train, sample and judge WGAN-GP generators.

Pure PyTorch; nothing here imports Django. ``import generator`` stays cheap:
torch loads only when a submodule is used.

    import generator
    images = generator.sample("runs/default/checkpoint.pt", grade=2, seeds=range(8))

Submodules: ``networks`` (models, configs, checkpoints), ``data``, ``train``,
``sample`` and ``evaluate`` (the machine Turing test); each of the last four
is also a command, ``python -m generator.<name> --help``.
"""

import importlib

__all__ = ["sample"]


def __getattr__(name: str):
    # `generator.sample` is the sampling module, which is itself callable as
    # `generator.sample(checkpoint, grade, seeds)`; importing it lazily keeps
    # torch out of processes that only need the package name.
    if name == "sample":
        return importlib.import_module("generator.sample")
    raise AttributeError(f"module 'generator' has no attribute {name!r}")
