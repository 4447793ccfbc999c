"""Unit-norm projection and weight-decay parameter groups (SPEC §2.5)."""

import numpy as np
import pytest
import torch

from sparsecoder.nn import (
    LISTAEncoder,
    MLPDecoder,
    unit_norm_columns_,
    unit_norm_decoder_,
    weight_decay_param_groups,
)


def test_unit_norm_columns_matches_numpy_and_is_in_place():
    rng = np.random.default_rng(0)
    array = rng.normal(size=(7, 4)) * np.array([0.1, 3.0, 1.0, 20.0])
    weight = torch.tensor(array)
    returned = unit_norm_columns_(weight)
    assert returned is weight
    np.testing.assert_allclose(weight.numpy(), array / np.linalg.norm(array, axis=0, keepdims=True))
    np.testing.assert_allclose(np.linalg.norm(weight.numpy(), axis=0), np.ones(4))


def test_unit_norm_columns_keeps_zero_column_zero_and_rejects_vectors():
    weight = torch.tensor([[0.0, 3.0], [0.0, 4.0]])
    unit_norm_columns_(weight)
    torch.testing.assert_close(weight, torch.tensor([[0.0, 0.6], [0.0, 0.8]]))
    with pytest.raises(ValueError, match="2-D"):
        unit_norm_columns_(torch.ones(3))


def test_unit_norm_decoder_normalises_both_layers_of_the_mlp_decoder_and_keeps_the_bias():
    torch.manual_seed(0)
    decoder = MLPDecoder(4, 6, 5)
    with torch.no_grad():
        decoder.hidden.bias.fill_(0.7)
    unit_norm_decoder_(decoder)
    torch.testing.assert_close(decoder.hidden.weight.norm(dim=0), torch.ones(4))
    torch.testing.assert_close(decoder.output.weight.norm(dim=0), torch.ones(6))
    torch.testing.assert_close(decoder.hidden.bias, torch.full((6,), 0.7))


def test_weight_decay_groups_split_weights_from_biases():
    decoder = MLPDecoder(4, 6, 5)
    groups = weight_decay_param_groups(decoder, 1e-3, weight_decay=5e-4, bias_weight_decay=1e-2)
    by_name = {g["name"]: g for g in groups}
    expected_weights = {id(decoder.hidden.weight), id(decoder.output.weight)}
    assert {id(p) for p in by_name["weights"]["params"]} == expected_weights
    assert [id(p) for p in by_name["biases"]["params"]] == [id(decoder.hidden.bias)]
    assert by_name["weights"]["weight_decay"] == 5e-4 and by_name["biases"]["weight_decay"] == 1e-2
    assert all(g["lr"] == 1e-3 for g in groups)
    with pytest.raises(ValueError, match="weight_decay"):
        weight_decay_param_groups(decoder, 1e-3, weight_decay=-1.0)


def test_bias_decay_in_adam_shrinks_only_the_bias_when_gradients_vanish():
    # With a zero loss gradient, Adam's L2 term is the only force: decayed parameters move, others stay.
    encoder = LISTAEncoder(3, 2)
    with torch.no_grad():
        encoder.input_layer.bias.fill_(1.0)
    before_weight = encoder.input_layer.weight.detach().clone()
    optimizer = torch.optim.Adam(weight_decay_param_groups(encoder, 0.1, bias_weight_decay=0.5))
    for p in encoder.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    assert bool((encoder.input_layer.bias < 1.0).all())
    torch.testing.assert_close(encoder.input_layer.weight, before_weight)


def test_unit_norm_columns_projects_columns_whose_norm_overflows_or_underflows_float32():
    # |w| = 1e20: the squared norm overflows float32 (a plain norm is inf and zeroed the atom); |w| = 1e-30:
    # below the eps floor (the atom stayed at norm ~1e-18); both are atoms to put on the unit sphere
    weight = torch.tensor([[1e20, 1e-30, 0.0, 3.0], [-1e20, 1e-30, 0.0, 4.0]])
    unit_norm_columns_(weight)
    half = 0.5 ** 0.5
    torch.testing.assert_close(weight, torch.tensor([[half, half, 0.0, 0.6], [-half, half, 0.0, 0.8]]))
