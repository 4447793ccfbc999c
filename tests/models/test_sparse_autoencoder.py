"""SparseAutoencoder (SPEC §2.5–2.6): config checks, the training step against a hand computation,
the collapse guards, atoms, schedules. Real data: scikit-learn's 8×8 digits (shipped with sklearn)."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from sparsecoder.config import ConfigError, from_dict, load_preset
from sparsecoder.data.base import DataSplits, Split
from sparsecoder.inference import fista
from sparsecoder.models import build_model
from sparsecoder.models.sparse_autoencoder import SparseAutoencoder, SparseAutoencoderConfig
from sparsecoder.train.optimization import Optimization

torch.set_num_threads(2)

@pytest.fixture(scope="module")
def digits():
    x = torch.tensor(load_digits().data, dtype=torch.float32) / 16.0
    mean, std = float(x.mean()), float(x.std())
    return (x - mean) / std, mean, std

def _splits(x, mean, std, n_train=500):
    def split(rows):
        return Split(x=rows, scale=std, offset=mean)

    return DataSplits(name="digits", train=split(x[:n_train]), val=split(x[n_train:n_train + 200]),
                      test=split(x[n_train + 200:n_train + 400]), image_shape=(8, 8), normalization="test")

def _config(preset, **overrides):
    small = {"device": "cpu", "n_components": 32, "batch_size": 100, "fista_max_iter": 100}
    if "-nl-" in preset:  # a hidden_size given for a linear decoder is refused (it would have no effect)
        small["hidden_size"] = 64
    _, config = load_preset(preset, {**small, **overrides})
    return config

def _train(model, x, epochs, seed=0):
    """Plain epochs over shuffled mini-batches; returns the per-epoch means of the step logs."""
    generator = torch.Generator().manual_seed(seed)
    optimization = Optimization(model)  # the trainer's optimisers, steps and projections
    history = []
    for _ in range(epochs):
        model.train()
        order = torch.randperm(x.shape[0], generator=generator)
        logs = [optimization.step(x[order[i:i + model.config.batch_size]])
                for i in range(0, x.shape[0], model.config.batch_size)]
        history.append({k: float(np.mean([entry[k] for entry in logs])) for k in logs[0]})
    return history

# ----------------------------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"collapse_guard": "variance", "beta": 0.0}, "beta"),
        ({"collapse_guard": "unit_norm", "beta": 10.0}, "beta"),
        ({"collapse_guard": "weight_decay", "beta": 0.0}, "weight_decay_decoder"),
        ({"encoder": "none", "gamma": 1.0}, "gamma"),
        ({"lam": -1.0}, "lam"),
        ({"var_threshold": 0.0}, "var_threshold"),
        ({"fista_step": 0.0}, "fista_step"),
        ({"fista_max_iter": 0}, "fista_max_iter"),
        ({"lr_decoder": 0.0}, "lr_decoder"),
        ({"lr_halve_every": 0}, "lr_halve_every"),
        ({"decoder": "linear", "weight_decay_hidden_bias": 1e-3}, "weight_decay_hidden_bias"),
        ({"lam_grid": [0.1, -0.2]}, "lam_grid"),
    ],
)
def test_config_range_checks_name_the_key(overrides, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        from_dict(SparseAutoencoderConfig, overrides)

def test_config_rejects_unknown_literal_and_key_listing_valid_ones():
    with pytest.raises(ConfigError, match=r"collapse_guard.*choose one of \['unit_norm', 'variance'"):
        from_dict(SparseAutoencoderConfig, {"collapse_guard": "l2"})
    with pytest.raises(ConfigError, match="unknown config key.*valid keys:.*lam_grid"):
        from_dict(SparseAutoencoderConfig, {"lambda": 0.1})

def test_fista_step_accepts_a_number_or_a_rule():
    assert from_dict(SparseAutoencoderConfig, {"fista_step": 1}).fista_step == 1.0
    assert from_dict(SparseAutoencoderConfig, {"fista_step": "backtracking"}).fista_step == "backtracking"
    with pytest.raises(ConfigError, match="fista_step"):
        from_dict(SparseAutoencoderConfig, {"fista_step": "huge"})

@pytest.mark.parametrize("preset", ["sdl-nl-mnist", "vdl-mnist"])
def test_infer_follows_fista_restart(digits, preset):
    """``fista_restart`` reaches ``fista(restart=...)``: the model's FISTA codes and pass counts equal a
    direct call with the same flag (and differ from the other flag's on the SDL-NL decoder, where the
    momentum oscillates); the flag must be a bool."""
    x, _, _ = digits
    Y = x[:100]
    results = {}
    for restart in (False, True):
        torch.manual_seed(0)
        model = SparseAutoencoder(_config(preset, fista_restart=restart), 64)
        inferred = model.infer(Y)
        c = model.config
        z_encoder = model.encoder(Y).detach()
        beta = c.beta if c.collapse_guard == "variance" else 0.0
        direct = fista(Y, model.decoder, c.lam, z0=z_encoder, step=c.fista_step, max_iter=c.fista_max_iter,
                       tol=c.fista_tol, beta=beta, var_threshold=c.var_threshold, gamma=c.gamma,
                       z_encoder=z_encoder, restart=restart)
        assert torch.equal(inferred.n_iter, direct.n_iter)
        torch.testing.assert_close(inferred.codes, direct.codes)
        results[restart] = inferred
    if preset == "sdl-nl-mnist":
        assert not torch.equal(results[False].n_iter, results[True].n_iter)
    with pytest.raises(ConfigError, match="fista_restart"):
        from_dict(SparseAutoencoderConfig, {"fista_restart": "yes"})


def test_build_model_from_registry_sizes_it_for_the_data(digits):
    x, mean, std = digits
    model = build_model(_config("sdl-nl-mnist"), _splits(x, mean, std))
    assert isinstance(model, SparseAutoencoder)
    assert model.atoms().shape == (64, 32)
    assert [spec.name for spec in model.optimizer_specs()] == ["decoder", "encoder"]  # the step order

# ----------------------------------------------------------------------------------------------
# the training step of SPEC §2.6 against a hand computation
# ----------------------------------------------------------------------------------------------
def _first_adam_step(param, grad, lr):
    # Adam's first step from zero moments with bias correction: p − lr · g / (|g| + eps), eps = 1e-8.
    return param - lr * grad / (grad.abs() + 1e-8)

def test_first_sdl_training_step_equals_the_hand_computed_update(digits):
    x, _, _ = digits
    config = _config("sdl-mnist")
    model = SparseAutoencoder(config, 64)
    Y = x[:100]
    W = model.decoder.weight.detach().clone()
    U = model.encoder.input_layer.weight.detach().clone()
    assert torch.allclose(W.norm(dim=0), torch.ones(32), atol=1e-6)  # projected at initialisation

    # 1–2: encoder prediction, FISTA from it with γ (β = 0 for SDL).
    z_encoder = model.encoder(Y).detach()
    codes = fista(Y, W, config.lam, z0=z_encoder, step=config.fista_step, max_iter=config.fista_max_iter,
                  tol=config.fista_tol, gamma=config.gamma, z_encoder=z_encoder).codes
    # 3: MSE(D(Z*), Y) gradient for W = (2/(n d)) (W Z*ᵀ − Yᵀ) Z*, then Adam, then 5: unit-norm columns.
    grad_W = (2.0 / Y.numel()) * (codes @ W.T - Y).T @ codes
    expected_W = _first_adam_step(W, grad_W, config.lr_decoder)
    expected_W = expected_W / expected_W.norm(dim=0, keepdim=True)
    # 4: MSE(E(Y), Z*) gradient for U by autograd on an independent copy of the encoder.
    U_copy = U.clone().requires_grad_(True)
    b, S = model.encoder.input_layer.bias.detach(), model.encoder.lateral.weight.detach()
    u = Y @ U_copy.T + b
    z = torch.relu(u)
    for _ in range(config.lista_iterations):
        z = torch.relu(u + z @ S.T)
    (grad_U,) = torch.autograd.grad(((z - codes) ** 2).mean(), U_copy)
    expected_U = _first_adam_step(U, grad_U, config.lr_encoder)

    logs = Optimization(model).step(Y)
    torch.testing.assert_close(model.decoder.weight.detach(), expected_W, atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(model.encoder.input_layer.weight.detach(), expected_U, atol=2e-6, rtol=1e-5)
    expected_rec = float(((Y - codes @ W.T) ** 2).mean(dim=1).mean())
    assert logs["reconstruction"] == pytest.approx(expected_rec, rel=1e-4)
    assert logs["l1"] == pytest.approx(config.lam * float(codes.abs().sum(dim=1).mean()), rel=1e-4)
    assert logs["hinge"] == 0.0


@pytest.mark.parametrize("preset", ["vdl-mnist", "vdl-nl-mnist", "wdl-mnist"])
def test_step_logs_are_the_energy_terms_at_the_fista_codes(digits, preset):
    """The logged energy and its terms, per sample, equal the energy functions of SPEC §2.1 evaluated at
    the FISTA codes (VDL: with the variance hinge; every variant: with the encoder proximity), and the
    smallest code std is the batch's."""
    from sparsecoder.inference.energy import (
        encoder_proximity_energy,
        l1_energy,
        reconstruction_energy,
        variance_hinge,
    )

    x, _, _ = digits
    model = SparseAutoencoder(_config(preset), 64)
    c, Y = model.config, x[:100]
    with torch.no_grad():
        z_encoder = model.encoder(Y)
        codes = model.infer(Y, z_encoder=z_encoder).codes
        terms = {"reconstruction": reconstruction_energy(Y, model.decoder(codes)),
                 "l1": l1_energy(codes, c.lam),
                 "hinge": variance_hinge(codes, c.beta, c.var_threshold) if c.beta > 0 else torch.tensor(0.0),
                 "proximity": encoder_proximity_energy(codes, z_encoder, c.gamma)}
    expected = {k: float(v) / len(Y) for k, v in terms.items()}
    logs = Optimization(model).step(Y)
    for key in ("reconstruction", "l1", "hinge"):
        assert logs[key] == pytest.approx(expected[key], rel=1e-4, abs=1e-7), key
    assert (logs["hinge"] > 0) == (preset == "vdl-mnist")  # active there; VDL-NL's codes spread above T
    assert logs["energy"] == pytest.approx(sum(expected.values()), rel=1e-4)
    assert logs["min_code_std"] == pytest.approx(float(codes.std(dim=0).min()), rel=1e-5)
    assert logs["code_l1"] == pytest.approx(float(codes.sum(dim=1).mean()), rel=1e-5)


