"""Test metrics of the sparse autoencoders on edge-case test splits."""

from __future__ import annotations

import dataclasses
import math
import warnings

import pytest
import torch

from sparsecoder.config import load_preset
from sparsecoder.data.mnist import load_mnist
from sparsecoder.eval.sae import evaluate
from sparsecoder.models import build_model


def test_a_one_row_test_split_has_no_nan_metric(one_torch_thread):
    """min_code_std (a std over the test rows) was NaN for one row, written to metrics.json as null."""
    data = load_mnist(seed=0, limit=200)
    torch.manual_seed(0)
    _, config = load_preset("sdl-mnist", {"num_threads": 1})
    model = build_model(config, data)
    metrics = evaluate(model, dataclasses.replace(data, test=data.test.subset(slice(0, 1))))
    assert metrics["n_test"] == 1 and "min_code_std" not in metrics
    assert all(math.isfinite(v) for v in metrics.values() if isinstance(v, float))
    assert "min_code_std" in evaluate(model, dataclasses.replace(data, test=data.test.subset(slice(0, 5))))


def test_a_model_whose_test_codes_are_all_zero_is_warned_of(one_torch_thread):
    """A run that learned nothing (every code 0, every atom dead: do-nl-mnist at λ >= 5e-3) finished with
    metrics.json and no word; evaluate now warns, naming lam, and stays silent for a model that codes."""
    data = load_mnist(seed=0, limit=200)
    data = dataclasses.replace(data, test=data.test.subset(slice(0, 50)))
    _, config = load_preset("do-mnist", {"num_threads": 1, "lam": 1.0, "fista_max_iter": 20})
    with pytest.warns(UserWarning, match=r"every code is zero .* λ = 1 .*lower lam"):
        metrics = evaluate(build_model(config, data), data)
    assert metrics["sparsity"] == 1.0 and metrics["dead_atoms"] == config.n_components
    _, config = load_preset("do-mnist", {"num_threads": 1, "lam": 1e-3, "fista_max_iter": 20})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert evaluate(build_model(config, data), data)["sparsity"] < 1.0
