"""Hostile input to the VAE family: out-of-range config values, data its likelihood cannot model, models too
large for memory, and heavy-tailed densities at extreme scales. Each is refused before any work, naming the
key and the fix, or computed finitely."""

import dataclasses
import math

import numpy as np
import pytest
import scipy.stats
import torch

from sparsecoder import SparseVAE
from sparsecoder.config import ConfigError, from_dict, load_preset
from sparsecoder.data import load
from sparsecoder.eval.vae import evaluate
from sparsecoder.models import vae as vae_module
from sparsecoder.models.common import training_size
from sparsecoder.models.distributions import Posterior, kl_analytic, kl_monte_carlo, log_density
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
    used = {"kl": "monte_carlo"} if key == "kl_samples" else {}  # kl_samples has no effect on analytic KL
    with pytest.raises(ConfigError, match=f"'{key}': must be in"):
        load_preset("svae-patches", {**used, key: value})


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
              overrides={"epochs": 1, "data": "arrays", "data_dir": str(tmp_path / "acts.npy"),
                         "likelihood": "bce"})  # (the preset's is gaussian since 2026-11-29)
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


# --- heavy tails: Cauchy samples ------------------------------------------------------------------------


def test_cauchy_posterior_noise_is_accurate_in_the_tails(monkeypatch):
    # before: tan(π(u − ½)) at u within a few eps of 0 or 1 was 19% off in float32 (π(u − ½) rounds to
    # within an ulp of ±π/2), and at float32(π/2) it even has the wrong sign
    eps = torch.finfo(torch.float32).eps
    u = torch.tensor([0.0, 2.0**-24, eps, 2 * eps, 1e-3, 0.2, 0.3, 0.5, 0.7, 0.99, 1 - 2 * eps, 1 - 2.0**-24])
    monkeypatch.setattr(torch, "rand", lambda *args, **kwargs: u.clone())
    q = Posterior("cauchy", torch.zeros(len(u)), torch.zeros(len(u)))
    z = q.rsample()
    exact = torch.tan(math.pi * (u.double().clamp(eps, 1 - eps) - 0.5))  # u kept in [eps, 1 − eps]
    assert torch.isfinite(z).all()
    np.testing.assert_allclose(z.double().numpy(), exact.numpy(), rtol=1e-6, atol=1e-6)


def test_cauchy_prior_samples_are_bounded_like_the_posteriors_and_still_cauchy():
    # before: torch.distributions.Cauchy drew float64 uniforms, |z| up to 1.6e16·scale (4e7 in 10^7 draws),
    # which a decoder can overflow on; now the posterior's noise, |z| <= 1/tan(π·eps)·scale = 2.7e6·scale
    from sparsecoder.models.distributions import sample_prior

    torch.manual_seed(0)
    z = sample_prior("cauchy", 2.0, (10**7,))
    bound = 2.0 / math.tan(math.pi * torch.finfo(torch.float32).eps)
    assert torch.isfinite(z).all() and float(z.abs().max()) <= bound * (1 + 1e-6)
    assert scipy.stats.kstest(z[:200_000].numpy(), scipy.stats.cauchy(0, 2.0).cdf).pvalue > 1e-3


def test_a_cauchy_vae_whose_samples_overflow_stops_as_diverged_keeping_its_checkpoint(tmp_path, monkeypatch,
                                                                                      capsys):
    # heavy-tailed samples times a scale that grew: z = inf, the decoder's output NaN. The run stops with
    # exit status 3 naming the epoch, the last good epoch's checkpoint kept (was fine before; kept as a test)
    from sparsecoder.cli import main
    from sparsecoder.models import distributions

    calls = {"n": 0}
    rsample = distributions.Posterior.rsample

    def overflowing(self, n_samples=None):
        calls["n"] += 1
        z = rsample(self, n_samples)
        return z * 1e38 * 1e38 if calls["n"] > 4 else z  # epoch 1: 3 batches and validation

    monkeypatch.setattr(distributions.Posterior, "rsample", overflowing)
    run = tmp_path / "run"
    code = main(["train", "vae-cauchy-synthetic", "--out", str(run), "--quiet", "--set", "epochs=3",
                 "limit=300", "batch_size=100", "encoder_hidden=16", "decoder_hidden=16", "device=cpu",
                 "num_threads=1"])
    err = capsys.readouterr().err
    assert code == 3
    assert "training diverged in epoch 2" in err and "last good epoch 1" in err
    assert (run / "checkpoint.pt").is_file() and (run / "model.safetensors").is_file()
    assert not (run / "metrics.json").exists()


