"""A small real run folder (sdl-mnist preset, embedded MNIST), trained once per test session and copied."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from sparsecoder.train import train

torch.set_num_threads(1)

TINY = {"epochs": 1, "limit": 100, "fista_max_iter": 10, "num_threads": 1, "device": "cpu",
        "n_components": 16}
TINY_SET = [f"{k}={v}" for k, v in TINY.items()]
_TRAINED: dict[str, Path] = {}


def fresh_run(tmp_path_factory, destination: Path) -> Path:
    """A copy at ``destination`` of a one-epoch ``sdl-mnist`` run (trained on first use)."""
    if "run" not in _TRAINED:
        source = tmp_path_factory.mktemp("trained") / "run"
        train("sdl-mnist", source, overrides=dict(TINY), progress=False)
        _TRAINED["run"] = source
    shutil.copytree(_TRAINED["run"], destination)
    return destination
