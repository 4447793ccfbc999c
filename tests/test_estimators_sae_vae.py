"""The neural scikit-learn estimators SAE and SparseVAE: scikit-learn's estimator checks, agreement with
FISTA called by hand, closed-form ELBO, unit-norm atoms, atom recovery on synthetic data, run folders that
load_run/encode_run read, round trips, Pipeline + GridSearchCV, bad input."""

import pickle
import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

import sparsecoder
from sparsecoder import SAE, SparseVAE
from sparsecoder.cli import main
from sparsecoder.train.run import encode_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def rows():
    return np.random.default_rng(0).normal(size=(60, 10)) * 0.5


def _small_sae(**kwargs):
    settings = dict(n_components=6, max_epochs=2, batch_size=16, random_state=0, device="cpu")
    return SAE(**{**settings, **kwargs})


def _small_vae(**kwargs):
    settings = dict(n_components=4, encoder_hidden=16, max_epochs=2, batch_size=16, random_state=0,
                    device="cpu")
    return SparseVAE(**{**settings, **kwargs})


def _failed_checks(estimator):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(estimator, on_fail=None, on_skip=None)
    return {result["check_name"]: str(result["exception"]) for result in results
            if result["status"] == "failed"}


def test_sae_passes_check_estimator():
    # The paper's fixed FISTA step (0.5 for VDL) is for MNIST's scale; the checks' data take the Lipschitz
    # step.
    assert _failed_checks(_small_sae(n_components=4, fista_step="lipschitz")) == {}


def test_sparse_vae_passes_check_estimator():
    assert _failed_checks(_small_vae()) == {}


def test_sdl_atoms_have_unit_norm(rows):
    model = _small_sae(variant="sdl").fit(rows)
    np.testing.assert_allclose(np.linalg.norm(model.components_, axis=1), 1.0, atol=1e-5)
    assert model.components_.shape == (6, 10)
    assert model.config_.collapse_guard == "unit_norm" and model.config_.encoder == "lista"


def test_hyperparameters_come_from_the_papers_table(rows):
    model = _small_sae(variant="wdl", decoder="mlp", fista_step="lipschitz", hidden_size=12).fit(rows)
    config = model.config_
    assert model.preset_name == "wdl-nl-mnist"
    assert config.weight_decay_decoder > 0 and config.decoder == "mlp" and config.hidden_size == 12
    assert config.lam == sparsecoder.load_preset("wdl-nl-mnist")[1].lam
    assert _small_sae(variant="do").fit(rows).model_.encoder is None
    # FISTA's momentum restart: the preset's (on for SDL-NL, off elsewhere) unless given
    assert not config.fista_restart
    sdl_nl = _small_sae(variant="sdl", decoder="mlp", hidden_size=12, max_epochs=1).fit(rows)
    assert sdl_nl.config_.fista_restart
    assert _small_sae(variant="wdl", fista_restart=True, max_epochs=1).fit(rows).config_.fista_restart


def test_fista_transform_equals_fista_by_hand(rows):
    model = _small_sae(variant="vdl", fista_step="lipschitz", max_epochs=1).fit(rows)
    c = model.model_.config
    Y = torch.tensor(rows[:16], dtype=torch.float32)
    with torch.no_grad():
        z_encoder = model.model_.encoder(Y)
        expected = sparsecoder.fista(
            Y, model.model_.decoder, c.lam, z0=z_encoder, n_components=c.n_components, step=c.fista_step,
            max_iter=c.fista_max_iter, tol=c.fista_tol, positive=True, beta=c.beta,
            var_threshold=c.var_threshold, gamma=c.gamma, z_encoder=z_encoder,
        ).codes.numpy()
    np.testing.assert_allclose(model.transform(rows[:16], method="fista"), expected, atol=1e-6)
    # the encoder codes are the LISTA encoder's, row by row
    np.testing.assert_allclose(model.transform(rows[:16]), z_encoder.numpy(), atol=1e-6)
    # DO has no encoder: its codes are FISTA's from zero
    do = _small_sae(variant="do", max_epochs=1).fit(rows)
    np.testing.assert_allclose(do.transform(rows), do.transform(rows, method="fista"), atol=1e-6)


def test_score_is_psnr_of_the_reconstructions(rows):
    model = _small_sae(variant="sdl").fit(rows)
    codes = model.transform(rows)
    recon = model.inverse_transform(codes)
    mse = np.mean((rows - recon) ** 2, axis=1)
    assert model.score(rows) == pytest.approx(np.mean(10 * np.log10(1 / mse)), rel=1e-5)


