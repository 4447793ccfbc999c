"""fista(): SPEC §2.1–2.2 against scikit-learn, autograd optimality conditions and its own contracts."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import Lasso
from torch import nn

from sparsecoder import FistaResult, fista, sparse_encode
from sparsecoder.inference import lam_to_lasso_alpha, lasso_objective
from sparsecoder.inference.fista import _ModuleSmooth, power_iteration_max_eigenvalue
from tests.inference.helpers import assert_energy_optimality


def sklearn_codes(Y, W, alpha, positive):
    model = Lasso(
        alpha=alpha / Y.shape[1], fit_intercept=False, positive=positive, tol=1e-12, max_iter=200_000
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(W, Y.T)
    return np.atleast_2d(model.coef_)


def reference_lam(Y, W, fraction=0.15):
    """λ (reference scaling) whose lasso α = dλ/2 is a fraction of the typical largest correlation."""
    return 2.0 * fraction * np.abs(Y @ W).max(axis=1).mean() / Y.shape[1]


@pytest.mark.parametrize("problem", ["random_problem", "mnist_problem", "correlated_problem"])
@pytest.mark.parametrize("positive", [True, False])
@pytest.mark.parametrize("step", ["fixed", "lipschitz", "backtracking"])
def test_linear_fista_minimises_the_sklearn_lasso(problem, positive, step, request):
    """Reference-scaled λ ↔ lasso α = dλ/2: the minimiser is scikit-learn's (objective within 1e-5)."""
    X, D = request.getfixturevalue(problem)
    W = D.T  # (d, l)
    d = X.shape[1]
    lam = reference_lam(X, W)
    alpha = lam_to_lasso_alpha(lam, d)
    if step == "fixed":
        step = 0.9 * d / (2 * np.linalg.eigvalsh(W.T @ W).max())
    result = fista(
        torch.tensor(X),
        torch.tensor(W),
        lam,
        step=step,
        max_iter=30_000,
        tol=1e-10,
        positive=positive,
        record_energy=False,
    )
    reference = lasso_objective(X, D, sklearn_codes(X, W, alpha, positive), alpha)
    ours = lasso_objective(X, D, result.codes, alpha)
    assert abs(ours - reference) <= 1e-5 * reference
    assert bool(result.converged.all())


def test_result_fields_and_energy_trace(mnist_problem):
    X, D = mnist_problem
    Y, W = torch.tensor(X, dtype=torch.float32), torch.tensor(D.T, dtype=torch.float32)
    lam = float(reference_lam(X, D.T))
    result = fista(Y, W, lam, step="lipschitz")
    assert isinstance(result, FistaResult)
    assert result.codes.shape == (len(X), D.shape[0]) and result.codes.dtype == torch.float32
    assert not result.codes.requires_grad and (result.codes >= 0).all()
    assert result.n_iter.dtype == torch.int64 and result.n_iter.shape == (len(X),)
    assert result.energy.dtype == torch.float64 and result.energy.device.type == "cpu"
    assert len(result.energy) == int(result.n_iter.max())
    # the last recorded energy is the SPEC §2.1 energy of the returned codes, computed here in numpy
    Z = result.codes.double().numpy()
    expected = (((X - Z @ D) ** 2).mean(axis=1) + lam * np.abs(Z).sum(axis=1)).sum()
    assert result.energy[-1].item() == pytest.approx(expected, rel=1e-5)
    assert result.energy[-1] < result.energy[0]