def _fitted_vae(**kwargs):
    params = {"n_components": 2, "encoder_hidden": 4, "max_epochs": 1, "batch_size": 10, "random_state": 0,
              "device": "cpu", **kwargs}
    return SparseVAE(**params).fit(np.random.default_rng(0).random((20, 4)))


@pytest.mark.parametrize("prior", ["laplace", "cauchy"])
def test_sparse_vae_sample_refuses_decoded_rows_that_overflow(prior):
    # before: the NaN/inf rows were returned to the caller
    est = _fitted_vae(prior=prior)
    assert np.isfinite(est.sample(50)).all()
    with torch.no_grad():
        est.model_.decoder.weight.fill_(float("inf"))
    with pytest.raises(ValueError, match=f"decoded samples of the {prior}.*NaN/inf for 50 of 50 rows.*refit"):
        est.sample(50)


def test_sparse_vae_transform_and_inverse_transform_refuse_nan_results():
    est = _fitted_vae()
    X = np.random.default_rng(1).random((5, 4))
    with torch.no_grad():
        est.model_.decoder.weight.fill_(1e30)
    with pytest.raises(ValueError, match="decoded rows are NaN/inf for 1 of 2 rows"):
        est.inverse_transform(np.array([[0.5, 0.5], [1e10, 1e10]]))  # was returned as a row of inf
    with torch.no_grad():
        for p in est.model_.encoder.parameters():
            p.mul_(1e30)
    with pytest.raises(ValueError, match="posterior means of X are NaN/inf"):
        est.transform(X)
    with pytest.raises(ValueError, match="ELBO of X is not finite"):  # was a NaN score
        est.score(X)


# --- the bce data check: once per unchanged tensor, on every path --------------------------------------


def test_evaluate_run_scans_the_bce_test_split_once(tmp_path, monkeypatch):
    # before: building the model and then evaluate() each scanned the test split
    from sparsecoder.train import evaluate_run

    run = tmp_path / "run"
    train("vae-cauchy-synthetic", run, progress=False,
          overrides={"epochs": 1, "limit": 200, "encoder_hidden": 8, "decoder_hidden": 8, "eval_samples": 2,
                     "likelihood": "bce", "device": "cpu", "num_threads": 1})
    scanned = []
    value_range = vae_module._value_range
    monkeypatch.setattr(vae_module, "_value_range", lambda x: scanned.append(len(x)) or value_range(x))
    metrics = evaluate_run(run)
    assert scanned == [metrics["n_test"]]


def test_the_bce_check_scans_again_rows_changed_in_place():
    data = load("synthetic_pyle", seed=0, n_train=100, n_val=20, n_test=20)
    model = VAE.from_config(_bce_config(), data)  # checks (and remembers) the three splits
    data.test.x.mul_(4).sub_(2)  # the same tensor, now outside [0, 1]
    with pytest.raises(ConfigError, match=r"bce needs data in \[0, 1\].*test split"):
        evaluate(model, data)


def test_sparse_vae_partial_fit_and_score_refuse_bce_rows_outside_0_1():
    # before: a second partial_fit and score clipped X to [0, 1] silently
    X = np.random.default_rng(0).random((30, 4))
    est = SparseVAE(n_components=2, encoder="pyle", decoder="pyle", likelihood="bce", encoder_hidden=4,
                    batch_size=10, random_state=0, device="cpu").partial_fit(X)
    with pytest.raises(ConfigError, match=r"bce needs data in \[0, 1\].*X"):
        est.partial_fit(X * 5 - 2)
    with pytest.raises(ConfigError, match=r"bce needs data in \[0, 1\].*X"):
        est.score(X * 5 - 2)
    assert np.isfinite(est.score(X))


