"""sparsecoder.sparse_encode against scikit-learn's lasso (objective within 1e-5 relative)."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.decomposition import sparse_encode as sklearn_sparse_encode
from sklearn.linear_model import Lasso

from sparsecoder import sparse_encode
from sparsecoder.inference import lasso_objective


def sklearn_codes(X, D, alpha, positive):
    """Tightly converged scikit-learn coordinate descent (Lasso scales its L1 weight by 1/n_features)."""
    model = Lasso(
        alpha=alpha / X.shape[1], fit_intercept=False, positive=positive, tol=1e-12, max_iter=200_000
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(D.T, X.T)
    return np.atleast_2d(model.coef_)


def alpha_for(X, D, fraction=0.15):
    return float(fraction * np.abs(X @ D.T).max(axis=1).mean())


@pytest.mark.parametrize("problem", ["random_problem", "mnist_problem", "correlated_problem"])
@pytest.mark.parametrize("positive", [True, False])
@pytest.mark.parametrize("step", ["adaptive", "lipschitz"])
def test_objective_matches_sklearn_lasso(problem, positive, step, request):
    X, D = request.getfixturevalue(problem)
    alpha = alpha_for(X, D)
    reference = lasso_objective(X, D, sklearn_codes(X, D, alpha, positive), alpha)
    codes = sparse_encode(X, D, alpha=alpha, positive=positive, tol=1e-10, max_iter=50_000, step=step)
    ours = lasso_objective(X, D, codes, alpha)
    assert abs(ours - reference) <= 1e-5 * abs(reference)
    if positive:
        assert (codes >= 0).all()
    assert np.mean(codes == 0) > 0.2  # the L1 term really produces exact zeros


def test_default_settings_match_sklearn_sparse_encode(mnist_problem):
    """Defaults (tol=1e-4) against scikit-learn's own sparse_encode(algorithm='lasso_cd')."""
    X, D = mnist_problem
    alpha = alpha_for(X, D)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = sklearn_sparse_encode(X, D, algorithm="lasso_cd", alpha=alpha, max_iter=10_000)
    ours = sparse_encode(X, D, alpha=alpha)
    reference = lasso_objective(X, D, theirs, alpha)
    assert lasso_objective(X, D, ours, alpha) <= reference * (1 + 1e-5)


def test_fixed_step_plain_fista(random_problem):
    X, D = random_problem
    alpha = alpha_for(X, D)
    L = np.linalg.eigvalsh(D @ D.T).max()
    codes = sparse_encode(X, D, alpha=alpha, step=1.0 / L, tol=1e-10, max_iter=50_000)
    reference = lasso_objective(X, D, sklearn_codes(X, D, alpha, False), alpha)
    assert abs(lasso_objective(X, D, codes, alpha) - reference) <= 1e-5 * reference


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_in_numpy_out_keeps_dtype(mnist_problem, dtype):
    X, D = mnist_problem
    alpha = alpha_for(X, D)
    codes, n_iter = sparse_encode(X.astype(dtype), D.astype(dtype), alpha=alpha, return_n_iter=True)
    assert isinstance(codes, np.ndarray) and codes.dtype == dtype and codes.shape == (len(X), len(D))
    assert n_iter.shape == (len(X),) and n_iter.min() >= 1
    reference = lasso_objective(X, D, sklearn_codes(X, D, alpha, False), alpha)
    # float32 data: the optimum itself moves by float32 rounding of X and D
    tolerance = 1e-4 if dtype == np.float32 else 1e-5
    assert abs(lasso_objective(X, D, codes, alpha) - reference) <= tolerance * reference


def test_torch_in_torch_out(random_problem):
    X, D = random_problem
    alpha = alpha_for(X, D)
    codes = sparse_encode(
        torch.tensor(X, dtype=torch.float32), torch.tensor(D, dtype=torch.float32), alpha=alpha
    )
    assert (
        isinstance(codes, torch.Tensor) and codes.dtype == torch.float32 and codes.shape == (len(X), len(D))
    )
    as_numpy = sparse_encode(X.astype(np.float32), D.astype(np.float32), alpha=alpha)
    np.testing.assert_allclose(codes.numpy(), as_numpy, rtol=0, atol=1e-6)