@pytest.mark.parametrize("path", ["gram", "hinge", "generic"])
def test_frozen_samples_stop_moving(correlated_problem, path):
    """A sample frozen at iteration k keeps exactly the same code whatever max_iter is (SPEC §2.2), in each
    linear-decoder step: the Gram form, the fused Gram form with the hinge, and the generic step (the
    data-parallel path's, which a ``reduce`` selects; β alone now takes the fused step)."""
    X, D = correlated_problem
    Y = torch.tensor(X)
    Y[0] = 0.0  # stays at zero: zero-safe freezing at the first iteration
    W = torch.tensor(D.T)
    lam = float(reference_lam(X, D.T))
    extra = {} if path == "gram" else {"beta": 1e-3, "var_threshold": 0.01}
    if path == "generic":
        extra["reduce"] = lambda t: t  # one process: the identity all-reduce
    short = fista(Y, W, lam, step="lipschitz", max_iter=25, tol=1e-3, **extra)
    long = fista(Y, W, lam, step="lipschitz", max_iter=400, tol=1e-3, **extra)
    frozen = short.converged
    assert frozen[0] and short.n_iter[0] == 1 and (short.codes[0] == 0).all()
    assert 1 < int(frozen.sum()) < len(X)  # some froze early, some did not
    assert torch.equal(short.codes[frozen], long.codes[frozen])
    assert torch.equal(short.n_iter[frozen], long.n_iter[frozen])
    assert (short.n_iter[~frozen] == 25).all() and not short.converged[~frozen].any()


class TwoLayerDecoder(nn.Module):
    """A smooth (tanh) one-hidden-layer decoder, so first-order optimality conditions are well defined."""

    def __init__(self, l, d, hidden=32):
        super().__init__()
        self.hidden = nn.Linear(l, hidden)
        self.out = nn.Linear(hidden, d, bias=False)

    def forward(self, codes):
        return self.out(torch.tanh(self.hidden(codes)))


def test_module_decoder_matches_linear_closed_form(mnist_problem):
    X, D = mnist_problem
    Y = torch.tensor(X)
    W = torch.tensor(D.T)
    linear = nn.Linear(D.shape[0], D.shape[1], bias=False).double()
    with torch.no_grad():
        linear.weight.copy_(W)
    wrapped = nn.Sequential(linear)  # not an nn.Linear: goes through autograd
    lam = float(reference_lam(X, D.T))
    closed = fista(Y, W, lam, step="lipschitz", max_iter=2000, tol=1e-9)
    autograd = fista(Y, wrapped, lam, step="lipschitz", max_iter=2000, tol=1e-9, n_components=D.shape[0])
    torch.testing.assert_close(autograd.codes, closed.codes, rtol=0, atol=1e-6)
    assert linear.weight.grad is None


def test_a_module_decoder_solves_inside_inference_mode_as_outside():
    # audit 2026-11-29: torch.enable_grad() does not leave torch.inference_mode(), so the autograd gradient
    # of a module decoder failed there with torch's "element 0 of tensors does not require grad"
    torch.manual_seed(0)
    decoder = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 10)).double()
    Y = torch.randn(6, 10, dtype=torch.float64)
    expected = fista(Y, decoder, 0.01, n_components=5, step=0.1, max_iter=30).codes
    for context in (torch.no_grad, torch.inference_mode):
        with context():
            codes = fista(Y, decoder, 0.01, n_components=5, step=0.1, max_iter=30).codes
        torch.testing.assert_close(codes, expected, rtol=0, atol=0)


def test_a_module_of_another_dtype_or_a_sparse_tensor_is_named_with_its_fix():
    # audit 2026-11-29: float64 rows (numpy's default) given to a float32 model's decoder were "the decoder
    # module cannot decode codes of size l=5 (from n_components): mat1 and mat2 must have the same dtype ...;
    # pass the code size the decoder takes", and a sparse tensor torch's "can't convert Sparse layout tensor"
    decoder = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 10))
    Y = torch.randn(6, 10, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"parameters are float32 but Y is float64.*Y.to\(torch.float32\)"):
        fista(Y, decoder, 0.01, n_components=5)
    assert fista(Y.float(), decoder, 0.01, n_components=5, max_iter=5).codes.dtype == torch.float32
    with pytest.raises(TypeError, match=r"Y is a torch.sparse_coo tensor.*Y.to_dense\(\)"):
        fista(Y.to_sparse(), torch.eye(10, 5, dtype=torch.float64), 0.01)
    with pytest.raises(TypeError, match=r"decoder is a torch.sparse_coo tensor.*decoder.to_dense\(\)"):
        fista(Y, torch.eye(10, 5, dtype=torch.float64).to_sparse(), 0.01)


