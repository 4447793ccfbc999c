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
rows. ``SAE`` and ``SparseVAE`` estimators (issue 14) are not here yet.
"""

from __future__ import annotations

import time
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.decomposition import sparse_encode as sklearn_sparse_encode
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from sparsecoder.dictionary.online import (
    OnlineDictionaryLearner,
    dictionary_objective,
    initial_dictionary,
    new_memory,
    run_epoch,
)
from sparsecoder.inference.lasso import sparse_encode

__all__ = ["MiniBatchDictionaryLearning", "SparseCoder"]

_OURS = {"lasso_cd": "auto", "active_set": "auto", "fista": "fista"}
_SKLEARN = {"lasso_lars", "lars", "omp", "threshold"}
_FISTA_TOL = 1e-6


def _device(device) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _check_device(device):
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but no CUDA device is available; use device='cpu' or 'auto'")


class _SparseCodingMixin(ClassNamePrefixFeaturesOutMixin, TransformerMixin):
    """``transform``/``inverse_transform`` of both estimators (scikit-learn's ``_BaseSparseCoding``)."""

    def _encode(self, X, dictionary, alpha):
        algorithm = self.transform_algorithm
        positive = self.positive_code
        if algorithm in _SKLEARN or (algorithm in _OURS and alpha == 0):
            code = sklearn_sparse_encode(
                X, dictionary, algorithm="lasso_cd" if algorithm in _OURS else algorithm,
                n_nonzero_coefs=self.transform_n_nonzero_coefs, alpha=alpha,
                max_iter=self.transform_max_iter, n_jobs=self.n_jobs, positive=positive,
            )
        else:
            _check_device(self.device)
            device = _device(self.device)
            method = _OURS[algorithm]
            if device.type != "cpu" and method == "auto":
                method = "fista"
            code = sparse_encode(
                X, dictionary.astype(X.dtype, copy=False), alpha=float(alpha), positive=positive,
                max_iter=max(int(self.transform_max_iter), 1), tol=_FISTA_TOL, device=device, method=method,
            )
        if self.split_sign:
            n_samples, n_components = code.shape
            split = np.empty((n_samples, 2 * n_components), dtype=code.dtype)
            split[:, :n_components] = np.maximum(code, 0)
            split[:, n_components:] = -np.minimum(code, 0)
            code = split
        return code

    def _inverse(self, code, dictionary):
        code = check_array(code, dtype=[np.float64, np.float32])
        expected = dictionary.shape[0] * (2 if self.split_sign else 1)
        if code.shape[1] != expected:
            raise ValueError(f"the codes have {code.shape[1]} columns but this dictionary needs {expected} "
                             f"(n_components{' × 2 for split_sign' if self.split_sign else ''})")
        if self.split_sign:
            half = code.shape[1] // 2
            code = code[:, :half] - code[:, half:]
        return code @ dictionary.astype(code.dtype, copy=False)


_COMMON_CONSTRAINTS = {
    "transform_algorithm": [StrOptions({"lasso_lars", "lasso_cd", "lars", "omp", "threshold", "active_set",
                                        "fista"})],
    "transform_n_nonzero_coefs": [Interval(Integral, 1, None, closed="left"), None],
    "transform_alpha": [Interval(Real, 0, None, closed="left"), None],
    "split_sign": ["boolean"],
    "n_jobs": [Integral, None],
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
        for the lasso algorithms); ``n_jobs`` is used by the delegated algorithms only (ours follow
        ``torch.set_num_threads``/numba's thread count).
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
        atoms = check_array(self.dictionary, dtype=[np.float64, np.float32], input_name="dictionary")
        return atoms

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Only validate ``X`` and the parameters (the dictionary is fixed); returns ``self``."""
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        atoms = self._atoms()
        self.n_components_ = atoms.shape[0]
        if X.shape[1] != atoms.shape[1]:
            raise ValueError(f"the dictionary has {atoms.shape[1]} features but X has {X.shape[1]}: pass "
                             f"a dictionary of shape (n_components, {X.shape[1]})")
        return self

    def transform(self, X, y=None):
        """Codes of ``X`` (``(n, n_components)``, ×2 with ``split_sign``) by ``transform_algorithm``."""
        atoms = self._atoms()
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
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
    def _n_features_out(self):
        return self._atoms().shape[0]


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
        Passed to the delegated transform algorithms; ours follow torch/numba's thread count.
    batch_size : int, default 256
    shuffle : bool
        A fresh permutation of the rows every epoch (scikit-learn shuffles once).
    dict_init : ndarray (n_components, n_features), optional
        Initial atoms (normalised into the unit ball); default: random training rows, normalised (SPEC §7;
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
    def _new_learner(self, X):
        n_components = X.shape[1] if self.n_components is None else self.n_components
        _check_device(self.device)
        self._rng = np.random.default_rng(check_random_state(self.random_state).randint(2**31 - 1))
        if self.dict_init is not None:
            atoms = check_array(self.dict_init, dtype=np.float64, input_name="dict_init")
            if atoms.shape != (n_components, X.shape[1]):
                raise ValueError(f"dict_init must have shape (n_components, n_features) = "
                                 f"{(n_components, X.shape[1])}, got {atoms.shape}")
            atoms = atoms / np.maximum(np.linalg.norm(atoms, axis=1, keepdims=True), 1.0)
        else:
            atoms = initial_dictionary(X, n_components, self._rng, positive=self.positive_dict)
        device = _device(self.device)
        learner = OnlineDictionaryLearner(
            atoms, float(self.alpha), positive_code=self.positive_code, positive_dict=self.positive_dict,
            device=device, max_iter=max(int(self.transform_max_iter), 1), rng=self._rng,
            solver="fista" if self.fit_algorithm == "fista" else "auto",
        )
        return learner

    def _publish(self, learner, dtype):
        self._learner = learner
        self.components_ = learner.components.astype(dtype)
        self.n_steps_ = learner.n_steps
        self.n_atoms_redrawn_ = learner.n_redrawn

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the dictionary from ``X`` (``(n_samples, n_features)``); returns ``self``."""
        X = validate_data(self, X, dtype=[np.float64, np.float32], order="C")
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
        self._publish(learner, X.dtype)
        self.n_iter_ = int(np.ceil(learner.n_steps / n_steps_per_epoch))
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """One mini-batch step on ``X`` (the first call initialises the dictionary from it)."""
        fitted = hasattr(self, "components_")
        X = validate_data(self, X, dtype=[np.float64, np.float32], order="C", reset=not fitted)
        if not fitted:
            learner = self._new_learner(X)
        else:
            learner = self._learner
            if learner.components.shape[1] != X.shape[1]:  # validate_data already refuses; belt and braces
                raise ValueError(f"X has {X.shape[1]} features, the dictionary {learner.components.shape[1]}")
        learner.step(X)
        self._publish(learner, X.dtype)
        self.n_iter_ = getattr(self, "n_iter_", 0)
        return self

    # ------------------------------------------------------------------ using
    def transform(self, X):
        """Codes of ``X`` over ``components_`` by ``transform_algorithm`` (α = ``transform_alpha``, else
        ``alpha``)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
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
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return -dictionary_objective(X, self.components_, float(self.alpha), positive=self.positive_code,
                                     normalize_atoms=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    @property
    def _n_features_out(self):
        return self.components_.shape[0]


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
        elif self.ewa_min is None or self.ewa < self.ewa_min:
            self.no_improvement, self.ewa_min = 0, self.ewa
        else:
            self.no_improvement += 1
            if self.max_no_improvement is not None and self.no_improvement >= self.max_no_improvement:
                self.converged = True
        return self.converged
