"""The active-set lasso solver against scikit-learn and against the lasso optimality (KKT) conditions."""

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.decomposition import sparse_encode as sklearn_sparse_encode

from sparsecoder import sparse_encode
from sparsecoder.inference import lasso_objective
from sparsecoder.inference.active_set import lasso_active_set

from .test_sparse_encode import alpha_for, sklearn_codes


def kkt_violation(X, D, codes, alpha, positive):
    """Largest relative violation of the lasso optimality conditions, c = (x − zD)Dᵀ:
    c_j = α sign(z_j) where z_j ≠ 0; |c_j| ≤ α (c_j ≤ α when positive) where z_j = 0."""
    c = (X - codes @ D) @ D.T
    active = codes != 0
    on_support = np.abs(c - alpha * np.sign(codes))[active]
    off = c[~active] if positive else np.abs(c[~active])
    worst = max(on_support.max(initial=0.0), (off - alpha).max(initial=0.0))
    return worst / alpha


@pytest.mark.parametrize("problem", ["random_problem", "mnist_problem", "correlated_problem"])
@pytest.mark.parametrize("positive", [True, False])
def test_active_set_matches_sklearn_and_satisfies_kkt(problem, positive, request):
    X, D = request.getfixturevalue(problem)
    alpha = alpha_for(X, D)
    reference = lasso_objective(X, D, sklearn_codes(X, D, alpha, positive), alpha)
    codes = sparse_encode(X, D, alpha=alpha, positive=positive, method="active-set")
    assert abs(lasso_objective(X, D, codes, alpha) - reference) <= 1e-5 * reference
    assert kkt_violation(X, D, codes, alpha, positive) < 1e-6  # exact, not merely close in objective
    if positive:
        assert (codes >= 0).all()


def test_active_set_and_fista_give_the_same_codes(mnist_problem):
    X, D = mnist_problem
    alpha = alpha_for(X, D)
    exact = sparse_encode(X, D, alpha=alpha, method="active-set")
    fista = sparse_encode(X, D, alpha=alpha, method="fista", tol=1e-12, max_iter=100_000)
    np.testing.assert_allclose(exact, fista, atol=1e-6)


def test_float32_in_float32_out(mnist_problem):
    X, D = mnist_problem
    alpha = alpha_for(X, D)
    codes, sweeps = sparse_encode(
        X.astype(np.float32), D.astype(np.float32), alpha=alpha, method="active-set", return_n_iter=True
    )
    assert codes.dtype == np.float32 and sweeps.dtype == np.int64 and sweeps.shape == (len(X),)
    reference = lasso_objective(X, D, sklearn_codes(X, D, alpha, False), alpha)
    assert abs(lasso_objective(X, D, codes, alpha) - reference) <= 1e-4 * reference
    tensor = sparse_encode(torch.from_numpy(X.astype(np.float32)), torch.from_numpy(D.astype(np.float32)),
                           alpha=alpha, method="active-set")
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32
    np.testing.assert_array_equal(tensor.numpy(), codes)


def test_warm_start_at_the_optimum_needs_one_sweep(correlated_problem):
    X, D = correlated_problem
    alpha = alpha_for(X, D)
    exact = sparse_encode(X, D, alpha=alpha, method="active-set")
    again, sweeps = sparse_encode(X, D, alpha=alpha, method="active-set", init=exact, return_n_iter=True)
    np.testing.assert_allclose(again, exact, atol=1e-10)
    assert sweeps.max() <= 1


def test_duplicate_atoms_still_reach_the_optimum(random_problem):
    """Linearly dependent atoms make the support's Gram block singular: the Cholesky update must refuse
    them and coordinate descent must still converge."""
    X, D = random_problem
    D = np.concatenate([D, D[:5], -D[5:8]])
    alpha = alpha_for(X, D)
    reference = lasso_objective(X, D, sklearn_codes(X, D, alpha, False), alpha)
    codes = sparse_encode(X, D, alpha=alpha, method="active-set", max_iter=100_000)
    assert abs(lasso_objective(X, D, codes, alpha) - reference) <= 1e-5 * reference