def test_do_has_no_encoder_and_starts_fista_from_zero(digits):
    x, _, _ = digits
    model = SparseAutoencoder(_config("do-mnist"), 64)
    assert model.encoder is None and [spec.name for spec in model.optimizer_specs()] == ["decoder"]
    Y = x[:50]
    W = model.decoder.weight.detach().clone()
    expected = fista(Y, W, model.config.lam, step=model.config.fista_step,
                     max_iter=model.config.fista_max_iter, tol=model.config.fista_tol).codes
    torch.testing.assert_close(model.encode(Y), expected)

def test_do_nl_starts_fista_from_fista_init_and_learns_only_with_it(digits):
    # DO-NL from zero codes: the MLP decoder's hidden pre-activations W1·0 + b1 are all 0 at
    # initialisation (b1 = 0), where ReLU's gradient is 0, so FISTA's gradient in z is 0, the codes never
    # leave 0 and no decoder weight gets a gradient: the do-nl presets trained nothing (sparsity 100 %,
    # every atom dead). Started from codes of fista_init (the authors' --Zs_init_val), it learns
    x, mean, std = digits
    stuck = SparseAutoencoder(_config("do-nl-mnist", fista_init=0.0, lam=0.001), 64)
    torch.manual_seed(0)
    moving = SparseAutoencoder(_config("do-nl-mnist", lam=0.001), 64)
    assert moving.config.fista_init == 0.1  # the preset's
    Y = x[:100]
    codes = moving.infer(Y).codes
    expected = fista(Y, moving.decoder, 0.001, z0=torch.full((100, 32), 0.1), step=moving.config.fista_step,
                     max_iter=moving.config.fista_max_iter, tol=moving.config.fista_tol, positive=True).codes
    torch.testing.assert_close(codes, expected)
    assert (codes > 0).float().mean() > 0.1
    assert bool((stuck.infer(Y).codes == 0).all())
    before = [p.detach().clone() for p in stuck.decoder.parameters()]
    _train(stuck, x[:500], epochs=1)

    def change(model, before):
        after = [p.detach() for p in model.decoder.parameters()]
        return max(float((a - b).abs().max()) for a, b in zip(before, after, strict=True))

    assert change(stuck, before) < 1e-6  # nothing learned (the unit-norm projection's rounding aside)
    before = [p.detach().clone() for p in moving.decoder.parameters()]
    history = _train(moving, x[:500], epochs=2)
    assert change(moving, before) > 1e-3
    assert history[-1]["reconstruction"] < 0.9 * history[0]["reconstruction"]


