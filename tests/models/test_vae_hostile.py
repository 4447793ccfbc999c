"""Hostile input to the VAE family: out-of-range config values, data its likelihood cannot model, models too
large for memory, and heavy-tailed densities at extreme scales. Each is refused before any work, naming the
key and the fix, or computed finitely."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

from sparsecoder import SparseVAE
from sparsecoder.config import ConfigError, from_dict, load_preset
from sparsecoder.data import load
from sparsecoder.eval.vae import evaluate
from sparsecoder.models.common import training_size
from sparsecoder.models.distributions import Posterior, kl_monte_carlo, log_density
from sparsecoder.models.vae import VAE, VAEConfig
from sparsecoder.train import train


@pytest.mark.parametrize(
    ("key", "value"),
    [("prior_scale", 1e-300), ("prior_scale", 1e300), ("likelihood_sigma", 1e-200),
     ("likelihood_sigma", 1e200), ("beta", 1e300), ("kl_samples", 10**6), ("eval_samples", 10**9)],
)
def test_values_that_overflow_float32_or_memory_are_refused_naming_the_key(key, value):
    # before: prior_scale=1e-300 or beta=1e300 trained and stopped as "diverged", blaming the learning rate;
    # kl_samples=1e6 allocated (1e6, batch, n_latents) tensors; eval_samples=1e9 looped for hours
    with pytest.raises(ConfigError, match=f"'{key}': must be in"):
        load_preset("svae-patches", {key: value})


def test_presets_are_inside_the_bounds():
    for name in ("svae-patches", "svae-norm-patches", "vae-cauchy-mnist", "vae-laplace-synthetic"):
        load_preset(name)


def test_a_model_too_large_for_memory_is_refused_before_allocating():
    config = from_dict(VAEConfig, {"data": "synthetic_pyle", "n_latents": 10**11, "device": "cpu"})
    count, _ = training_size(lambda: VAE(config, 25))  # counted on the meta device
    assert count > 10**14
    with pytest.raises(ConfigError, match="n_latents=100000000000.*lower n_latents"):
        VAE(config, 25)  # before: RuntimeError "DefaultCPUAllocator: can't allocate memory"


def _bce_config():
    return from_dict(VAEConfig, {"data": "synthetic_pyle", "n_latents": 4, "encoder": "pyle",
                                 "decoder": "pyle", "likelihood": "bce", "encoder_hidden": 8,
                                 "decoder_hidden": 8, "eval_samples": 2, "epochs": 1, "batch_size": 50,
                                 "device": "cpu"})


def test_bce_refuses_data_outside_0_1_through_the_cli_path(tmp_path):
    # before: x.clamp(0, 1) trained silently on clipped data
    rng = np.random.default_rng(0)
    np.save(tmp_path / "acts.npy", (3 * rng.standard_normal((200, 25))).astype(np.float32))
    with pytest.raises(ConfigError, match=r"bce needs data in \[0, 1\].*train split.*likelihood=gaussian"):
        train("vae-laplace-synthetic", tmp_path / "run", progress=False,
              overrides={"epochs": 1, "data": "arrays", "data_dir": str(tmp_path / "acts.npy")})
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_bce_accepts_data_in_0_1_and_evaluate_refuses_out_of_range_test_rows():
    data = load("synthetic_pyle", seed=0, n_train=100, n_val=20, n_test=20)
    model = VAE.from_config(_bce_config(), data)
    data.test.x = data.test.x * 4 - 2
    with pytest.raises(ConfigError, match="test split"):
        evaluate(model, data)


def test_sparse_vae_refuses_bce_on_data_outside_0_1():
    X = np.random.default_rng(0).standard_normal((30, 4))
    est = SparseVAE(n_components=2, encoder="pyle", decoder="pyle", likelihood="bce", encoder_hidden=4,
                    max_epochs=1, batch_size=10, random_state=0, device="cpu")
    with pytest.raises(ConfigError, match=r"bce needs data in \[0, 1\].*X"):
        est.fit(X)
    est.fit(np.clip(X, 0, 1))  # the same in range trains


@pytest.mark.parametrize("scale", [1e-30, 1e-8, 1.0, 1e8])
def test_cauchy_log_density_is_finite_far_in_the_tails(scale):
    # before: log1p(t²) overflowed for |t| > ~1.8e19 in float32, giving -inf where scipy gives ~-160
    z = torch.tensor([0.0, 1e-3, 1.0, -7.0, 1e20, -1e30])
    got = log_density("cauchy", z, 0.0, math.log(scale))
    want = scipy.stats.cauchy(0, scale).logpdf(z.double().numpy())
    assert torch.isfinite(got).all()
    np.testing.assert_allclose(got.double().numpy(), want, rtol=1e-5)


def test_cauchy_log_density_gradients_are_finite_including_at_the_location():
    z = torch.tensor([0.0, 1e-3, -2.0, 1e30], requires_grad=True)
    log_scale = torch.tensor(math.log(0.5), requires_grad=True)
    log_density("cauchy", z, 0.0, log_scale).sum().backward()
    assert torch.isfinite(z.grad).all() and torch.isfinite(log_scale.grad)
    assert z.grad[0] == 0.0
    t = z.detach()[1:3] / 0.5
    np.testing.assert_allclose(z.grad[1:3].numpy(), (-2 * t / (1 + t**2) / 0.5).numpy(), rtol=1e-5)


def test_monte_carlo_kl_with_a_cauchy_prior_of_tiny_scale_is_finite():
    q = Posterior("gaussian", torch.zeros(2, 3), torch.zeros(2, 3))
    torch.manual_seed(0)
    kl = kl_monte_carlo(q, "cauchy", 1e-30, n_samples=64)
    assert torch.isfinite(kl).all() and (kl > 0).all()


def test_evaluate_monte_carlo_kl_is_drawn_in_chunks_and_agrees_with_analytic():
    data = load("synthetic_pyle", seed=0, n_train=100, n_val=20, n_test=200)
    base = {"data": "synthetic_pyle", "n_latents": 3, "encoder": "pyle", "decoder": "pyle",
            "likelihood": "bce", "encoder_hidden": 8, "decoder_hidden": 8, "eval_samples": 2,
            "prior": "gaussian", "prior_scale": 1.0, "device": "cpu"}
    analytic = VAE.from_config(from_dict(VAEConfig, base), data)
    mc = VAE.from_config(from_dict(VAEConfig, {**base, "kl": "monte_carlo", "kl_samples": 1000}), data)
    torch.manual_seed(0)
    exact = evaluate(analytic, data)["kl"]
    estimate = evaluate(mc, data)["kl"]
    assert estimate == pytest.approx(exact, rel=0.02)


@pytest.mark.parametrize("scale", [1e30, float("nan")])
def test_evaluate_refuses_nan_metrics_instead_of_writing_them(scale):
    # before: mse, elbo, kl came back NaN and metrics.json held null for them, exit status 0
    data = load("synthetic_pyle", seed=0, n_train=100, n_val=20, n_test=20)
    config = from_dict(VAEConfig, {"data": "synthetic_pyle", "n_latents": 3, "encoder_hidden": 8,
                                   "eval_samples": 2, "device": "cpu"})
    model = VAE.from_config(config, data)
    assert math.isfinite(evaluate(model, data)["mse"])
    with torch.no_grad():
        model.decoder.weight.mul_(scale)
    with pytest.raises(ValueError, match="cannot evaluate the VAE: .*NaN/inf"):
        evaluate(model, data)


@pytest.mark.parametrize("pair", [("cauchy", "cauchy"), ("gaussian", "laplace"), ("gaussian", "gaussian")])
@pytest.mark.parametrize(("mu", "log_scale"), [(0.0, -110.0), (2.0, -110.0), (1e30, 0.0), (0.5, -0.3)])
def test_analytic_kl_in_float32_is_finite_where_float64_is(pair, mu, log_scale):
    # before: a posterior scale that underflowed to 0 in float32 gave inf (Cauchy: log(x/0)) or NaN
    # (Gauss-Laplace: μ/σ = 0/0), so training stopped as "diverged" with a finite true KL
    from sparsecoder.models.distributions import kl_analytic

    def kl(dtype):
        log_s = torch.tensor([[log_scale]], dtype=dtype, requires_grad=True)
        value = kl_analytic(Posterior(pair[0], torch.tensor([[mu]], dtype=dtype), log_s), pair[1], 0.1)
        value.sum().backward()
        return value.item(), log_s.grad.item()

    exact, _ = kl(torch.float64)
    got, grad = kl(torch.float32)
    if abs(exact) < 3e38:
        assert got == pytest.approx(exact, rel=1e-5) and math.isfinite(grad)


@pytest.mark.parametrize("prior", ["gaussian", "laplace", "cauchy"])
def test_monte_carlo_kl_of_a_posterior_whose_scale_underflowed_is_finite(prior):
    # before: z = μ + 0·ε made the posterior's log q(z) = 0/0 = NaN in float32
    log_s = torch.full((2, 3), -110.0, requires_grad=True)
    q = Posterior("gaussian", torch.zeros(2, 3), log_s)
    kl = kl_monte_carlo(q, prior, 0.1, n_samples=4)
    kl.sum().backward()
    assert torch.isfinite(kl).all() and torch.isfinite(log_s.grad).all()
    assert kl.min() > 100  # ≈ −log σ: the posterior is a near point mass


def test_sparse_vae_sample_refuses_more_rows_than_memory_holds():
    est = SparseVAE(n_components=2, encoder_hidden=4, max_epochs=1, batch_size=10, random_state=0,
                    device="cpu").fit(np.random.default_rng(0).random((20, 4)))
    with pytest.raises(ValueError, match="n_samples=1000000000000 needs .*draw fewer"):
        est.sample(10**12)  # before: RuntimeError from torch's allocator
    assert est.sample(3).shape == (3, 4)
