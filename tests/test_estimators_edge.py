"""Edge cases of the scikit-learn estimators found by probing them as a demanding user would: state left
by a failed fit, messages for degenerate data."""

import os
import warnings

import numpy as np
import pytest
from sklearn.decomposition import sparse_encode as sklearn_sparse_encode
from sklearn.exceptions import NotFittedError

from sparsecoder import SAE, MiniBatchDictionaryLearning, SparseCoder, SparseVAE

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_sparse_coder_fit_refused_for_its_width_leaves_no_stale_width_behind():
    """A fit refused because X's width differs from the dictionary's recorded X's width first: transform
    of rows of the dictionary's width then failed ("X has 6 features, but SparseCoder is expecting 4")."""
    rng = np.random.default_rng(0)
    X, D = rng.standard_normal((10, 6)), rng.standard_normal((8, 6))
    coder = SparseCoder(D, transform_algorithm="lasso_cd", transform_alpha=0.5)
    with pytest.raises(ValueError, match="the dictionary has 6 features but X has 4"):
        coder.fit(X[:, :4])
    assert not hasattr(coder, "n_features_in_") and not hasattr(coder, "n_components_")
    np.testing.assert_allclose(coder.transform(X),
                               sklearn_sparse_encode(X, D, algorithm="lasso_cd", alpha=0.5, max_iter=10_000),
                               atol=1e-6)
    coder.fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="the dictionary has 6 features but X has 4"):
            coder.fit(X[:, :4])
    assert coder.transform(X).shape == (10, 8)


def test_fit_on_all_zero_rows_warns_that_x_is_zero_not_to_lower_alpha_to_zero():
    """All-zero X gives zero codes for every alpha; the warning advised "lower alpha (e.g. 0)", a value the
    estimator refuses (alpha > 0)."""
    with pytest.warns(UserWarning, match=r"X is all zeros.*whatever alpha") as record:
        MiniBatchDictionaryLearning(3, max_iter=2, random_state=0, device="cpu").fit(np.zeros((10, 6)))
    assert not any("e.g. 0)" in str(w.message) for w in record)


@pytest.mark.parametrize("make", [lambda: SAE(n_components=4, device="cpu"),
                                  lambda: SparseVAE(n_components=4, device="cpu")])
def test_n_components_of_an_unfitted_neural_estimator_is_a_not_fitted_error(make):
    """It was a bare AttributeError naming the private model_ ("'SAE' object has no attribute 'model_'"),
    unlike components_ and every method; NotFittedError is still an AttributeError (hasattr is False)."""
    estimator = make()
    with pytest.raises(NotFittedError, match="not fitted yet"):
        _ = estimator.n_components_
    assert not hasattr(estimator, "n_components_")


def test_max_no_improvement_zero_stops_at_the_first_monitored_step_as_in_scikit_learn():
    """scikit-learn stops as soon as ``no_improvement >= max_no_improvement``, so max_no_improvement=0 ends
    fit at the first step after the warm-up (one epoch or 100 steps); ours waited for a step without
    improvement (11 steps here against scikit-learn's 9)."""
    from sklearn.decomposition import MiniBatchDictionaryLearning as SklearnMiniBatchDictionaryLearning

    X = np.random.default_rng(0).standard_normal((64, 6))
    settings = dict(n_components=3, alpha=0.1, batch_size=8, tol=0, max_no_improvement=0, max_iter=50,
                    random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = SklearnMiniBatchDictionaryLearning(**settings).fit(X).n_steps_
        ours = MiniBatchDictionaryLearning(device="cpu", **settings).fit(X).n_steps_
    assert theirs == 64 // 8 + 1
    assert ours == theirs


def test_fit_transform_refuses_omp_with_more_nonzeros_than_default_atoms_before_fitting():
    """n_components=None means n_features atoms: fit_transform (documented to refuse transform's settings
    before any fitting) fitted the whole dictionary first, then refused."""
    X = np.random.default_rng(0).standard_normal((50, 6))
    estimator = MiniBatchDictionaryLearning(transform_algorithm="omp", transform_n_nonzero_coefs=7, alpha=0.1,
                                            max_iter=2, random_state=0, device="cpu")
    for rows in (X, X.tolist()):
        with pytest.raises(ValueError, match="transform_n_nonzero_coefs=7 exceeds n_components=6"):
            estimator.fit_transform(rows)
        assert not hasattr(estimator, "components_")



READ_ONLY_SCRIPT = """
import sys, warnings
import numpy as np
from sklearn.decomposition import sparse_encode as sklearn_sparse_encode
from sparsecoder import MiniBatchDictionaryLearning, SparseCoder, sparse_encode

folder = sys.argv[1]
X, D = np.load(folder + "/x.npy"), np.load(folder + "/d.npy")
X_ro, D_ro = np.load(folder + "/x.npy", mmap_mode="r"), np.load(folder + "/d.npy", mmap_mode="r")
assert not X_ro.flags.writeable and not D_ro.flags.writeable
warnings.simplefilter("error")  # torch warns once per process: this process has not been warned yet
for algorithm in ("lasso_cd", "fista"):
    ours = SparseCoder(D_ro, transform_algorithm=algorithm, transform_alpha=0.3).transform(X_ro)
    np.testing.assert_array_equal(ours, SparseCoder(D, transform_algorithm=algorithm,
                                                    transform_alpha=0.3).transform(X))
np.testing.assert_allclose(sparse_encode(X_ro, D_ro, alpha=0.3),
                           sklearn_sparse_encode(X, D, algorithm="lasso_cd", alpha=0.3, max_iter=10_000),
                           atol=1e-5)
for fit_algorithm in ("active_set", "fista"):
    settings = dict(n_components=3, max_iter=2, random_state=0, device="cpu", fit_algorithm=fit_algorithm)
    learner, reference = MiniBatchDictionaryLearning(**settings), MiniBatchDictionaryLearning(**settings)
    learner.fit(X_ro)
    reference.fit(X)
    np.testing.assert_array_equal(learner.components_, reference.components_)
    assert learner.score(X_ro) == reference.score(X)
    np.testing.assert_array_equal(learner.transform(X_ro), reference.transform(X))
    learner.partial_fit(X_ro)
print("ok")
"""


def test_read_only_arrays_give_the_codes_of_writable_ones_without_a_torch_warning(tmp_path):
    """np.load(mmap_mode="r") and the memmaps joblib gives GridSearchCV workers are read-only: torch warned
    "The given NumPy array is not writable" (transform, score, partial_fit, a read-only dictionary). Run in
    a fresh process: torch gives that warning once per process, so an earlier test would hide it here."""
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    X, D = rng.standard_normal((40, 6)), rng.standard_normal((5, 6))
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "d.npy", D)
    done = subprocess.run([sys.executable, "-c", READ_ONLY_SCRIPT, str(tmp_path)], capture_output=True,
                          text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), X)  # the file is left as it was


def test_tensor_from_numpy_copies_read_only_arrays_only():
    from sparsecoder.util import tensor_from_numpy

    writable = np.arange(6.0).reshape(2, 3)
    assert tensor_from_numpy(writable).data_ptr() == writable.ctypes.data  # shared, no copy
    read_only = np.broadcast_to(np.arange(3.0), (2, 3))
    tensor = tensor_from_numpy(read_only)
    assert tensor.data_ptr() != read_only.ctypes.data
    tensor.add_(1.0)  # its own memory: writable, and the array is unchanged
    np.testing.assert_array_equal(read_only, np.broadcast_to(np.arange(3.0), (2, 3)))