def test_warm_start_reaches_same_optimum(random_problem):
    X, D = random_problem
    alpha = alpha_for(X, D)
    exact = sparse_encode(X, D, alpha=alpha, tol=1e-12, max_iter=20_000)
    warm, n_iter = sparse_encode(X, D, alpha=alpha, init=exact, tol=1e-6, return_n_iter=True)
    np.testing.assert_allclose(warm, exact, atol=1e-8)
    assert n_iter.max() <= 2


def test_zero_sample_gives_zero_code(random_problem):
    X, D = random_problem
    X = X.copy()
    X[3] = 0.0
    codes = sparse_encode(X, D, alpha=alpha_for(X, D))
    assert np.all(codes[3] == 0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"X": np.ones(5)}, "X must be 2-D"),
        ({"dictionary": np.ones((4, 7))}, "dictionary has 7 features"),
        ({"X": np.ones((0, 6))}, "X is empty"),
        ({"X": np.array([[np.nan] * 6])}, "X contains NaN"),
        ({"X": np.array([[np.inf] * 6])}, "X contains NaN or inf"),
        ({"alpha": 0.0}, "alpha must be"),
        ({"alpha": -1.0}, "alpha must be"),
        ({"step": 0.0}, "step must be"),
        ({"step": -0.1}, "step must be"),
        ({"step": "newton"}, "step must be"),
        ({"max_iter": 0}, "max_iter must be"),
        ({"tol": -1e-3}, "tol must be"),
        ({"init": np.zeros((2, 3))}, "init must have shape"),
        ({"dictionary": np.full((4, 6), np.nan)}, "dictionary contains NaN"),
        # array-likes go through the same checks as numpy arrays
        ({"X": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]}, "X must be 2-D"),
        ({"X": 3.0}, "X must be 2-D"),
        ({"X": [[1.0] * 6, [1.0] * 5]}, "X must be a 2-D array of numbers.*nested lists of equal lengths"),
        ({"X": [["a"] * 6]}, "X must hold real numbers"),
        ({"X": [[None] * 6]}, "X must hold real numbers"),
        ({"X": [[1j] * 6]}, "X is complex"),
        ({"X": [[float("nan")] * 6]}, "X contains NaN"),
        ({"dictionary": [[1.0] * 7] * 4}, "dictionary has 7 features"),
        ({"init": [[0.0] * 3] * 2}, "init must have shape"),
        ({"X": np.ones((3, 0)), "dictionary": np.ones((4, 0))}, "X has 0 features"),
        # flags read by truthiness would turn "no" into positive codes
        ({"positive": "no"}, "positive must be True or False"),
        ({"positive": None}, "positive must be True or False"),
        ({"return_n_iter": "no"}, "return_n_iter must be True or False"),
        ({"alpha": np.full(3, 0.1)}, "alpha must be a single number"),
        ({"alpha": "0.1"}, "alpha must be a real number"),
        # scikit-learn's arguments (audit 2026-11-29: algorithm= and n_jobs= were TypeErrors)
        ({"algorithm": "omp"}, "algorithm='omp' solves another problem .* sklearn.decomposition.sparse_enc"),
        ({"algorithm": "lasso"}, "algorithm must be 'lasso_cd' or 'lasso_lars'"),
        ({"n_jobs": 0}, "n_jobs=0 means no thread"),
        ({"n_jobs": 1.5}, "n_jobs must be an integer or None"),
        ({"X": np.ones(6)}, r"a single sample: X.reshape\(1, -1\)"),
        # audit 2026-11-30: a scalar was reported as "got shape (1,)"; meta tensors (shapes without values)
        # failed inside torch ("Tensor.item() cannot be called on meta tensors")
        ({"X": np.float64(3.0)}, r"X must be 2-D \(n_samples, n_features\), got shape \(\)"),
        ({"X": np.array([[object()] * 6])}, "X must hold real numbers"),
        ({"X": torch.empty(3, 6, device="meta")}, "X is on the 'meta' device, which holds shapes but no"),
        ({"dictionary": torch.empty(4, 6, device="meta")}, "dictionary is on the 'meta' device"),
        ({"init": torch.empty(3, 4, device="meta")}, "init is on the 'meta' device"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(kwargs, match):
    arguments = {"X": np.ones((3, 6)), "dictionary": np.eye(4, 6), "alpha": 0.1}
    arguments.update(kwargs)
    X = arguments.pop("X")
    dictionary = arguments.pop("dictionary")
    with pytest.raises(ValueError, match=match):
        sparse_encode(X, dictionary, **arguments)


def test_divergent_fixed_step_raises_naming_step_and_bound(random_problem):
    """step=100 ≫ 2/L (issue 11, item 7): a ValueError naming the step and 2/L (checked with numpy)."""
    import re

    X, D = random_problem
    with pytest.raises(ValueError, match=r"diverged.*step=100 against 2/L") as error:
        sparse_encode(X.astype(np.float32), D.astype(np.float32), alpha=alpha_for(X, D), method="fista",
                      step=100.0)
    bound = float(re.search(r"2/L = ([0-9.eE+-]+)", str(error.value)).group(1))
    assert bound == pytest.approx(2.0 / np.linalg.eigvalsh(D @ D.T).max(), rel=2e-3)


def test_stable_fixed_step_does_not_raise(random_problem):
    X, D = random_problem
    step = 1.0 / np.linalg.eigvalsh(D @ D.T).max()
    codes = sparse_encode(X, D, alpha=alpha_for(X, D), method="fista", step=step, max_iter=5000)
    assert np.isfinite(codes).all()


@pytest.mark.parametrize("method", ["auto", "fista"])
@pytest.mark.parametrize("half", ["torch-float16", "torch-bfloat16", "numpy-float16"])
def test_half_precision_input_is_computed_in_float32(mnist_problem, method, half):
    """float16/bfloat16 inputs are solved in float32 and returned in the input's dtype: the codes equal
    the float32 solution of the same (rounded) input, rounded once."""
    X, D = mnist_problem
    alpha = alpha_for(X, D)
    if half == "numpy-float16":
        X_half = X.astype(np.float16)
        X32 = X_half.astype(np.float32)
        codes = sparse_encode(X_half, D.astype(np.float16), alpha=alpha, method=method)
        expected = sparse_encode(X32, D.astype(np.float16).astype(np.float32), alpha=alpha, method=method)
        assert isinstance(codes, np.ndarray) and codes.dtype == np.float16
        np.testing.assert_array_equal(codes, expected.astype(np.float16))
    else:
        dtype = torch.float16 if half == "torch-float16" else torch.bfloat16
        X_half, D_half = torch.tensor(X).to(dtype), torch.tensor(D).to(dtype)
        codes = sparse_encode(X_half, D_half, alpha=alpha, method=method)
        expected = sparse_encode(X_half.float(), D_half.float(), alpha=alpha, method=method)
        assert codes.dtype == dtype
        torch.testing.assert_close(codes, expected.to(dtype), rtol=0, atol=0)
        expected = expected.numpy()
    # and the float32 solution of the rounded input is close to that of the exact input
    exact = sparse_encode(X.astype(np.float32), D.astype(np.float32), alpha=alpha, method=method)
    rounding = 1e-2 if half == "torch-bfloat16" else 2e-3
    assert np.abs(expected - exact).max() <= rounding * np.abs(exact).max() * 10


@pytest.mark.parametrize("where", ["X", "dictionary"])
@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_complex_inputs_are_refused(random_problem, where, kind):
    X, D = random_problem
    arrays = {"X": X, "dictionary": D}
    value = arrays[where].astype(np.complex128)
    arrays[where] = value if kind == "numpy" else torch.from_numpy(value)
    with pytest.raises(ValueError, match=f"{where} is complex.*real numbers"):
        sparse_encode(arrays["X"], arrays["dictionary"], alpha=0.1)


# --------------------------------------------------------------------------------------------------
# magnitudes far from 1: float32 entries of 1e19 square to inf (the Gram matrix, the codes' norms)
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["auto", "fista"])
@pytest.mark.parametrize("step", ["adaptive", "lipschitz", 0.1])
@pytest.mark.parametrize("x_scale, atom_scale", [(1e19, 1.0), (1.0, 1e20), (1e-25, 1.0), (1e25, 1e-8)])
def test_extreme_float32_magnitudes_give_the_scaled_lasso_solution(random_problem, method, step,
                                                                   x_scale, atom_scale):
    """The lasso is scale-equivariant: codes(sX, tD, α·s·t) = codes(X, D, α)·s/t. The float64 solution at
    unit scale, scaled, is the truth; float32 at 1e19 used to report 'FISTA diverged' (a norm of finite
    codes overflowed), and atoms of 1e20 a Gram matrix of inf ('step=nan against 2/L = nan')."""
    X, D = random_problem
    alpha = alpha_for(X, D)
    if method == "auto" and step != "adaptive":
        pytest.skip("auto with a fixed step is FISTA")
    truth = sparse_encode(X, D, alpha=alpha, tol=1e-10, max_iter=20_000)
    L = np.linalg.eigvalsh(D @ D.T).max()
    scaled_step = step if isinstance(step, str) else min(step, 1.0 / L) / atom_scale**2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # float32 rows cannot meet tol=1e-7 (below float32's resolution): warned since 2026-11-29
        warnings.filterwarnings("ignore", "FISTA: .* resolution", RuntimeWarning)
        codes = sparse_encode((X * x_scale).astype(np.float32), (D * atom_scale).astype(np.float32),
                              alpha=alpha * x_scale * atom_scale, method=method, step=scaled_step,
                              tol=1e-7, max_iter=20_000)
    assert codes.dtype == np.float32 and np.isfinite(codes).all()
    unscaled = codes.astype(np.float64) * atom_scale / x_scale
    reference = lasso_objective(X, D, truth, alpha)
    assert lasso_objective(X, D, unscaled, alpha) <= reference * (1 + 1e-4)
    assert np.array_equal(codes == 0, truth == 0) or np.mean((codes == 0) != (truth == 0)) < 0.01