def test_sparse_vae_score_draws_its_monte_carlo_kl_n_samples_times():
    # before: the Monte-Carlo KL took the config's kl_samples (1) whatever n_samples: 2000 draws per row
    # still scored 0.3 nats apart from seed to seed. Same model, same reconstruction draws (they come
    # first), analytic KL against Monte Carlo: they differ by the KL's sampling error only
    import dataclasses

    X = np.random.default_rng(0).random((40, 6)).astype(np.float32)
    est = SparseVAE(n_components=4, prior="laplace", prior_scale=1.0, kl="monte_carlo", encoder_hidden=8,
                    max_epochs=1, batch_size=20, random_state=0, device="cpu", likelihood="mse").fit(X)
    monte_carlo = est.score(X[:2], n_samples=400)
    est.model_.config = dataclasses.replace(est.model_.config, kl="analytic")
    assert monte_carlo == pytest.approx(est.score(X[:2], n_samples=400), abs=0.1)


def test_a_monte_carlo_kl_too_large_for_the_memory_is_refused_and_validation_is_chunked(monkeypatch):
    # before: kl_samples=1000, batch 2000, 450 latents (about 43 GiB in one step) ran into the allocator
    # or the OOM killer at the first step; validation decoded 1000 rows × kl_samples at once
    from sparsecoder import util
    from sparsecoder.eval.vae import validation_metrics

    monkeypatch.setattr(util, "physical_memory", lambda: 2**30)  # a machine of 1 GiB
    big = _small_config(n_latents=450, kl="monte_carlo", kl_samples=1000, batch_size=2000)
    with pytest.raises(ConfigError, match=r"'kl_samples'.*1000 × 2000 × 450 values, 40\.2 GiB.*1\.0 GiB.*"
                                          r"lower kl_samples or batch_size, or set kl=analytic"):
        VAE(big, 25)
    VAE(dataclasses.replace(big, kl="analytic", kl_samples=1), 25)  # no samples: fits
    model = VAE(_small_config(kl="monte_carlo", kl_samples=500), 25)
    rows = [len(x) for x in model.chunks(torch.zeros(300, 25), 500)]
    assert rows == [128, 128, 44]  # 64,000 samples × rows a block
    split = load("synthetic_pyle", seed=0, n_train=10, n_val=300, n_test=10).val
    assert math.isfinite(validation_metrics(model, split)["val_loss"])


# --- evaluation: hostile test splits -------------------------------------------------------------------


def _small_config(**overrides):
    return from_dict(VAEConfig, {"data": "synthetic_pyle", "n_latents": 3, "encoder_hidden": 8,
                                 "eval_samples": 2, "device": "cpu", **overrides})


def test_a_one_row_test_split_is_refused_before_training_and_by_evaluate(tmp_path):
    # before: active_units was written as 0 (the std over one row) and the active latents' means as null
    one = load("synthetic_pyle", seed=0, n_train=100, n_val=20, n_test=1)
    with pytest.raises(ValueError, match="test split has 1 row.*at least 2"):
        train(_small_config(epochs=1, batch_size=50), tmp_path / "run", progress=False, data=one)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    data = load("synthetic_pyle", seed=0, n_train=100, n_val=20, n_test=20)
    model = VAE.from_config(_small_config(), data)
    data.test.x = data.test.x[:1]
    with pytest.raises(ValueError, match="test split has 1 row"):
        evaluate(model, data)


def test_evaluate_names_a_test_split_of_another_width():
    data = load("synthetic_pyle", seed=0, n_train=100, n_val=20, n_test=20)
    model = VAE.from_config(_small_config(), data)
    data.test.x = torch.rand(20, 30)
    with pytest.raises(ValueError, match=r"test split has rows of shape \(30,\).*takes 25 features"):
        evaluate(model, data)


