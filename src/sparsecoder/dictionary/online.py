r"""Online dictionary learning (Mairal, Bach, Ponce & Sapiro, JMLR 2010, Algorithms 1–2; SPEC §7).

Learns atoms ``D`` (``k × d``, one atom per row, scikit-learn's ``components_`` layout) in the unit L2 ball
(optionally non-negative) that minimise the mean lasso objective

.. math:: f(D) = \frac1n \sum_i \min_{z} \tfrac12\lVert x_i - z D\rVert_2^2 + \alpha\lVert z\rVert_1
          \qquad (z \ge 0 \text{ if } \texttt{positive\_code}),

one mini-batch ``X_t`` of ``η`` rows at a time:

1. **Codes** ``Z_t``: exact lasso solutions. On the CPU the active-set solver
   (:func:`sparsecoder.inference.active_set.lasso_active_set`) is called directly with the Gram matrix
   ``D Dᵀ`` (float64) and the correlations ``X_t Dᵀ`` (in the data's precision), warm-started from each
   sample's code of its previous visit; on a GPU batched FISTA (:func:`sparsecoder.sparse_encode`,
   ``method="fista"``, relative tolerance 1e-6).
2. **Sufficient statistics** ``A ∝ Σ z zᵀ`` (``k × k``) and ``B ∝ Σ z xᵀ`` (``k × d``), float64, accumulated
   over the codes' non-zeros only. Two weightings:

   * *stream* (``partial_fit``; no memory of past samples): scikit-learn's mini-batch weighting (``t`` =
     batches seen before this one): ``θ = (t + 1) η`` if ``t < η − 1`` else ``θ = η² + t + 1 − η``,
     ``β = (θ + 1 − η)/(θ + 1)``, then ``A ← β A + Z_tᵀ Z_t / η`` and ``B ← β B + Z_tᵀ X_t / η`` — the paper's
     §3.4.3 down-weighting of early, poorly coded batches, exactly as
     ``sklearn.decomposition.MiniBatchDictionaryLearning`` does it;
   * *exact* (epochs over a fixed data set, :func:`run_epoch` with a :func:`new_memory`): every sample
     counts once, with its latest code, ``A = Σ_i w_i z_i z_iᵀ`` with ``w_i = (t_i + 1)^ρ`` (``t_i`` the step
     of its last visit, ρ = ``weight_power`` = 4 by default); a revisited sample's old contribution is
     subtracted (the paper's §3.4.2 for fixed-size data sets, with a polynomial forgetting of old visits).
     On MNIST (128 atoms) this reaches after 2 epochs the objective the stream weighting has after 5
     (measured ρ = 1, 2, 4, 8: the larger ρ, the slower the first epoch and the faster the next ones).
3. **Dictionary update**: ``n_sweeps`` (default 1) sweeps of block-coordinate descent on
   ``½ tr(D ᵀ A D) − tr(Dᵀ B)`` warm-started at the current ``D`` (Mairal Alg. 2):
   ``u_j = d_j + (b_j − a_jᵀ D)/A_jj``; ``u_j ← max(u_j, 0)`` for a non-negative dictionary;
   ``d_j = u_j / max(‖u_j‖₂, 1)`` (numba, float64).
4. **Dead atoms**: an atom with ``A_jj ≤ 10⁻⁶ · max_i A_ii`` (hardly used by any code so far) is skipped by
   the update and re-drawn from a random row of the current batch plus 1 % Gaussian noise (relative to
   the row's standard deviation, as scikit-learn does, so that two re-drawn atoms never coincide),
   clipped at 0 for a non-negative dictionary and normalised. :attr:`OnlineDictionaryLearner.n_redrawn`
   counts the re-draws.

Everything the learner holds is float64 except the codes and the product ``X_t Dᵀ``, which follow the data's
precision (float32 data: float32 products, the active set still solves in float64).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from sparsecoder.inference.active_set import cached_njit, lasso_active_set
from sparsecoder.inference.fista import check_flag, one_torch_thread
from sparsecoder.nn.sizes import check_nonnegative_number, check_size
from sparsecoder.util import float_rows, resolve_device, tensor_from_numpy

__all__ = ["OnlineDictionaryLearner", "dictionary_objective", "initial_dictionary"]

_DEAD_FRACTION = 1e-6  # A_jj ≤ _DEAD_FRACTION · max_i A_ii marks atom j as unused
_REDRAW_NOISE = 0.01  # relative noise added to a re-drawn atom
_FISTA_TOL = 1e-6


@cached_njit(fastmath=True)
def _block_coordinate_sweeps(D, A, residual, positive, n_sweeps, dead):
    """``n_sweeps`` BCD sweeps over the atoms (rows of ``D``) in place; ``residual = B − A D`` on entry and
    kept up to date. Atoms with ``dead[j]`` are left alone."""
    k, d = D.shape
    u = np.empty(d)
    for _ in range(n_sweeps):
        for j in range(k):
            if dead[j]:
                continue
            inv = 1.0 / A[j, j]
            norm2 = 0.0
            for t in range(d):
                value = D[j, t] + residual[j, t] * inv
                if positive and value < 0.0:
                    value = 0.0
                u[t] = value
                norm2 += value * value
            scale = 1.0 / max(math.sqrt(norm2), 1.0)
            for t in range(d):
                value = u[t] * scale
                u[t] = value - D[j, t]  # the change of atom j
                D[j, t] = value
            for i in range(k):  # residual_i −= A_ij (d_j^new − d_j^old)
                a = A[i, j]
                if a != 0.0:
                    for t in range(d):
                        residual[i, t] -= a * u[t]


@cached_njit(fastmath=True)
def _accumulate(A, B, codes, X, weights):
    """``A += Σ_i w_i z_i z_iᵀ`` and ``B += Σ_i w_i z_i x_iᵀ`` over the rows of ``codes``/``X``, touching only
    the non-zeros of each code (``nnz² + nnz·d`` per row instead of ``k² + k·d``: codes are sparse)."""
    n, k = codes.shape
    d = X.shape[1]
    support = np.empty(k, np.int64)
    for i in range(n):
        m = 0
        for j in range(k):
            if codes[i, j] != 0.0:
                support[m] = j
                m += 1
        w = weights[i]
        for p in range(m):
            jp = support[p]
            a = w * codes[i, jp]
            for q in range(m):
                A[jp, support[q]] += a * codes[i, support[q]]
            for t in range(d):
                B[jp, t] += a * X[i, t]


def _generator(rng, owner: str) -> np.random.Generator:
    """``rng`` as numpy's ``default_rng`` reads it (a Generator unchanged, an integer seed, None), or a
    ``ValueError`` naming ``owner`` (a string or a float failed deep inside at the first draw)."""
    try:
        return np.random.default_rng(rng)
    except (TypeError, ValueError):
        raise ValueError(f"{owner}: rng must be a numpy Generator (np.random.default_rng(seed)), an integer "
                         f"seed or None, got {rng!r}") from None


def initial_dictionary(X: np.ndarray, n_components: int, rng: np.random.Generator, *, positive: bool = False):
    """Atoms from ``n_components`` distinct random rows of ``X`` (float64, unit norm; SPEC §7).

    When ``n_components`` exceeds the rows, or a chosen row is zero, the remaining atoms are seeded
    Gaussian vectors (non-negative ones for a non-negative dictionary). ``rng``: a numpy Generator or an
    integer seed."""
    n_components = check_size("initial_dictionary", "n_components", n_components)
    rng = _generator(rng, "initial_dictionary")
    X = float_rows(X, "X")
    n_samples, n_features = X.shape
    D = np.empty((n_components, n_features))
    taken = min(n_components, n_samples)
    D[:taken] = X[rng.choice(n_samples, size=taken, replace=False)]
    D[taken:] = rng.standard_normal((n_components - taken, n_features))
    if positive:
        np.clip(D, 0.0, None, out=D)
    norms = np.linalg.norm(D, axis=1)
    empty = norms <= 1e-12 * max(float(norms.max(initial=0.0)), 1e-300)
    if empty.any():
        fresh = rng.standard_normal((int(empty.sum()), n_features))
        D[empty] = np.abs(fresh) if positive else fresh
        norms = np.linalg.norm(D, axis=1)
    D /= norms[:, None]
    return D


def dictionary_objective(X, dictionary, alpha: float, *, positive: bool = False,
                         normalize_atoms: bool = True):
    r"""Mean lasso objective of exact codes, float64: :math:`\frac1n\sum_i \min_z \tfrac12\lVert x_i -
    zD\rVert^2 + \alpha\lVert z\rVert_1` (SPEC §7), the one number every learner is compared by.

    ``normalize_atoms`` (default) first rescales every non-zero atom to unit L2 norm (SPEC §7: learners that
    leave atoms inside the ball are scored on the same footing). Codes by the exact active-set solver.
    """
    from sparsecoder.inference.lasso import lasso_objective, sparse_encode

    # arrays or tensors of any real dtype (bfloat16, ones that require grad), in float64; checked first: a NaN
    # atom was normalised to a zero atom and scored silently
    X = float_rows(X, "X", float64=True)
    D = float_rows(dictionary, "dictionary", rows="atom (row)", float64=True)
    if normalize_atoms:
        norms = np.linalg.norm(D, axis=1, keepdims=True)
        D = np.divide(D, norms, out=np.zeros_like(D), where=norms > 0)
    codes = sparse_encode(X, D, alpha=alpha, positive=positive, method="active-set", max_iter=100_000)
    return lasso_objective(X, D, codes, alpha) / X.shape[0]


# the largest weight_power: (t + 1)^16 stays finite in float64 for 10^19 steps
_MAX_WEIGHT_POWER = 16.0


def _mm(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``left @ right`` by torch, a C-contiguous array (one thread: OnlineDictionaryLearner.step)."""
    return tensor_from_numpy(left).matmul(tensor_from_numpy(right)).numpy()


