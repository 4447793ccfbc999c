"""The scikit-learn estimators: scikit-learn's own estimator checks, agreement with scikit-learn's
SparseCoder/MiniBatchDictionaryLearning, round trips, Pipeline + GridSearchCV, bad input."""

import pickle
import warnings

import joblib
import numpy as np
import pytest
import scipy.sparse
import torch
from sklearn.base import clone
from sklearn.decomposition import SparseCoder as SklearnSparseCoder
from sklearn.decomposition import sparse_encode as sklearn_sparse_encode
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import check_estimator

import sparsecoder
from sparsecoder import MiniBatchDictionaryLearning, SparseCoder
from sparsecoder.inference import lasso_objective


class _PlainSklearnSparseCoder(SklearnSparseCoder):
    """scikit-learn's SparseCoder under another type, so that ``check_estimator`` runs it exactly as it runs
    ours (scikit-learn substitutes a matching dictionary per check for its own class only)."""


def _failed_checks(estimator):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(estimator, on_fail=None, on_skip=None)
    return {result["check_name"] for result in results if result["status"] == "failed"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    splits = sparsecoder.load_data("mnist", limit=600)
    X = splits.train.x.numpy().astype(np.float64)
    return X, splits.train.labels.numpy()


def test_mini_batch_dictionary_learning_passes_check_estimator():
    estimator = MiniBatchDictionaryLearning(n_components=3, max_iter=5, batch_size=8, random_state=0,
                                            transform_algorithm="lasso_cd", device="cpu")
    assert _failed_checks(estimator) == set()


@pytest.mark.slow
def test_mini_batch_dictionary_learning_with_defaults_passes_check_estimator():
    assert _failed_checks(MiniBatchDictionaryLearning(max_iter=3, random_state=0, device="cpu")) == set()


@pytest.mark.parametrize("algorithm", ["omp", "lasso_cd", "fista"])
def test_sparse_coder_fails_only_what_sklearns_fails(algorithm):
    """A fixed dictionary fixes n_features: the checks that feed other widths fail for scikit-learn's
    SparseCoder too. Ours fails no check that theirs passes."""
    dictionary = np.random.default_rng(0).standard_normal((5, 3))
    theirs = _failed_checks(_PlainSklearnSparseCoder(dictionary))
    ours = _failed_checks(SparseCoder(dictionary, transform_algorithm=algorithm))
    assert theirs, "scikit-learn's SparseCoder is expected to fail the width-changing checks"
    assert ours <= theirs, ours - theirs


@pytest.mark.parametrize("positive", [False, True])
def test_sparse_coder_lasso_matches_sklearn(digits, positive):
    """Our lasso_cd (active set) reaches scikit-learn's coordinate-descent objective; delegated algorithms
    return scikit-learn's codes exactly; split_sign and inverse_transform follow scikit-learn."""
    X = digits[0][:100]
    D = np.random.default_rng(1).standard_normal((40, X.shape[1]))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    ours = SparseCoder(D, transform_algorithm="lasso_cd", transform_alpha=2.0, positive_code=positive,
                       split_sign=True)
    theirs = SklearnSparseCoder(D, transform_algorithm="lasso_cd", transform_alpha=2.0,
                                positive_code=positive, split_sign=True, transform_max_iter=100_000)
    ours_codes, their_codes = ours.fit_transform(X), theirs.fit_transform(X)
    assert ours_codes.shape == their_codes.shape == (100, 80)
    signed = ours_codes[:, :40] - ours_codes[:, 40:]
    reference = lasso_objective(X, D, their_codes[:, :40] - their_codes[:, 40:], 2.0)
    assert lasso_objective(X, D, signed, 2.0) <= reference * (1 + 1e-7)
    np.testing.assert_allclose(ours.inverse_transform(ours_codes), signed @ D)
    for algorithm in ("omp", "threshold", "lasso_lars"):
        kwargs = dict(transform_algorithm=algorithm, transform_alpha=0.5, transform_n_nonzero_coefs=5)
        np.testing.assert_array_equal(SparseCoder(D, **kwargs).transform(X),
                                      SklearnSparseCoder(D, **kwargs).transform(X))


def test_fit_transform_score_and_attributes(digits):
    X = digits[0]
    model = MiniBatchDictionaryLearning(n_components=20, alpha=2.0, max_iter=3,
                                        transform_algorithm="lasso_cd", positive_code=True, random_state=0,
                                        device="cpu", tol=0,
                                        max_no_improvement=None)
    codes = model.fit_transform(X)
    assert model.components_.shape == (20, 784) and model.n_features_in_ == 784
    assert model.n_iter_ == 3 and model.n_steps_ == 3 * int(np.ceil(len(X) / 256))
    assert np.all(np.linalg.norm(model.components_, axis=1) <= 1 + 1e-9)
    assert codes.shape == (len(X), 20) and codes.min() >= 0
    expected = sklearn_sparse_encode(X, model.components_, algorithm="lasso_cd", alpha=2.0, positive=True,
                                     max_iter=100_000)
    objective = lasso_objective(X, model.components_, expected, 2.0) / len(X)
    assert model.score(X) == pytest.approx(-objective, rel=1e-7)
    assert list(model.get_feature_names_out()) == [f"minibatchdictionarylearning{i}" for i in range(20)]
    float32 = clone(model).fit(X.astype(np.float32))
    assert float32.components_.dtype == np.float32
    assert float32.transform(X.astype(np.float32)).dtype == np.float32


def test_partial_fit_streams(digits):
    X = digits[0]
    model = MiniBatchDictionaryLearning(n_components=16, alpha=2.0, random_state=0, device="cpu")
    for batch in np.array_split(X, 6):
        model.partial_fit(batch)
    assert model.n_steps_ == 6 and model.components_.shape == (16, 784)
    with pytest.raises(ValueError, match="features"):
        model.partial_fit(X[:, :100])


def test_clone_pickle_joblib_round_trips(digits, tmp_path):
    X = digits[0][:300]
    model = MiniBatchDictionaryLearning(n_components=10, alpha=2.0, max_iter=2,
                                        transform_algorithm="lasso_cd", random_state=0, device="cpu").fit(X)
    expected = model.transform(X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).transform(X), expected)
    joblib.dump(model, tmp_path / "model.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "model.joblib").transform(X), expected)
    again = clone(model).fit(X)  # same random_state: the same dictionary
    np.testing.assert_allclose(again.components_, model.components_, atol=1e-12)
    coder = SparseCoder(model.components_, transform_algorithm="active_set", transform_alpha=2.0)
    np.testing.assert_allclose(pickle.loads(pickle.dumps(coder)).transform(X), expected, atol=1e-10)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_pipeline_and_grid_search(digits):
    X, labels = digits[0][:300], digits[1][:300]
    pipeline = Pipeline([
        ("codes", MiniBatchDictionaryLearning(n_components=16, max_iter=2, transform_algorithm="lasso_cd",
                                              random_state=0, device="cpu")),
        ("classifier", LogisticRegression(max_iter=100)),
    ])
    search = GridSearchCV(pipeline, {"codes__alpha": [1.0, 4.0]}, cv=2).fit(X, labels)
    assert search.best_params_["codes__alpha"] in (1.0, 4.0)
    assert search.score(X, labels) > 0.5
    unsupervised = GridSearchCV(MiniBatchDictionaryLearning(n_components=8, alpha=2.0, max_iter=1,
                                                            device="cpu", random_state=0),
                                {"batch_size": [64, 128]}, cv=2).fit(X)
    assert np.isfinite(unsupervised.best_score_)


def test_bad_input_is_refused_clearly(digits):
    X = digits[0][:100]
    model = MiniBatchDictionaryLearning(n_components=4, max_iter=1, device="cpu")
    with pytest.raises(ValueError, match="NaN"):
        model.fit(np.where(np.arange(X.size).reshape(X.shape) == 7, np.nan, X))
    with pytest.raises(TypeError, match="toarray|dense"):
        model.fit(scipy.sparse.csr_matrix(X))
    with pytest.raises(TypeError, match=r"X is a torch.sparse_coo tensor.*X.to_dense\(\)"):
        model.fit(torch.as_tensor(X).to_sparse())
    with pytest.raises(ValueError, match="2D array"):
        model.fit(X[0])
    model.fit(X)
    with pytest.raises(ValueError, match="features"):
        model.transform(X[:, :10])
    with pytest.raises(ValueError, match="alpha"):
        MiniBatchDictionaryLearning(alpha=0).fit(X)
    with pytest.raises(ValueError, match="dict_init"):
        MiniBatchDictionaryLearning(n_components=4, dict_init=np.ones((3, 784))).fit(X)
    with pytest.raises(ValueError, match="features"):
        SparseCoder(np.ones((3, 5))).fit(X)
    with pytest.raises(ValueError, match="columns"):
        SparseCoder(np.ones((3, 5))).inverse_transform(np.ones((2, 4)))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            MiniBatchDictionaryLearning(n_components=4, device="cuda").fit(X)


def test_more_atoms_than_samples(digits):
    """n_components > n_samples: the extra atoms start as seeded Gaussians (unit norm)."""
    X = digits[0][:10]
    model = MiniBatchDictionaryLearning(n_components=15, alpha=2.0, max_iter=2, random_state=0,
                                        device="cpu").fit(X)
    assert model.components_.shape == (15, 784) and np.all(np.isfinite(model.components_))
    assert np.all(np.linalg.norm(model.components_, axis=1) <= 1 + 1e-9)
    from sparsecoder.dictionary import initial_dictionary

    start = initial_dictionary(X, 15, np.random.default_rng(0))
    np.testing.assert_allclose(np.linalg.norm(start, axis=1), 1.0, rtol=1e-12)
    unit_rows = X / np.linalg.norm(X, axis=1, keepdims=True)
    cosines = start @ unit_rows.T
    assert sorted(cosines[:10].argmax(axis=1)) == list(range(10))  # the ten rows, each once
    np.testing.assert_allclose(cosines[:10].max(axis=1), 1.0, rtol=1e-12)
    assert np.abs(cosines[10:]).max() < 0.3  # five Gaussian atoms, none a row
    np.testing.assert_array_equal(start, initial_dictionary(X, 15, np.random.default_rng(0)))  # seeded


def test_feature_names_in(digits):
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame(digits[0][:100, :20], columns=[f"p{i}" for i in range(20)])
    model = MiniBatchDictionaryLearning(n_components=4, alpha=0.5, max_iter=1, device="cpu").fit(frame)
    assert list(model.feature_names_in_) == list(frame.columns)


@pytest.mark.parametrize("algorithm, alpha", [("lasso_cd", 0.0), ("fista", 0.0), ("lasso_lars", 0.1),
                                              ("omp", None), ("threshold", 0.1), ("lars", None)])
def test_scikit_learn_solvers_take_float32_rows_and_keep_their_dtype(algorithm, alpha):
    # the dictionary follows X's dtype on the delegated paths too (lasso_cd failed in Cython on a float64
    # dictionary with float32 X); codes agree with scikit-learn's on float64 rows within its tolerances
    rng = np.random.default_rng(0)
    D, X = rng.standard_normal((6, 10)), rng.standard_normal((20, 10))  # undercomplete: unique codes
    kwargs = {"transform_alpha": alpha} if alpha is not None else {"transform_n_nonzero_coefs": 3}
    codes = SparseCoder(D, transform_algorithm=algorithm, **kwargs).transform(X.astype(np.float32))
    reference = SklearnSparseCoder(D, transform_algorithm="lasso_cd" if algorithm == "fista" else algorithm,
                                   **kwargs).transform(X)
    assert codes.dtype == np.float32
    np.testing.assert_allclose(codes, reference, atol=1e-3 * np.abs(reference).max())  # lasso_cd: tol 1e-4


def test_inverse_transform_refuses_rows_that_overflow():
    # every estimator output is checked finite (models.common.check_finite_output), as SAE/SparseVAE's are
    D = np.random.default_rng(1).normal(size=(8, 16))
    coder = SparseCoder(D, transform_algorithm="lasso_cd", transform_alpha=0.1)
    with pytest.raises(ValueError, match="rows decoded from the codes are NaN/inf for 2 of 3 rows"):
        coder.inverse_transform(np.array([np.zeros(8), np.full(8, 1e308), np.full(8, -1e308)]))
    with pytest.raises(ValueError, match="NaN/inf for 1 of 1 rows"):
        coder.inverse_transform(np.full((1, 8), 3e38, np.float32))


def test_torch_float32_input_keeps_float32_like_numpy():
    import torch

    X = np.random.default_rng(0).normal(size=(30, 6))
    D = np.random.default_rng(1).normal(size=(4, 6))
    for estimator in (SparseCoder(D, transform_algorithm="lasso_cd", transform_alpha=0.1),
                      MiniBatchDictionaryLearning(4, max_iter=2, random_state=0, device="cpu")):
        estimator.fit(torch.tensor(X, dtype=torch.float32))
        assert estimator.transform(torch.tensor(X, dtype=torch.float32)).dtype == np.float32
        assert estimator.transform(X.astype(np.float32)).dtype == np.float32
        assert estimator.transform(torch.tensor(X)).dtype == np.float64


def test_mini_batch_dictionary_learning_refuses_before_fitting_what_it_cannot_do():
    # audit 2026-11-29: rows of 1e200 gave NaN atoms silently (1 epoch) or a bare ZeroDivisionError from
    # the active-set solver (2 epochs); fit_transform with positive_code=True and the default
    # transform_algorithm="omp" (or OMP asked for more non-zeros than atoms, refused as "more atoms than
    # features") fitted the whole dictionary first
    rng = np.random.default_rng(0)
    X, D = rng.normal(size=(20, 5)), rng.normal(size=(3, 5))

    def model(**kwargs):
        return MiniBatchDictionaryLearning(n_components=3, max_iter=1, batch_size=8, random_state=0,
                                           device="cpu", **kwargs)

    with pytest.raises(ValueError, match=r"largest \|value\| is 2\.3\d*e\+200, outside \[1e-100, 1e100\].*"
                                         r"rescale X .* and alpha by the same factor"):
        model().fit(X * 1e200)
    with pytest.raises(ValueError, match="outside"):
        model(alpha=1e-160).partial_fit(X * 1e-160)
    assert np.isfinite(model().fit(X * 1e90).components_).all()
    unfitted = model(positive_code=True)
    with pytest.raises(ValueError, match="positive_code=True is not supported by transform_algorithm='omp'"):
        unfitted.fit_transform(X)
    assert not hasattr(unfitted, "components_")
    assert model(positive_code=True).fit(X).components_.shape == (3, 5)  # fit alone: as scikit-learn's
    with pytest.raises(ValueError, match="transform_n_nonzero_coefs=4 exceeds n_components=3"):
        model(transform_n_nonzero_coefs=4).fit_transform(X)  # was "more atoms than features" at the end
    with pytest.raises(ValueError, match="transform_n_nonzero_coefs=6 exceeds n_components=3"):
        SparseCoder(D, transform_n_nonzero_coefs=6).transform(X)
    # 10^6 atoms: the statistics A alone are 7,451 GiB (numpy's MemoryError before, on the atoms)
    with pytest.raises(ValueError, match=r"1,000,000 atoms of 5 features .* GiB, more than this machine's "
                                         r".* lower n_components"):
        MiniBatchDictionaryLearning(n_components=10**6, random_state=0).partial_fit(X)


def test_float32_rows_whose_norm_overflows_float32_are_refused_naming_float64():
    # audit 2026-11-29: float32 rows of 1,000 values of ~3e37 (norm 1e39, above float32's 3.4e38) made the
    # learner's float32 products X·atoms inf, and fit failed with a bare ZeroDivisionError
    X = np.full((10, 1000), 3e37, dtype=np.float32)
    X[:, :5] = np.eye(10, 5) * 3e38  # not rank one: the float64 fit below uses its 3 atoms
    for fit in ("fit", "partial_fit"):
        with pytest.raises(ValueError, match=r"float32 and its largest row norm is 9\.\d+e\+38.*X\.astype"):
            getattr(MiniBatchDictionaryLearning(3, alpha=1e37, max_iter=1, device="cpu"), fit)(X)
    model = MiniBatchDictionaryLearning(3, alpha=1e37, max_iter=1, random_state=0, device="cpu")
    assert np.isfinite(model.fit(X.astype(np.float64)).components_).all()


def test_partial_fit_applies_parameters_set_between_calls():
    # as scikit-learn's partial_fit does; they were silently ignored (the learner kept its first settings)
    X = np.random.default_rng(0).normal(size=(20, 5))
    model = MiniBatchDictionaryLearning(n_components=3, random_state=0, device="cpu").partial_fit(X)
    assert model.components_.min() < 0
    assert model.set_params(positive_dict=True).partial_fit(X).components_.min() >= 0
    with pytest.raises(ValueError, match="n_components=5 but the dictionary being learned has 3 atoms"):
        model.set_params(n_components=5).partial_fit(X)


def test_split_sign_names_every_output_column():
    # audit 2026-11-29: get_feature_names_out named n_components columns for the 2 × n_components of
    # split_sign, so set_output(transform="pandas") failed ("Length mismatch"; scikit-learn's estimators too)
    pandas = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    frame = pandas.DataFrame(rng.normal(size=(20, 5)), columns=list("abcde"))
    for estimator in (SparseCoder(rng.normal(size=(3, 5)), transform_algorithm="lasso_cd", split_sign=True),
                      MiniBatchDictionaryLearning(3, max_iter=1, split_sign=True, device="cpu")):
        codes = estimator.set_output(transform="pandas").fit(frame).transform(frame)
        assert codes.shape == (20, 6) and list(codes.columns) == list(estimator.get_feature_names_out())


def test_partial_fit_after_fit_learns_from_the_new_batches():
    # audit 2026-11-29: fit's exact statistics (sample weights (t + 1)^4) dwarfed the 1/batch weights of
    # partial_fit's stream, so mini-batches of new data after fit left the dictionary as it was
    # (scikit-learn's moves to the new atoms); fit now hands partial_fit its statistics at the stream's scale
    rng = np.random.default_rng(0)
    old_atoms, new_atoms = (a / np.linalg.norm(a, axis=1, keepdims=True) for a in rng.normal(size=(2, 4, 8)))

    def rows(atoms):
        return (rng.laplace(size=(400, 4)) * (rng.random((400, 4)) < 0.3)) @ atoms

    def recovery(components, atoms):  # mean over the true atoms of the best |cosine| with a learned one
        unit = components / np.linalg.norm(components, axis=1, keepdims=True)
        return float(np.abs(unit @ atoms.T).max(axis=0).mean())

    model = MiniBatchDictionaryLearning(4, alpha=0.1, max_iter=5, batch_size=20, random_state=0,
                                        device="cpu").fit(rows(old_atoms))
    before = recovery(model.components_, new_atoms)
    for batch in np.array_split(rows(new_atoms), 20):
        model.partial_fit(batch)
    assert recovery(model.components_, new_atoms) > before + 0.1


def test_n_jobs_sets_our_solvers_threads_and_zero_is_refused():
    # audit 2026-11-29: n_jobs reached only the delegated scikit-learn algorithms (ours ran on every numba
    # thread whatever it said) and n_jobs=0 was accepted until joblib refused it in a delegated transform
    import numba

    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 5))
    seen = []
    model = MiniBatchDictionaryLearning(3, max_iter=1, batch_size=10, n_jobs=1, random_state=0, device="cpu",
                                        transform_algorithm="lasso_cd", callback=lambda _: seen.append(
                                            (numba.get_num_threads(), torch.get_num_threads())))
    codes = model.fit(X).transform(X)
    assert seen and set(seen) == {(1, 1)}
    np.testing.assert_array_equal(codes, model.set_params(n_jobs=None).transform(X))  # exact either way
    for estimator in (MiniBatchDictionaryLearning(n_jobs=0), SparseCoder(np.eye(3, 5), n_jobs=0)):
        with pytest.raises(ValueError, match="'n_jobs' parameter"):
            estimator.fit(X)


