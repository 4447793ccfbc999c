"""Encoders and decoders of the VAE families (SPEC §4–§5).

Encoders map ``x (n, d)`` to the posterior's ``(loc, log_scale)``, each ``(n, l)``:

* ``"mlp"`` — Barello et al. 2018: two linear layers with ReLU, then separate linear heads for the mean
  and the log-variance (the log-scale is half the log-variance).
* ``"resnet"`` — Jiang & de la Iglesia: a linear stem, residual MLP blocks
  ``h ← h + W₂ ReLU(W₁ ReLU(h))``, then the two heads.
* ``"pyle"`` — Pyle: a 500-500 MLP with softplus activations, then the two heads.

Decoders: the linear overcomplete dictionary ``x̂ = U z`` (no bias; :class:`LinearDecoder`) of the
sparse-coding VAEs, and Pyle's 500-500 softplus MLP whose output is a logit (sigmoid gives the mean in
[0, 1]).
"""

from __future__ import annotations

import torch
from torch import nn

from sparsecoder.nn.decoders import LinearDecoder

ENCODERS = ("mlp", "resnet", "pyle")
DECODERS = ("linear", "pyle")


class ResidualBlock(nn.Module):
    """``h + W₂ ReLU(W₁ ReLU(h))`` — a pre-activation ResNet block on vectors (He et al. 2016)."""

    def __init__(self, width: int):
        super().__init__()
        self.first = nn.Linear(width, width)
        self.second = nn.Linear(width, width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.second(torch.relu(self.first(torch.relu(h))))


class PosteriorEncoder(nn.Module):
    """A body network followed by two linear heads: location and log-scale of ``q(z|x)``."""

    def __init__(self, kind: str, n_features: int, n_latents: int, hidden_size: int, n_blocks: int = 2):
        super().__init__()
        if kind not in ENCODERS:
            raise ValueError(f"encoder {kind!r} is not allowed; choose one of {list(ENCODERS)}")
        self.kind = kind
        if kind == "mlp":
            self.body = nn.Sequential(
                nn.Linear(n_features, hidden_size), nn.ReLU(), nn.Linear(hidden_size, hidden_size), nn.ReLU()
            )
        elif kind == "resnet":
            blocks = [ResidualBlock(hidden_size) for _ in range(n_blocks)]
            self.body = nn.Sequential(nn.Linear(n_features, hidden_size), *blocks, nn.ReLU())
        else:
            self.body = nn.Sequential(
                nn.Linear(n_features, hidden_size), nn.Softplus(), nn.Linear(hidden_size, hidden_size),
                nn.Softplus(),
            )
        self.loc_head = nn.Linear(hidden_size, n_latents)
        self.log_scale_head = nn.Linear(hidden_size, n_latents)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.loc_head(h), self.log_scale_head(h)


class PyleDecoder(nn.Module):
    """Pyle's decoder: ``logits = W₃ softplus(W₂ softplus(W₁ z + b₁) + b₂) + b₃``; mean = sigmoid(logits)."""

    def __init__(self, n_latents: int, hidden_size: int, n_features: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_latents, hidden_size), nn.Softplus(),
            nn.Linear(hidden_size, hidden_size), nn.Softplus(),
            nn.Linear(hidden_size, n_features),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    @torch.no_grad()
    def atoms(self) -> torch.Tensor:
        """``(d, l)``: ``sigmoid(D(eᵢ)) − sigmoid(D(0))`` — what each latent alone adds to the mean image.

        The first layer of ``D(eᵢ)`` is its weight's column ``i`` plus the bias, so the ``l`` inputs are
        ``W₁ᵀ + b₁`` (``(l, hidden)``, the weight's own size) rather than ``torch.eye(l)`` through the layer,
        an ``(l, l)`` tensor (10 GB for 50,000 latents of a model with 1.3M parameters).
        """
        first = self.net[0]
        zero = torch.zeros(1, first.in_features, dtype=first.weight.dtype, device=first.weight.device)
        unit_inputs = self.net[1:](first.weight.T + first.bias)
        return (torch.sigmoid(unit_inputs) - torch.sigmoid(self(zero))).T


def build_decoder(kind: str, n_latents: int, hidden_size: int, n_features: int) -> nn.Module:
    if kind == "linear":
        return LinearDecoder(n_latents, n_features)
    if kind == "pyle":
        return PyleDecoder(n_latents, hidden_size, n_features)
    raise ValueError(f"decoder {kind!r} is not allowed; choose one of {list(DECODERS)}")