def test_constant_test_rows_give_metrics_without_nan():
    # zero-variance data: no latent is active; the means over the (empty) active group were NaN -> null
    data = load("synthetic_pyle", seed=0, n_train=100, n_val=20, n_test=20)
    model = VAE.from_config(_small_config(), data)
    data.test.x = torch.full((20, 25), 0.5)
    metrics = evaluate(model, data)
    assert metrics["active_units"] == 0
    assert "kl_active_mean" not in metrics and "decoder_norm_active" not in metrics
    assert all(math.isfinite(v) for v in metrics.values() if isinstance(v, float))
    assert metrics["decoder_norm_inactive"] == pytest.approx(float(model.decoder_column_norms().mean()))


def test_one_posterior_sample_gives_no_mse_std_rather_than_zero():
    # before: eval_samples=1 wrote mse_std 0.0, read as an exact MSE (jiang-table1 printed "± 0.0000")
    data = load("synthetic_pyle", seed=0, n_train=100, n_val=20, n_test=20)
    one = evaluate(VAE.from_config(_small_config(eval_samples=1), data), data)
    assert "mse_std" not in one and math.isfinite(one["mse"])
    assert evaluate(VAE.from_config(_small_config(eval_samples=2), data), data)["mse_std"] > 0


def test_the_active_split_of_kl_and_norms_is_that_of_active_units():
    # before: active_units counted the population std (ddof=0) and the split used ddof=1, so the
    # "active" means could be over other latents than the ones counted
    data = load("synthetic_pyle", seed=0, n_train=100, n_val=20, n_test=3)
    model = VAE.from_config(_small_config(), data)
    codes = model.encode(data.test.x)
    population, sample = codes.std(dim=0, unbiased=False), codes.std(dim=0)
    threshold = float(population[0] + sample[0]) / 2  # latent 0 is active for ddof=1 only
    model.config = dataclasses.replace(model.config, active_threshold=threshold)
    metrics = evaluate(model, data)
    active = population > threshold
    assert metrics["active_units"] == int(active.sum())
    norms = model.decoder_column_norms()
    assert metrics["decoder_norm_inactive"] == pytest.approx(float(norms[~active].mean()))


# --- encode / decode of a saved run ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("vae") / "run"
    # (a Gaussian posterior: a Cauchy one through the linear decoder is refused since 2026-11-29)
    train("vae-laplace-synthetic", run, progress=False,
          overrides={"epochs": 1, "limit": 200, "encoder_hidden": 8, "eval_samples": 2,
                     "likelihood": "gaussian", "decoder": "linear", "encoder": "mlp", "device": "cpu",
                     "num_threads": 1})
    return run


def _with_weights_times(run, tmp_path, factor):
    """A copy of ``run`` whose weights load but overflow: every weight multiplied by ``factor``."""
    import shutil

    from sparsecoder.train import load_run
    from sparsecoder.train.checkpoint import save_weights

    copy = tmp_path / "scaled"
    shutil.copytree(run, copy)
    config, model, _ = load_run(copy)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(factor)
    save_weights(copy / "model.safetensors", model, model_name=config.model_name, epoch=1)
    return copy


def test_decode_refuses_rows_that_overflow_and_codes_beyond_float32(vae_run, tmp_path, capsys):
    # before: a row of inf was written to the .npy with exit status 0; float64 codes of 1e300 became inf
    from sparsecoder.cli import main
    from sparsecoder.train import decode_run

    assert np.isfinite(decode_run(vae_run, np.zeros((2, 10)))).all()
    # (2026-11-29: rows given in memory are checked by check_values as a file's are, naming the rows)
    with pytest.raises(ValueError, match=r"codes: \d+ value\(s\) in 2 row\(s\) \(first rows \[0, 1\]\) "
                                         r"exceed float32's range.*1e\+300"):
        decode_run(vae_run, np.full((2, 10), 1e300))
    scaled = _with_weights_times(vae_run, tmp_path, 1e30)
    with pytest.raises(ValueError, match="decoded rows are NaN/inf for 1 of 2 rows.*encode"):
        decode_run(scaled, np.array([np.zeros(10), np.full(10, 1e10)], dtype=np.float32))
    np.save(tmp_path / "codes.npy", np.full((3, 10), 1e10, dtype=np.float32))
    assert main(["decode", str(scaled), str(tmp_path / "codes.npy"), "--out", str(tmp_path / "x.npy")]) == 2
    assert "decoded rows are NaN/inf for 3 of 3 rows" in capsys.readouterr().err
    assert not (tmp_path / "x.npy").exists()


