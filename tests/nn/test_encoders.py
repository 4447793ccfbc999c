"""LISTA encoder against SPEC §2.3 computed by hand in numpy."""

import numpy as np
import pytest
import torch

from sparsecoder.nn import LISTAEncoder


def _relu(x):
    return np.maximum(x, 0.0)


def test_lista_forward_matches_algorithm_1_by_hand():
    torch.manual_seed(0)
    encoder = LISTAEncoder(n_features=6, n_components=4, n_iterations=3).double()
    with torch.no_grad():
        encoder.input_layer.bias.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
    y = torch.randn(5, 6, dtype=torch.float64)
    U = encoder.input_layer.weight.detach().numpy()
    b = encoder.input_layer.bias.detach().numpy()
    S = encoder.lateral.weight.detach().numpy()
    expected = []
    for row in y.numpy():
        u = U @ row + b
        z = _relu(u)
        for _ in range(3):
            z = _relu(u + S @ z)
        expected.append(z)
    np.testing.assert_allclose(encoder(y).detach().numpy(), np.array(expected), rtol=1e-12, atol=1e-12)


def test_lista_zero_iterations_is_relu_of_affine_map_and_codes_are_nonnegative():
    torch.manual_seed(1)
    encoder = LISTAEncoder(8, 5, n_iterations=0)
    y = torch.randn(10, 8)
    expected = torch.relu(y @ encoder.input_layer.weight.T + encoder.input_layer.bias)
    torch.testing.assert_close(encoder(y), expected)
    assert bool((LISTAEncoder(8, 5)(y) >= 0).all())


def test_lista_bias_starts_at_zero_and_lateral_has_no_bias():
    encoder = LISTAEncoder(8, 5)
    assert torch.equal(encoder.input_layer.bias, torch.zeros(5))
    assert encoder.lateral.bias is None
    assert encoder.filters.shape == (5, 8)


@pytest.mark.parametrize("kwargs", [dict(n_features=0, n_components=3), dict(n_features=3, n_components=2.5),
                                    dict(n_features=3, n_components=2, n_iterations=-1)])
def test_lista_rejects_bad_sizes(kwargs):
    with pytest.raises(ValueError, match="LISTAEncoder"):
        LISTAEncoder(**kwargs)


def test_lista_takes_numpy_integer_sizes():
    encoder = LISTAEncoder(np.int64(8), np.int32(5), np.int64(2))
    assert encoder.filters.shape == (5, 8) and encoder.n_iterations == 2