def test_large_working_sets_grow_their_workspace():
    """More than 256 atoms in the working set: the per-thread workspace is reallocated, the answer exact."""
    rng = np.random.default_rng(3)
    D = rng.standard_normal((320, 400))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = rng.standard_normal((3, 400))
    alpha = 0.02 * float(np.abs(X @ D.T).max())
    codes = sparse_encode(X, D, alpha=alpha, method="active-set")
    assert (codes != 0).sum(axis=1).max() > 256
    reference = lasso_objective(X, D, sklearn_codes(X, D, alpha, False), alpha)
    assert abs(lasso_objective(X, D, codes, alpha) - reference) <= 1e-5 * reference
    assert kkt_violation(X, D, codes, alpha, False) < 1e-6


def test_auto_is_exact_on_dense_codes_too():
    """Dense codes make 'auto' hand the samples after its probe to FISTA; the result is still the lasso
    optimum to FISTA's tolerance."""
    rng = np.random.default_rng(4)
    D = rng.standard_normal((40, 64))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = rng.standard_normal((100, 64))
    alpha = 0.02 * float(np.abs(X @ D.T).max(axis=1).mean())
    codes = sparse_encode(X, D, alpha=alpha, tol=1e-10, max_iter=50_000)
    assert (codes != 0).mean() > 0.5
    reference = lasso_objective(X, D, sklearn_codes(X, D, alpha, False), alpha)
    assert abs(lasso_objective(X, D, codes, alpha) - reference) <= 1e-5 * reference


def test_zero_atom_and_zero_sample(random_problem):
    X, D = random_problem
    X, D = X.copy(), D.copy()
    D[2] = 0.0
    X[4] = 0.0
    codes = sparse_encode(X, D, alpha=alpha_for(X, D), method="active-set")
    assert np.all(codes[:, 2] == 0) and np.all(codes[4] == 0) and np.isfinite(codes).all()


def test_sweep_cap_warns(mnist_problem):
    X, D = mnist_problem
    with pytest.warns(RuntimeWarning, match="raise max_iter"):
        sparse_encode(X, D, alpha=alpha_for(X, D, 0.02), method="active-set", max_iter=1)


def test_in_place_contract_of_the_kernel(random_problem):
    X, D = random_problem
    rows = X @ D.T
    with pytest.raises(ValueError, match="C-contiguous"):
        lasso_active_set(D @ D.T, np.asfortranarray(rows), 0.5, positive=False)
    codes, sweeps, converged = lasso_active_set(D @ D.T, rows, 0.5, positive=False)
    assert codes is rows and converged.all() and sweeps.shape == (len(X),)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"method": "lars"}, "method must be"), ({"method": "active-set", "device": "cuda"}, "runs on the CPU")],
)
def test_bad_method_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sparse_encode(np.ones((3, 6)), np.eye(4, 6), alpha=0.1, **kwargs)


@pytest.mark.parametrize("positive", [True, False])
def test_serial_kernel_gives_the_parallel_codes(correlated_problem, positive):
    """``parallel=False`` solves every row on the calling thread: the same codes, bit for bit, as the
    calling thread with its helper threads, and both satisfy the KKT conditions."""
    X, D = correlated_problem
    alpha = alpha_for(X, D)
    gram, rows = D @ D.T, X @ D.T
    serial, serial_sweeps, serial_ok = lasso_active_set(gram, rows.copy(), alpha, positive=positive,
                                                        parallel=False)
    threaded, threaded_sweeps, threaded_ok = lasso_active_set(gram, rows.copy(), alpha, positive=positive)
    assert serial_ok.all() and threaded_ok.all()
    np.testing.assert_array_equal(serial, threaded)
    np.testing.assert_array_equal(serial_sweeps, threaded_sweeps)
    assert kkt_violation(X, D, serial, alpha, positive) < 1e-6


