"""Standardising an array file whose column (or whole data) is constant: the column must become 0, not
rounding noise divided by its own size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sparsecoder.data import load


def _rows(split):
    x = split.x
    return x.materialize() if hasattr(x, "materialize") else x


@pytest.mark.parametrize("memory_map", [True, False])
def test_a_constant_column_standardises_to_zero_with_feature_standardisation(tmp_path, memory_map):
    """0.1 is not exact in binary: the float64 mean of 1,000 copies differs from 0.1 by ~1e-17, which
    was taken as the column's std, so the column became ±1 in every row (and a test value of 0.1000001
    became ~1e10)."""
    x = np.random.default_rng(0).standard_normal((1000, 3))
    x[:, 1] = 0.1
    np.save(tmp_path / "c.npy", x)
    data = load("arrays", data_dir=str(tmp_path / "c.npy"), standardize="feature", memory_map=memory_map)
    for split in (data.train, data.val, data.test):
        rows = _rows(split)
        assert torch.equal(rows[:, 1], torch.zeros(len(rows)))
        # the inverse gives the stored value back
        torch.testing.assert_close(split.to_pixels(rows)[:, 1], torch.full((len(rows),), 0.1))
    assert data.preprocessing.to_dict()["std"][1] == 1.0


def test_constant_data_standardise_to_zero_with_global_standardisation(tmp_path):
    np.save(tmp_path / "c.npy", np.full((100, 4), 0.1))
    data = load("arrays", data_dir=str(tmp_path / "c.npy"), standardize="global", memory_map=False)
    assert torch.equal(data.train.x, torch.zeros_like(data.train.x))
    assert "/ 1 " in data.normalization
