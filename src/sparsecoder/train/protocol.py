"""What the shared trainer (:mod:`sparsecoder.train.trainer`) needs from a model family.

Both families (sparse autoencoders, VAEs) implement this; the trainer owns everything else: data
loading from the config, seeding, epochs and mini-batches, tqdm progress, ``history.csv``,
``checkpoint.pt`` (resume), best-checkpoint selection on ``val_loss``, the NaN/inf guard, the final
``metrics.json`` and the pictures.
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