def test_encode_refuses_codes_that_overflow_and_rows_beyond_float32(vae_run, tmp_path, capsys):
    from sparsecoder.cli import main
    from sparsecoder.train import encode_run

    # (2026-11-29: rows given in memory are checked by check_values as a file's are, naming the rows)
    with pytest.raises(ValueError, match=r"inputs: \d+ value\(s\) in 2 row\(s\) \(first rows \[0, 1\]\) "
                                         r"exceed float32's range.*1e\+300.*by a constant\)$"):
        encode_run(vae_run, np.full((2, 25), 1e300))  # in memory: no "save it again"
    scaled = _with_weights_times(vae_run, tmp_path, 1e20)  # three layers: 1e60 overflows float32
    np.save(tmp_path / "rows.npy", np.ones((3, 25), dtype=np.float32))
    assert main(["encode", str(scaled), str(tmp_path / "rows.npy"), "--out", str(tmp_path / "c.npy")]) == 2
    assert "codes are NaN/inf for 3 of 3 rows" in capsys.readouterr().err
    assert not (tmp_path / "c.npy").exists()


def test_evaluate_run_names_in_memory_data_of_another_width(vae_run):
    # before: "the weights ... do not fit this model (another architecture or size?)" with a size mismatch
    from sparsecoder.train import evaluate_run

    data = load("synthetic_pyle", seed=0, n_train=30, n_val=10, n_test=10)
    data.train.x = torch.rand(30, 30)
    with pytest.raises(ValueError, match="data given have 30 features per row.*trained on 25"):
        evaluate_run(vae_run, data=data)


# --- prior/posterior pairs and extreme posterior scales -------------------------------------------------


@pytest.mark.parametrize("prior", ["gaussian", "laplace"])
def test_a_cauchy_posterior_with_a_lighter_tailed_prior_is_refused(prior):
    # KL(Cauchy ‖ N(0, s²)) and KL(Cauchy ‖ Laplace) are infinite (E_q z² = E_q |z| = ∞); before: accepted,
    # and a run wrote a finite "kl" (3.5e7 after 2 epochs) that grows without bound with the sample count
    message = f"'prior': .*cauchy posterior.*{prior} prior.*infinite.*prior=cauchy"
    with pytest.raises(ConfigError, match=message):
        load_preset("vae-cauchy-synthetic", {"prior": prior, "kl": "monte_carlo"})
    with pytest.raises(ConfigError, match="infinite"):
        SparseVAE(n_components=2, posterior="cauchy", prior=prior, kl="monte_carlo", max_epochs=1,
                  device="cpu").fit(np.random.default_rng(0).random((20, 4)))
    load_preset("vae-laplace-synthetic", {"prior": "cauchy", "kl": "monte_carlo"})  # Gaussian q: finite KL


def test_a_cauchy_posterior_through_the_linear_decoder_is_refused():
    # E_q‖x − Uz‖² is infinite for a Cauchy q; before: accepted, and a 1-epoch vae-cauchy-patches run with
    # decoder=linear likelihood=mse wrote mse 39416 ± 214884 and elbo -5.7e6 for data in [0, 1]
    with pytest.raises(ConfigError, match="'decoder': a cauchy posterior through the linear decoder.*"
                                          "infinite.*decoder=pyle"):
        load_preset("vae-cauchy-patches", {"decoder": "linear", "likelihood": "mse"})
    with pytest.raises(ConfigError, match="decoder=pyle"):
        SparseVAE(n_components=2, posterior="cauchy", prior="cauchy", max_epochs=1,
                  device="cpu").fit(np.random.default_rng(0).random((20, 4)))
    load_preset("vae-cauchy-patches", {"likelihood": "mse"})  # the bounded (sigmoid) decoder: accepted