def test_sae_recovers_synthetic_atoms_better_than_chance():
    data = sparsecoder.load_data("synthetic", dim=16, n_components=8, n_active=2, n_train=1500, noise=0.01)
    X = data.train.x.numpy()
    true = data.true_dictionary.numpy()  # (d, k) unit-norm columns

    def mean_best_cosine(atoms):  # (l, d) rows
        atoms = atoms / np.linalg.norm(atoms, axis=1, keepdims=True)
        return float(np.abs(atoms @ true).max(axis=0).mean())

    model = SAE("sdl", n_components=8, lam=1e-3, max_epochs=8, batch_size=50, random_state=0,
                device="cpu").fit(X)
    chance = np.mean([mean_best_cosine(np.random.default_rng(s).normal(size=(8, 16))) for s in range(20)])
    learned = mean_best_cosine(model.components_)
    assert learned > chance + 0.15, (learned, chance)


def test_save_writes_a_run_folder_that_load_run_reads(rows, tmp_path):
    model = _small_sae(variant="sdl").fit(rows)
    folder = model.save(tmp_path / "run")
    config, loaded, _ = sparsecoder.load_run(folder)
    assert config.model_name == "sparse_autoencoder" and config.n_components == 6
    np.testing.assert_allclose(encode_run(folder, rows), model.transform(rows), atol=1e-6)
    np.testing.assert_allclose(encode_run(folder, rows, input_space="raw"), model.transform(rows), atol=1e-6)
    np.save(tmp_path / "rows.npy", rows)
    assert main(["encode", str(folder), str(tmp_path / "rows.npy"), "--out", str(tmp_path / "codes.npy")]) \
        == 0
    np.testing.assert_allclose(np.load(tmp_path / "codes.npy"), model.transform(rows), atol=1e-6)
    vae = _small_vae().fit(rows)
    np.testing.assert_allclose(encode_run(vae.save(tmp_path / "vae"), rows), vae.transform(rows), atol=1e-6)
    before = (folder / "model.safetensors").read_bytes()
    with pytest.raises(FileExistsError, match="not an empty folder"):
        _small_sae(variant="sdl", random_state=1).fit(rows).save(folder)
    assert (folder / "model.safetensors").read_bytes() == before