def test_fista_init_is_refused_with_an_encoder_and_below_zero():
    with pytest.raises(ConfigError, match="fista_init"):
        _config("sdl-nl-mnist", fista_init=0.1)  # LISTA's codes are FISTA's start: it would do nothing
    with pytest.raises(ConfigError, match="fista_init"):
        _config("do-nl-mnist", fista_init=-0.1)


# ----------------------------------------------------------------------------------------------
# collapse guards
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["sdl-mnist", "sdl-nl-mnist", "do-mnist", "do-nl-mnist"])
def test_unit_norm_guard_keeps_every_decoder_column_at_norm_one(digits, preset):
    x, _, _ = digits
    model = SparseAutoencoder(_config(preset, fista_max_iter=30, lr_decoder=1e-2), 64)
    _train(model, x[:300], epochs=2)
    for module in model.decoder.modules():
        if isinstance(module, torch.nn.Linear):
            torch.testing.assert_close(module.weight.norm(dim=0), torch.ones(module.in_features), atol=1e-5,
                                       rtol=0)

def test_weight_decay_guard_keeps_decoder_norms_below_the_unguarded_run(digits):
    x, _, _ = digits
    common = dict(lr_decoder=1e-2, lr_encoder=1e-3, lam=2e-2, gamma=5.0, fista_step=0.5, fista_max_iter=50)
    guarded = SparseAutoencoder(_config("wdl-mnist", weight_decay_decoder=5e-2, **common), 64)
    unguarded = SparseAutoencoder(_config("none-mnist", **common), 64)
    _train(guarded, x[:500], epochs=10)
    _train(unguarded, x[:500], epochs=10)
    assert float(guarded.atoms().norm(dim=0).mean()) < 0.8 * float(unguarded.atoms().norm(dim=0).mean())

