"""``fista``'s ``n_components`` must agree with the code size the decoder or ``z0`` fixes: it was ignored
silently there (a (d, 20) dictionary with n_components=7 returned 20-column codes)."""

import pytest
import torch
from torch import nn

from sparsecoder.inference import fista


@pytest.mark.parametrize("kind", ["tensor", "linear", "z0"])
def test_n_components_that_disagrees_is_refused_naming_both(kind):
    torch.manual_seed(0)
    Y = torch.randn(6, 10)
    linear = nn.Linear(20, 10)
    if kind == "tensor":
        decoder, extra = linear.weight.detach(), {}
    elif kind == "linear":
        decoder, extra = linear, {}
    else:
        decoder, extra = nn.Sequential(linear), {"z0": torch.zeros(6, 20)}
    with pytest.raises(ValueError, match="n_components=7 but .* 20"):
        fista(Y, decoder, 0.01, n_components=7, **extra)
    assert fista(Y, decoder, 0.01, n_components=20, max_iter=5, **extra).codes.shape == (6, 20)