def test_transform_checks_the_parameters_without_fit_or_after_set_params():
    # audit 2026-11-29: SparseCoder transforms without fit (scikit-learn's stateless rule), so its parameters
    # reached the solvers unchecked: transform_algorithm="bogus" was a bare KeyError, device="gpu" torch's
    # RuntimeError, transform_max_iter=-5 ran as 1 sweep, split_sign="no" was read as True; the same after
    # set_params on a fitted MiniBatchDictionaryLearning
    from sklearn.utils._param_validation import InvalidParameterError

    rng = np.random.default_rng(0)
    X, D = rng.normal(size=(10, 5)), rng.normal(size=(3, 5))
    for name, value in (("transform_algorithm", "bogus"), ("device", "gpu"), ("transform_max_iter", -5)):
        with pytest.raises(InvalidParameterError, match=f"'{name}' parameter of SparseCoder"):
            SparseCoder(D, transform_algorithm="lasso_cd").set_params(**{name: value}).transform(X)
    with pytest.raises(InvalidParameterError, match="'split_sign' parameter"):
        SparseCoder(D, split_sign="no").inverse_transform(np.ones((2, 3)))
    model = MiniBatchDictionaryLearning(3, max_iter=1, random_state=0, device="cpu").fit(X)
    with pytest.raises(InvalidParameterError, match="'transform_algorithm' parameter"):
        model.set_params(transform_algorithm="bogus").transform(X)