def test_without_a_guard_the_code_l1_collapses_while_vdl_keeps_the_code_spread(digits):
    """Paper §4.4: with no guard the decoder grows and the codes' L1 norm shrinks toward zero epoch over
    epoch; the variance hinge keeps every component's batch std near T and the L1 norm up."""
    x, _, _ = digits
    common = dict(lr_decoder=1e-2, lr_encoder=1e-3)
    none = SparseAutoencoder(_config("none-mnist", **common), 64)
    vdl = SparseAutoencoder(_config("vdl-mnist", **common), 64)
    history_none = _train(none, x[:500], epochs=40)
    history_vdl = _train(vdl, x[:500], epochs=40)
    l1_none = np.array([h["code_l1"] for h in history_none])
    l1_vdl = np.array([h["code_l1"] for h in history_vdl])
    # No guard: after the first epochs the L1 norm falls block after block, ending near zero.
    blocks = l1_none[5:].reshape(5, 7).mean(axis=1)
    assert np.all(np.diff(blocks) < 0), blocks
    assert l1_none[-1] < 0.05 * l1_none[5]
    # VDL: no collapse; the L1 norm stays of the same order, every component keeps its spread.
    assert l1_vdl[-1] > 0.5 * l1_vdl[5]
    assert l1_vdl[-1] > 100 * l1_none[-1]
    # The hinge's pull up balances the L1 pull down a little below T: every component's batch std stays
    # within a factor ~2 of T (the unguarded run's is exactly 0 for dead components).
    T = vdl.config.var_threshold
    for start in range(0, 500, 100):
        std = vdl.infer(x[start:start + 100]).codes.std(dim=0)
        assert float(std.min()) > 0.35 * T and float(std.mean()) > 0.75 * T, std
    assert min(h["min_code_std"] for h in history_none[-5:]) == 0.0  # dead components without a guard