def test_small_dense_call_is_exact_and_restores_torch_threads():
    """A small call with dense codes (mean support above half the atoms) stays on the active set (its
    predicted work is far below FISTA's per-call overhead): exact, KKT-certified codes on every row; torch's
    thread count is restored after the call."""
    rng = np.random.default_rng(5)
    D = rng.standard_normal((40, 64))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = rng.standard_normal((150, 64))  # more than the 64-sample probe
    alpha = 0.02 * float(np.abs(X @ D.T).max(axis=1).mean())
    before = torch.get_num_threads()
    codes, sweeps = sparse_encode(X, D, alpha=alpha, return_n_iter=True)
    assert torch.get_num_threads() == before
    assert (codes != 0).mean() > 0.5 and sweeps.shape == (150,)
    assert kkt_violation(X, D, codes, alpha, False) < 1e-6
    reference = lasso_objective(X, D, sklearn_codes(X, D, alpha, False), alpha)
    assert abs(lasso_objective(X, D, codes, alpha) - reference) <= 1e-5 * reference


def test_dense_fista_path_keeps_the_probe_codes(monkeypatch):
    """When the dense route goes to FISTA (forced here by lowered thresholds), the probe's 64 exact rows
    are kept (KKT-certified) and FISTA solves the others to its tolerance."""
    from sparsecoder.inference import lasso

    monkeypatch.setattr(lasso, "_DENSE_FISTA_SAMPLES", 0)
    monkeypatch.setattr(lasso, "_DENSE_FRACTION", 0.5)  # 40 atoms: below the real switch's bounds
    monkeypatch.setattr(lasso, "_DENSE_MIN_SUPPORT", 0)
    # FISTA at tol 1e-10 takes more iterations per active-set sweep than the real switch allows
    monkeypatch.setattr(lasso, "_FISTA_ITERATIONS_PER_SWEEP", math.inf)
    rng = np.random.default_rng(4)
    D = rng.standard_normal((40, 64))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = rng.standard_normal((100, 64))
    alpha = 0.02 * float(np.abs(X @ D.T).max(axis=1).mean())
    codes, n_iter = sparse_encode(X, D, alpha=alpha, tol=1e-10, max_iter=50_000, return_n_iter=True)
    assert codes.shape == (100, 40) and n_iter.shape == (100,)
    assert kkt_violation(X[:64], D, codes[:64], alpha, False) < 1e-6
    assert kkt_violation(X[64:], D, codes[64:], alpha, False) > 1e-9  # FISTA's rows: close, not exact
    reference = lasso_objective(X, D, sklearn_codes(X, D, alpha, False), alpha)
    assert abs(lasso_objective(X, D, codes, alpha) - reference) <= 1e-5 * reference


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gram_matrix_is_the_float64_product_and_symmetric(dtype):
    """The solver's own Gram matrix: numpy's float64 ``D Dᵀ`` of the same (rounded) atoms, to float64
    rounding, exactly symmetric; 37 atoms exercise the four-column passes and the remainder."""
    from sparsecoder.inference.active_set import gram_matrix

    atoms = np.random.default_rng(5).standard_normal((37, 50)).astype(dtype)
    gram = gram_matrix(atoms)
    exact = atoms.astype(np.float64) @ atoms.astype(np.float64).T
    assert gram.dtype == np.float64 and gram.shape == (37, 37)
    np.testing.assert_allclose(gram, exact, rtol=0, atol=1e-12 * np.abs(exact).max())
    np.testing.assert_array_equal(gram, gram.T)


