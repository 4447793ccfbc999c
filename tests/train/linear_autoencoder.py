"""A tiny real model family for testing the trainer: a denoising linear autoencoder trained by Adam.

It is the demonstration that a model family is one file plus one registration: the module declares its
optimiser and returns its loss (:class:`sparsecoder.train.protocol.TrainableModel`), three plain functions
validate, evaluate and draw it, and :func:`register_model` at the bottom makes ``model:
test_linear_autoencoder`` trainable (it is a fixture of the trainer's tests, not a stand-in for any model
of the library): ``x̂ = W_d (W_e (x + ε)) + b``, ``ε ~
N(0, noise²)`` drawn from torch's global generator (so resuming must restore RNG states), loss = MSE.
Its learning rate is multiplied by ``lr_growth`` after every epoch (a schedule declared as data), so a
huge growth makes it diverge on purpose.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sparsecoder.config import CommonConfig, check, register_config
from sparsecoder.data.base import DataSplits, Split
from sparsecoder.eval.metrics import psnr, sparsity
from sparsecoder.models import register_model
from sparsecoder.train.protocol import OptimizerSpec, ParamGroupSpec, StepOutput

MODEL_NAME = "test_linear_autoencoder"


@register_config(MODEL_NAME)
@dataclasses.dataclass(frozen=True)
class LinearAutoencoderConfig(CommonConfig):
    n_components: int = 4
    lr: float = 1e-2
    lr_growth: float = 1.0
    noise: float = 0.1
    # validation also draws from the global generators, as a VAE's (which samples its latents) does
    validation_draws: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.n_components >= 1, "n_components", f"must be >= 1, got {self.n_components}")
        check(self.lr > 0, "lr", f"must be > 0, got {self.lr}")


class LinearAutoencoder(nn.Module):
    # Simulated Ctrl-C: when set, the training step that would be step number `interrupt_at_step`
    # (counted over all instances) raises KeyboardInterrupt instead; see `interrupted_at`.
    interrupt_at_step: int | None = None
    interrupt_signal: int | None = None  # instead: this signal is sent to the process (e.g. SIGTERM)
    steps_taken = 0

    def __init__(self, config: LinearAutoencoderConfig, n_features: int, image_shape=None):
        super().__init__()
        self.config = config
        self.image_shape = image_shape
        self.encoder = nn.Linear(n_features, config.n_components, bias=False)
        self.decoder = nn.Linear(config.n_components, n_features)

    @classmethod
    def from_config(cls, config, data: DataSplits):
        return cls(config, data.dim, data.image_shape)

    def forward(self, x):
        return self.decoder(self.encoder(x))

    # -- the trainer protocol: what to optimise; the trainer builds Adam and takes the steps --
    def optimizer_specs(self):
        return [OptimizerSpec("model", [ParamGroupSpec("all", list(self.parameters()), self.config.lr)],
                              lr_step_every=1, lr_step_factor=self.config.lr_growth)]

    def projections(self):
        return []

    def training_losses(self, batch, *, reduce=None):
        LinearAutoencoder.steps_taken += 1
        if LinearAutoencoder.steps_taken == LinearAutoencoder.interrupt_at_step:
            if LinearAutoencoder.interrupt_signal is None:
                raise KeyboardInterrupt
            os.kill(os.getpid(), LinearAutoencoder.interrupt_signal)  # handled before the next line runs
        noisy = batch + self.config.noise * torch.randn_like(batch)
        loss = F.mse_loss(self(noisy), batch)
        return StepOutput(losses={"model": loss},
                          logs={"loss": loss.item(), "noise_norm": float((noisy - batch).norm(dim=1).mean())})

    @torch.no_grad()
    def encode(self, x):
        return self.encoder(x.to(torch.float32))


# -- evaluation and pictures: plain functions, registered with the family below --
@torch.no_grad()
def validation_metrics(model, split: Split):
    model.eval()
    x = split.x.to(model.decoder.weight.device)  # the splits stay on the CPU; the model may be on a GPU
    recon = model(x)
    if model.config.validation_draws:
        recon = recon + 1e-3 * torch.randn_like(recon)
        np.random.standard_normal(10)
        random.random()
    return {"val_loss": float(F.mse_loss(recon, x)),
            "val_psnr": psnr(split.to_pixels(split.x), split.to_pixels(recon.cpu()))}


@torch.no_grad()
def evaluate(model, data: DataSplits):
    model.eval()
    x = data.test.x.to(model.decoder.weight.device)  # the splits stay on the CPU; the model may be on a GPU
    codes = model.encode(x)
    recon = model.decoder(codes)
    return {"mse": float(F.mse_loss(recon, x)),
            "psnr": psnr(data.test.to_pixels(data.test.x), data.test.to_pixels(recon.cpu())),
            "sparsity": sparsity(codes),
            "column_norms": model.decoder.weight.norm(dim=0)}


def pictures(model, data: DataSplits, out_dir: Path):
    from sparsecoder.viz import atom_grid

    path = Path(out_dir) / "atoms.png"
    atom_grid(model.decoder.weight.detach(), data.image_shape, path)
    return [path]


# The one registration that makes this file a model family.
register_model(MODEL_NAME, LinearAutoencoder, validate=validation_metrics, evaluate=evaluate,
               pictures=pictures)


@contextlib.contextmanager
def interrupted_at(step: int, signum: int | None = None):
    """Within the block, the ``step``-th training step (1-based, from entering the block) raises
    :class:`KeyboardInterrupt`, like a user pressing Ctrl-C mid-epoch; given ``signum``, it sends that
    signal to this process instead (a real ``kill -TERM`` arriving mid-epoch)."""
    LinearAutoencoder.steps_taken = 0
    LinearAutoencoder.interrupt_at_step = step
    LinearAutoencoder.interrupt_signal = signum
    try:
        yield
    finally:
        LinearAutoencoder.interrupt_at_step = None
        LinearAutoencoder.interrupt_signal = None


def synthetic_splits(seed: int = 0, n_train: int = 240, n_val: int = 60, n_test: int = 60, side: int = 4,
                     rank: int = 3) -> DataSplits:
    """Low-rank images plus noise in a normalised space whose pixel map is ``x * 0.25 + 0.5``."""
    g = torch.Generator().manual_seed(seed)
    d = side * side
    basis = torch.randn(rank, d, generator=g)

    def split(n):
        x = torch.randn(n, rank, generator=g) @ basis + 0.05 * torch.randn(n, d, generator=g)
        return Split(x=x.float(), labels=torch.arange(n) % 3, scale=0.25, offset=0.5)

    return DataSplits(name="synthetic-lowrank", train=split(n_train), val=split(n_val), test=split(n_test),
                      image_shape=(side, side), normalization="none (synthetic)", n_classes=3)