def test_a_bool_for_a_number_parameter_is_refused():
    # audit 2026-11-29: scikit-learn's Interval(Real/Integral) takes True as 1, so alpha=True fitted with
    # alpha = 1, batch_size=True ran 1-row batches and transform_alpha=True coded at alpha = 1, unwarned
    from sklearn.utils._param_validation import InvalidParameterError

    rng = np.random.default_rng(0)
    X, D = rng.normal(size=(10, 5)), rng.normal(size=(3, 5))
    for name in ("alpha", "batch_size", "max_iter", "transform_alpha", "max_no_improvement"):
        with pytest.raises(InvalidParameterError, match=f"{name}=True is a bool"):
            MiniBatchDictionaryLearning(3, device="cpu").set_params(**{name: True}).fit(X)
    with pytest.raises(InvalidParameterError, match="transform_alpha=True is a bool"):
        SparseCoder(D, transform_algorithm="lasso_cd", transform_alpha=True).transform(X)
    # flags stay flags, numbers stay numbers
    model = MiniBatchDictionaryLearning(3, alpha=np.float32(0.5), max_iter=np.int64(1),
                                        shuffle=np.bool_(False), verbose=False, random_state=0,
                                        device="cpu").fit(X)
    assert model.components_.shape == (3, 5)


def test_fit_warns_when_alpha_leaves_most_atoms_unused():
    # audit 2026-11-29: the default alpha=1 on rows of norm below 1 gave all-zero codes and a dictionary of
    # re-drawn random rows (synthetic data × 0.1: 1 in 8 true atoms recovered, 1,120 re-draws), unwarned
    rng = np.random.default_rng(0)
    atoms = rng.standard_normal((6, 10))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    X = (rng.random((60, 6)) * (rng.random((60, 6)) < 0.3)) @ atoms
    X /= np.linalg.norm(X, axis=1).max() * 2  # every row norm <= 0.5 < alpha = 1
    message = r"every code is zero .* alpha=1 is too large .* alpha >= 0\.5\b.*lower alpha"
    with pytest.warns(UserWarning, match=message) as record:
        MiniBatchDictionaryLearning(6, max_iter=2, random_state=0, device="cpu").fit(X)
    assert record[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MiniBatchDictionaryLearning(6, alpha=0.02, max_iter=2, random_state=0, device="cpu").fit(X)


def test_positive_dict_atoms_are_non_negative_from_dict_init_on():
    # audit 2026-11-29: with max_iter=0 a dict_init with negative entries came back as components_ although
    # positive_dict=True (min -0.47); the atoms now start in the constraint set
    rng = np.random.default_rng(0)
    X, init = np.abs(rng.standard_normal((20, 6))), rng.standard_normal((4, 6)) * 3
    model = MiniBatchDictionaryLearning(4, alpha=0.1, max_iter=0, dict_init=init, positive_dict=True,
                                        device="cpu").fit(X)
    assert model.components_.min() >= 0 and np.linalg.norm(model.components_, axis=1).max() <= 1 + 1e-12
    assert np.allclose(model.components_[0], np.clip(init[0], 0, None) / max(np.linalg.norm(
        np.clip(init[0], 0, None)), 1))


def test_an_empty_dictionary_or_dict_init_is_refused_by_name():
    # audit 2026-11-29: SparseCoder(np.zeros((0, 4))) said "Found array with 0 sample(s)" (the dictionary's
    # atoms are no samples); dict_init the same
    X = np.random.default_rng(0).normal(size=(6, 4))
    for shape in ((0, 4), (3, 0)):
        with pytest.raises(ValueError, match=rf"dictionary has shape \({shape[0]}, {shape[1]}\): it needs"):
            SparseCoder(np.zeros(shape), transform_algorithm="lasso_cd").transform(X)
    with pytest.raises(ValueError, match=r"dict_init has shape \(0, 4\)"):
        MiniBatchDictionaryLearning(2, dict_init=np.zeros((0, 4)), device="cpu").fit(X)

# The checks that feed data of another width than SparseCoder's fixed dictionary, with the width each
# feeds: scikit-learn runs its own SparseCoder on them with a dictionary of that width
# (sklearn/utils/_test_common/instance_generator.py); the test above only saw them fail
_WIDTH_OF_CHECK = {
    "check_estimators_overwrite_params": 2, "check_estimators_fit_returns_self": 2,
    "check_readonly_memmap_input": 2, "check_fit_idempotent": 2, "check_fit_check_is_fitted": 2,
    "check_n_features_in": 2, "check_n_features_in_after_fitting": 4, "check_positive_only_tag_during_fit": 4,
    "check_estimators_dtypes": 5, "check_transformers_unfitted_stateless": 5, "check_dtype_object": 10,
    "check_fit2d_1sample": 10, "check_fit2d_1feature": 1,
}


@pytest.mark.parametrize("algorithm", ["omp", "lasso_cd", "fista"])
def test_sparse_coder_passes_the_width_changing_checks_given_a_dictionary_of_their_width(algorithm):
    import sklearn.utils.estimator_checks as checks

    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, width in _WIDTH_OF_CHECK.items():
            getattr(checks, name)("SparseCoder", SparseCoder(rng.normal(size=(5, width)),
                                                             transform_algorithm=algorithm))


def test_tensors_without_values_and_sparse_dictionaries_are_named_as_what_they_are():
    """Audit 2026-11-30: a tensor on the 'meta' device failed inside torch ("Cannot copy out of meta tensor;
    no data!") in fit, transform, inverse_transform and as the dictionary; a sparse tensor given as the
    dictionary was reported as "X is a torch.sparse_coo tensor"."""
    rng = np.random.default_rng(0)
    X, D = rng.standard_normal((6, 5)), rng.standard_normal((3, 5))
    meta = torch.empty(6, 5, device="meta")
    coder = SparseCoder(D, transform_algorithm="lasso_cd")
    for call in (coder.fit, coder.transform, MiniBatchDictionaryLearning(2, device="cpu").fit,
                 lambda rows: coder.inverse_transform(rows[:, :3])):
        with pytest.raises(ValueError, match="X is on the 'meta' device, which holds shapes but no values"):
            call(meta)
    with pytest.raises(ValueError, match="dictionary is on the 'meta' device"):
        SparseCoder(torch.empty(3, 5, device="meta")).transform(X)
    with pytest.raises(TypeError, match=r"dictionary is a torch.sparse_coo tensor.*dictionary.to_dense\(\)"):
        SparseCoder(torch.tensor(D).to_sparse()).transform(X)
    np.testing.assert_array_equal(SparseCoder(torch.tensor(D)).transform(X), SparseCoder(D).transform(X))