def test_codes_beyond_float32_are_refused_naming_the_fix(random_problem):
    X, D = random_problem
    with pytest.raises(ValueError, match="codes overflow torch.float32.*float64"):
        sparse_encode((X * 1e30).astype(np.float32), (D * 1e-20).astype(np.float32), alpha=1e9)
    codes = sparse_encode(X * 1e30, D * 1e-20, alpha=1e9)  # float64 holds codes of 1e50
    assert np.isfinite(codes).all() and np.abs(codes).max() > 1e45
    # float64 input overflowing float64 is not told to pass float64 (audit 2026-11-30)
    with pytest.raises(ValueError, match=r"codes overflow torch.float64.*; rescale X") as error:
        sparse_encode(X * 1e300, D * 1e-300, alpha=1e-9)
    assert "pass float64" not in str(error.value)


def test_lists_and_tuples_are_taken_like_scikit_learn(random_problem):
    # README: a drop-in for sklearn.decomposition.sparse_encode, which takes array-likes; lists used to be
    # refused ("must be a numpy array or a torch tensor"). Numbers in nested lists/tuples are read by
    # np.asarray (float64, as numpy reads them) and the codes come back as a numpy array.
    X, D = random_problem
    alpha = alpha_for(X, D)
    expected = sparse_encode(X, D, alpha=alpha)
    for X_like, D_like in ((X.tolist(), D.tolist()), (tuple(map(tuple, X)), D), (X, D.tolist())):
        codes = sparse_encode(X_like, D_like, alpha=alpha)
        assert isinstance(codes, np.ndarray) and codes.dtype == np.float64
        np.testing.assert_allclose(codes, expected, rtol=1e-9, atol=1e-12)
    integers = sparse_encode([[1, 0, 2, 0, 0, 1]], np.eye(4, 6).tolist(), alpha=0.1, init=[[0, 0, 0, 0]])
    np.testing.assert_allclose(integers, [[0.9, 0.0, 1.9, 0.0]])


