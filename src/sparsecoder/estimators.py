"""scikit-learn estimators on our solvers: :class:`SparseCoder` and :class:`MiniBatchDictionaryLearning`.

Both take scikit-learn's constructor parameters and give its attributes and methods (drop-in for
``sklearn.decomposition.SparseCoder`` / ``MiniBatchDictionaryLearning``), validate input with
scikit-learn's own helpers (``validate_data``, ``_parameter_constraints``) and add ``device``.

Codes (``transform``) by ``transform_algorithm``:

* ``"lasso_cd"``, ``"active_set"``: the exact lasso ``½||x − zD||² + α||z||₁`` by
  :func:`sparsecoder.sparse_encode` (``method="auto"``: our active-set solver on the CPU, batched FISTA on a
  GPU or for dense codes) — the same minimiser as scikit-learn's coordinate descent, faster;
* ``"fista"``: our batched FISTA (``method="fista"``, tolerance 1e-6, any device);
* ``"lasso_lars"``, ``"lars"``, ``"omp"``, ``"threshold"``, and the lasso with ``transform_alpha = 0``:
  delegated to :func:`sklearn.decomposition.sparse_encode` (we have no solver of our own for those).

Sparse (scipy) input is refused with scikit-learn's message (``X.toarray()`` first): the solvers need dense
rows. :class:`SAE` and :class:`SparseVAE` (issue 14) wrap the trainable model families.
"""

from __future__ import annotations

import inspect
import time
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.decomposition import sparse_encode as sklearn_sparse_encode
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from sparsecoder.dictionary.online import (
    OnlineDictionaryLearner,
    dictionary_objective,
    initial_dictionary,
    new_memory,
    run_epoch,
)
from sparsecoder.inference.lasso import solver_threads, sparse_encode
from sparsecoder.models.common import check_finite_output, check_float32_range
from sparsecoder.nn.sizes import check_size
from sparsecoder.util import FLOAT32_MAX, autograd_on, float_rows, host_values

__all__ = ["MiniBatchDictionaryLearning", "SAE", "SparseCoder", "SparseVAE"]

_OURS = {"lasso_cd": "auto", "active_set": "auto", "fista": "fista"}
_SKLEARN = {"lasso_lars", "lars", "omp", "threshold"}
_FISTA_TOL = 1e-6
_FLOATS = [np.float64, np.float32]


def _device(device) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _validate(estimator, X, **kwargs):
    """scikit-learn's ``validate_data`` with our dtype rule (:func:`sparsecoder.util.host_values`: tensors as
    their values): float32 stays float32, anything else becomes float64."""
    return validate_data(estimator, host_values(X, "X"), dtype=_FLOATS, **kwargs)


def _check_atoms(value, name, float64=False):
    """``value`` (``dictionary`` or ``dict_init``) as a 2-D finite float array of at least one atom and one
    feature (:func:`sparsecoder.util.float_rows`; an empty one is refused naming ``name``: scikit-learn's
    check spoke of "0 sample(s)")."""
    return float_rows(value, name, rows="atom (row)", float64=float64)


def _check_device(device):
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but no CUDA device is available; use device='cpu' or 'auto'")


def _refuse_bools_as_numbers(estimator) -> None:
    """A ``True``/``False`` given for a parameter that is not a flag (``alpha``, ``batch_size``,
    ``transform_alpha``, ``max_iter``, …) is refused by name: scikit-learn's ``Interval(Real)`` and
    ``Interval(Integral)`` take it as 1 or 0 (``alpha=True`` fitted with α = 1), unlike every number argument
    of sparsecoder (:func:`sparsecoder.nn.sizes.check_nonnegative_number`)."""
    for name, constraints in estimator._parameter_constraints.items():
        value = getattr(estimator, name, None)
        flags = {"boolean", "verbose"} & {c for c in constraints if isinstance(c, str)}
        if isinstance(value, (bool, np.bool_)) and not flags:
            raise InvalidParameterError(f"{name}={value!r} is a bool, but {type(estimator).__name__}'s "
                                        f"{name} is a number; pass the number itself")


class _SparseCodingMixin(ClassNamePrefixFeaturesOutMixin, TransformerMixin):
    """``transform``/``inverse_transform`` of both estimators (scikit-learn's ``_BaseSparseCoding``)."""

    def _validate_params(self):
        _refuse_bools_as_numbers(self)
        super()._validate_params()

    def _check_transform_settings(self, n_components):
        """Refuse by name the transform settings that scikit-learn's ``sparse_encode`` refuses (``transform``
        and, before any fitting, ``MiniBatchDictionaryLearning.fit_transform``); ``n_components`` None: not
        known yet."""
        algorithm, n_nonzero = self.transform_algorithm, self.transform_n_nonzero_coefs
        if self.positive_code and algorithm in ("omp", "lars"):
            raise ValueError(f"positive_code=True is not supported by transform_algorithm={algorithm!r}; use "
                             f"'lasso_cd', 'active_set', 'fista', 'lasso_lars' or 'threshold' (or "
                             f"positive_code=False)")
        if algorithm == "omp" and None not in (n_nonzero, n_components) and n_nonzero > n_components:
            raise ValueError(f"transform_n_nonzero_coefs={n_nonzero} exceeds n_components={n_components} "
                             f"(OMP selects each atom at most once); set transform_n_nonzero_coefs <= "
                             f"{n_components}")

    def _encode(self, X, dictionary, alpha):
        # parameters are checked here too: SparseCoder transforms without fit (stateless), and parameters
        # set after fit reach transform unchecked (a bare KeyError, or transform_max_iter=-5 taken as 1)
        self._validate_params()
        self._check_transform_settings(dictionary.shape[0])
        algorithm = self.transform_algorithm
        positive = self.positive_code
        if algorithm in _SKLEARN or (algorithm in _OURS and alpha == 0):
            # the dictionary in X's dtype, as for our solvers: scikit-learn's lasso_cd fails on a float64
            # dictionary with float32 X (a Cython buffer dtype error), and the codes keep X's dtype
            code = sklearn_sparse_encode(
                X, dictionary.astype(X.dtype, copy=False),
                algorithm="lasso_cd" if algorithm in _OURS else algorithm,
                n_nonzero_coefs=self.transform_n_nonzero_coefs, alpha=alpha,
                max_iter=self.transform_max_iter, n_jobs=self.n_jobs, positive=positive,
            ).astype(X.dtype, copy=False)
        else:
            _check_device(self.device)
            device = _device(self.device)
            method = _OURS[algorithm]
            if device.type != "cpu" and method == "auto":
                method = "fista"
            code = sparse_encode(
                X, dictionary.astype(X.dtype, copy=False), alpha=float(alpha), positive=positive,
                max_iter=max(int(self.transform_max_iter), 1), tol=_FISTA_TOL, device=device, method=method,
                n_jobs=self.n_jobs,
            )
        code = check_finite_output(code, "the codes of X", X,
                                   "X far outside the dictionary's scale (atoms much smaller than the rows); "
                                   "rescale X or the dictionary")
        if self.split_sign:
            n_samples, n_components = code.shape
            split = np.empty((n_samples, 2 * n_components), dtype=code.dtype)
            split[:, :n_components] = np.maximum(code, 0)
            split[:, n_components:] = -np.minimum(code, 0)
            code = split
        return code

    def _inverse(self, code, dictionary):
        self._validate_params()  # split_sign="no" would be read as True
        code = check_array(host_values(code, "X"), dtype=_FLOATS, input_name="codes")
        expected = dictionary.shape[0] * (2 if self.split_sign else 1)
        if code.shape[1] != expected:
            raise ValueError(f"the codes have {code.shape[1]} columns but this dictionary needs {expected} "
                             f"(n_components{' × 2 for split_sign' if self.split_sign else ''})")
        if self.split_sign:
            half = code.shape[1] // 2
            code = code[:, :half] - code[:, half:]
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below, by rows
            rows = code @ dictionary.astype(code.dtype, copy=False)
        return check_finite_output(rows, "the rows decoded from the codes", code,
                                   f"codes too large for {code.dtype} through this dictionary; check the "
                                   f"codes (those of transform are far smaller)")