@pytest.mark.parametrize("positive", [True, False])
def test_gram_from_atoms_in_the_same_call(correlated_problem, positive):
    """``gram=None, atoms=D`` (what ``sparse_encode`` uses) gives the codes of a precomputed Gram matrix."""
    X, D = correlated_problem
    alpha = alpha_for(X, D)
    given, _, given_ok = lasso_active_set(D @ D.T, X @ D.T, alpha, positive=positive)
    computed, _, computed_ok = lasso_active_set(None, X @ D.T, alpha, positive=positive, atoms=D)
    assert given_ok.all() and computed_ok.all()
    np.testing.assert_allclose(computed, given, rtol=0, atol=1e-10)
    assert kkt_violation(X, D, computed, alpha, positive) < 1e-6
    with pytest.raises(ValueError, match="gram"):
        lasso_active_set(None, X @ D.T, alpha, positive=positive)


def test_threads_claim_every_row_exactly_once(mnist_problem):
    """The claiming protocol itself: two Python threads run the kernel on one counter array, each with its
    own sweeps array (−1 = not solved by it). Every row is solved by exactly one of them, and the codes
    equal the single-threaded ones bit for bit; a thread that comes after all rows are taken changes
    nothing."""
    import threading

    from sparsecoder.inference import active_set

    X, D = mnist_problem
    X = np.concatenate([X] * 25)  # 1,000 rows, so that both threads get some
    alpha = alpha_for(X, D)
    gram = D @ D.T
    serial, _, _ = lasso_active_set(gram, X @ D.T, alpha, positive=False, parallel=False)
    rows = X @ D.T
    counters = np.zeros(4, dtype=np.int64)
    status = np.zeros(len(X), dtype=np.int8)
    sweeps = [np.full(len(X), -1, dtype=np.int64) for _ in range(3)]

    def run(own_sweeps):
        active_set._solve_claimed_rows(np.zeros((0, 1)), gram, rows, np.zeros((0, D.shape[0])), alpha, False,
                                       1000, 64, own_sweeps, status, counters)

    threads = [threading.Thread(target=run, args=(sweeps[i],)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    solved_by = np.stack([s >= 0 for s in sweeps[:2]])
    assert (solved_by.sum(axis=0) == 1).all()
    assert counters[active_set._ROWS_DONE] == len(X)
    np.testing.assert_array_equal(rows, serial)
    late = rows.copy()
    run(sweeps[2])  # a helper that starts after the call: nothing left to claim
    assert (sweeps[2] == -1).all()
    np.testing.assert_array_equal(rows, late)


@pytest.mark.parametrize("positive", [False, True])
def test_dependent_supports_reach_the_optimum_and_auto_finishes_capped_rows(positive):
    # Overcomplete dictionaries at small alpha: coordinate descent makes the support fill a rank-deficient
    # working set, which has no Newton step. The active set used to crawl there until max_iter (all 50 rows
    # stopped, up to 51 % above the optimum; with 12 atoms in 8 dimensions at alpha=1e-6, 20 of 20 rows, and
    # method='auto''s FISTA, stopping at its relative tolerance after one iteration, returned codes 6.5×
    # the optimum without a warning). It now steps along the null direction until an atom leaves: exact
    # codes (KKT certificate) in at most a few dozen sweeps. The old reference: scikit-learn's coordinate
    # descent run 100× longer than its default.
    rng = np.random.default_rng(0)
    X, D = rng.standard_normal((50, 10)), rng.standard_normal((20, 10))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    alpha = 0.01
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = sklearn_sparse_encode(X, D, algorithm="lasso_cd", alpha=alpha, max_iter=100_000,
                                          positive=positive)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        codes, sweeps = sparse_encode(X, D, alpha=alpha, positive=positive, method="active-set",
                                      return_n_iter=True)
    assert sweeps.max() < 100 and kkt_violation(X, D, codes, alpha, positive) < 1e-9
    assert lasso_objective(X, D, codes, alpha) <= lasso_objective(X, D, reference, alpha) * (1 + 1e-9)
    X, D = rng.standard_normal((20, 8)), rng.standard_normal((12, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        codes = sparse_encode(X, D, alpha=1e-6, positive=positive)
    assert kkt_violation(X, D, codes, 1e-6, positive) < 1e-6  # the optimum (FISTA needs 20,000 iterations)
    # a sweep cap still stops rows: warned, and the default method finishes them with FISTA
    X, D = rng.standard_normal((50, 10)), rng.standard_normal((20, 10))
    with pytest.warns(RuntimeWarning, match="active set: .* or use method='auto'"):
        capped = sparse_encode(X, D, alpha=1e-4, positive=positive, max_iter=5, method="active-set")
    with pytest.warns(RuntimeWarning, match="active set then FISTA"):
        finished = sparse_encode(X, D, alpha=1e-4, positive=positive, max_iter=5)
    assert lasso_objective(X, D, finished, 1e-4) < lasso_objective(X, D, capped, 1e-4)


def test_dense_codes_on_which_fista_converges_slowly_stay_on_the_active_set():
    """80 Gaussian atoms (not normalised: Gram condition number ~300) in 100 dimensions at a small alpha:
    every code is dense (80 of 80), which the support rule sends to FISTA in calls over 2,048 rows — 9x
    slower here than the active set (2.4 s against 0.26 s) and less exact. FISTA tried on the probe's rows
    needs ~10 iterations per active-set sweep: the whole call stays on the active set, so its codes are
    the active set's own, exactly."""
    from sparsecoder.inference import lasso

    rng = np.random.default_rng(0)
    X, D = rng.standard_normal((2100, 100)), rng.standard_normal((80, 100))
    alpha = 1e-3
    codes, n_iter = sparse_encode(X, D, alpha=alpha, return_n_iter=True)
    exact, sweeps = sparse_encode(X, D, alpha=alpha, method="active-set", return_n_iter=True)
    assert (codes != 0).sum(axis=1).mean() > lasso._DENSE_FRACTION * 80  # dense by the support rule
    np.testing.assert_array_equal(codes, exact)
    np.testing.assert_array_equal(n_iter, sweeps)
    assert kkt_violation(X, D, codes, alpha, False) < 1e-6


def test_large_call_with_dense_codes_in_few_dimensions_stays_exact():
    """12 atoms in 8 dimensions at a small alpha: every row's support is 6-8 of the 8 possible, which the
    old switch (mean support above half of min(l, d)) sent to FISTA in calls over 2,048 rows, whose
    relative-change stop left the objective 12 % above the optimum, without a warning, in 70-110 s. Such
    small supports stay on the exact active set."""
    rng = np.random.default_rng(0)
    D = rng.standard_normal((12, 8))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = rng.standard_normal((2100, 8))
    alpha = 1e-4
    codes = sparse_encode(X, D, alpha=alpha)
    assert (codes != 0).sum(axis=1).mean() > 4  # dense by the old rule
    assert kkt_violation(X, D, codes, alpha, False) < 1e-6


def test_the_solver_imports_and_runs_where_numba_finds_no_folder_to_cache_it():
    """An install in read-only site-packages run by a user without a writable home: numba raised "cannot
    cache function '_shrink': no locator available" when the module was imported, so every encode and
    training run failed. Numba's cache locators are emptied in a fresh process to stand for that machine."""
    import subprocess
    import sys

    code = (
        "import warnings\n"
        "import numba.core.caching as caching\n"
        "caching.CacheImpl._locator_classes = []\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    from sparsecoder.inference import active_set\n"
        "    from sparsecoder.dictionary import online  # its kernels too: the estimators import it\n"
        "print(active_set._shrink(3.0, 1.0, True), active_set._shrink(-3.0, 1.0, False))\n"
        "print(len(caught), caught[0].message)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    values, warning = done.stdout.splitlines()
    assert values == "2.0 -2.0"
    assert warning.startswith("1 numba cannot cache sparsecoder's compiled kernels")
    assert "NUMBA_CACHE_DIR" in warning