def test_all_zero_dictionary_gives_zero_codes_with_every_method():
    """The objective is alpha·||z||₁ plus a constant: zero codes, as scikit-learn returns (FISTA raised)."""
    X = np.random.default_rng(0).standard_normal((3, 5))
    D = np.zeros((4, 5))
    for method in ("auto", "active-set", "fista"):
        codes = sparse_encode(X, D, alpha=0.1, method=method, init=np.ones((3, 4)))
        assert np.array_equal(codes, sklearn_sparse_encode(X, D, algorithm="lasso_cd", alpha=0.1)), method


def test_a_scalar_alpha_in_a_zero_d_array_or_tensor_is_taken():
    X = np.random.default_rng(0).standard_normal((3, 5))
    D = np.eye(4, 5)
    expected = sparse_encode(X, D, alpha=0.3)
    assert np.array_equal(sparse_encode(X, D, alpha=np.array(0.3)), expected)
    assert np.array_equal(sparse_encode(X, D, alpha=torch.tensor(0.3, dtype=torch.float64)), expected)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message when CUDA is missing")
def test_device_cuda_without_cuda_is_refused_by_name():
    with pytest.raises(ValueError, match="needs CUDA"):
        sparse_encode(np.ones((2, 3)), np.eye(2, 3), alpha=0.1, device="cuda")