_COMMON_CONSTRAINTS = {
    "transform_algorithm": [StrOptions({"lasso_lars", "lasso_cd", "lars", "omp", "threshold", "active_set",
                                        "fista"})],
    "transform_n_nonzero_coefs": [Interval(Integral, 1, None, closed="left"), None],
    "transform_alpha": [Interval(Real, 0, None, closed="left"), None],
    "split_sign": ["boolean"],
    "n_jobs": [Interval(Integral, None, -1, closed="right"), Interval(Integral, 1, None, closed="left"),
               None],
    "positive_code": ["boolean"],
    "transform_max_iter": [Interval(Integral, 0, None, closed="left")],
    "device": [StrOptions({"cpu", "cuda", "auto"})],
}


class SparseCoder(_SparseCodingMixin, BaseEstimator):
    """Sparse codes over a fixed dictionary: ``sklearn.decomposition.SparseCoder`` on our solvers.

    Parameters
    ----------
    dictionary : ndarray (n_components, n_features)
        The atoms, one per row (need not be normalised).
    transform_algorithm : {"omp", "lasso_cd", "active_set", "fista", "lasso_lars", "lars", "threshold"}
        ``"lasso_cd"``/``"active_set"``: exact lasso by our active-set solver (CPU; FISTA on a GPU);
        ``"fista"``: our batched FISTA; the others: scikit-learn's ``sparse_encode`` (module docstring).
        Default ``"omp"`` as in scikit-learn.
    transform_n_nonzero_coefs, transform_alpha, split_sign, n_jobs, positive_code, transform_max_iter
        As in scikit-learn: ``transform_alpha`` is the L1 weight α of ``½||x − zD||² + α||z||₁`` (default 1
        for the lasso algorithms); ``n_jobs``: processes of the delegated algorithms, threads of ours
        (:func:`sparsecoder.inference.lasso.solver_threads`; None: numba's and torch's thread counts).
    device : {"cpu", "cuda", "auto"}
        Where our solvers run (``"auto"``: CUDA when available).

    Attributes
    ----------
    n_components_, n_features_in_, feature_names_in_
    """

    _parameter_constraints: dict = {"dictionary": ["array-like"], **_COMMON_CONSTRAINTS}

    def __init__(self, dictionary, *, transform_algorithm="omp", transform_n_nonzero_coefs=None,
                 transform_alpha=None, split_sign=False, n_jobs=None, positive_code=False,
                 transform_max_iter=1000, device="cpu"):
        self.dictionary = dictionary
        self.transform_algorithm = transform_algorithm
        self.transform_n_nonzero_coefs = transform_n_nonzero_coefs
        self.transform_alpha = transform_alpha
        self.split_sign = split_sign
        self.n_jobs = n_jobs
        self.positive_code = positive_code
        self.transform_max_iter = transform_max_iter
        self.device = device

    def _atoms(self):
        return _check_atoms(self.dictionary, "dictionary")

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Only validate ``X`` and the parameters (the dictionary is fixed); returns ``self``."""
        X = _validate(self, X)
        atoms = self._atoms()
        if X.shape[1] != atoms.shape[1]:
            # unfitted again: the width recorded by validate_data refused transform's rows of the right width
            for name in ("n_features_in_", "feature_names_in_", "n_components_"):
                self.__dict__.pop(name, None)
            raise ValueError(f"the dictionary has {atoms.shape[1]} features but X has {X.shape[1]}: pass "
                             f"a dictionary of shape (n_components, {X.shape[1]})")
        self.n_components_ = atoms.shape[0]
        return self

    def transform(self, X, y=None):
        """Codes of ``X`` (``(n, n_components)``, ×2 with ``split_sign``) by ``transform_algorithm``."""
        atoms = self._atoms()
        X = _validate(self, X, reset=False)
        if X.shape[1] != atoms.shape[1]:
            raise ValueError(f"X has {X.shape[1]} features but the dictionary has {atoms.shape[1]}: pass "
                             f"data of shape (n_samples, {atoms.shape[1]})")
        alpha = 1.0 if self.transform_alpha is None else self.transform_alpha
        return self._encode(X, atoms, alpha)

    def inverse_transform(self, X):
        """Data back from codes: ``X @ dictionary``."""
        return self._inverse(X, self._atoms())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    @property
    def _n_features_out(self):  # the columns of transform: × 2 with split_sign (scikit-learn counts 1×)
        return self._atoms().shape[0] * (2 if self.split_sign else 1)


class MiniBatchDictionaryLearning(_SparseCodingMixin, BaseEstimator):
    """Online dictionary learning (Mairal et al. 2010) on our exact lasso: scikit-learn's estimator.

    Runs :class:`sparsecoder.dictionary.OnlineDictionaryLearner` (codes by the exact active-set lasso, warm
    started from each sample's previous code; one block-coordinate sweep over the atoms per mini-batch; dead
    atoms re-drawn from the batch). ``fit`` keeps exact statistics over the data set (every sample counted
    once, with its latest code, weighted by its last visit; Mairal et al. 2010 §3.4.2), which converges
    several times faster than scikit-learn's running average from the second epoch on; ``partial_fit``
    (a stream, no memory of past samples) uses scikit-learn's weighting of the mini-batches. Minimises the
    mean of ``½||x − zD||² + α||z||₁`` over atoms in the unit ball.

    Parameters
    ----------
    n_components : int, default n_features
    alpha : float, default 1
        L1 weight α of the fit (and of ``transform`` when ``transform_alpha`` is None).
    max_iter : int, default 1000
        Most epochs (passes over the data); scikit-learn's early stopping (``tol``, ``max_no_improvement``)
        usually ends ``fit`` sooner.
    fit_algorithm : {"lars", "cd", "active_set", "fista"}
        All compute the exact lasso codes of the fit: "lars", "cd" and "active_set" by our active-set solver
        on the CPU (FISTA on a GPU), "fista" by batched FISTA.
    n_jobs : int or None
        Processes of the delegated transform algorithms, threads of ours (fit, transform, score), as for
        :class:`SparseCoder`.
    batch_size : int, default 256
    shuffle : bool
        A fresh permutation of the rows every epoch (scikit-learn shuffles once).
    dict_init : ndarray (n_components, n_features), optional
        Initial atoms (clipped at 0 with ``positive_dict``, normalised into the unit ball); default: random
        training rows, normalised (SPEC §7;
        scikit-learn starts from a truncated SVD).
    transform_algorithm, transform_n_nonzero_coefs, transform_alpha, split_sign, positive_code,
    transform_max_iter
        As in :class:`SparseCoder`.
    verbose, random_state, positive_dict, callback, tol, max_no_improvement
        As in scikit-learn (``callback(locals())`` after every mini-batch of ``fit``).
    device : {"cpu", "cuda", "auto"}, default "auto"
        Where codes are computed (dictionary update on the CPU).

    Attributes
    ----------
    components_ : ndarray (n_components, n_features), X's dtype
    n_iter_ : int — epochs run; n_steps_ : int — mini-batches run
    n_features_in_, feature_names_in_
    n_atoms_redrawn_ : int — dead atoms re-drawn from the data during fitting
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "fit_algorithm": [StrOptions({"cd", "lars", "active_set", "fista"})],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "dict_init": [None, np.ndarray],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
        "positive_dict": ["boolean"],
        "callback": [None, callable],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_no_improvement": [Interval(Integral, 0, None, closed="left"), None],
        **_COMMON_CONSTRAINTS,
    }

    def __init__(self, n_components=None, *, alpha=1, max_iter=1_000, fit_algorithm="lars", n_jobs=None,
                 batch_size=256, shuffle=True, dict_init=None, transform_algorithm="omp",
                 transform_n_nonzero_coefs=None, transform_alpha=None, verbose=False, split_sign=False,
                 random_state=None, positive_code=False, positive_dict=False, transform_max_iter=1000,
                 callback=None, tol=1e-3, max_no_improvement=10, device="auto"):
        self.n_components = n_components
        self.alpha = alpha
        self.max_iter = max_iter
        self.fit_algorithm = fit_algorithm
        self.n_jobs = n_jobs
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.dict_init = dict_init
        self.transform_algorithm = transform_algorithm
        self.transform_n_nonzero_coefs = transform_n_nonzero_coefs
        self.transform_alpha = transform_alpha
        self.verbose = verbose
        self.split_sign = split_sign
        self.random_state = random_state
        self.positive_code = positive_code
        self.positive_dict = positive_dict
        self.transform_max_iter = transform_max_iter
        self.callback = callback
        self.tol = tol
        self.max_no_improvement = max_no_improvement
        self.device = device

    # ------------------------------------------------------------------ fitting
    def _n_atoms(self, n_features):
        return n_features if self.n_components is None else self.n_components

    def _learner_settings(self):
        """The learner's settings from the current parameters (at its creation, and again at every
        ``partial_fit``: parameters set between calls apply, as in scikit-learn)."""
        _check_device(self.device)
        return dict(positive_code=bool(self.positive_code), positive_dict=bool(self.positive_dict),
                    device=_device(self.device), max_iter=max(int(self.transform_max_iter), 1),
                    solver="fista" if self.fit_algorithm == "fista" else "auto")

    def _new_learner(self, X):
        from sparsecoder.data.base import check_rows_fit

        n_components = self._n_atoms(X.shape[1])
        settings = self._learner_settings()
        # the learner's float64 state (atoms, the statistics A (k, k) and B (k, d)) and the codes kept per
        # sample (float64 at most): refused by name before the first array is allocated
        k, (n, d) = n_components, X.shape
        check_rows_fit(8 * (k * k + 2 * k * d + n * k), 1,
                       f"{k:,} atoms of {d:,} features learnt from {n:,} samples",
                       "lower n_components")
        self._rng = np.random.default_rng(check_random_state(self.random_state).randint(2**31 - 1))
        if self.dict_init is not None:
            atoms = _check_atoms(self.dict_init, "dict_init", float64=True)
            if atoms.shape != (n_components, X.shape[1]):
                raise ValueError(f"dict_init must have shape (n_components, n_features) = "
                                 f"{(n_components, X.shape[1])}, got {atoms.shape}")
            if self.positive_dict:  # into the constraint set (max_iter=0 returned negative atoms)
                atoms = np.clip(atoms, 0.0, None)
            atoms = atoms / np.maximum(np.linalg.norm(atoms, axis=1, keepdims=True), 1.0)
        else:
            atoms = initial_dictionary(X, n_components, self._rng, positive=self.positive_dict)
        return OnlineDictionaryLearner(atoms, float(self.alpha), rng=self._rng, **settings)

    def _publish(self, learner, dtype):
        self._learner = learner
        self.components_ = learner.components.astype(dtype)
        self.n_steps_ = learner.n_steps
        self.n_atoms_redrawn_ = learner.n_redrawn

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the dictionary from ``X`` (``(n_samples, n_features)``); returns ``self``."""
        X = _validate(self, X, order="C")
        _check_learnable_scale(X)
        learner = self._new_learner(X)
        n_samples = X.shape[0]
        batch_size = min(self.batch_size, n_samples)
        n_steps_per_epoch = int(np.ceil(n_samples / batch_size))
        memory = new_memory(n_samples, learner.components.shape[0], X.dtype, exact_statistics=True)
        monitor = _Convergence(self, n_samples, n_components=learner.components.shape[0])
        previous = learner.components.copy()
        started = time.perf_counter()

        def after_batch(batch, cost):
            stop = monitor.check(batch.shape[0], cost, learner.components, previous, learner.n_steps)
            if self.callback is not None:
                self.callback(locals())
            previous[:] = learner.components
            return stop

        converged = False
        with solver_threads(self.n_jobs):
            for _ in range(self.max_iter):
                run_epoch(learner, X, batch_size, self._rng, shuffle=self.shuffle, memory=memory,
                          stop=after_batch)
                if monitor.converged:
                    converged = True
                    break
        if self.verbose:
            print(f"[MiniBatchDictionaryLearning] {learner.n_steps} mini-batches in "
                  f"{time.perf_counter() - started:.2f} s{' (converged)' if converged else ''}, "
                  f"{learner.n_redrawn} dead atoms re-drawn")
        _warn_unused_atoms(memory["codes"][memory["seen"]], X, float(self.alpha), learner.n_redrawn)
        # partial_fit goes on as a stream (scikit-learn's weighting): bring the exact statistics to its scale
        learner.to_stream_weighting(float(memory["weights"][memory["seen"]].sum()), batch_size)
        self._publish(learner, X.dtype)
        self.n_iter_ = int(np.ceil(learner.n_steps / n_steps_per_epoch))
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """One mini-batch step on ``X`` (the first call initialises the dictionary from it)."""
        fitted = hasattr(self, "components_")
        X = _validate(self, X, order="C", reset=not fitted)
        _check_learnable_scale(X)
        if not fitted:
            learner = self._new_learner(X)
        else:
            learner = self._learner
            n_atoms = self._n_atoms(X.shape[1])
            if learner.components.shape[0] != n_atoms:
                raise ValueError(f"n_components={self.n_components} but the dictionary being learned has "
                                 f"{learner.components.shape[0]} atoms (set by the first fit/partial_fit); "
                                 f"call fit, or clone the estimator to start a new dictionary")
            learner.alpha = float(self.alpha)
            for name, value in self._learner_settings().items():
                setattr(learner, name, value)
        with solver_threads(self.n_jobs):
            learner._step_rows(X, None, None, None)  # X checked by _validate, its width by reset=False
        self._publish(learner, X.dtype)
        self.n_iter_ = getattr(self, "n_iter_", 0)
        return self

    def fit_transform(self, X, y=None):
        """``fit(X).transform(X)``, refusing first, before any fitting, the settings ``transform`` refuses
        (``positive_code`` with ``omp``/``lars``; ``fit`` alone accepts them, as scikit-learn's does)."""
        self._validate_params()
        # n_components=None: one atom per column of X (its shape only: fit reads and checks X)
        shape = tuple(X.shape) if hasattr(X, "shape") else np.shape(np.asarray(X, dtype=object))
        self._check_transform_settings(self._n_atoms(shape[1]) if len(shape) == 2 else self.n_components)
        return self.fit(X, y).transform(X)

    # ------------------------------------------------------------------ using
    def transform(self, X):
        """Codes of ``X`` over ``components_`` by ``transform_algorithm`` (α = ``transform_alpha``, else
        ``alpha``)."""
        check_is_fitted(self)
        X = _validate(self, X, reset=False)
        alpha = self.alpha if self.transform_alpha is None else self.transform_alpha
        return self._encode(X, self.components_, alpha)

    def inverse_transform(self, X):
        """Data back from codes: ``X @ components_``."""
        check_is_fitted(self)
        return self._inverse(X, self.components_)

    def score(self, X, y=None):
        """Negative mean lasso objective ``−mean ½||x − zD||² + α||z||₁`` of ``X`` with exact codes (fit
        ``alpha``, ``positive_code``) over ``components_`` as they are; higher is better."""
        check_is_fitted(self)
        X = _validate(self, X, reset=False)
        with solver_threads(self.n_jobs):
            return -dictionary_objective(X, self.components_, float(self.alpha), positive=self.positive_code,
                                         normalize_atoms=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    @property
    def _n_features_out(self):  # the columns of transform: × 2 with split_sign (scikit-learn counts 1×)
        return self.components_.shape[0] * (2 if self.split_sign else 1)


def _largest_row_norm(X) -> float:
    """The largest L2 norm of a row of ``X`` (accumulated in float64)."""
    return float(np.sqrt(np.einsum("ij,ij->i", X, X, dtype=np.float64).max()))


def _warn_unused_atoms(codes, X, alpha, n_redrawn) -> None:
    """A ``UserWarning`` when more than half of the atoms are used by no code of the fit's last visit to each
    sample: such atoms are re-drawn data rows, not learned (the default α = 1 with rows of norm below 1 gave
    all-zero codes and a dictionary of random rows, unwarned)."""
    if codes.size == 0:
        return
    k = codes.shape[1]
    unused = int((~(codes != 0).any(axis=0)).sum())
    if 2 * unused <= k:
        return
    bound = _largest_row_norm(X)
    if bound == 0:  # "lower alpha (e.g. 0)" was advised here: alpha must be > 0, and no alpha helps
        what = "X is all zeros: every code is zero whatever alpha, and there is nothing to learn; check X"
    elif unused == k:
        what = (f"every code is zero at the end of fit: alpha={alpha:.4g} is too large for X (codes vanish "
                f"for alpha >= {bound:.4g}, its largest row norm); lower alpha (e.g. {0.1 * bound:.2g}) or "
                f"scale X up")
    else:
        what = (f"{unused} of {k} atoms are used by no code at the end of fit; lower alpha (={alpha:.4g}; "
                f"codes vanish for alpha >= {bound:.4g}, X's largest row norm) or n_components")
    warnings.warn(f"MiniBatchDictionaryLearning: {what} (unused atoms are re-drawn data rows, not learned: "
                  f"{n_redrawn} re-draws)", UserWarning, stacklevel=4)


_LEARNABLE_PEAK = 1e100


def _check_learnable_scale(X):
    """Refuse rows whose largest ``|x|`` lies outside ``[1e-100, 1e100]`` (all-zero rows pass), or float32
    rows of norm beyond float32's maximum / 16 (the learner's float32 products overflow): the online
    learner's float64 statistics (weighted sums of products of codes and rows) over- or underflow there and
    its solver failed with a bare ZeroDivisionError (from about 1e154, or 1e-155 with as small an alpha)."""
    peak = max(float(X.max()), -float(X.min())) if X.size else 0.0
    if peak > 0 and not 1 / _LEARNABLE_PEAK <= peak <= _LEARNABLE_PEAK:
        raise ValueError(f"X's largest |value| is {peak:.4g}, outside [1e-100, 1e100] where the dictionary "
                         f"learner's float64 statistics stay in range; rescale X (e.g. X / X.std()) and "
                         f"alpha by the same factor (the dictionary learned is the same)")
    if X.dtype == np.float32 and X.size:
        # the learner's products X·atoms (bounded by the row norms) are float32 for float32 X: rows of norm
        # near float32's maximum made them inf and the fit failed with a bare ZeroDivisionError (norm 1e39)
        norm = _largest_row_norm(X)
        bound = FLOAT32_MAX / 16
        if norm > bound:
            raise ValueError(f"X is float32 and its largest row norm is {norm:.4g}, above {bound:.3g} where "
                             f"the dictionary learner's float32 products X·atoms overflow; pass "
                             f"X.astype(np.float64), or rescale X and alpha by the same factor")


class _Convergence:
    """scikit-learn's early stopping of ``MiniBatchDictionaryLearning.fit``: after the first
    ``min(100, n/η)`` mini-batches, stop when the dictionary moves less than ``tol`` (Frobenius norm of the
    change / n_components) or an exponentially weighted average of the batch costs (weight η/(n + 1)) has
    not improved for ``max_no_improvement`` batches."""

    def __init__(self, estimator, n_samples, n_components):
        self.tol = estimator.tol
        self.max_no_improvement = estimator.max_no_improvement
        self.verbose = estimator.verbose
        self.n_samples = n_samples
        self.n_components = n_components
        self.ewa = None
        self.ewa_min = None
        self.no_improvement = 0
        self.converged = False

    def check(self, batch_size, cost, new, old, step):
        if step <= min(100, self.n_samples / batch_size):
            return False
        weight = min(batch_size / (self.n_samples + 1), 1.0)
        self.ewa = cost if self.ewa is None else self.ewa * (1 - weight) + cost * weight
        if self.verbose:
            print(f"Minibatch step {step}: mean batch cost: {cost}, ewa cost: {self.ewa}")
        if self.tol > 0 and np.linalg.norm(new - old) / self.n_components <= self.tol:
            self.converged = True
        else:
            if self.ewa_min is None or self.ewa < self.ewa_min:
                self.no_improvement, self.ewa_min = 0, self.ewa
            else:
                self.no_improvement += 1
            # checked after an improvement too, as scikit-learn does: max_no_improvement=0 stops here
            if self.max_no_improvement is not None and self.no_improvement >= self.max_no_improvement:
                self.converged = True
        return self.converged


# ======================================================================================================
# Neural estimators: SAE (Evtimova & LeCun 2022) and SparseVAE (issue 14)
# ======================================================================================================
_PRESET_KEYS = ("hidden_size", "lam", "gamma", "beta", "var_threshold", "fista_step", "fista_restart",
                "fista_init", "lr_decoder", "lr_encoder", "weight_decay_decoder", "weight_decay_hidden_bias",
                "weight_decay_encoder_bias", "lr_halve_every")
_E_INVERSE = 0.36787944117144233  # e^-1, Barello et al.'s likelihood σ
_IN_MEMORY = "in-memory rows given to a scikit-learn estimator"


def _rows_tensor(X, device, what="the rows of X") -> torch.Tensor:
    """A float32 copy of the validated rows on ``device`` (a copy: read-only memmaps are fine); finite
    values beyond float32's range are refused by name (they became inf, reported as NaN/inf in X)."""
    check_float32_range(np.asarray(X), what)
    return torch.tensor(np.asarray(X, dtype=np.float32), device=device)


class _NeuralEstimator(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Fitting, pickling and saving shared by :class:`SAE` and :class:`SparseVAE`.

    The model is trained in memory exactly as :func:`sparsecoder.train` trains it, without a run folder:
    per epoch the seeded mini-batches of :func:`sparsecoder.train.trainer.batch_indices` (a permutation
    cut into batches whose sizes differ by at most one), one :meth:`Optimization.step` each, and the
    learning-rate schedule advanced after the epoch. Torch's global generator is left as it was (training
    draws from a generator seeded by ``random_state``).
    """

    _model_name: str = ""
    _divergence_advice = "lower the learning rates or scale the data"

    # -- to override ----------------------------------------------------------------------------------
    def _build_config(self, n_features: int, seed: int):
        """The family's config for ``n_features`` inputs and ``seed`` (each subclass defines it)."""
        raise TypeError(f"{type(self).__name__} does not define _build_config; subclass SAE or SparseVAE")

    def _model_class(self):
        from sparsecoder.models import model_class

        return model_class(self._model_name)

    # -- fitting --------------------------------------------------------------------------------------
    def _check_batches(self, n_samples: int, model) -> None:
        """Refuse, before any training step, mini-batches of ``n_samples`` rows smaller than ``model``
        needs (VDL's variance guard: 2 rows), as :func:`sparsecoder.train` does, naming the cause."""
        from sparsecoder.train.trainer import check_batches

        check_batches(int(self.batch_size), model, n_samples, more_data="more rows in X")

    def _start(self, X):
        _check_device(self.device)
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        config = self._build_config(X.shape[1], seed)
        from sparsecoder.train.optimization import Optimization

        model = self._model_class()(config, X.shape[1])
        self._check_batches(X.shape[0], model)
        model = model.to(_device(self.device))
        self.model_ = model
        self.config_ = config
        self._optimization = Optimization(model)
        self._seed = seed
        self._built_with = self._model_params()
        self.n_steps_ = 0
        self.n_iter_ = 0

    def _model_params(self) -> dict:
        """The parameters the model and its optimiser are built from (all but those read at every call)."""
        return {k: v for k, v in self.get_params().items() if k not in ("max_epochs", "batch_size",
                                                                         "random_state")}

    def _check_unchanged(self) -> None:
        """``partial_fit`` continues the model built by the first fit: parameters set since then (and not
        set back) cannot apply to it and are refused by name, never silently ignored."""
        built = getattr(self, "_built_with", None)  # None: pickled before it was recorded
        changed = {k: v for k, v in self._model_params().items() if built is not None and built.get(k) != v}
        if changed:
            now = ", ".join(f"{k}={v!r}" for k, v in changed.items())
            then = ", ".join(f"{k}={built.get(k)!r}" for k in changed)
            raise ValueError(f"{type(self).__name__}.partial_fit continues the model built by the first "
                             f"fit/partial_fit with {then}; the parameters set since ({now}) cannot apply to "
                             f"it: call fit to build a new model, or set them back")

    def _check_training_rows(self, X) -> None:
        """Refuse rows the model cannot train on (after the shape checks, before any step); the
        family's own conditions (:class:`SparseVAE`: ``bce`` data in [0, 1])."""

    def _one_pass(self, rows: torch.Tensor, epoch: int, last: bool = True) -> None:
        """One pass over ``rows``; after the ``last`` pass of a fit, a warning if the codes of every batch
        were all zero (``code_l1`` logs of the sparse autoencoder: it learned nothing)."""
        from sparsecoder.train.trainer import batch_indices

        model = self.model_
        model.train()
        code_l1 = []
        with torch.random.fork_rng(devices=[] if rows.device.type == "cpu" else [rows.device]):
            torch.manual_seed(self._seed + 7919 * epoch + self.n_steps_)
            for index in batch_indices(rows.shape[0], self.batch_size, self._seed, epoch):
                logs = self._optimization.step(rows[index.to(rows.device)])
                self.n_steps_ += 1
                if "code_l1" in logs:
                    code_l1.append(logs["code_l1"])
                losses = {k: v for k, v in logs.items() if k in ("loss", "energy", "decoder_loss")}
                if not all(np.isfinite(v) for v in losses.values()):
                    raise FloatingPointError(
                        f"{type(self).__name__}: training diverged at step {self.n_steps_} ({losses}); "
                        f"{self._divergence_advice}")
        model.eval()
        if last and code_l1 and not any(code_l1):
            from sparsecoder.eval.sae import collapse_message

            where = f"{type(self).__name__}: the codes of the last pass over X"
            warnings.warn(collapse_message(model.config, where), UserWarning, stacklevel=3)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train a fresh model for ``max_epochs`` passes over ``X`` (mini-batches of ``batch_size``); with
        autograd on even inside ``torch.no_grad()`` or ``torch.inference_mode()``."""
        X = _validate(self, X)
        with autograd_on():
            self._start(X)
            rows = _rows_tensor(X, self.model_.device)
            for epoch in range(self.max_epochs):
                self._one_pass(rows, epoch, last=epoch == self.max_epochs - 1)
                self._optimization.end_epoch()
                self.n_iter_ = epoch + 1
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """One pass over the rows ``X`` (the first call builds the model); no learning-rate schedule."""
        fitted = hasattr(self, "model_")
        X = _validate(self, X, reset=not fitted)
        with autograd_on():
            if not fitted:
                self._start(X)
            else:
                self._check_unchanged()
                self._check_batches(X.shape[0], self.model_)
                self._check_training_rows(X)
            self._one_pass(_rows_tensor(X, self.model_.device), self.n_iter_)
        self.n_iter_ += 1
        return self

    def _checked_rows(self, X):
        check_is_fitted(self)
        X = _validate(self, X, reset=False)
        return X, _rows_tensor(X, self.model_.device)

    def _codes_in(self, codes):
        check_is_fitted(self)
        codes = check_array(host_values(codes, "X"), dtype=_FLOATS, input_name="codes")
        if codes.shape[1] != self.n_components_:
            raise ValueError(f"the codes have {codes.shape[1]} columns but this model has "
                             f"{self.n_components_} components; pass codes of shape (n_samples, "
                             f"{self.n_components_})")
        return codes, _rows_tensor(codes, self.model_.device, "the codes")

    @property
    def components_(self) -> np.ndarray:
        """The atoms (decoder columns) as rows, ``(n_components, n_features)``."""
        check_is_fitted(self, "model_")
        return self.model_.atoms().T.detach().cpu().numpy()

    @property
    def n_components_(self) -> int:
        check_is_fitted(self, "model_")
        return int(self.model_.config.n_components if self._model_name == "sparse_autoencoder"
                   else self.model_.config.n_latents)

    @property
    def _n_features_out(self):
        return self.n_components_

    # -- pickling: the optimisers hold closures (projections), so they travel as state dicts ----------
    def __getstate__(self):
        state = super().__getstate__()
        if "_optimization" in state:
            state = dict(state)
            state["_optimization_state"] = state.pop("_optimization").state_dict()
        return state

    def __setstate__(self, state):
        optimization_state = state.pop("_optimization_state", None)
        super().__setstate__(state)
        if optimization_state is not None:
            from sparsecoder.train.optimization import Optimization

            self._optimization = Optimization(self.model_)
            self._optimization.load_state_dict(optimization_state, epoch=self.n_iter_, source="pickle")

    # -- saving as a run folder -----------------------------------------------------------------------
    def save(self, path):
        """Write the fitted model as a run folder that :func:`sparsecoder.load_run`, ``encode_run`` and
        the CLI (``sparsecoder encode/decode/pictures``) read: ``config.yaml``, ``model.safetensors`` and
        ``preprocessing.json`` (identity preprocessing: model rows are the rows given to ``fit``).

        ``path`` must not exist or be an empty folder (nothing is overwritten). Returns the folder.
        """
        from pathlib import Path

        from sparsecoder.config import save_config, to_dict
        from sparsecoder.data.base import DataSplits, Split
        from sparsecoder.data.preprocessing import Identity
        from sparsecoder.train.checkpoint import save_weights
        from sparsecoder.train.run import CONFIG_FILE, WEIGHTS_FILE, save_run_data

        check_is_fitted(self)
        path = Path(path)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise FileExistsError(f"{path} exists and is not an empty folder; choose a new path or remove it "
                                  f"first (nothing is overwritten)")
        path.mkdir(parents=True, exist_ok=True)
        save_config(path / CONFIG_FILE, self._model_name, self.model_.config,
                    extra={"estimator": type(self).__name__})
        save_weights(path / WEIGHTS_FILE, self.model_, model_name=self._model_name, epoch=self.n_iter_,
                     config=to_dict(self.model_.config))

        def empty():
            return Split(x=torch.zeros(0, self.n_features_in_))

        data = DataSplits(name=_IN_MEMORY, train=empty(), val=empty(), test=empty(), image_shape=None,
                          normalization="none (rows as given to fit)", preprocessing=Identity())
        save_run_data(path, data)
        return path

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.non_deterministic = False
        return tags


class SAE(_NeuralEstimator):
    r"""Sparse autoencoder of Evtimova & LeCun (2022) as a scikit-learn transformer.

    A LISTA encoder (none for DO) and a linear or one-hidden-layer decoder trained on FISTA codes ``Z*``
    minimising (SPEC §2.1, paper eq. 3–6)

    .. math:: \sum_i \tfrac1d\lVert y_i - D(z_i)\rVert^2 + \lambda\sum_i\lVert z_i\rVert_1
              + \beta\sum_j[(T - \mathrm{std}_j Z)_+]^2 + \gamma\sum_i \tfrac1l\lVert z_i - E(y_i)\rVert^2,

    :class:`sparsecoder.SparseAutoencoder` driven through ``Optimization(model).step(batch)``, in memory.
    Every hyperparameter left at ``None`` takes the value of the paper's Table 3 for the chosen variant and
    decoder (the preset ``{variant}[-nl]-mnist``).

    Parameters
    ----------
    variant : {"sdl", "vdl", "wdl", "do", "none"}, default "vdl"
        Collapse guard: unit-norm decoder columns (SDL), variance hinge on the codes (VDL), decoder weight
        decay (WDL), no encoder + unit norm (DO), nothing (the ablation).
    decoder : {"linear", "mlp"}, default "linear"
        ``D z`` or ``W2 ReLU(W1 z + b1)`` (the "-NL" variants).
    n_components : int, default 128
        Code size ``l``.
    lam : float, optional
        Sparsity weight λ (Table 3).
    hidden_size, gamma, beta, var_threshold, fista_step, lr_decoder, lr_encoder, weight_decay_decoder,
    weight_decay_hidden_bias, weight_decay_encoder_bias, lr_halve_every : optional
        The other Table-3 hyperparameters (see :class:`sparsecoder.SparseAutoencoderConfig`).
    fista_restart : bool, optional
        FISTA's per-sample momentum restart (on in the SDL-NL preset, off in the others).
    fista_init : float, optional
        The code value FISTA starts from without an encoder (``variant="do"``; 0.1 for the mlp decoder,
        which cannot leave zero codes, 0 for the linear one).
    max_epochs : int, default 10
        Passes over the data in ``fit``.
    batch_size : int, default 250
    random_state : int, RandomState or None
        Seeds the initial weights, the batch order and nothing else (torch's global generator untouched).
    device : {"cpu", "cuda", "auto"}, default "auto"

    Attributes
    ----------
    model_ : SparseAutoencoder — the trained model (eval mode)
    config_ : SparseAutoencoderConfig
    components_ : ndarray (n_components, n_features) — the atoms (decoder columns; ``D(e_i) − D(0)`` for mlp)
    n_iter_ : int — passes over the data; n_steps_ : int — optimiser steps
    n_features_in_, feature_names_in_
    """

    _model_name = "sparse_autoencoder"
    _divergence_advice = ("FISTA's fixed step is too large for these data (the paper's steps are for MNIST "
                          "scaled as the presets scale it): use fista_step='lipschitz', or scale the data")
    _parameter_constraints: dict = {
        "variant": [StrOptions({"sdl", "vdl", "wdl", "do", "none"})],
        "decoder": [StrOptions({"linear", "mlp"})],
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "lam": [Interval(Real, 0, None, closed="left"), None],
        "hidden_size": [Interval(Integral, 1, None, closed="left"), None],
        "gamma": [Interval(Real, 0, None, closed="left"), None],
        "beta": [Interval(Real, 0, None, closed="left"), None],
        "var_threshold": [Interval(Real, 0, None, closed="neither"), None],
        "fista_step": [Interval(Real, 0, None, closed="neither"), StrOptions({"lipschitz", "backtracking"}),
                       None],
        "fista_restart": ["boolean", None],
        "fista_init": [Interval(Real, 0, None, closed="left"), None],
        "lr_decoder": [Interval(Real, 0, None, closed="neither"), None],
        "lr_encoder": [Interval(Real, 0, None, closed="neither"), None],
        "weight_decay_decoder": [Interval(Real, 0, None, closed="left"), None],
        "weight_decay_hidden_bias": [Interval(Real, 0, None, closed="left"), None],
        "weight_decay_encoder_bias": [Interval(Real, 0, None, closed="left"), None],
        "lr_halve_every": [Interval(Integral, 1, None, closed="left"), None],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "device": [StrOptions({"cpu", "cuda", "auto"})],
    }

    def __init__(self, variant="vdl", decoder="linear", *, n_components=128, lam=None, hidden_size=None,
                 gamma=None, beta=None, var_threshold=None, fista_step=None, fista_restart=None,
                 fista_init=None, lr_decoder=None, lr_encoder=None, weight_decay_decoder=None,
                 weight_decay_hidden_bias=None, weight_decay_encoder_bias=None, lr_halve_every=None,
                 max_epochs=10, batch_size=250,
                 random_state=None, device="auto"):
        self.variant = variant
        self.decoder = decoder
        self.n_components = n_components
        self.lam = lam
        self.hidden_size = hidden_size
        self.gamma = gamma
        self.beta = beta
        self.var_threshold = var_threshold
        self.fista_step = fista_step
        self.fista_restart = fista_restart
        self.fista_init = fista_init
        self.lr_decoder = lr_decoder
        self.lr_encoder = lr_encoder
        self.weight_decay_decoder = weight_decay_decoder
        self.weight_decay_hidden_bias = weight_decay_hidden_bias
        self.weight_decay_encoder_bias = weight_decay_encoder_bias
        self.lr_halve_every = lr_halve_every
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.random_state = random_state
        self.device = device

    @property
    def preset_name(self) -> str:
        """The preset whose Table-3 values fill the hyperparameters left at None."""
        return f"{self.variant}{'-nl' if self.decoder == 'mlp' else ''}-mnist"

    def _build_config(self, n_features, seed):
        from sparsecoder.config import load_preset

        overrides = {key: getattr(self, key) for key in _PRESET_KEYS if getattr(self, key) is not None}
        overrides.update(n_components=int(self.n_components), epochs=int(self.max_epochs),
                         batch_size=int(self.batch_size), seed=seed, device=self.device)
        return load_preset(self.preset_name, overrides)[1]

    def _fista_codes(self, rows: torch.Tensor) -> torch.Tensor:
        size = self.model_.config.batch_size
        return torch.cat([self.model_.infer(rows[start:start + size]).codes
                          for start in range(0, rows.shape[0], size)])

    def transform(self, X, method="encoder"):
        """Codes of ``X`` ``(n, n_components)``: the encoder's (``method="encoder"``; FISTA's for DO, which
        has no encoder) or FISTA's, inferred as in training (``method="fista"``: started from the encoder's
        prediction, λ, β, T, γ of the model, in chunks of ``batch_size`` rows for the variance hinge)."""
        X, rows = self._method_rows(X, method)
        return self._codes(rows, method).cpu().numpy().astype(X.dtype, copy=False)

    def _method_rows(self, X, method: str):
        """:meth:`_checked_rows`, after refusing a ``method`` other than 'encoder' / 'fista'."""
        if method not in ("encoder", "fista"):
            raise ValueError(f"method={method!r} is not allowed; choose 'encoder' or 'fista'")
        return self._checked_rows(X)

    def _codes(self, rows: torch.Tensor, method: str) -> torch.Tensor:
        """Finite codes of the float32 ``rows`` by ``method`` (NaN/inf refused, naming the rows)."""
        with torch.no_grad():
            codes = self.model_.encode(rows) if method == "encoder" else self._fista_codes(rows)
        return check_finite_output(codes, f"the {method} codes of X", rows,
                                   "rows far outside the range of the data the model was fitted on, or "
                                   "weights that overflow on them (a diverged fit); check X")

    def _decoded(self, z: torch.Tensor, what: str, cause: str) -> torch.Tensor:
        with torch.no_grad():
            return check_finite_output(self.model_.decoder(z), what, z, cause)

    def inverse_transform(self, X):
        """Rows decoded from codes: ``D(z)`` (NaN/inf refused, as every output of the estimators)."""
        codes, z = self._codes_in(X)
        rows = self._decoded(z, "the decoded rows", "codes far larger than the model's codes, or decoder "
                                                    "weights that overflow on them; check the codes")
        return rows.cpu().numpy().astype(codes.dtype, copy=False)

    def score(self, X, y=None, method="encoder"):
        r"""Mean PSNR (dB) of the reconstructions ``D(z)`` of the codes of ``transform(X, method)``, in the
        space of ``X`` with peak 1: ``(1/n) Σ_i 10 log10(1 / ((1/d)||x_i − D(z_i)||²))``; higher is
        better."""
        from sparsecoder.eval.metrics import psnr

        X, rows = self._method_rows(X, method)
        recon = self._decoded(self._codes(rows, method), "the reconstructions of X",
                              "decoder weights that overflow on the codes of X (a diverged fit); check X")
        return psnr(rows.double().cpu().numpy(), recon.double().cpu().numpy())


class SparseVAE(_NeuralEstimator):
    r"""Sparse-coding VAE (Barello et al. 2018; Jiang & de la Iglesia; Pyle) as a scikit-learn transformer.

    :class:`sparsecoder.VAE` trained in memory on the β-weighted negative ELBO (SPEC §4)

    .. math:: \mathcal L(x) = -\log p(x|z) + \beta\sum_j \mathrm{KL}(q(z_j|x)\,\|\,p(z_j)),\quad
              z\sim q(z|x),

    through ``Optimization(model).step(batch)``.

    Parameters
    ----------
    n_components : int, default 450
        Number of latents ``l``.
    prior : {"laplace", "gaussian", "cauchy"}; prior_scale : float, default 0.1
    posterior : {"gaussian", "cauchy"}
    kl : {"analytic", "monte_carlo"} or None
        None: analytic where a closed form exists for (posterior, prior), else Monte Carlo.
    beta : float, default 1 — weight of the KL term
    encoder : {"mlp", "resnet", "pyle"}; encoder_hidden : int, default 512
    decoder : {"linear", "pyle"}
    unit_norm_decoder : bool — unit-norm decoder columns after every step (SVAE-Norm)
    likelihood : {"gaussian", "bce", "mse"}; likelihood_sigma : float, default e^-1
    lr : float, default 1e-3 (Adam)
    max_epochs, batch_size, random_state, device
        As for :class:`SAE`.

    Attributes
    ----------
    model_ : VAE; config_ : VAEConfig
    components_ : ndarray (n_components, n_features) — the decoder columns (atoms)
    n_iter_, n_steps_, n_features_in_, feature_names_in_
    """

    _model_name = "vae"
    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "prior": [StrOptions({"laplace", "gaussian", "cauchy"})],
        "prior_scale": [Interval(Real, 0, None, closed="neither")],
        "posterior": [StrOptions({"gaussian", "cauchy"})],
        "kl": [StrOptions({"analytic", "monte_carlo"}), None],
        "beta": [Interval(Real, 0, None, closed="left")],
        "encoder": [StrOptions({"mlp", "resnet", "pyle"})],
        "encoder_hidden": [Interval(Integral, 1, None, closed="left")],
        "decoder": [StrOptions({"linear", "pyle"})],
        "unit_norm_decoder": ["boolean"],
        "likelihood": [StrOptions({"gaussian", "bce", "mse"})],
        "likelihood_sigma": [Interval(Real, 0, None, closed="neither")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "device": [StrOptions({"cpu", "cuda", "auto"})],
    }

    def __init__(self, n_components=450, *, prior="laplace", prior_scale=0.1, posterior="gaussian", kl=None,
                 beta=1.0, encoder="mlp", encoder_hidden=512, decoder="linear", unit_norm_decoder=False,
                 likelihood="gaussian", likelihood_sigma=_E_INVERSE, lr=1e-3, max_epochs=10,
                 batch_size=250, random_state=None, device="auto"):
        self.n_components = n_components
        self.prior = prior
        self.prior_scale = prior_scale
        self.posterior = posterior
        self.kl = kl
        self.beta = beta
        self.encoder = encoder
        self.encoder_hidden = encoder_hidden
        self.decoder = decoder
        self.unit_norm_decoder = unit_norm_decoder
        self.likelihood = likelihood
        self.likelihood_sigma = likelihood_sigma
        self.lr = lr
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.random_state = random_state
        self.device = device

    def _build_config(self, n_features, seed):
        from sparsecoder.config import PRESET, USER, Layer, layered_config
        from sparsecoder.models.distributions import ANALYTIC_PAIRS
        from sparsecoder.models.vae import VAEConfig

        kl = self.kl or ("analytic" if (self.posterior, self.prior) in ANALYTIC_PAIRS else "monte_carlo")
        values = dict(
            n_latents=int(self.n_components), prior=self.prior, prior_scale=float(self.prior_scale),
            posterior=self.posterior, kl=kl, beta=float(self.beta), encoder=self.encoder,
            encoder_hidden=int(self.encoder_hidden), decoder=self.decoder,
            unit_norm_decoder=bool(self.unit_norm_decoder), likelihood=self.likelihood,
            likelihood_sigma=float(self.likelihood_sigma), lr=float(self.lr), epochs=int(self.max_epochs),
            batch_size=int(self.batch_size), seed=seed, device=self.device,
        )
        # a parameter away from its default is the user's: one without effect under the others is refused
        # (likelihood_sigma with likelihood="mse"), by the configs' one check
        defaults = {name: p.default for name, p in inspect.signature(SparseVAE.__init__).parameters.items()}
        given = {key: value for key, value in values.items()
                 if key in defaults and getattr(self, key) != defaults[key]}
        return layered_config(VAEConfig, [Layer(values, PRESET), Layer(given, USER)])

    def _start(self, X):
        super()._start(X)
        # after the config is built (its errors first), before any training step
        self._check_training_rows(X)

    def _check_training_rows(self, X) -> None:
        from sparsecoder.models.vae import check_likelihood_data

        check_likelihood_data(self.config_, X, "X")  # numpy as it is (a read-only array made torch warn)

    def transform(self, X):
        """Posterior means ``(n, n_components)`` (locations: medians for a Cauchy posterior)."""
        X, rows = self._checked_rows(X)
        codes = check_finite_output(self.model_.encode(rows), "the posterior means of X", rows,
                                    "rows far outside the range of the data the model was fitted on, or "
                                    "weights that overflow on them (a diverged fit); check X")
        return codes.cpu().numpy().astype(X.dtype, copy=False)

    def inverse_transform(self, X):
        """Mean reconstructions of latent codes (``U z``; ``sigmoid`` of Pyle's decoder)."""
        codes, z = self._codes_in(X)
        with torch.no_grad():
            rows = check_finite_output(self.model_.decode(z), "the decoded rows", z,
                                       "codes far larger than the model's posterior means, or decoder "
                                       "weights that overflow on them; check the codes")
        return rows.cpu().numpy().astype(codes.dtype, copy=False)

    def sample(self, n_samples=1, random_state=None):
        """``n_samples`` rows decoded (mean reconstruction) from latents drawn from the prior."""
        from sparsecoder.models.distributions import sample_prior

        check_is_fitted(self)
        n_samples = check_size("SparseVAE.sample", "n_samples", n_samples)
        from sparsecoder.data.base import check_rows_fit

        c = self.model_.config
        width = max(c.n_latents, self.model_.n_features, c.decoder_hidden if c.decoder == "pyle" else 0)
        check_rows_fit(int(n_samples), 4 * width, f"n_samples={n_samples} needs room for its latents and "
                       f"decoded rows: they", "draw fewer at a time")
        seed = int(check_random_state(random_state).randint(2**31 - 1))
        device = self.model_.device
        with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]), torch.no_grad():
            torch.manual_seed(seed)
            z = sample_prior(c.prior, c.prior_scale, (int(n_samples), c.n_latents), device=device)
            rows = check_finite_output(
                self.model_.decode(z), f"the decoded samples of the {c.prior}(0, {c.prior_scale:g}) prior", z,
                "the model's decoder overflows on its own prior's latents: its weights are too large or "
                "non-finite (a diverged fit); refit with a smaller lr")
            return rows.cpu().numpy()

    def score(self, X, y=None, n_samples=50):
        r"""Mean ELBO per sample (nats; higher is better):
        ``(1/n) Σ_i [E_q log p(x_i|z) − Σ_j KL(q(z_j|x_i) ‖ p(z_j))]`` (β = 1), the expectation by
        ``n_samples`` posterior samples per row drawn from a generator seeded by ``random_state`` (the KL
        as in training: analytic, or Monte Carlo with ``n_samples`` draws per row too)."""
        from sparsecoder.eval.vae import kl_sum

        n_samples = check_size("SparseVAE.score", "n_samples (draws per row)", n_samples)
        X, rows = self._checked_rows(X)
        self._check_training_rows(rows)  # bce: X in [0, 1], not clipped
        model = self.model_
        model.eval()
        total = 0.0
        with torch.random.fork_rng(devices=[] if rows.device.type == "cpu" else [rows.device]), \
                torch.no_grad():
            torch.manual_seed(self._seed)
            for x in model.chunks(rows):
                q = model.posterior(x)
                nll = sum(model.reconstruction_nll(x, model.decoder_output(q.rsample())).double()
                          for _ in range(n_samples)) / n_samples
                # a Monte-Carlo KL by the same n_samples draws per row (drawn in bounded chunks): it took the
                # config's kl_samples (1), whose noise outweighed n_samples=2000 reconstruction draws
                total += float(nll.sum()) + float(kl_sum(model, q, n_samples).sum())
        if not np.isfinite(total):  # a NaN score would rank a broken model silently (GridSearchCV)
            raise ValueError(f"the ELBO of X is not finite ({-total:g}): the model's posterior or "
                             f"reconstructions overflow on it (largest |x|: {float(rows.abs().max()):.4g}); "
                             f"X is probably far outside the range of the data the model was fitted on, or "
                             f"the fit diverged")
        return -total / rows.shape[0]
