"""Test metrics of the sparse autoencoders: edge-case test splits, and every metric against numpy."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
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


def test_evaluate_matches_a_numpy_recomputation_of_each_metric(one_torch_thread):
    """SPEC §3 on 300 test rows (two batches of 250 and 50, each with its own variance hinge): the energy
    (1/n)[Σ (1/d)||y − Dz||² + λ Σ ||z||₁ + β Σ_batches Σ_j (T − std_j)₊²] of the encoder's and of FISTA's
    codes, PSNR in pixel space (MNIST: x·0.3081 + 0.1307), sparsity, mean code L1 norm, dead atoms, the
    smallest code std and the atoms' norms, recomputed with numpy from the codes and the weights."""
    data = load_mnist(seed=0, limit=200)
    data = dataclasses.replace(data, test=data.test.subset(slice(0, 300)))
    torch.manual_seed(0)
    _, config = load_preset("vdl-mnist", {"num_threads": 1, "fista_max_iter": 30})
    model = build_model(config, data)
    metrics = evaluate(model, data)
    x = data.test.x
    fista = [model.infer(x[start:start + 250]) for start in (0, 250)]
    atoms = model.decoder.weight.detach().numpy().astype(np.float64)  # (d, l): one atom per column
    y = x.numpy().astype(np.float64)

    def expected(codes, suffix):
        recon = codes @ atoms.T
        hinge = sum(np.sum(np.maximum(0.5 - codes[s].std(axis=0, ddof=1), 0) ** 2)
                    for s in (slice(0, 250), slice(250, 300)))
        energy = (np.sum((y - recon) ** 2) / 784 + 0.02 * np.abs(codes).sum() + 10.0 * hinge) / 300
        mse = np.mean(((y - recon) * 0.3081) ** 2, axis=1)  # pixel space: the shift cancels
        assert hinge > 0  # the hinge term is exercised
        assert metrics[f"energy{suffix}"] == pytest.approx(energy, rel=1e-5)
        assert metrics[f"psnr{suffix}"] == pytest.approx(np.mean(10 * np.log10(1 / mse)), rel=1e-5)
        assert metrics[f"sparsity{suffix}"] == np.mean(codes == 0)
        assert metrics[f"code_l1{suffix}"] == pytest.approx(np.abs(codes).sum(axis=1).mean(), rel=1e-5)

    codes = model.encode(x).numpy().astype(np.float64)
    expected(codes, "")
    expected(np.concatenate([r.codes.numpy() for r in fista]).astype(np.float64), "_fista")
    assert 0 < metrics["sparsity"] < metrics["sparsity_fista"] < 1
    assert metrics["dead_atoms"] == int(np.sum(~(codes != 0).any(axis=0)))
    assert metrics["min_code_std"] == pytest.approx(codes.std(axis=0, ddof=1).min(), rel=1e-5)
    iterations = np.concatenate([r.n_iter.numpy() for r in fista])
    assert metrics["fista_iterations"] == pytest.approx(iterations.mean()) and iterations.min() > 1
    norms = np.linalg.norm(atoms, axis=0)
    assert (metrics["decoder_column_norm_mean"], metrics["decoder_column_norm_min"],
            metrics["decoder_column_norm_max"]) == pytest.approx((norms.mean(), norms.min(), norms.max()))