@pytest.mark.parametrize("mu", [2.0, -50.0, 1e3])
def test_gauss_laplace_kl_gradients_are_finite_when_the_scale_underflowed(mu):
    # before: the μ-gradient was NaN (μ/σ with σ clamped to float32's tiny is inf, and 0·inf in backward)
    mu_t = torch.tensor([[mu, mu]], requires_grad=True)
    log_s = torch.tensor([[-110.0, -20.0]], requires_grad=True)
    kl = kl_analytic(Posterior("gaussian", mu_t, log_s), "laplace", 0.1)
    kl.sum().backward()
    assert torch.isfinite(kl).all()
    np.testing.assert_allclose(mu_t.grad.numpy(), [[math.copysign(10.0, mu)] * 2], rtol=1e-5)  # d|μ|/b dμ
    np.testing.assert_allclose(log_s.grad.numpy(), [[-1.0, -1.0]], rtol=1e-5)


@pytest.mark.parametrize("family", ["gaussian", "cauchy"])
@pytest.mark.parametrize("prior", ["gaussian", "laplace", "cauchy"])
def test_monte_carlo_kl_of_any_posterior_whose_scale_underflowed_is_finite(family, prior):
    # before: a Cauchy posterior's log q(z) at z = μ was 0/0 = NaN when its scale underflowed to 0
    loc = torch.tensor([[0.0, 5.0, -3.0]], requires_grad=True)
    log_s = torch.full((1, 3), -110.0, requires_grad=True)
    kl = kl_monte_carlo(Posterior(family, loc, log_s), prior, 0.1, n_samples=4)
    kl.sum().backward()
    assert torch.isfinite(kl).all() and torch.isfinite(log_s.grad).all() and torch.isfinite(loc.grad).all()
    assert kl.min() > 100


def test_pyle_decoder_atoms_need_no_latents_by_latents_tensor():
    # before: atoms() decoded torch.eye(l), an (l, l) tensor: n_latents=20000 took 1.5 GB and 5 s for a model
    # of 0.5M parameters (8 MB of training state), and 80,000 latents ran out of memory after training
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class LargestTensor(TorchDispatchMode):
        numel = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            sizes = [t.numel() for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
            LargestTensor.numel = max([LargestTensor.numel, *sizes])
            return out

    config = _bce_config()
    model = VAE(dataclasses.replace(config, n_latents=2000), 25)
    with LargestTensor():
        atoms = model.atoms()
    assert LargestTensor.numel <= 2000 * 25
    net = model.decoder.net
    by_definition = torch.sigmoid(net(torch.eye(2000))) - torch.sigmoid(net(torch.zeros(1, 2000)))
    torch.testing.assert_close(atoms, by_definition.T)


@pytest.mark.parametrize("n_features", [2.7, True, "64", 0])
def test_vae_size_and_image_shape_are_checked_as_the_sparse_autoencoder_s(n_features):
    # 2.7 built a VAE on 2 features, True one on 1; an image_shape of other size was kept for the pictures
    config = VAEConfig(n_latents=3, encoder_hidden=8)
    with pytest.raises(ValueError, match="VAE: n_features must be an integer >= 1"):
        VAE(config, n_features)
    assert VAE(config, np.int64(64), (8, 8)).n_features == 64
    with pytest.raises(ValueError, match=r"image_shape \(10, 10\) holds 100 values, not the 64 features"):
        VAE(config, 64, (10, 10))


def test_a_vae_converted_to_float64_is_refused_naming_model_float():
    model = VAE(VAEConfig(n_latents=3, encoder_hidden=8), 16).double()
    with pytest.raises(ValueError, match=r"VAE computes in float32, but its parameters are torch.float64; "
                                         r"convert it back with model.float\(\)"):
        model.encode(torch.zeros(2, 16))
    assert model.float().encode(torch.zeros(2, 16)).shape == (2, 3)