# ----------------------------------------------------------------------------------------------
# atoms, schedules, input errors
# ----------------------------------------------------------------------------------------------
def test_nl_atoms_are_D_of_one_hot_minus_D_of_zero(digits):
    x, _, _ = digits
    model = SparseAutoencoder(_config("vdl-nl-mnist", fista_max_iter=20), 64)
    _train(model, x[:200], epochs=1)  # a trained, non-zero hidden bias b1
    assert float(model.decoder.hidden.bias.detach().abs().max()) > 0
    decoder = model.decoder
    with torch.no_grad():
        reference = torch.stack([decoder(torch.eye(32)[i:i + 1])[0] - decoder(torch.zeros(1, 32))[0]
                                 for i in range(32)], dim=1)
    torch.testing.assert_close(model.atoms(), reference)

@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
def test_decoder_learning_rate_halves_every_lr_halve_every_epochs():
    model = SparseAutoencoder(_config("vdl-nl-mnist"), 64)
    optimization = Optimization(model)
    lr = model.config.lr_decoder
    for epoch in range(1, 62):
        optimization.end_epoch()
        expected = lr * 0.5 ** (epoch // 30)
        decoder_groups = optimization.optimizers["decoder"].param_groups
        assert all(g["lr"] == pytest.approx(expected) for g in decoder_groups)
    assert optimization.optimizers["encoder"].param_groups[0]["lr"] == model.config.lr_encoder

def test_adam_weight_decay_groups_follow_the_config():
    model = SparseAutoencoder(_config("wdl-nl-mnist"), 64)
    optimizers = Optimization(model).optimizers
    groups = {g["name"]: g["weight_decay"] for g in optimizers["decoder"].param_groups}
    assert groups == {"weights": 5e-4, "biases": model.config.weight_decay_hidden_bias}
    encoder_groups = {g["name"]: g["weight_decay"] for g in optimizers["encoder"].param_groups}
    assert encoder_groups == {"weights": 0.0, "biases": model.config.weight_decay_encoder_bias}

def test_bad_inputs_raise_clear_errors(digits):
    model = SparseAutoencoder(_config("vdl-mnist"), 64)
    with pytest.raises(ValueError, match=r"batch must be a 2-D tensor \(n, 64\)"):
        model.training_losses(torch.zeros(10, 63))
    with pytest.raises(ValueError, match="NaN or inf"):
        model.encode(torch.full((3, 64), float("nan")))
    with pytest.raises(ValueError, match="at least 2 samples"):
        model.training_losses(torch.zeros(1, 64))

@pytest.mark.parametrize("weight", [1e38, float("nan")])
def test_a_diverged_encoder_is_named_not_the_rows(digits, weight):
    """LISTA weights blown up by a huge lr_encoder gave NaN codes that FISTA refused as its start with
    "z0 contains NaN or inf; clean or impute the data" (SAE.fit said so too); now a FloatingPointError names
    the encoder and the divergence (the trainer still turns it into TrainingDiverged)."""
    model = SparseAutoencoder(_config("vdl-mnist"), 64)
    with torch.no_grad():
        model.encoder.input_layer.weight.fill_(weight)
    message = r"encoder's codes are NaN/inf for \d+ of 10 rows: the encoder has .*training diverged"
    with pytest.raises(FloatingPointError, match=message):
        model.training_losses(digits[0][:10])
    with pytest.raises(FloatingPointError, match=message):
        model.infer(digits[0][:10])


@pytest.mark.parametrize("device, match", [("mps", "'mps' is not available on this machine"),
                                           ("meta", "'meta' holds shapes but no values")])
def test_a_device_this_machine_lacks_is_refused_before_any_work(device, match):
    # `sparsecoder train sdl-mnist --set device=mps` ended in "RuntimeError: PyTorch is not linked with
    # support for mps devices (unexpected; …)"; 'cuda' on a CPU-only machine: test_memory_guard
    from sparsecoder.models.common import resolve_device

    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    with pytest.raises(ValueError, match=match):
        resolve_device(device)


def test_meta_rows_are_refused_by_name():
    model = SparseAutoencoder(_config("sdl-mnist"), 64)
    with pytest.raises(ValueError, match="x is on the 'meta' device"):
        model.encode(torch.empty(3, 64, device="meta"))


@pytest.mark.parametrize("n_features", [2.7, True, "64", 0, -3])
def test_model_size_must_be_a_positive_integer(n_features):
    # 2.7 used to build a model on 2 features, True one on 1 feature, "64" one on 64
    with pytest.raises(ValueError, match="SparseAutoencoder: n_features must be an integer >= 1"):
        SparseAutoencoder(_config("vdl-mnist"), n_features)


def test_model_takes_a_numpy_size_and_refuses_an_image_shape_of_other_size():
    assert SparseAutoencoder(_config("sdl-mnist"), np.int64(64), (8, 8)).n_features == 64
    with pytest.raises(ValueError, match=r"image_shape \(10, 10\) holds 100 values, not the 64 features"):
        SparseAutoencoder(_config("sdl-mnist"), 64, (10, 10))
    with pytest.raises(ValueError, match="image_shape"):
        SparseAutoencoder(_config("sdl-mnist"), 64, (8, -8))


@pytest.mark.parametrize("preset", ["vdl-mnist", "do-mnist"])
def test_rows_float32_cannot_hold_or_complex_rows_are_refused_by_every_entry_point(preset):
    # float64 rows beyond float32's range became inf: NaN reconstructions (LISTA) or FISTA's misleading
    # "contains NaN or inf"; complex rows lost their imaginary part with only a warning
    model = SparseAutoencoder(_config(preset, fista_max_iter=5), 64)
    huge = torch.full((2, 64), 1e39, dtype=torch.float64)
    complex_rows = torch.ones(2, 64, dtype=torch.complex64)
    for call in (model, model.encode, model.training_losses, model.infer):
        with pytest.raises(ValueError, match=r"beyond float32's range"):
            call(huge)
        with pytest.raises(ValueError, match="real numbers, got torch.complex64"):
            call(complex_rows)


def test_infer_checks_its_rows_like_the_other_entry_points():
    model = SparseAutoencoder(_config("vdl-mnist", fista_max_iter=5), 64)
    with pytest.raises(ValueError, match=r"must be a 2-D tensor \(n, 64\), got \(3, 63\)"):
        model.infer(torch.zeros(3, 63))  # was torch's "mat1 and mat2 shapes cannot be multiplied"
    # a notebook's single row and numpy rows: the fix is named (audit 2026-11-29)
    with pytest.raises(ValueError, match=r"got \(64,\); a single row: x.reshape\(1, -1\)"):
        model.encode(torch.zeros(64))
    with pytest.raises(ValueError, match=r"got ndarray: pass torch.as_tensor\(x\)"):
        model.encode(np.zeros((2, 64), dtype=np.float32))
    rows = torch.randn(3, 64)
    torch.testing.assert_close(model.infer(rows.double()).codes, model.infer(rows).codes)  # was a dtype error


@pytest.mark.parametrize("convert", ["double", "half"])
def test_a_model_converted_from_float32_says_so_instead_of_a_torch_dtype_error(convert):
    model = getattr(SparseAutoencoder(_config("do-mnist", fista_max_iter=5), 64), convert)()
    for call in (model, model.training_losses, model.infer):  # were "mat1 and mat2 must have the same dtype"
        with pytest.raises(ValueError, match=r"float32.*parameters are torch.float.*model.float\(\)"):
            call(torch.zeros(2, 64))
    model.float()
    assert model(torch.zeros(2, 64)).dtype == torch.float32


def test_same_seed_same_weights_different_seed_different_weights():
    a = SparseAutoencoder(_config("vdl-mnist", seed=3), 64)
    b = SparseAutoencoder(_config("vdl-mnist", seed=3), 64)
    c = SparseAutoencoder(_config("vdl-mnist", seed=4), 64)
    assert torch.equal(a.decoder.weight, b.decoder.weight)
    assert not torch.equal(a.decoder.weight, c.decoder.weight)


# ----------------------------------------------------------------------------------------------
# through the shared trainer
# ----------------------------------------------------------------------------------------------
def test_resumed_run_reproduces_the_uninterrupted_history_and_lr_schedule(digits, tmp_path):
    from sparsecoder.train import train
    from sparsecoder.train.logging import read_history_rows

    x, mean, std = digits
    data = _splits(x, mean, std, n_train=300)
    overrides = {"n_components": 128, "hidden_size": 64, "fista_max_iter": 20, "lr_halve_every": 1,
                 "device": "cpu", "num_threads": 1}
    train("vdl-nl-mnist", tmp_path / "full", overrides={**overrides, "epochs": 3}, data=data, progress=False)
    train("vdl-nl-mnist", tmp_path / "part", overrides={**overrides, "epochs": 1}, data=data, progress=False)
    train(None, tmp_path / "part", overrides={"epochs": 3}, resume=True, data=data, progress=False)

    def rows(run):
        history = read_history_rows(tmp_path / run / "history.csv")
        return [{k: v for k, v in r.items() if k != "seconds"} for r in history]

    full, resumed = rows("full"), rows("part")
    assert [r["lr_decoder"] for r in full] == pytest.approx([3e-4, 1.5e-4, 7.5e-5])
    assert resumed == full


def test_model_is_built_without_a_device_and_follows_to():
    model = SparseAutoencoder(_config("vdl-nl-mnist"), 64)
    assert model.device == torch.device("cpu")
    model.to(torch.device("meta"))
    assert model.device == torch.device("meta")
    assert all(t.device.type == "meta" for t in [*model.parameters(), *model.buffers()])


def test_linear_fista_runs_on_one_thread_and_restores_the_thread_count(digits, monkeypatch):
    """Thread policy: the linear decoder's FISTA loop uses one intra-op thread (small operations), the
    caller's setting is restored afterwards, and the codes equal a run with one thread throughout."""
    import importlib

    solver = importlib.import_module("sparsecoder.inference.fista")  # the module, not the function

    threads_inside = []

    def recording_loop(*args, **kwargs):  # the real FISTA loop, noting the thread count it runs with
        threads_inside.append(torch.get_num_threads())
        return real_loop(*args, **kwargs)

    real_loop = solver._run_fista_loop
    monkeypatch.setattr(solver, "_run_fista_loop", recording_loop)
    torch.manual_seed(0)
    Y = digits[0][:100]
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        linear = SparseAutoencoder(_config("vdl-mnist"), 64)
        one = linear.infer(Y).codes
        torch.set_num_threads(2)
        two = linear.infer(Y).codes
        assert torch.get_num_threads() == 2
        SparseAutoencoder(_config("vdl-nl-mnist"), 64).infer(Y)  # the MLP decoder keeps both threads
        assert threads_inside == [1, 1, 2]
        torch.testing.assert_close(two, one, rtol=0, atol=0)
    finally:
        torch.set_num_threads(previous)
