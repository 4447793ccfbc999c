"""Test metrics of the sparse autoencoders on edge-case test splits."""

from __future__ import annotations

import dataclasses
import math

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
