"""Encoders that predict sparse codes in one forward pass (amortised inference).

:class:`LISTAEncoder` is the LISTA-inspired encoder of Evtimova & LeCun 2022, Algorithm 1 (SPEC §2.3),
after Gregor & LeCun 2010.
"""

from __future__ import annotations

import torch
from torch import nn

from sparsecoder.nn.sizes import check_size

__all__ = ["LISTAEncoder"]


class LISTAEncoder(nn.Module):
    r"""LISTA encoder with non-negative outputs (Evtimova & LeCun 2022, Algorithm 1; SPEC §2.3).

    .. math::
        u = U y + b, \qquad z_0 = \mathrm{ReLU}(u), \qquad
        z_i = \mathrm{ReLU}(u + S z_{i-1}),\ i = 1..L, \qquad E(y) = z_L

    ``U`` is ``(l, d)`` with bias ``b`` (initialised to 0); ``S`` is a free ``(l, l)`` matrix without bias.
    Weights use PyTorch's default ``nn.Linear`` initialisation, as in the authors' code.

    Parameters
    ----------
    n_features : int
        Input size ``d``.
    n_components : int
        Code size ``l``.
    n_iterations : int
        ``L`` ≥ 0, the number of recurrent refinements (3 in the paper).

    Attributes
    ----------
    input_layer : nn.Linear
        ``y ↦ U y + b``; ``input_layer.weight`` is ``U`` (rows = the encoder's filters).
    lateral : nn.Linear
        ``z ↦ S z`` (no bias).
    """

    def __init__(self, n_features: int, n_components: int, n_iterations: int = 3):
        super().__init__()
        n_features = check_size("LISTAEncoder", "n_features", n_features)
        n_components = check_size("LISTAEncoder", "n_components", n_components)
        n_iterations = check_size("LISTAEncoder", "n_iterations", n_iterations, low=0)
        self.n_iterations = n_iterations
        self.input_layer = nn.Linear(n_features, n_components, bias=True)
        with torch.no_grad():
            self.input_layer.bias.zero_()
        self.lateral = nn.Linear(n_components, n_components, bias=False)

    @property
    def filters(self) -> torch.Tensor:
        """``U`` as an ``(l, d)`` tensor: one filter per code component (row)."""
        return self.input_layer.weight

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """Codes ``E(y)`` of shape ``(n, l)`` for inputs ``y`` of shape ``(n, d)``."""
        u = self.input_layer(y)
        z = torch.relu(u)
        for _ in range(self.n_iterations):
            z = torch.relu(u + self.lateral(z))
        return z
