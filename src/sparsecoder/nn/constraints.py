"""Constraints that keep a decoder from absorbing the code scale (SPEC §2.5, paper §3.2).

* :func:`unit_norm_columns_` / :func:`unit_norm_decoder_` — the SDL/DO guard: every column of every
  decoder ``nn.Linear`` is rescaled to unit L2 norm at initialisation and after every optimiser step.
* :func:`weight_decay_param_groups` — optimiser parameter groups with separate weight decay for weight
  matrices and biases (WDL's decay on decoder weights; wd(b), wd(b1) of the paper's Table 3).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["unit_norm_columns_", "unit_norm_decoder_", "weight_decay_param_groups"]


@torch.no_grad()
def unit_norm_columns_(weight: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    r"""Project each column of ``weight`` onto the unit L2 sphere, in place, and return it.

    .. math:: W_{:,j} \leftarrow W_{:,j} / \max(\lVert W_{:,j}\rVert_2, \epsilon)

    For an ``nn.Linear`` weight of shape ``(out, in)`` a column is everything input unit ``j`` writes
    to the next layer (for a linear dictionary: atom ``j``). A column of exact zeros stays zero. Each
    column is first divided by its largest ``|entry|``, so that its norm neither overflows (float32:
    entries beyond ~1e19, whose squares are inf, used to zero the column) nor falls below ``eps`` (a
    column of 1e-30s used to stay off the sphere): every non-zero finite column ends at norm 1.

    Parameters
    ----------
    weight : Tensor, shape (out, in)
    eps : float
        Floor on the norm, guards the division for all-zero columns.
    """
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise ValueError(f"unit_norm_columns_ expects a 2-D weight (out, in), got {shape}")
    if weight.is_meta:  # no values to project (a model built on the meta device to count its parameters;
        return weight   # torch's meta norm would also import torch._dynamo, seconds on a first call)
    if weight.numel() == 0:
        return weight
    largest = weight.abs().amax(dim=0, keepdim=True)
    weight.div_(torch.where(largest > 0, largest, torch.ones_like(largest)))
    weight.div_(weight.norm(dim=0, keepdim=True).clamp_min(eps))
    return weight


@torch.no_grad()
def unit_norm_decoder_(decoder: nn.Module) -> None:
    """Apply :func:`unit_norm_columns_` to the weight of every ``nn.Linear`` inside ``decoder``.

    For the one-hidden-layer decoder this fixes the column norms of both ``W1`` and ``W2`` (paper §4,
    "Autoencoders Training": the natural extension of SDL to a multi-layer decoder).
    """
    for module in decoder.modules():
        if isinstance(module, nn.Linear):
            unit_norm_columns_(module.weight)


def weight_decay_param_groups(
    module: nn.Module, lr: float, *, weight_decay: float = 0.0, bias_weight_decay: float = 0.0
) -> list[dict]:
    """Optimiser parameter groups: weight matrices get ``weight_decay``, biases ``bias_weight_decay``.

    The decay is the L2 penalty of ``torch.optim.Adam(weight_decay=...)`` (added to the gradient), as in
    the authors' code. Empty groups are left out.

    Parameters
    ----------
    module : nn.Module
        Whose trainable parameters to split; a parameter whose name ends in ``bias`` is a bias.
    lr : float
        Learning rate of both groups.
    weight_decay, bias_weight_decay : float
        Non-negative decay coefficients.
    """
    for name, value in (("weight_decay", weight_decay), ("bias_weight_decay", bias_weight_decay)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    weights, biases = [], []
    for name, param in module.named_parameters():
        if param.requires_grad:
            (biases if name.endswith("bias") else weights).append(param)
    groups = [
        {"params": weights, "lr": lr, "weight_decay": weight_decay, "name": "weights"},
        {"params": biases, "lr": lr, "weight_decay": bias_weight_decay, "name": "biases"},
    ]
    return [g for g in groups if g["params"]]