class OnlineDictionaryLearner:
    """The state and the mini-batch step of online dictionary learning (module docstring).

    Parameters
    ----------
    dictionary : ndarray (n_components, n_features)
        Initial atoms (copied to float64; see :func:`initial_dictionary`).
    alpha : float
        L1 weight α > 0 of the lasso objective (scikit-learn's ``alpha``).
    positive_code, positive_dict : bool
        Non-negative codes / non-negative atoms.
    n_sweeps : int
        Block-coordinate sweeps per mini-batch (1, as in scikit-learn and SPAMS).
    device : torch.device
        Where codes are computed: CPU (active set) or a GPU (batched FISTA).
    solver : "auto" | "fista"
        ``"fista"`` computes the codes by batched FISTA on the CPU as well.
    weight_power : float
        ρ of the exact statistics' weights ``(t + 1)^ρ`` (module docstring, step 2).
    max_iter : int
        Most active-set sweeps (or FISTA iterations) per sample.
    rng : numpy Generator, int or None
        For dead-atom re-draws (an integer is a seed, as for ``np.random.default_rng``).

    Attributes
    ----------
    components : ndarray (n_components, n_features), float64
    A : ndarray (n_components, n_components), float64
    B : ndarray (n_components, n_features), float64 (``Σ zxᵀ``: one row per atom)
    n_steps : int — mini-batches processed
    n_redrawn : int — dead atoms re-drawn so far
    """

    def __init__(self, dictionary, alpha: float, *, positive_code: bool = False, positive_dict: bool = False,
                 n_sweeps: int = 1, device: torch.device | str = "cpu", max_iter: int = 1000,
                 rng: np.random.Generator | None = None, solver: str = "auto", weight_power: float = 4.0):
        self.components = float_rows(dictionary, "dictionary", rows="atom (row)", float64=True).copy()
        k, d = self.components.shape
        owner = "OnlineDictionaryLearner"
        self.alpha = check_nonnegative_number("alpha", alpha, strictly_positive=True)
        # each checked by name: bool("no") was True, int(2.7) 2, n_sweeps=0 never updated the atoms and
        # max_iter=0 gave all-zero codes, a NaN weight_power NaN atoms
        self.positive_code = check_flag("positive_code", positive_code)
        self.positive_dict = check_flag("positive_dict", positive_dict)
        self.n_sweeps = check_size(owner, "n_sweeps", n_sweeps)
        self.device = resolve_device(device, f"{owner}: device")
        if solver not in ("auto", "fista"):
            raise ValueError(f"solver must be 'auto' (active set on the CPU, FISTA on a GPU) or 'fista', "
                             f"got {solver!r}")
        self.solver = solver
        self.weight_power = check_nonnegative_number("weight_power", weight_power)
        if self.weight_power > _MAX_WEIGHT_POWER:  # (t + 1)^ρ: ρ = 100 overflowed float64 at step 1,200
            raise ValueError(f"weight_power={weight_power!r} is above {_MAX_WEIGHT_POWER:g}: the sample "
                             f"weights (t + 1)^weight_power overflow float64 (100 does at step 1,200); use "
                             f"at most {_MAX_WEIGHT_POWER:g} (the default 4 already favours recent visits)")
        self.max_iter = check_size(owner, "max_iter", max_iter)
        self.rng = _generator(rng, owner)
        self.A = np.zeros((k, k))
        self.B = np.zeros((k, d))
        self.n_steps = 0
        self.n_redrawn = 0

    def encode(self, X: np.ndarray, init: np.ndarray | None = None):
        """Exact lasso codes of the rows of ``X`` over the current atoms, in ``X``'s dtype, and the batch's
        mean objective (float64)."""
        return self._encode(self._check_rows(X), init)

    def _encode(self, X: np.ndarray, init: np.ndarray | None):
        D = self.components
        if self.device.type == "cpu" and self.solver == "auto":
            gram = _mm(D, D.T)
            correlations = _mm(X, D.T.astype(X.dtype, copy=False))
            linear = correlations.astype(np.float64)
            codes, _, _ = lasso_active_set(gram, correlations, self.alpha, positive=self.positive_code,
                                           max_sweeps=self.max_iter, init=init)
            codes64 = codes.astype(np.float64)
            # ½||x||² − zᵀb + ½ zᵀGz + α|z|₁ where, at the lasso solution, (Gz)_j = b_j − α sign(z_j) on the
            # support, so zᵀGz = zᵀb − α|z|₁ and the batch's objective is ½(||x||² − zᵀb + α|z|₁)
            cost = 0.5 * (float(np.einsum("ij,ij->", X, X, dtype=np.float64))
                          - float(np.einsum("ij,ij->", codes64, linear))
                          + self.alpha * float(np.abs(codes64).sum()))
            return codes, cost / X.shape[0]
        from sparsecoder.inference.lasso import sparse_encode

        data = tensor_from_numpy(X).to(self.device)
        atoms = tensor_from_numpy(D).to(self.device, data.dtype)
        start = None if init is None else tensor_from_numpy(np.asarray(init, dtype=X.dtype)).to(self.device)
        with warnings.catch_warnings():  # a mini-batch's codes may stop at max_iter (warm-started next visit)
            warnings.filterwarnings("ignore", "FISTA: .* reached max_iter", RuntimeWarning)
            codes = sparse_encode(data, atoms, alpha=self.alpha, positive=self.positive_code, method="fista",
                                  max_iter=self.max_iter, tol=_FISTA_TOL, init=start)
        residual = data - codes @ atoms
        cost = 0.5 * float((residual.double() ** 2).sum()) + self.alpha * float(codes.double().abs().sum())
        return codes.cpu().numpy(), cost / X.shape[0]

    def step(self, X: np.ndarray, init: np.ndarray | None = None, seen: np.ndarray | None = None,
             seen_weights: np.ndarray | None = None):
        """One mini-batch: codes, statistics, dictionary update, dead-atom re-draws.

        ``init`` warm-starts the codes. Without ``seen``, the statistics follow scikit-learn's weighting of
        the batches (module docstring). With ``seen`` (bool per row: its ``init`` is the code it already
        contributed to the statistics, with weight ``seen_weights``) they are exact weighted sums over the
        distinct samples seen so far, every sample counted once with its latest code (Mairal et al. 2010,
        §3.4.2, fixed-size data sets): ``A ∝ Σ_i w_i z_i z_iᵀ``, ``B ∝ Σ_i w_i z_i x_iᵀ`` where ``w_i =
        (t_i + 1)^ρ`` grows with the step ``t_i`` of the sample's last visit (ρ = ``weight_power``; with ρ = 1
        the first epoch weights its batches like scikit-learn does for ``t < η``; later epochs replace stale
        codes instead of averaging them in). The common scale of ``A`` and ``B`` does not matter to the
        update.

        Returns
        -------
        codes : (η, k) in X's dtype
        cost : float, the batch's mean objective under the dictionary before the update
        weight : float, the weight ``w`` this batch's codes entered the statistics with
        """
        # The products of one mini-batch are small (η × d × k): on one thread they are several times faster
        # than with a thread team on a busy machine (measured 0.7 ms vs 22 ms for 128×256×128 with 2 threads
        # under load). The active-set solver still runs over the batch's samples on numba's threads.
        return self._step_rows(self._check_rows(X), init, seen, seen_weights)

    def _step_rows(self, X, init, seen, seen_weights):
        """:meth:`step` on rows already checked (:meth:`_check_rows`): :func:`run_epoch` checks ``X`` once,
        not each mini-batch again (scikit-learn's ``check_array`` costs ~0.1 ms a call)."""
        if seen is not None:
            if init is None or seen_weights is None:
                raise ValueError("seen needs init (the codes the seen rows contributed at their last visit) "
                                 "and seen_weights (the weights they contributed with); pass all three, or "
                                 "none for scikit-learn's stream weighting")
            n = X.shape[0]
            seen, seen_weights = np.asarray(seen, dtype=bool), np.asarray(seen_weights, dtype=np.float64)
            for name, value in (("seen", seen), ("seen_weights", seen_weights)):
                if value.shape != (n,):
                    raise ValueError(f"{name} must have shape ({n},), one entry per row of X; got "
                                     f"{value.shape}")
        with one_torch_thread(True):
            return self._step(X, init, seen, seen_weights)

    def _check_rows(self, X) -> np.ndarray:
        """``X`` as rows the learner can take (:func:`sparsecoder.util.float_rows`) of the atoms' width."""
        X = float_rows(X, "X")
        if X.shape[1] != self.components.shape[1]:
            raise ValueError(f"X has {X.shape[1]} features but the dictionary's atoms have "
                             f"{self.components.shape[1]}: pass rows of shape (n_samples, "
                             f"{self.components.shape[1]})")
        return X

    def _step(self, X, init, seen, seen_weights):
        codes, cost = self._encode(X, init)
        eta = X.shape[0]
        t = self.n_steps
        if seen is None:
            beta = _stream_beta(t, eta)
            weight = 1.0 / eta
            self.A *= beta
            self.B *= beta
        else:
            weight = float(t + 1) ** self.weight_power
            if seen.any():  # take out what the seen rows contributed at their last visit
                _accumulate(self.A, self.B, np.ascontiguousarray(init[seen]), np.ascontiguousarray(X[seen]),
                            -np.asarray(seen_weights, dtype=np.float64)[seen])
        _accumulate(self.A, self.B, codes, X, np.full(eta, weight))
        diagonal = np.diag(self.A)
        dead = diagonal <= _DEAD_FRACTION * max(float(diagonal.max()), 0.0)
        residual = self.B - _mm(self.A, self.components)
        _block_coordinate_sweeps(self.components, self.A, residual, self.positive_dict, self.n_sweeps, dead)
        if dead.any():
            self._redraw(np.flatnonzero(dead), X)
        self.n_steps += 1
        return codes, cost, weight

    def to_stream_weighting(self, total_weight: float, batch_size: int) -> None:
        """Rescale exact statistics (sample weights summing to ``total_weight``) to the scale the stream
        weighting gives after ``n_steps`` mini-batches of ``batch_size`` rows: their weighted mean times the
        stream's mass ``m_T`` (``m ← β_t m + 1``). A stream (:meth:`step` without ``seen``) then continues
        from them; unscaled, the exact weights ``(t + 1)^ρ`` dwarfed its ``1/η`` (new batches hardly
        counted)."""
        if total_weight <= 0:
            return
        mass = 0.0
        for t in range(self.n_steps):
            mass = _stream_beta(t, batch_size) * mass + 1.0
        self.A *= mass / total_weight
        self.B *= mass / total_weight

    def _redraw(self, atoms: np.ndarray, X: np.ndarray):
        rows = X[self.rng.integers(0, X.shape[0], size=atoms.size)].astype(np.float64)
        noise_level = _REDRAW_NOISE * np.where(rows.std(axis=1) > 0, rows.std(axis=1), 1.0)
        fresh = rows + noise_level[:, None] * self.rng.standard_normal(rows.shape)
        if self.positive_dict:
            np.clip(fresh, 0.0, None, out=fresh)
        norms = np.linalg.norm(fresh, axis=1, keepdims=True)
        fresh = np.divide(fresh, norms, out=np.zeros_like(fresh), where=norms > 0)
        self.components[atoms] = fresh
        self.n_redrawn += int(atoms.size)