def test_module_lipschitz_estimate_equals_linear_one(random_problem):
    _, D = random_problem
    W = torch.tensor(D.T)
    linear = nn.Linear(D.shape[0], D.shape[1], bias=False).double()
    with torch.no_grad():
        linear.weight.copy_(W)
    d = D.shape[1]
    Y = torch.zeros(4, d, dtype=torch.float64)
    estimate = _ModuleSmooth(Y, nn.Sequential(linear), 0.0, None).lipschitz(
        torch.rand(4, D.shape[0]).double()
    )
    exact = 1.01 * 2.0 / d * torch.linalg.eigvalsh(W.T @ W).max().item()
    assert estimate == pytest.approx(exact, rel=1e-3)
    assert power_iteration_max_eigenvalue(W.T @ W) == pytest.approx(
        torch.linalg.eigvalsh(W.T @ W).max().item(), rel=1e-4
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_power_iteration_finds_the_top_eigenvalue_where_a_structured_start_is_orthogonal(dtype):
    # atoms ±u whose signs sum to 0: the Gram s sᵀ (s = ±1) is orthogonal to an all-ones start vector,
    # and a second case with its top eigenvector orthogonal to it too; exact values from eigvalsh
    u = torch.randn(5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    atoms = torch.outer(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64), u / u.norm())
    W = torch.tensor([[-1.0, -1, 1, 1, 1, 1, -1, -1], [0.1] * 8], dtype=torch.float64)
    for gram in (atoms @ atoms.T, W.T @ W):
        exact = torch.linalg.eigvalsh(gram).max().item()
        assert power_iteration_max_eigenvalue(gram.to(dtype)) == pytest.approx(exact, rel=1e-4)


def test_power_iteration_is_scale_safe_in_float32():
    # entries of 1e21: the product norms square to 1e42, beyond float32 (3.4e38), unless scaled first
    gram = torch.tensor([[2.0, 1.0], [1.0, 2.0]]) * 1e21
    assert power_iteration_max_eigenvalue(gram) == pytest.approx(3e21, rel=1e-4)
    assert power_iteration_max_eigenvalue(torch.zeros(3, 3)) == 0.0


def test_sparse_encode_fista_with_a_scaled_float32_dictionary_matches_float64():
    rng = np.random.default_rng(0)
    X, D = rng.standard_normal((20, 10)), rng.standard_normal((8, 10)) * 1e10
    codes32 = sparse_encode(X.astype(np.float32), D.astype(np.float32), alpha=1.0, method="fista", tol=1e-7)
    codes64 = sparse_encode(X, D, alpha=1.0, method="fista", tol=1e-10)
    assert np.abs(codes32 - codes64).max() <= 1e-3 * np.abs(codes64).max()


def test_linear_with_bias_equals_dictionary_on_shifted_inputs(random_problem):
    X, D = random_problem
    linear = nn.Linear(D.shape[0], D.shape[1]).double()
    Y = torch.tensor(X)
    lam = float(reference_lam(X, D.T))
    with_bias = fista(Y, linear, lam, step="lipschitz", tol=1e-8, max_iter=3000)
    shifted = fista(
        Y - linear.bias.detach(), linear.weight.detach(), lam, step="lipschitz", tol=1e-8, max_iter=3000
    )
    torch.testing.assert_close(with_bias.codes, shifted.codes)


@pytest.mark.parametrize("positive", [True, False])
@pytest.mark.parametrize("step", ["backtracking", "lipschitz"])
def test_full_energy_optimality_with_hinge_and_encoder_term(positive, step):
    """β, γ > 0 and a non-linear decoder: the result satisfies the L1 optimality conditions of the full
    SPEC §2.1 energy, with the smooth gradient taken by autograd (independent of the closed forms)."""
    torch.manual_seed(0)
    n, l, d = 24, 6, 10
    decoder = TwoLayerDecoder(l, d).double()
    Y = torch.randn(n, d, dtype=torch.float64)
    z_encoder = torch.rand(n, l, dtype=torch.float64) * 0.3
    lam, beta, gamma, T = 0.01, 0.5, 0.5, 0.5
    result = fista(
        Y,
        decoder,
        lam,
        z0=z_encoder,
        step=step,
        max_iter=5000,
        tol=1e-10,
        positive=positive,
        beta=beta,
        var_threshold=T,
        gamma=gamma,
    )
    assert_energy_optimality(result.codes, Y, decoder, z_encoder, lam, beta, T, gamma, positive)
    assert bool(result.converged.all())
    assert decoder.hidden.weight.grad is None


def test_float32_and_float64_agree(mnist_problem):
    X, D = mnist_problem
    lam = float(reference_lam(X, D.T))
    results = {}
    for dtype in (torch.float32, torch.float64):
        result = fista(
            torch.tensor(X, dtype=dtype),
            torch.tensor(D.T, dtype=dtype),
            lam,
            step="lipschitz",
            max_iter=3000,
            tol=1e-6,
        )
        assert result.codes.dtype == dtype
        results[dtype] = lasso_objective(X, D, result.codes, lam_to_lasso_alpha(lam, X.shape[1]))
    assert results[torch.float32] == pytest.approx(results[torch.float64], rel=1e-4)


def test_empty_code_init_from_z0_and_zero_lambda():
    """λ = 0 is allowed (the λ grid starts at 0): plain least squares, reached from a given z0."""
    torch.manual_seed(1)
    W = torch.randn(12, 4, dtype=torch.float64)
    Y = torch.randn(5, 12, dtype=torch.float64)
    result = fista(
        Y,
        W,
        0.0,
        z0=torch.ones(5, 4, dtype=torch.float64),
        positive=False,
        step="lipschitz",
        max_iter=20_000,
        tol=1e-12,
    )
    least_squares = torch.linalg.lstsq(W, Y.T).solution.T
    torch.testing.assert_close(result.codes, least_squares, rtol=1e-6, atol=1e-8)


def _nan_linear():
    linear = nn.Linear(2, 5, bias=False)
    with torch.no_grad():
        linear.weight[0, 0] = float("nan")
    return linear


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"Y": torch.ones(6)}, "Y must be 2-D"),
        ({"Y": torch.ones(0, 5)}, "Y is an empty batch"),
        ({"Y": torch.full((3, 5), float("nan"))}, "Y contains NaN"),
        ({"Y": torch.full((3, 5), float("inf"))}, "Y contains NaN or inf"),
        ({"decoder": torch.ones(4, 2)}, "decoder has 4 rows"),
        ({"decoder": torch.ones(5)}, "decoder tensor must be 2-D"),
        ({"decoder": "W"}, "decoder must be"),
        ({"lam": -0.1}, "lam must be"),
        ({"lam": float("nan")}, "lam must be"),
        ({"step": 0.0}, "step must be"),
        ({"step": -1.0}, "step must be"),
        ({"step": "newton"}, "step must be"),
        ({"max_iter": 0}, "max_iter must be"),
        ({"tol": -1.0}, "tol must be"),
        ({"beta": -1.0}, "beta must be"),
        ({"gamma": -1.0}, "gamma must be"),
        ({"var_threshold": 0.0}, "var_threshold must be"),
        ({"z0": torch.zeros(2, 2)}, "z0 has 2 rows"),
        ({"z0": torch.zeros(3, 3)}, "z0 has l=3 columns"),
        ({"gamma": 1.0}, "gamma > 0 needs"),
        ({"z_encoder": torch.zeros(3, 5)}, "z_encoder must have shape"),
        ({"decoder": nn.Sequential(nn.Linear(2, 5))}, "n_components"),
        ({"decoder": nn.Sequential(nn.Linear(2, 4)), "n_components": 2}, "expected \\(1, 5\\)"),
        ({"Y": torch.ones(1, 5), "beta": 1.0}, "at least 2 samples"),
        ({"positive": "no"}, "positive must be True or False"),
        ({"record_energy": None}, "record_energy must be True or False"),
        ({"lam": torch.full((3,), 0.1)}, "lam must be a single number"),
        # finite float32 atoms whose Gram matrix overflows (the Lipschitz estimate read NaN)
        ({"decoder": torch.full((5, 2), 1e20), "step": "lipschitz"}, "overflows torch.float32.*float64"),
        ({"decoder": torch.full((5, 2), 1e20)}, "overflows torch.float32.*float64"),
        ({"decoder": _nan_linear()}, "NaN or inf in its weight"),
        ({"check_overflow": 1}, "check_overflow must be True or False"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(change, match):
    arguments = {"Y": torch.ones(3, 5), "decoder": torch.ones(5, 2), "lam": 0.1}
    arguments.update(change)
    Y, decoder, lam = arguments.pop("Y"), arguments.pop("decoder"), arguments.pop("lam")
    with pytest.raises(ValueError, match=match):
        fista(Y, decoder, lam, **arguments)


def test_without_the_overflow_check_an_overflowing_decoder_gives_diverged_samples():
    """Training passes check_overflow=False: its decoder overflowing is a divergence, which the trainer
    reports as such (stop, keep the last good checkpoint), not a ValueError about the arguments."""
    with pytest.warns(RuntimeWarning):
        result = fista(torch.ones(3, 5), torch.full((5, 2), 1e20), 0.1, check_overflow=False)
    assert not result.converged.any()
    assert not torch.isfinite(result.codes).all()


# --------------------------------------------------------------------------------------------------
# divergence (issue 11, item 7)
# --------------------------------------------------------------------------------------------------
def _reported_bound(message: str) -> float:
    import re

    return float(re.search(r"2/L = ([0-9.eE+-]+)", message).group(1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("path", ["gram", "hinge", "module"])
def test_step_far_above_two_over_l_warns_and_marks_samples_not_converged(dtype, path):
    """step=20 ≫ 2/L (the issue's call): codes overflow; today's converged=True must become False, with a
    RuntimeWarning naming the step and the bound 2/L, which is checked against numpy's eigenvalues."""
    rng = np.random.default_rng(0)
    X, W_np = rng.standard_normal((50, 30)), rng.standard_normal((30, 20))
    Y, W = torch.tensor(X, dtype=dtype), torch.tensor(W_np, dtype=dtype)
    decoder, extra = W, {}
    if path == "hinge":
        extra = {"beta": 1.0}
    elif path == "module":
        linear = nn.Linear(20, 30, bias=False).to(dtype)
        with torch.no_grad():
            linear.weight.copy_(W)
        decoder, extra = nn.Sequential(linear), {"n_components": 20}
    with pytest.warns(RuntimeWarning, match=r"diverged.*step 20 against 2/L") as record:
        result = fista(Y, decoder, 0.01, step=20.0, max_iter=300, **extra)
    assert not result.converged.any()
    exact = 2.0 / (2.0 / 30 * np.linalg.eigvalsh(W_np.T @ W_np).max())
    message = next(str(w.message) for w in record if issubclass(w.category, RuntimeWarning))
    assert _reported_bound(message) == pytest.approx(exact, rel=2e-3)
    assert exact < 1.0  # the step of 20 really is far above the bound


@pytest.mark.parametrize("step", [0.5, "lipschitz", "backtracking"])
def test_stable_steps_give_no_divergence_warning(mnist_problem, step):
    X, D = mnist_problem
    lam = float(reference_lam(X, D.T))
    assert 0.5 < 2.0 / (2.0 / X.shape[1] * np.linalg.eigvalsh(D @ D.T).max())  # 0.5 is below 2/L
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = fista(torch.tensor(X), torch.tensor(D.T), lam, step=step, beta=0.1, max_iter=500)
    assert torch.isfinite(result.codes).all() and torch.isfinite(result.energy).all()


# --------------------------------------------------------------------------------------------------
# one loop: restart and the adaptive step rule behave as the named wrappers
# --------------------------------------------------------------------------------------------------
def test_restart_and_adaptive_step_reach_the_sklearn_lasso(correlated_problem):
    from sparsecoder.inference.fista import fista_gram
    from sparsecoder.inference.lasso import fista_gram_adaptive

    X, D = correlated_problem
    X = X[:8]
    alpha = float(0.15 * np.abs(X @ D.T).max(axis=1).mean())
    reference = lasso_objective(X, D, sklearn_codes(X, D.T, alpha, True), alpha)
    gram, linear_term = torch.tensor(D @ D.T), torch.tensor(X @ D.T)
    eta = 1.0 / np.linalg.eigvalsh(D @ D.T).max()
    start = torch.zeros(len(X), len(D), dtype=torch.float64)
    plain = fista_gram(gram, linear_term, alpha, eta, start, positive=True, max_iter=20_000, tol=1e-9)
    restarted = fista_gram(
        gram, linear_term, alpha, eta, start, positive=True, max_iter=20_000, tol=1e-9, restart=True
    )
    adaptive = fista_gram_adaptive(
        gram, linear_term, alpha, eta, start, positive=True, max_iter=20_000, tol=1e-9
    )
    for codes, _, converged in (plain, restarted, adaptive):
        assert abs(lasso_objective(X, D, codes, alpha) - reference) <= 1e-5 * reference
        assert bool(converged.all())
    # both accelerations need fewer iterations than plain FISTA on this coherent dictionary
    assert restarted[1].sum() < plain[1].sum() and adaptive[1].sum() < plain[1].sum()


def test_complex_inputs_are_refused():
    Y = torch.ones(3, 5)
    with pytest.raises(ValueError, match="Y is complex"):
        fista(Y.to(torch.complex64), torch.ones(5, 2), 0.1)
    with pytest.raises(ValueError, match="decoder is complex"):
        fista(Y, torch.ones(5, 2, dtype=torch.complex64), 0.1)
    with pytest.raises(ValueError, match="z0 is complex"):
        fista(Y, torch.ones(5, 2), 0.1, z0=torch.zeros(3, 2, dtype=torch.complex64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gram_step_softshrink_is_bitwise_the_clamp_formula(dtype):
    """The Gram steppers' one-kernel shrink (softshrink) gives exactly ``x − clamp(x, −τ, τ)`` (the
    previous two-kernel form), so the iterates are unchanged; edges ±τ, 0 and tiny values included."""
    generator = torch.Generator().manual_seed(0)
    shrink = 0.0123456789
    values = torch.randn(4000, dtype=dtype, generator=generator) * 0.05
    edges = torch.tensor([shrink, -shrink, 0.0, -0.0, 1e-30, -1e-30, 2 * shrink, -2 * shrink], dtype=dtype)
    values = torch.cat([values, edges, torch.nextafter(edges, torch.full_like(edges, 1.0))])
    expected = values - values.clamp(-shrink, shrink)
    fused = torch.nn.functional.softshrink(values, shrink)
    assert torch.equal(fused, expected)


def test_integer_options_accept_numpy_integers():
    Y = torch.randn(4, 6, dtype=torch.float64)
    W = torch.randn(6, 3, dtype=torch.float64)
    reference = fista(Y, W, 0.1, max_iter=50)
    numpy_int = fista(Y, W, 0.1, max_iter=np.int64(50))
    assert torch.equal(reference.codes, numpy_int.codes)
    module = nn.Sequential(nn.Linear(3, 6).double())
    assert fista(Y, module, 0.1, n_components=np.int32(3), step=0.1).codes.shape == (4, 3)


def test_a_module_decoder_of_another_code_size_is_a_clear_error():
    module = nn.Sequential(nn.Linear(15, 10).double(), nn.Tanh())
    with pytest.raises(ValueError, match="cannot decode codes of size l=14"):
        fista(torch.randn(4, 10, dtype=torch.float64), module, 0.1, n_components=14)


def test_finite_codes_whose_norm_overflows_are_not_called_diverged():
    """float32 codes of 3e19 are finite, but their squared norm is inf: only non-finite codes diverged."""
    rng = np.random.default_rng(0)
    Y = torch.tensor(rng.standard_normal((20, 10)) * 1e19, dtype=torch.float32)
    W = torch.tensor(rng.standard_normal((10, 15)), dtype=torch.float32)
    W = W / W.norm(dim=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = fista(Y, W, 0.05 * 1e19, step=0.5, max_iter=50)
    assert torch.isfinite(result.codes).all() and result.codes.abs().max() > 1e19


# --------------------------------------------------------------------------------------------------
# extreme scales, unstable steps without overflow, tensors without values
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [1e-22, 1e30])
@pytest.mark.parametrize("positive", [True, False])
def test_codes_scale_with_the_rows_at_extreme_magnitudes(scale, positive):
    """codes(sY, sλ) = s·codes(Y, λ): float32 rows of 1e-20 froze at their first iteration (the squared
    norms in the freezing test underflowed: 6–90 % error, converged=True), rows of 1e20 never froze."""
    generator = torch.Generator().manual_seed(0)
    W, Y = torch.randn(6, 8, generator=generator), torch.randn(5, 6, generator=generator)
    options = dict(step="lipschitz", max_iter=1000, tol=1e-6, positive=positive)
    base = fista(Y, W, 0.05, **options)
    result = fista(Y * scale, W, 0.05 * scale, **options)
    tolerance = 1e-4 * float(base.codes.abs().max())
    assert torch.allclose(result.codes / scale, base.codes, rtol=1e-3, atol=tolerance)
    assert bool(result.converged.all()) and int(result.n_iter.min()) > 50  # not frozen at once (was 1)
    assert torch.allclose(result.energy[-1], base.energy[-1] * scale**2, rtol=1e-4)  # was 0 or inf


def test_rows_whose_products_with_the_atoms_overflow_are_solved_scaled():
    """Y of 3e38 against atoms of 4 (Y·W overflows float32) was refused naming float64; solved divided by a
    power of two, the codes are 3e38 × those of rows of ones (codes beyond float32 are still refused)."""
    W = torch.full((5, 2), 4.0)
    result = fista(torch.full((3, 5), 3e38), W, 0.1 * 3e38, step="lipschitz", positive=False)
    unit = fista(torch.ones(3, 5), W, 0.1, step="lipschitz", positive=False)
    torch.testing.assert_close(result.codes / 3e38, unit.codes, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="the codes overflow torch.float32"):
        fista(torch.full((3, 5), 3e38), torch.full((5, 2), 1e-3), 0.0, step="lipschitz", positive=False)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_fixed_step_above_2_over_L_warns_even_when_the_codes_do_not_overflow(dtype):
    """In float64 (or float32 for few iterations) codes grow as (ηL − 1)^k without overflowing: they came
    back finite (1e102) with converged=False and no warning; a step within the bound stays silent."""
    generator = torch.Generator().manual_seed(0)
    W = torch.randn(6, 8, generator=generator, dtype=dtype)
    Y = torch.randn(5, 6, generator=generator, dtype=dtype)
    L = float(torch.linalg.eigvalsh((2 / 6) * W.T @ W).max())
    with pytest.warns(RuntimeWarning, match=r"not converge: 5 of 5 samples .* above the stability bound 2/L"):
        result = fista(Y, W, 1e-2, step=2.5 / L, max_iter=20, record_energy=False)
    assert bool(torch.isfinite(result.codes).all()) and not bool(result.converged.any())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fista(Y, W, 1e-2, step=0.9 / L, max_iter=3, record_energy=False)  # stopped by max_iter, stable


def test_meta_tensors_and_overflowing_steps_are_refused_by_name():
    """A 'meta' tensor has no values (torch: "Tensor.item() cannot be called on meta tensors"); a step
    beyond float32's range failed in torch ("value cannot be converted to type float without overflow")."""
    Y, W = torch.randn(3, 4), torch.randn(4, 5)
    with pytest.raises(ValueError, match="Y is on the 'meta' device"):
        fista(torch.empty(3, 4, device="meta"), W, 0.1)
    with pytest.raises(ValueError, match="decoder is on the 'meta' device"):
        fista(Y, torch.empty(4, 5, device="meta"), 0.1)
    with pytest.raises(ValueError, match="decoder module is on the 'meta' device"):
        fista(Y, nn.Linear(5, 4, device="meta"), 0.1)
    with pytest.raises(ValueError, match=r"step 1e\+300 is beyond torch.float32's range"):
        fista(Y, W, 0.1, step=1e300)