@pytest.mark.parametrize("device, match", [("mps", "device: 'mps' is not available on this machine"),
                                           ("meta", "device: 'meta' holds shapes but no values"),
                                           (0, "device: 0 is not a device name")])
def test_a_device_this_machine_lacks_is_refused_by_name(device, match):
    # audit 2026-11-29: device="mps" was torch's "PyTorch is not linked with support for mps devices"
    # (a RuntimeError) and device="meta" "Tensor.item() cannot be called on meta tensors"
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    with pytest.raises(ValueError, match=match):
        sparse_encode(np.ones((2, 3)), np.eye(2, 3), alpha=0.1, device=device)
    codes = sparse_encode(np.ones((2, 3)), np.eye(2, 3), alpha=0.1, device=torch.device("cpu:0"))
    np.testing.assert_array_equal(codes, sparse_encode(np.ones((2, 3)), np.eye(2, 3), alpha=0.1))


def test_a_warm_start_on_a_zero_atom_is_dropped_not_divided_by():
    """The active set's warm start put a zero atom in its working set: ZeroDivisionError (G_jj = 0)."""
    rng = np.random.default_rng(1)
    X, D = rng.standard_normal((3, 5)), rng.standard_normal((4, 5))
    D[1] = 0.0
    reference = lasso_objective(X, D, sklearn_codes(X, D, 0.1, False), 0.1)
    for method in ("auto", "active-set"):
        codes = sparse_encode(X, D, alpha=0.1, method=method, init=np.ones((3, 4)))
        assert np.all(codes[:, 1] == 0)
        assert lasso_objective(X, D, codes, 0.1) <= reference * (1 + 1e-9), method


@pytest.mark.parametrize("as_tensor", [False, True])
def test_half_precision_codes_beyond_the_dtype_are_refused_not_inf(as_tensor):
    """Solved in float32, codes of 6e6 were cast to float16 inf (numpy: a cast warning; torch: silent)."""
    X, D = np.full((2, 3), 60000, np.float16), np.eye(2, 3) * 0.01
    if as_tensor:
        X, D = torch.from_numpy(X), torch.from_numpy(D)
    with pytest.raises(ValueError, match="codes overflow.*float16.*float32"):
        sparse_encode(X, D, alpha=0.1)


