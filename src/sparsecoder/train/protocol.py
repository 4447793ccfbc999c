"""What the shared trainer (:mod:`sparsecoder.train.trainer`) needs from a model family.

Both families (sparse autoencoders, VAEs) implement this; the trainer owns everything else: data
loading from the config, seeding, epochs and mini-batches, tqdm progress, ``history.csv``,
``checkpoint.pt`` (resume), best-checkpoint selection on ``val_loss``, the NaN/inf guard, the final
``metrics.json`` and the pictures.

What the trainer relies on beyond the signatures below:

* ``state_dict()`` / ``load_state_dict()`` (an ``nn.Module`` has them) hold *all* the model's state that
  training changes, apart from the optimisers; the weights go to ``model.safetensors`` (tensors only)
  and ``checkpoint.pt``. Per-epoch schedules must live in the optimisers' ``param_groups`` (e.g. ``lr``)
  so that ``checkpoint.pt`` captures them.
* Randomness inside ``training_step`` should come from torch's (or NumPy's / ``random``'s) global
  generator: the trainer seeds them and saves/restores their states, so a resumed run is exact.
* Divergence guard: every ``training_step`` log named ``loss``, ``energy`` or ending in ``_loss`` must be
  finite, so is ``val_loss`` and every floating-point tensor of ``state_dict()``; else the run stops.
* Training logs and validation metrics share one ``history.csv`` row, so their names must differ
  (validation metrics start with ``val_``).
* ``training_step`` receives float32 rows already on the model's device (``model.device`` if it is a
  ``torch.device``, else the device of its first parameter).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch

from sparsecoder.data.base import DataSplits, Split


class TrainableModel(Protocol):
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Named optimisers (their state goes into checkpoint.pt; their lrs into history.csv)."""

    def training_step(self, batch: torch.Tensor) -> dict[str, float]:
        """One mini-batch: all optimiser steps and projections; returns scalar logs to average."""

    def end_epoch(self, epoch: int) -> None:
        """Per-epoch schedules (e.g. halving a learning rate every 30 epochs)."""

    def validation_metrics(self, split: Split) -> dict[str, float]:
        """Metrics on a split; must contain ``val_loss`` (lower is better, used for early stopping)."""

    def evaluate(self, data: DataSplits) -> dict:
        """Final test metrics written to metrics.json."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes for model-space rows ``x`` (amortised: encoder / posterior mean)."""

    def save_pictures(self, data: DataSplits, out_dir: Path) -> list[Path]:
        """Write the family's PNGs into ``out_dir`` and return their paths."""

    def state_dict(self) -> dict:
        """All tensors training changes (``nn.Module.state_dict``)."""

    def load_state_dict(self, state_dict: dict):
        """Inverse of :meth:`state_dict` (``nn.Module.load_state_dict``, strict)."""
