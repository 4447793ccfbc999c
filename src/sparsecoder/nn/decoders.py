"""Decoders ``D: R^l → R^d`` of the sparse autoencoders (Evtimova & LeCun 2022 §3.1; SPEC §2.4).

Both expose :meth:`atoms`, the ``(d, l)`` matrix whose column ``i`` is what code component ``i`` draws:
the dictionary column ``W e_i`` for the linear decoder, ``D(e_i) − D(0)`` for the non-linear one.
"""

from __future__ import annotations

import torch
from torch import nn

from sparsecoder.nn.sizes import check_size

__all__ = ["LinearDecoder", "MLPDecoder"]


class LinearDecoder(nn.Linear):
    r"""Linear dictionary ``ŷ = W z`` without bias, ``W ∈ R^{d×l}`` (SPEC §2.4).

    A subclass of a bias-free :class:`torch.nn.Linear`, so :func:`sparsecoder.inference.fista` uses
    its closed-form Gram gradient. ``weight`` is ``W`` itself: shape ``(d, l)``, one atom per column.
    """

    def __init__(self, n_components: int, n_features: int):
        n_components = check_size("LinearDecoder", "n_components", n_components)
        n_features = check_size("LinearDecoder", "n_features", n_features)
        super().__init__(n_components, n_features, bias=False)

    def atoms(self) -> torch.Tensor:
        """Dictionary columns ``W[:, i] = W e_i`` as a detached ``(d, l)`` tensor."""
        return self.weight.detach().clone()


class MLPDecoder(nn.Module):
    r"""Fully connected decoder with one hidden layer, ``ŷ = W2 ReLU(W1 z + b1)`` (SPEC §2.4).

    ``W1 ∈ R^{m×l}`` with bias ``b1`` (initialised to 0), ``W2 ∈ R^{d×m}`` without bias; PyTorch's
    default initialisation otherwise, as in the authors' code. m = 1024 (MNIST), 2048 (patches).

    Attributes
    ----------
    hidden : nn.Linear
        ``z ↦ W1 z + b1``.
    output : nn.Linear
        ``h ↦ W2 h`` (no bias).
    """

    def __init__(self, n_components: int, hidden_size: int, n_features: int):
        super().__init__()
        n_components = check_size("MLPDecoder", "n_components", n_components)
        hidden_size = check_size("MLPDecoder", "hidden_size", hidden_size)
        n_features = check_size("MLPDecoder", "n_features", n_features)
        self.hidden = nn.Linear(n_components, hidden_size, bias=True)
        with torch.no_grad():
            self.hidden.bias.zero_()
        self.output = nn.Linear(hidden_size, n_features, bias=False)

    @property
    def n_components(self) -> int:
        return self.hidden.in_features

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstructions ``(n, d)`` of codes ``(n, l)``."""
        return self.output(torch.relu(self.hidden(z)))

    @torch.no_grad()
    def atoms(self) -> torch.Tensor:
        r"""``D(e_i) − D(0)`` for each one-hot code ``e_i``, as a ``(d, l)`` tensor (paper §4.2, footnote 4).

        Subtracting ``D(0) = W2 ReLU(b1)`` removes the bias's contribution, so each column shows what
        switching on component ``i`` alone adds to the image.
        """
        # the hidden layer at e_i is column i of W1 plus b1: no (l, l) one-hot matrix is built
        hidden = self.hidden.weight.T + self.hidden.bias
        return (self.output(torch.relu(hidden)) - self.output(torch.relu(self.hidden.bias))).T.contiguous()