@pytest.mark.parametrize("algorithm", ["lasso_cd", "lasso_lars"])
@pytest.mark.parametrize("positive", [False, True])
def test_a_scikit_learn_call_runs_unchanged(random_problem, algorithm, positive):
    # audit 2026-11-29: the README's drop-in call sparse_encode(X, D, algorithm="lasso_cd", alpha=0.1) was a
    # TypeError (no algorithm=, n_jobs=; alpha required). Both lasso algorithms mean the same problem, the
    # objective at least as low as scikit-learn's (its positive lasso_lars stops above the optimum)
    X, D = random_problem
    arguments = dict(algorithm=algorithm, positive=positive, max_iter=10_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = sklearn_sparse_encode(X, D, alpha=0.5, **arguments)  # n_jobs=2 there: processes, seconds
        default_theirs = sklearn_sparse_encode(X, D, algorithm=algorithm, positive=positive)  # alpha None: 1
    ours = sparse_encode(X, D, alpha=0.5, n_jobs=2, **arguments)
    assert lasso_objective(X, D, ours, 0.5) <= lasso_objective(X, D, theirs, 0.5) * (1 + 1e-7)
    np.testing.assert_array_equal(ours, sparse_encode(X, D, alpha=0.5, positive=positive))  # n_jobs: exact
    default_ours = sparse_encode(X, D, algorithm=algorithm, positive=positive)
    assert lasso_objective(X, D, default_ours, 1.0) <= lasso_objective(X, D, default_theirs, 1.0) * (1 + 1e-7)


def test_n_jobs_sets_the_solver_threads_for_the_call_only():
    import numba

    from sparsecoder.inference.lasso import solver_threads

    before = numba.get_num_threads(), torch.get_num_threads()
    with solver_threads(1):
        assert (numba.get_num_threads(), torch.get_num_threads()) == (1, 1)
    with solver_threads(-1):  # every core, as far as numba launched threads
        assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS
    with solver_threads(None):
        assert (numba.get_num_threads(), torch.get_num_threads()) == before
    assert (numba.get_num_threads(), torch.get_num_threads()) == before


def test_scipy_sparse_is_refused_naming_toarray_and_booleans_are_read_as_numbers():
    # audit 2026-11-29: a sparse matrix was "X must hold real numbers, got numpy dtype object"; scikit-learn
    # says to call .toarray(), and reads boolean arrays as 0/1 (they were refused)
    import scipy.sparse

    X, D = np.eye(3, 6), np.eye(4, 6)
    sparse_X, sparse_D = scipy.sparse.csr_matrix(X), scipy.sparse.csr_matrix(D)
    for name, arguments in (("X", (sparse_X, D)), ("dictionary", (X, sparse_D))):
        with pytest.raises(TypeError, match=rf"{name} is a scipy sparse csr_matrix.*pass {name}.toarray\(\)"):
            sparse_encode(*arguments, alpha=0.1)
    np.testing.assert_array_equal(sparse_encode(X > 0, D, alpha=0.1), sparse_encode(X, D, alpha=0.1))
    with pytest.raises(TypeError, match=r"X is a torch.sparse_coo tensor.*pass X.to_dense\(\)"):
        sparse_encode(torch.tensor(X).to_sparse(), D, alpha=0.1)


def test_fista_warns_when_samples_stop_at_max_iter():
    # audit 2026-11-29: method="fista" (and SparseCoder(transform_algorithm="fista")) returned codes 17 %
    # above the lasso optimum, every sample stopped at max_iter=1000 on atoms of norms 1e-2..1e2, unwarned
    # (the active set warns in that case); converged rows stay silent
    rng = np.random.default_rng(2)
    X = rng.standard_normal((30, 12))
    D = rng.standard_normal((20, 12)) * np.logspace(-2, 2, 20)[:, None]
    with pytest.warns(RuntimeWarning, match="FISTA: 30 of 30 samples reached max_iter=50"):
        sparse_encode(X, D, alpha=0.5, method="fista", max_iter=50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sparse_encode(X, D / np.linalg.norm(D, axis=1, keepdims=True), alpha=0.5, method="fista")
    with pytest.warns(RuntimeWarning, match="tol=1e-08 is below torch.float32's resolution"):
        sparse_encode(X.astype(np.float32), D.astype(np.float32), alpha=0.5, method="fista", tol=1e-8,
                      max_iter=50)


def test_starting_numbas_threads_leaves_torchs_thread_count_as_the_user_set_it(one_torch_thread, monkeypatch):
    # audit 2026-11-29: numba's first thread-count query starts its OpenMP threading layer, which sets
    # OpenMP's thread count (torch's) to numba's: torch.set_num_threads(1) was undone by the first
    # sparse_encode or dictionary fit of a process. That start happens once per process, so it is played
    # here by a numba.get_num_threads that does what the OpenMP layer's start does.
    import numba

    real = numba.get_num_threads

    def starting_openmp():
        torch.set_num_threads(2)
        return real()

    monkeypatch.setattr(numba, "get_num_threads", starting_openmp)
    X, D = np.random.default_rng(0).standard_normal((40, 6)), np.eye(4, 6)
    sparse_encode(X, D, alpha=0.1)
    assert torch.get_num_threads() == 1
    sparse_encode(X, D, alpha=0.1, n_jobs=1)
    assert torch.get_num_threads() == 1


def test_pandas_nullable_and_object_arrays_of_numbers_are_read_as_scikit_learn_reads_them():
    """Audit 2026-11-30: a DataFrame of pandas' nullable Float64 (or an object array of floats), which
    scikit-learn's sparse_encode takes, was refused as "X must hold real numbers, got numpy dtype object";
    its missing values (pd.NA) are refused as NaN."""
    import pandas as pd

    rng = np.random.default_rng(4)
    X, D = rng.standard_normal((5, 6)), rng.standard_normal((3, 6))
    expected = sparse_encode(X, D, alpha=0.1)
    for rows in (pd.DataFrame(X).astype("Float64"), X.astype(object)):
        np.testing.assert_array_equal(sparse_encode(rows, D, alpha=0.1), expected)
    np.testing.assert_array_equal(sparse_encode(X, pd.DataFrame(D).astype("Float64"), alpha=0.1), expected)
    with pytest.raises(ValueError, match="X contains NaN"):
        sparse_encode(pd.DataFrame(X).astype("Float64").where(lambda frame: frame > 0), D, alpha=0.1)


def test_lasso_objective_and_power_iteration_check_their_arrays():
    """Audit 2026-11-30: lasso_objective failed inside torch on tensors that require grad, bfloat16 or meta
    ones, and with numpy's gufunc message on mismatched shapes; power_iteration_max_eigenvalue with an
    AttributeError on a numpy matrix and a torch size mismatch on a non-square one."""
    from sparsecoder.inference import power_iteration_max_eigenvalue

    rng = np.random.default_rng(5)
    X, D, Z = rng.standard_normal((6, 5)), rng.standard_normal((3, 5)), rng.standard_normal((6, 3))
    expected = lasso_objective(X, D, Z, 0.2)
    assert lasso_objective(torch.tensor(X, requires_grad=True), D, Z, 0.2) == expected
    assert lasso_objective(torch.tensor(X).bfloat16(), D, Z, 0.2) == pytest.approx(expected, rel=1e-2)
    with pytest.raises(ValueError, match=r"codes \(6, 2\) do not fit"):
        lasso_objective(X, D, Z[:, :2], 0.2)
    with pytest.raises(ValueError, match="X is on the 'meta' device"):
        lasso_objective(torch.empty(6, 5, device="meta"), D, Z, 0.2)
    with pytest.raises(ValueError, match="alpha must be"):
        lasso_objective(X, D, Z, "0.2")
    for matrix in (D @ D.T, torch.tensor(D), torch.ones(3)):
        with pytest.raises(ValueError, match="matrix must be a square 2-D torch.Tensor"):
            power_iteration_max_eigenvalue(matrix)
    with pytest.raises(ValueError, match="matrix is on the 'meta' device"):
        power_iteration_max_eigenvalue(torch.empty(3, 3, device="meta"))