def _stream_beta(t: int, eta: int) -> float:
    """scikit-learn's forgetting factor β of the statistics before mini-batch ``t`` (0-based) of ``eta``
    rows (module docstring, step 2)."""
    theta = (t + 1) * eta if t < eta - 1 else eta * eta + t + 1 - eta
    return (theta + 1 - eta) / (theta + 1)


def run_epoch(learner: OnlineDictionaryLearner, X: np.ndarray, batch_size: int, rng: np.random.Generator,
              *, shuffle: bool = True, memory: dict | None = None, stop=None):
    """One pass over ``X`` in mini-batches of ``batch_size`` rows (a fresh permutation when ``shuffle``).

    ``memory`` (optional; a dict from :func:`new_memory`) holds every sample's code of its last visit
    (``"codes"``), which warm-starts the solver, and, with ``"seen"``/``"weights"``, what it contributed to
    the statistics, which are then kept exact (:meth:`OnlineDictionaryLearner.step`); updated in place.
    ``stop(batch, cost)`` (optional) is called after every mini-batch; returning True ends the epoch early.
    Returns the number of mini-batches processed.
    """
    X = learner._check_rows(X)
    batch_size = check_size("run_epoch", "batch_size", batch_size)
    rng = _generator(rng, "run_epoch")
    n = X.shape[0]
    codes = None if memory is None else memory["codes"]
    k = learner.components.shape[0]
    if codes is not None and codes.shape != (n, k):  # an IndexError mid-epoch, or the solver's init message
        raise ValueError(f"memory['codes'] has shape {codes.shape} but X has {n} rows and the dictionary {k} "
                         f"atoms: make it with new_memory({n}, {k})")
    order = rng.permutation(n) if shuffle else np.arange(n)
    seen = None if memory is None else memory.get("seen")
    weights = None if memory is None else memory.get("weights")
    steps = 0
    for first in range(0, n, batch_size):
        index = order[first:first + batch_size] if shuffle else slice(first, first + batch_size)
        batch = np.ascontiguousarray(X[index])
        init = None if codes is None else codes[index]
        batch_codes, cost, weight = learner._step_rows(  # X checked above
            batch, init, None if seen is None else seen[index], None if weights is None else weights[index])
        if codes is not None:
            codes[index] = batch_codes
        if seen is not None:
            seen[index] = True
            weights[index] = weight
        steps += 1
        if stop is not None and stop(batch, cost):
            break
    return steps


def new_memory(n_samples: int, n_components: int, dtype=np.float32, *, exact_statistics: bool = True) -> dict:
    """Per-sample memory for :func:`run_epoch`: codes (warm starts) and, when ``exact_statistics``, what
    each sample contributed to the statistics."""
    memory = {"codes": np.zeros((n_samples, n_components), dtype=dtype)}
    if exact_statistics:
        memory["seen"] = np.zeros(n_samples, dtype=bool)
        memory["weights"] = np.zeros(n_samples)
    return memory