@pytest.mark.parametrize("make", [_small_sae, _small_vae], ids=["SAE", "SparseVAE"])
def test_clone_pickle_joblib_and_determinism(make, rows, tmp_path):
    model = make().fit(rows)
    expected = model.transform(rows)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.transform(rows), expected)
    joblib.dump(model, tmp_path / "model.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "model.joblib").transform(rows), expected)
    np.testing.assert_array_equal(clone(model).fit(rows).transform(rows), expected)  # same random_state
    # training goes on after unpickling exactly as without the round trip (optimiser state travels)
    continued = again.partial_fit(rows).transform(rows)
    np.testing.assert_allclose(continued, model.partial_fit(rows).transform(rows), atol=1e-6)
    assert model.n_iter_ == 3 and model.n_steps_ == 3 * 4
    assert not np.allclose(make(random_state=1).fit(rows).transform(rows), expected)


@pytest.mark.parametrize("make", [lambda: _small_sae(variant="sdl"), _small_vae], ids=["SAE", "SparseVAE"])
def test_fit_inside_no_grad_or_inference_mode_trains_as_outside(make, rows):
    # audit 2026-11-29: fit / partial_fit inside a notebook's torch.no_grad() or torch.inference_mode()
    # failed with torch's "element 0 of tensors does not require grad"
    expected = make().fit(rows).partial_fit(rows).transform(rows)
    with torch.no_grad():
        model = make().fit(rows)
    np.testing.assert_array_equal(model.partial_fit(rows).transform(rows), expected)
    with torch.inference_mode():
        model = make().fit(rows)
    np.testing.assert_array_equal(model.partial_fit(rows).transform(rows), expected)  # (its weights too)


def test_partial_fit_streams_and_keeps_torch_rng_untouched(rows):
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    model = _small_vae()
    for start in range(0, 60, 20):
        model.partial_fit(rows[start:start + 20])
    assert torch.equal(torch.random.get_rng_state(), state)
    assert model.n_iter_ == 3 and model.transform(rows).shape == (60, 4)
    with pytest.raises(ValueError, match="features"):
        model.partial_fit(rows[:, :5])


def test_a_fit_whose_codes_stay_zero_is_warned_of(rows):
    """SAE.fit with a λ no code can pay for (every FISTA code 0 in the last pass: nothing learned) gave a
    model like any other; it now warns, naming lam. A fit that codes stays silent."""
    with pytest.warns(UserWarning, match=r"SAE: the codes of the last pass .* every code is zero .*lam"):
        _small_sae(variant="sdl", lam=50.0).fit(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _small_sae(variant="sdl", lam=1e-3).fit(rows)


def test_pipeline_and_grid_search_over_lam(rows):
    pipeline = Pipeline([("scale", StandardScaler()), ("sae", _small_sae(variant="sdl"))])
    search = GridSearchCV(pipeline, {"sae__lam": [1e-3, 0.5]}, cv=2).fit(rows)
    assert search.best_params_["sae__lam"] == 1e-3  # less sparsity, better PSNR
    assert np.isfinite(search.best_score_)
    vae_search = GridSearchCV(_small_vae(), {"beta": [0.5, 1.0]}, cv=2).fit(rows)
    assert np.isfinite(vae_search.best_score_)


def test_vae_score_equals_the_closed_form_elbo(rows):
    """Gaussian prior and posterior, linear decoder U (no bias), Gaussian likelihood of σ:
    E_q||x − Uz||² = ||x − Uμ||² + Σ_j s_j² ||U_j||², KL = ½ Σ_j (μ_j² + s_j²)/p² − 1 − log(s_j²/p²)."""
    model = _small_vae(prior="gaussian", prior_scale=0.7, max_epochs=3).fit(rows)
    x = torch.tensor(rows, dtype=torch.float32)
    with torch.no_grad():
        mu, log_var = (t.double().numpy() for t in model.model_.encoder(x))
    U = model.components_.T.astype(np.float64)  # (d, l)
    var, p, sigma, d = np.exp(log_var), 0.7, model.likelihood_sigma, rows.shape[1]
    squared = ((rows - mu @ U.T) ** 2).sum(axis=1) + var @ (U**2).sum(axis=0)
    nll = squared / (2 * sigma**2) + d * (np.log(sigma) + 0.5 * np.log(2 * np.pi))
    kl = 0.5 * ((mu**2 + var) / p**2 - 1 - np.log(var / p**2)).sum(axis=1)
    closed_form = float(np.mean(-nll - kl))
    assert model.score(rows, n_samples=400) == pytest.approx(closed_form, rel=5e-3)
    np.testing.assert_allclose(model.transform(rows), mu, atol=1e-5)  # the posterior mean


def test_vae_samples_decode_prior_draws(rows):
    model = _small_vae(prior="laplace", prior_scale=0.3).fit(rows)
    samples = model.sample(20000, random_state=0)
    assert samples.shape == (20000, 10)
    # Laplace(0, b) latents: mean 0 and covariance 2b² I, so the decoded rows U z have mean 0, cov 2b² U Uᵀ
    U = model.components_.T.astype(np.float64)
    np.testing.assert_allclose(samples.mean(axis=0), 0.0, atol=0.02)
    np.testing.assert_allclose(np.cov(samples.T), 2 * 0.3**2 * U @ U.T, atol=0.02)
    np.testing.assert_array_equal(model.sample(5, random_state=1), model.sample(5, random_state=1))


def test_bad_input_is_refused_clearly(rows):
    with pytest.raises(ValueError, match="has 1 row.*at least 2 rows; train on more data"):
        _small_sae(variant="vdl").fit(rows[:1])
    # 7 rows at batch_size=2 are batches of 2, 2, 2 and 1: used to fail inside the first epoch saying
    # "use batch_size >= 2"; now refused before training, naming a batch_size that fits
    with pytest.raises(ValueError, match="smallest of 1 row.*set batch_size >= 3"):
        _small_sae(variant="vdl", batch_size=2).fit(rows[:7])
    model = _small_sae(variant="vdl", batch_size=3).fit(rows[:7])
    with pytest.raises(ValueError, match="has 1 row"):
        model.partial_fit(rows[:1])
    with pytest.raises(ValueError, match="variant"):
        SAE(variant="xdl").fit(rows)
    with pytest.raises(FloatingPointError, match="fista_step='lipschitz'"):
        _small_sae(variant="sdl", fista_step=1e4, max_epochs=1).fit(rows)  # far above FISTA's 1/L
    model = _small_sae(variant="sdl").fit(rows)
    with pytest.raises(ValueError, match="method"):
        model.transform(rows, method="lars")
    with pytest.raises(ValueError, match="method"):
        model.score(rows, method="lars")
    with pytest.raises(ValueError, match="6 components"):
        model.inverse_transform(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="n_samples"):
        _small_vae().fit(rows).sample(0)
    with pytest.raises(ValueError, match="n_samples"):
        _small_vae().fit(rows).score(rows, n_samples=0)


def test_sae_outputs_are_never_nan_or_inf(rows):
    # audit 2026-11-29: inverse_transform of finite float32 codes of 3e38 returned rows of inf silently
    model = _small_sae(variant="sdl", fista_step="lipschitz").fit(rows.astype(np.float32))
    with torch.no_grad():  # positive atoms: 3e38 times their sum overflows on any CPU/GPU, in any order
        model.model_.decoder.weight.fill_(0.5)
    with pytest.raises(ValueError, match=r"decoded rows are NaN/inf for [1-3] of 3 rows.*3e\+38"):
        model.inverse_transform(np.full((3, 6), 3e38, np.float32))
    with torch.no_grad():
        model.model_.decoder.weight.fill_(3e38)
    with pytest.raises(ValueError, match="reconstructions of X are NaN/inf"):
        model.score(rows)  # was a NaN/-inf score
    with torch.no_grad():
        for p in model.model_.encoder.parameters():
            p.mul_(1e38)
    with pytest.raises(ValueError, match="the encoder codes of X are NaN/inf"):
        model.transform(rows)  # (FISTA started from them refuses its NaN/inf start itself)


@pytest.mark.parametrize("make", [_small_sae, _small_vae])
def test_output_dtype_follows_the_input_dtype_for_numpy_and_torch(make, rows):
    # scikit-learn's rule (preserves_dtype float64, float32): float32 in, float32 out; anything else float64.
    # A float32 torch tensor used to come back float64 (check_array sees no dtype on a tensor).
    model = make(fista_step="lipschitz") if make is _small_sae else make()
    model.fit(torch.tensor(rows, dtype=torch.float32))
    cases = ((rows.astype(np.float32), np.float32), (torch.tensor(rows, dtype=torch.float32), np.float32),
             (rows, np.float64), (torch.tensor(rows), np.float64),
             (torch.tensor(rows, dtype=torch.bfloat16), np.float64), (rows.astype(np.float16), np.float64))
    for X, dtype in cases:
        codes = model.transform(X)
        assert isinstance(codes, np.ndarray) and codes.dtype == dtype, (type(X), X.dtype, codes.dtype)
        back = model.inverse_transform(torch.from_numpy(codes) if isinstance(X, torch.Tensor) else codes)
        assert back.dtype == dtype


def test_rows_beyond_float32_are_refused_by_name(rows):
    # audit 2026-11-29: finite float64 rows of 1e300 became inf in float32 and were reported as
    # "batch contains NaN or inf" (fit) or "x contains NaN or inf" (transform)
    with pytest.raises(ValueError, match=r"rows of X hold values up to .*e\+300, beyond float32's range"):
        _small_sae(variant="sdl").fit(rows * 1e300)
    model = _small_vae(max_epochs=1).fit(rows)
    with pytest.raises(ValueError, match="rows of X hold values up to .*beyond float32's range"):
        model.transform(rows * 1e300)
    with pytest.raises(ValueError, match="codes hold values up to 1e\\+300"):
        model.inverse_transform(np.full((2, 4), 1e300))


def test_sparse_vae_fits_read_only_rows_without_torch_warning(rows):
    # a read-only array (pandas >= 3 gives them, np.load(mmap_mode="r") too) made torch warn that writing
    # to the tensor is undefined behaviour
    read_only = rows.copy()
    read_only.setflags(write=False)
    always = torch.is_warn_always_enabled()
    torch.set_warn_always(True)  # torch warns once per process otherwise
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            _small_vae(max_epochs=1).fit(read_only)
    finally:
        torch.set_warn_always(always)


def test_partial_fit_refuses_parameters_changed_since_the_model_was_built(rows):
    # audit 2026-11-29: n_components, variant, lam, beta, ... set between partial_fit calls were silently
    # ignored (the model and its optimiser keep those of the first fit); batch_size applies at every call
    model = _small_sae(variant="sdl", max_epochs=1).fit(rows)
    with pytest.raises(ValueError, match=r"built .* with lam=None, n_components=6; the parameters set since "
                                         r"\(lam=0\.5, n_components=8\)"):
        model.set_params(lam=0.5, n_components=8).partial_fit(rows)
    model.set_params(lam=None, n_components=6, batch_size=30).partial_fit(rows)
    assert model.n_steps_ == 4 + 2
    with pytest.raises(ValueError, match=r"\(beta=5\.0\) cannot apply"):
        _small_vae(max_epochs=1).partial_fit(rows).set_params(beta=5.0).partial_fit(rows)
