"""Decoders of SPEC §2.4: forward maps and their atoms."""

import numpy as np
import pytest
import torch

from sparsecoder.inference import fista
from sparsecoder.nn import LinearDecoder, MLPDecoder


def test_linear_decoder_is_Wz_without_bias_and_atoms_are_columns():
    torch.manual_seed(0)
    decoder = LinearDecoder(n_components=4, n_features=7)
    assert decoder.bias is None and decoder.weight.shape == (7, 4)
    z = torch.rand(3, 4)
    torch.testing.assert_close(decoder(z), z @ decoder.weight.T)
    atoms = decoder.atoms()
    torch.testing.assert_close(atoms[:, 2], decoder.weight[:, 2])
    torch.testing.assert_close(atoms, decoder(torch.eye(4)).T)


def test_mlp_decoder_forward_by_hand():
    torch.manual_seed(0)
    decoder = MLPDecoder(n_components=3, hidden_size=5, n_features=4).double()
    with torch.no_grad():
        decoder.hidden.bias.copy_(torch.tensor([0.2, -0.1, 0.0, 0.3, -0.4]))
    assert decoder.output.bias is None
    z = torch.rand(6, 3, dtype=torch.float64)
    W1 = decoder.hidden.weight.detach().numpy()
    b1 = decoder.hidden.bias.detach().numpy()
    W2 = decoder.output.weight.detach().numpy()
    expected = np.maximum(z.numpy() @ W1.T + b1, 0.0) @ W2.T
    np.testing.assert_allclose(decoder(z).detach().numpy(), expected, rtol=1e-12)


def test_mlp_hidden_bias_starts_at_zero():
    assert torch.equal(MLPDecoder(3, 5, 4).hidden.bias, torch.zeros(5))


def test_mlp_atoms_equal_D_of_one_hot_minus_D_of_zero():
    torch.manual_seed(2)
    decoder = MLPDecoder(n_components=6, hidden_size=9, n_features=5).double()
    with torch.no_grad():
        decoder.hidden.bias.uniform_(-0.5, 0.5)  # a non-zero b1 so that D(0) != 0
    W1 = decoder.hidden.weight.detach().numpy()
    b1 = decoder.hidden.bias.detach().numpy()
    W2 = decoder.output.weight.detach().numpy()
    zero_output = W2 @ np.maximum(b1, 0.0)
    assert np.abs(zero_output).max() > 1e-3
    atoms = decoder.atoms().numpy()
    assert atoms.shape == (5, 6)
    for i in range(6):
        one_hot = np.zeros(6)
        one_hot[i] = 1.0
        np.testing.assert_allclose(atoms[:, i], W2 @ np.maximum(W1 @ one_hot + b1, 0.0) - zero_output,
                                   rtol=1e-12, atol=1e-12)


def test_linear_decoder_takes_fistas_closed_form_path_with_same_codes_as_a_tensor():
    torch.manual_seed(3)
    decoder = LinearDecoder(8, 12).double()
    Y = torch.randn(10, 12, dtype=torch.float64)
    via_module = fista(Y, decoder, 0.01, step=0.5, max_iter=300, tol=1e-8).codes
    via_tensor = fista(Y, decoder.weight.detach(), 0.01, step=0.5, max_iter=300, tol=1e-8).codes
    torch.testing.assert_close(via_module, via_tensor)


@pytest.mark.parametrize("factory", [lambda: LinearDecoder(0, 3), lambda: MLPDecoder(3, 0, 4)])
def test_decoders_reject_bad_sizes(factory):
    with pytest.raises(ValueError, match="must be an integer >= 1"):
        factory()


def test_decoders_take_numpy_integer_sizes():
    # a size computed with NumPy (e.g. from an array's shape arithmetic) is an integer, not a bad size
    assert LinearDecoder(np.int64(3), np.int32(4)).weight.shape == (4, 3)
    assert MLPDecoder(np.int64(3), np.int64(5), np.int64(4)).output.weight.shape == (4, 5)
    with pytest.raises(ValueError, match="integer >= 1, got True"):
        MLPDecoder(3, True, 4)
