"""``sparse_encode`` in scikit-learn's convention: an exact active-set solver on the CPU
(:mod:`sparsecoder.inference.active_set`) or batched FISTA in Gram form (any device).

Same call shape and objective as :func:`sklearn.decomposition.sparse_encode` with ``algorithm="lasso_cd"``:
``X`` is ``(n_samples, n_features)``, ``dictionary`` is ``(n_components, n_features)`` (one atom per row),
and every sample's code minimises

    ½ ||x − z · dictionary||² + alpha · ||z||₁        (z ≥ 0 when ``positive``)

The relation to the reference scaling of :func:`sparsecoder.inference.fista` (SPEC §2.1) is
``alpha = d·λ/2`` with ``W = dictionary.T`` (see :mod:`sparsecoder.inference.energy`).
"""

from __future__ import annotations

import contextlib
import math
import numbers
import warnings

import joblib
import numba
import numpy as np
import torch

from sparsecoder.inference.active_set import gram_matrix, lasso_active_set, numba_threads
from sparsecoder.inference.fista import (
    LIPSCHITZ_SAFETY,
    SMALL_CALL_SAMPLES,
    GramAdaptiveStep,
    GramFixedStep,
    all_finite,
    check_flag,
    fista_loop,
    in_safe_range,
    one_torch_thread,
    power_iteration_max_eigenvalue,
    power_of_two_below,
)
from sparsecoder.nn.sizes import check_nonnegative_number, check_size
from sparsecoder.util import check_dense, float_rows, resolve_device, tensor_from_numpy

__all__ = ["sparse_encode", "lasso_objective", "fista_gram_adaptive", "solver_threads"]

# scikit-learn's algorithm names: the two lasso solvers' problem is ours; the others solve other problems
_LASSO_ALGORITHMS = ("lasso_cd", "lasso_lars")
_OTHER_ALGORITHMS = ("lars", "omp", "threshold")


@contextlib.contextmanager
def solver_threads(n_jobs):
    """scikit-learn's ``n_jobs`` as the thread count of our solvers inside the block: the active set's
    numba threads (thread-local) and torch's intra-op threads (restored after). ``None``: unchanged (all of
    numba's threads); ``-1``: every core, ``-2`` all but one, … (joblib's reading, which also refuses 0)."""
    if n_jobs is None:
        yield
        return
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral):
        raise ValueError(f"n_jobs must be an integer or None (-1: every core), got {n_jobs!r}")
    if n_jobs == 0:
        raise ValueError("n_jobs=0 means no thread at all; pass None, a positive count, or -1 for every core")
    threads = max(1, min(joblib.effective_n_jobs(int(n_jobs)), numba.config.NUMBA_NUM_THREADS))
    numba_before, torch_before = numba_threads(), torch.get_num_threads()
    numba.set_num_threads(threads)
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        numba.set_num_threads(numba_before)
        torch.set_num_threads(torch_before)


def _resolve_device(device, default: torch.device) -> torch.device:
    """``default`` (``X``'s device) for None, else :func:`sparsecoder.util.resolve_device`: one that this
    machine lacks (``mps``, ``meta``, CUDA) is refused by name before any work."""
    return default if device is None else resolve_device(device, "device")


def _device_type(device, default: torch.device) -> str | None:
    """The type (``"cpu"``, ``"cuda"``, …) of the device :func:`_resolve_device` would give, without checking
    that it works here; None for what is not a device name (``_resolve_device`` names it)."""
    if device is None:
        return default.type
    if not isinstance(device, (str, torch.device)):
        return None
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return torch.device(device).type
    except RuntimeError:
        return None


_HALF_DTYPES = (torch.float16, torch.bfloat16)


def _as_tensor(name: str, value, dtype=None) -> torch.Tensor:
    """``value`` as a float32/float64 tensor: half precision (numpy float16, torch float16/bfloat16) is
    computed in float32, integers and booleans in float64 (as scikit-learn reads them); complex values and
    scipy sparse matrices are refused."""
    check_dense(value, name, "dense rows")
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            raise ValueError(f"{name} is complex ({value.dtype}); sparse coding needs real numbers: pass its "
                             f"real part ({name}.real) or its magnitude")
        tensor = value.detach()
        if tensor.dtype in _HALF_DTYPES:
            tensor = tensor.to(torch.float32)
    else:
        if not isinstance(value, np.ndarray):
            value = _array_like(name, value)
        if value.dtype.kind == "c":
            raise ValueError(
                f"{name} is complex (numpy {value.dtype}); sparse coding needs real numbers: pass its "
                f"real part ({name}.real) or its magnitude"
            )
        if value.dtype.kind == "O":  # real numbers held as objects: read as scikit-learn reads them
            if not all(isinstance(item, numbers.Real) for item in value.flat):
                raise ValueError(f"{name} must hold real numbers, got numpy dtype object holding other "
                                 f"values (None, strings, ...)")
            value = value.astype(np.float64)
        if value.dtype.kind not in "fiub":
            raise ValueError(f"{name} must hold real numbers, got numpy dtype {value.dtype}")
        if value.dtype == np.float16:
            array = value.astype(np.float32)
        else:
            array = value if value.dtype in (np.float32, np.float64) else value.astype(np.float64)
        # a 0-d array stays 0-d (np.ascontiguousarray made it 1-d: "got shape (1,)" for a scalar X)
        tensor = tensor_from_numpy(np.ascontiguousarray(array) if array.ndim else array)
    if not torch.is_floating_point(tensor):
        tensor = tensor.to(torch.float64)
    if dtype is not None:
        tensor = tensor.to(dtype)
    return tensor


def _array_like(name: str, value) -> np.ndarray:
    """``value`` (nested lists or tuples of numbers, or anything else ``np.asarray`` reads, as
    scikit-learn's array-likes) as a numpy array, for the checks of numpy input; ragged nesting is refused
    by name."""
    if hasattr(value, "to_numpy"):  # pandas: nullable dtypes' missing values (pd.NA) as NaN, refused as such
        with contextlib.suppress(ValueError, TypeError):
            return value.to_numpy(dtype=np.float64, na_value=np.nan)
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as err:  # ragged nesting: "inhomogeneous shape"
        raise ValueError(f"{name} must be a 2-D array of numbers (a numpy array, a torch tensor or nested "
                         f"lists of equal lengths); numpy cannot read this {type(value).__name__} as one "
                         f"({err})") from None


def fista_gram_adaptive(
    gram: torch.Tensor,
    linear_term: torch.Tensor,
    threshold: float,
    step: float,
    z0: torch.Tensor,
    *,
    positive: bool,
    max_iter: int,
    tol: float,
    stats: dict | None = None,
):
    r"""FISTA with a per-sample step that may grow, for quadratic-plus-L1 problems in Gram form.

    Solves, for every row ``i``, :math:`\min_z \tfrac12 z^\top G z - z^\top b_i + \tau\lVert z\rVert_1`
    (``z ≥ 0`` when ``positive``) with the backtracking FISTA of Scheinberg, Goldfarb & Bai (2014,
    "Fast first-order methods for composite convex optimization with large steps"): each sample keeps its
    own step ``η_i``; every iteration first tries ``1.25 η_i`` and halves it until the quadratic upper bound

    .. math:: \tfrac12 (p - y)^\top G (p - y) \le \tfrac{1}{2\eta_i}\lVert p - y\rVert^2

    holds at the new point ``p = shrink(y − η_i(yG − b_i), τη_i)``, with momentum
    ``t_{k+1} = (1 + √(1 + 4 (η_k/η_{k+1}) t_k²)) / 2``. The curvature along the actual step is usually
    far below ``λ_max(G)``, so the steps are several times ``1/L`` on coherent dictionaries. Products with
    ``G`` are kept for the iterates (``y G`` is a combination of them), so an iteration costs one
    ``(m, l) × (l, l)`` product plus one for the rows that had to shrink their step. The iteration,
    freezing (``||z^{k+1} − z^k|| ≤ tol·||z^k||``) and compaction are those of
    :func:`sparsecoder.inference.fista.fista_loop`.

    Parameters
    ----------
    stats : dict, optional
        When given, ``stats["gram_row_products"]`` receives the number of rows multiplied by ``G`` (for
        throughput accounting: each costs ``2 l²`` flops).

    Returns
    -------
    codes, n_iter, converged
    """
    stepper = GramAdaptiveStep(gram, linear_term, threshold, step, positive, z0)
    result = fista_loop(stepper, z0, max_iter=max_iter, tol=tol)
    if stats is not None:
        stats["gram_row_products"] = stepper.row_products
    return result.codes, result.n_iter, result.converged


def sparse_encode(
    X,
    dictionary,
    *,
    alpha: float | None = None,
    algorithm: str = "lasso_cd",
    positive: bool = False,
    max_iter: int = 1000,
    tol: float = 1e-4,
    init=None,
    step: float | str = "adaptive",
    device=None,
    return_n_iter: bool = False,
    method: str = "auto",
    n_jobs: int | None = None,
):
    r"""Sparse codes of ``X`` over ``dictionary`` (scikit-learn convention).

    For every sample ``x`` (a row of ``X``) solves

    .. math:: \min_z \tfrac12\lVert x - z D\rVert_2^2 + \alpha\lVert z\rVert_1
              \quad (z \ge 0 \text{ if positive})

    exactly the objective of ``sklearn.decomposition.sparse_encode(X, D, algorithm="lasso_cd", alpha=…)``.
    The correlations ``X Dᵀ`` (a torch matmul) and the Gram matrix ``G = D Dᵀ`` are computed once, then:

    * ``method="active-set"`` (CPU): the exact per-sample working-set solver of
      :func:`~sparsecoder.inference.active_set.lasso_active_set` (coordinate descent on the working set,
      Newton steps on the sign pattern with an updated Cholesky factor, a KKT certificate over all atoms),
      parallel over samples (the calling thread and ``numba.get_num_threads() − 1`` helper threads claim
      rows from a shared counter; a helper that starts late is never waited for), ``G`` computed in
      float64 by the same threads in the same call. Its codes are the lasso solution to rounding, the
      same whatever the thread count; ``tol`` is unused.
    * ``method="fista"`` (any device): batched FISTA, each iteration about one ``(m, l) × (l, l)``
      product over the ``m`` samples still moving, with per-sample adaptive steps
      (:func:`fista_gram_adaptive`). A sample stops once ``||z^k − z^{k−1}|| ≤ tol·||z^{k−1}||``.
    * ``method="auto"`` (default): FISTA on a GPU, with an explicit ``step``, or when the codes are dense
      (the active-set solver's mean support on the first 64 samples exceeds 0.9 of ``min(l, d)`` and
      64 atoms: its work grows with the support, FISTA's does not) and the call is large (more than 2048
      samples; the probe's own exact codes are kept); the active-set solver otherwise, with FISTA
      finishing, from where they stopped, any rows it stops at ``max_iter`` sweeps. Small CPU calls
      (≤ 1024 samples) run torch on one thread (a thread team's start-up costs more than their products).
      The active set is several times faster on learned (coherent) dictionaries, where FISTA needs many
      iterations.

    Parameters
    ----------
    X : array-like or Tensor, shape (n_samples, n_features)
        Data (numpy arrays, torch tensors, or nested lists/tuples of numbers as scikit-learn takes them,
        read by ``np.asarray``); float32 stays float32, float64 stays float64, half precision (numpy
        float16, torch float16/bfloat16) is computed in float32 and the codes returned in the input's
        dtype; integers become float64; complex values are refused. Magnitudes far from 1 (beyond about
        4e9 or below 2e-10 in float32) are solved on ``X`` and the atoms divided by powers of two (exact),
        the codes scaled back; codes beyond the dtype's range are refused.
    dictionary : array-like or Tensor, shape (n_components, n_features)
        Atoms as rows (scikit-learn's ``components_``); need not be normalised.
    alpha : float, default 1
        L1 weight α > 0 (as in scikit-learn's ``sparse_encode``, whose None also means 1; ``Lasso`` itself
        uses α/n_features).
    algorithm : "lasso_cd" | "lasso_lars"
        scikit-learn's names of its two lasso solvers, taken so that a call written for
        ``sklearn.decomposition.sparse_encode`` runs unchanged: both mean this lasso (same minimiser), solved
        by ``method``. ``"lars"``, ``"omp"`` and ``"threshold"`` solve other problems and are refused, naming
        scikit-learn's function (or ``SparseCoder``, which delegates them).
    positive : bool
        Constrain codes to be non-negative.
    max_iter : int
        Most FISTA iterations, or active-set coordinate-descent sweeps, per sample.
    tol : float
        FISTA: relative-change tolerance ≥ 0 at which a sample is frozen (the active set is exact).
    init : array or Tensor, shape (n_samples, n_components), optional
        Warm start (zeros by default); for the active set its support is the first working set.
    step : "adaptive" | "lipschitz" | float
        ``"adaptive"`` (default): per-sample steps starting at 1/L that grow while the quadratic upper
        bound holds (:func:`fista_gram_adaptive`; several times faster on coherent dictionaries);
        ``"lipschitz"``: the fixed step η = 1/L, L the largest eigenvalue of ``D Dᵀ`` by power iteration;
        a float: that fixed step η > 0 (plain FISTA, :func:`~sparsecoder.inference.fista.fista_gram`;
        FISTA's momentum is stable for η below about 4/(3L), safe at η ≤ 1/L).
    device : None | "auto" | str | torch.device
        Where to compute; ``None``: the device of ``X`` (CPU for numpy), ``"auto"``: CUDA when available.
    return_n_iter : bool
        Also return the ``(n_samples,)`` FISTA iterations, or active-set sweeps, each sample used.
    method : "auto" | "active-set" | "fista"
        The solver (above). ``"active-set"`` needs the CPU.
    n_jobs : int or None
        Threads for this call (:func:`solver_threads`: the active set's numba threads and torch's, restored
        after): ``-1`` every core, ``-2`` all but one; ``None`` (default) numba's thread count, as before —
        scikit-learn's None means one job. Worker processes of joblib (``GridSearchCV(n_jobs=…)``) already
        get a share of the cores each.

    Returns
    -------
    codes : a Tensor on ``X``'s device for a tensor ``X``, else an ndarray; shape (n_samples, n_components)
    n_iter : same kind, int64, shape (n_samples,) — only when ``return_n_iter``

    Raises
    ------
    TypeError
        A scipy sparse ``X``, ``dictionary`` or ``init`` (pass ``.toarray()``, as scikit-learn says).
    ValueError
        An algorithm other than scikit-learn's lasso ones,
        non-2-D or mismatched shapes, NaN/inf, complex values, an empty ``X``, ``alpha ≤ 0``, a
        non-positive step, ``max_iter < 1``, ``tol < 0``, an unknown ``method`` or ``"active-set"`` on a
        GPU; and after the solve when FISTA diverged (a fixed ``step`` too large: codes overflowed), naming
        the step, 2/L and 1/L (L = λ_max(D Dᵀ)).

    Warns
    -----
    RuntimeWarning
        When samples stop at ``max_iter`` before converging: the active set's sweeps before their
        optimality certificate (``method="active-set"``), or those and FISTA's iterations after them
        (``method="auto"``, where FISTA finishes the rows the active set stopped), or FISTA's iterations
        (``method="fista"``, and ``"auto"`` on a GPU or for dense codes).
    """
    if algorithm in _OTHER_ALGORITHMS:
        raise ValueError(f"algorithm={algorithm!r} solves another problem than the lasso, the only one "
                         f"sparsecoder.sparse_encode solves; call sklearn.decomposition.sparse_encode for it "
                         f"(or sparsecoder.SparseCoder(transform_algorithm={algorithm!r}), which delegates "
                         f"to it), or use algorithm='lasso_cd'")
    if algorithm not in _LASSO_ALGORITHMS:
        raise ValueError(f"algorithm must be 'lasso_cd' or 'lasso_lars' (scikit-learn's lasso solvers; both "
                         f"mean this exact lasso), got {algorithm!r}")
    if alpha is None:
        alpha = 1.0  # scikit-learn's default
    with solver_threads(n_jobs):
        return _sparse_encode(X, dictionary, alpha=alpha, positive=positive, max_iter=max_iter, tol=tol,
                              init=init, step=step, device=device, return_n_iter=return_n_iter,
                              method=method)


def _sparse_encode(X, dictionary, *, alpha, positive, max_iter, tol, init, step, device, return_n_iter,
                   method):
    """:func:`sparse_encode` after its scikit-learn arguments (``algorithm``, ``n_jobs``) are read."""
    numpy_in = not isinstance(X, torch.Tensor)
    half_in = X.dtype if isinstance(X, torch.Tensor) and X.dtype in _HALF_DTYPES else None
    if numpy_in and isinstance(X, np.ndarray) and X.dtype == np.float16:
        half_in = np.float16
    data = _as_tensor("X", X)
    if data.dim() != 2:
        hint = "; a single sample: X.reshape(1, -1)" if data.dim() == 1 else ""
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {tuple(data.shape)}{hint}")
    atoms = _as_tensor("dictionary", dictionary, dtype=data.dtype)
    if atoms.dim() != 2:
        raise ValueError(f"dictionary must be 2-D (n_components, n_features), got shape {tuple(atoms.shape)}")
    n_samples, n_features = data.shape
    n_components = atoms.shape[0]
    if n_samples == 0:
        raise ValueError("X is empty (0 samples); pass at least one row")
    if n_features == 0:
        raise ValueError("X has 0 features; pass at least one column")
    if atoms.shape[1] != n_features:
        raise ValueError(
            f"dictionary has {atoms.shape[1]} features but X has {n_features}: dictionary must be "
            f"(n_components, n_features) = (?, {n_features}) — transpose a (n_features, n_components) matrix"
        )
    if n_components == 0:
        raise ValueError("dictionary has 0 atoms")
    alpha = check_nonnegative_number("alpha", alpha, strictly_positive=True)
    max_iter = check_size("sparse_encode", "max_iter", max_iter)
    tol = check_nonnegative_number("tol", tol)
    if isinstance(step, str):
        if step not in ("adaptive", "lipschitz"):
            raise ValueError(f"step must be 'adaptive', 'lipschitz' or a positive float, got {step!r}")
    elif isinstance(step, bool) or not isinstance(step, numbers.Real) or not (0 < step < math.inf):
        raise ValueError(f"step must be 'adaptive', 'lipschitz' or a positive float, got {step!r}")
    positive = check_flag("positive", positive)
    return_n_iter = check_flag("return_n_iter", return_n_iter)
    if method not in ("auto", "active-set", "fista"):
        raise ValueError(f"method must be 'auto', 'active-set' or 'fista', got {method!r}")
    if not all_finite(data):
        raise ValueError("X contains NaN or inf; clean or impute the data first")
    if not all_finite(atoms):
        raise ValueError("dictionary contains NaN or inf")
    output_device = data.device
    # named before the device itself is checked: on a machine without CUDA, "needs CUDA" hid that the
    # method cannot run there at all
    if method == "active-set" and _device_type(device, data.device) not in ("cpu", None):
        raise ValueError(f"method='active-set' runs on the CPU, not {device or data.device}; use "
                         f"method='fista' there")
    device = _resolve_device(device, data.device)
    data, atoms = data.to(device), atoms.to(device)
    if init is not None:
        start = _as_tensor("init", init, dtype=data.dtype).to(device)
        if tuple(start.shape) != (n_samples, n_components):
            raise ValueError(f"init must have shape (n_samples, n_components) = {(n_samples, n_components)}, "
                             f"got {tuple(start.shape)}")
        if not all_finite(start):
            raise ValueError("init contains NaN or inf")
        if positive:
            start = start.clamp_min(0.0)
    else:
        start = None

    # Scale-safe: X and the atoms far outside unit magnitude (float32 entries of 1e19 square to inf) are
    # solved divided by powers of two, which is exact in floating point, and the codes scaled back.
    x_scale, atom_scale = _safe_scales(data, atoms)
    if (x_scale, atom_scale) != (1.0, 1.0):
        data, atoms = data / x_scale, atoms / atom_scale
        alpha = float(alpha) / (x_scale * atom_scale)
        if not alpha > 0:
            raise ValueError(f"alpha is too small for X and the dictionary's magnitudes (|X| up to "
                             f"{x_scale:.3g}, atoms up to {atom_scale:.3g}): it underflows to 0; rescale X")
        if start is not None:
            start = start * (atom_scale / x_scale)
        if not isinstance(step, str):
            step = float(step) * atom_scale**2
    active_set = method == "active-set" or (
        method == "auto" and device.type == "cpu" and step == "adaptive"
    )
    probed = None  # dense codes: the probe's exact (codes, sweeps) of the first rows, FISTA does the rest
    small = device.type == "cpu" and n_samples <= SMALL_CALL_SAMPLES
    with torch.no_grad(), one_torch_thread(small):
        correlations = data @ atoms.T
        if active_set:
            codes, n_iter, probed, converged = _encode_active_set(
                atoms, correlations, start, float(alpha), positive,
                int(max_iter), probe=method == "auto", step=step, tol=float(tol),
            )
            if codes is None:  # dense codes: FISTA is faster
                active_set = False
            elif not bool(converged.all()):
                stalled = (~converged).nonzero().squeeze(1)
                if method == "auto":
                    # rows stopped at max_iter sweeps: FISTA finishes them from where they stopped
                    gram = atoms @ atoms.T
                    result = _gram_fista(gram, data[stalled] @ atoms.T, codes[stalled], float(alpha),
                                         positive, step, int(max_iter), float(tol))
                    codes[stalled] = result.codes
                    n_iter[stalled] += result.n_iter
                    if not bool(result.converged.all()):
                        _warn_unconverged(int((~result.converged).sum()), n_samples, max_iter,
                                          "active set then FISTA", "raise max_iter")
                else:
                    _warn_unconverged(len(stalled), n_samples, max_iter, "active set",
                                      "raise max_iter, or use method='auto' (FISTA finishes such rows)")
        if not active_set:
            if probed is not None:  # reuse the probe's Gram matrix and codes
                head_codes, head_sweeps, gram64 = probed
                gram = gram64.to(data.dtype)
                correlations = correlations[len(head_codes):]
                start = None if start is None else start[len(head_codes):]
                n_samples = len(correlations)
            else:
                gram = atoms @ atoms.T
            if start is None:
                start = torch.zeros(n_samples, n_components, dtype=data.dtype, device=device)
            result = _gram_fista(gram, correlations, start, float(alpha), positive, step, int(max_iter),
                                 float(tol))
            codes, n_iter = result.codes, result.n_iter
            if not bool(result.converged.all()):  # was silent (codes 17 % above the optimum, 2026-11-29)
                resolution = torch.finfo(codes.dtype).eps
                advice = (f"tol={tol:.3g} is below {codes.dtype}'s resolution ({resolution:.3g}), where "
                          f"rows change by rounding forever: raise tol or pass float64"
                          if tol < 8 * resolution else
                          "raise max_iter (FISTA is slow on ill-conditioned dictionaries, e.g. atoms of very "
                          "different norms)")
                if device.type == "cpu":
                    advice += ", or use method='active-set' (exact)"
                _warn_unconverged(int((~result.converged).sum()), n_samples, max_iter, "FISTA", advice)
            if probed is not None:
                codes = torch.cat([head_codes.to(codes.dtype), codes])
                n_iter = torch.cat([head_sweeps.to(n_iter.dtype), n_iter])
    if (x_scale, atom_scale) != (1.0, 1.0):
        codes = codes * (x_scale / atom_scale)
        if not all_finite(codes):
            raise ValueError(
                f"the codes overflow {codes.dtype}: X's entries reach {x_scale:.3g} and the atoms' only "
                f"{atom_scale:.3g}, so codes reach about {x_scale / atom_scale:.3g}; "
                f"{'pass float64 arrays or ' if codes.dtype != torch.float64 else ''}rescale X or the "
                f"dictionary"
            )
    if half_in is not None:
        codes = codes.to(torch.float16 if half_in is np.float16 else half_in)
        if not all_finite(codes):
            name, largest = str(codes.dtype).removeprefix("torch."), torch.finfo(codes.dtype).max
            raise ValueError(f"the codes overflow {name} (largest finite {largest:.3g}): they were solved in "
                             f"float32 but cannot be returned in X's dtype; pass X as float32")
    if numpy_in:
        codes_out = codes.cpu().numpy()
        return (codes_out, n_iter.cpu().numpy()) if return_n_iter else codes_out
    codes = codes.to(output_device)
    return (codes, n_iter.to(output_device)) if return_n_iter else codes


def _safe_scales(data: torch.Tensor, atoms: torch.Tensor) -> tuple[float, float]:
    """Powers of two to divide ``X`` and the dictionary by before solving: ``(1.0, 1.0)`` while both
    largest magnitudes lie in ``[tiny^¼, max^¼]`` of their dtype (float32: about 2e-10 to 4e9), where the
    Gram matrix, the correlations and the codes' squared norms stay in range; otherwise each is brought to
    a largest magnitude in ``[1, 2)``."""
    peaks = [float(data.abs().max()), float(atoms.abs().max())]
    if all(in_safe_range(peak, data.dtype) for peak in peaks):
        return 1.0, 1.0
    x_scale, atom_scale = (power_of_two_below(peak) for peak in peaks)
    return x_scale, atom_scale


def _gram_fista(gram, correlations, start, alpha, positive, step, max_iter, tol):
    """Batched FISTA in Gram form from the codes ``start``, returning the loop's :class:`_LoopResult`;
    ``step`` a float, "adaptive" or "lipschitz"; a ``ValueError`` naming the stable steps if it diverges."""
    n_samples = len(correlations)
    eta = step
    if isinstance(step, str):
        lipschitz = LIPSCHITZ_SAFETY * power_iteration_max_eigenvalue(gram)
        # an all-zero dictionary (L = 0): the objective is alpha·||z||₁ plus a constant, any step is exact
        # and the codes shrink to 0, as the active set and scikit-learn return
        eta = 1.0 / lipschitz if lipschitz > 0 else 1.0
    if step == "adaptive":
        stepper = GramAdaptiveStep(gram, correlations, alpha, eta, positive, start)
    else:
        stepper = GramFixedStep(gram, correlations, alpha, float(eta), positive)
    result = fista_loop(stepper, start, max_iter=max_iter, tol=tol)
    if bool(result.diverged.any()):
        lipschitz = power_iteration_max_eigenvalue(gram)
        raise ValueError(
            f"FISTA diverged ({int(result.diverged.sum())} of {n_samples} samples overflowed): step="
            f"{float(eta):.4g} against 2/L = {2.0 / lipschitz:.4g} (L = largest eigenvalue of "
            f"dictionary @ dictionary.T; with FISTA's momentum only steps below about 4/(3L) = "
            f"{4.0 / (3.0 * lipschitz):.4g} are stable); pass step <= 1/L = {1.0 / lipschitz:.4g}, "
            f"or step='adaptive'/'lipschitz'"
        )
    return result


# Dense codes go to FISTA only for calls of more than this many samples: below it FISTA's per-iteration
# overhead (a dozen small torch calls, hundreds of iterations) costs more than the active set's exact
# solve (issue 14: (a) random ± at n = 250, 976 ms vs 161 ms). A sample count, not a timing, so that the
# method (and so the codes) never depends on how busy the machine is.
_DENSE_FISTA_SAMPLES = 2048


_PROBE_SAMPLES = 64
# "Dense" (FISTA faster than the exact active set): the probe's mean support exceeds this fraction of
# min(n_components, n_features) and is at least _DENSE_MIN_SUPPORT atoms. Measured at 3,000 random rows, one
# thread (2026-11-29): FISTA wins at supports of 0.94-0.96 of that bound (123 of 128 atoms in 784
# dimensions: 0.49 s vs 0.81 s; 242 of 256 dimensions with 450 atoms: 32 s vs 55 s), the active set at
# 0.57-0.80 of it (2-3x faster) and at every support below 64 (5-50x faster; FISTA's relative-change stop
# also left 12 atoms in 8 dimensions 12 % above the optimum at small alpha)
_DENSE_FRACTION = 0.9
_DENSE_MIN_SUPPORT = 64
# ... and only where FISTA, tried on the probe's rows, needs at most this many iterations per active-set
# sweep on them: a FISTA iteration and a dense sweep both cost O(l²) per row, FISTA's in batched matmuls.
# Measured with dense codes, one thread, AVX-512 CPU (2026-11-30; FISTA iterations per sweep → speed):
# 128 unit atoms in 784 dimensions, 3,000 MNIST rows, alpha 1e-4: 2.0 → FISTA 1.8x faster; 450 unit
# atoms in 256 dimensions, 1,000 Gaussian rows, signed, supports 0.99 / 0.97 of d: 3.3 → FISTA 4.2x
# faster, 3.8 → 1.6x faster; 80 Gaussian atoms (not normalised: Gram condition number ~300) in 100
# dimensions, 2,100 rows, alpha 1e-3: 9.5 → FISTA 9x *slower* (the support rule alone took 2.4 s, not 0.26).
_FISTA_ITERATIONS_PER_SWEEP = 4.0


def _encode_active_set(atoms, correlations, start, alpha, positive, max_sweeps, probe, step="adaptive",
                       tol=1e-4):
    """Active-set codes as torch tensors ``(codes, sweeps, None)``; when ``probe`` finds the codes dense
    (mean support of the first samples > 0.9 of min(n_components, n_features), and >= 64) and FISTA (its
    ``step`` and ``tol``) converges fast on them (:func:`_fista_needs_more_passes`) instead
    ``(None, None, (probe codes, probe sweeps, float64 Gram))``: the probe's rows are solved exactly and
    kept, FISTA takes the rest. Calls of at most ``_DENSE_FISTA_SAMPLES`` rows stay on the active set
    without a probe, the Gram matrix computed by the solver's own threads in the same call."""
    n_components, n_features = atoms.shape
    rows = correlations.numpy()  # overwritten in place with the codes
    init = None if start is None else start.numpy()
    n_samples = rows.shape[0]
    sweeps = np.empty(n_samples, dtype=np.int64)
    converged = np.empty(n_samples, dtype=bool)
    if probe and n_samples > max(_DENSE_FISTA_SAMPLES, _PROBE_SAMPLES):
        gram = gram_matrix(atoms.numpy())
        head = rows[:_PROBE_SAMPLES].copy()
        head, sweeps[:_PROBE_SAMPLES], converged[:_PROBE_SAMPLES] = lasso_active_set(
            gram, head, alpha, positive=positive, max_sweeps=max_sweeps,
            init=None if init is None else init[:_PROBE_SAMPLES],
        )
        support = (head != 0).sum(axis=1).mean()
        dense = support > _DENSE_FRACTION * min(n_components, n_features) and support >= _DENSE_MIN_SUPPORT
        # dense codes on which FISTA converges slowly (an ill-conditioned Gram matrix) stay here
        if dense and not _fista_needs_more_passes(gram, correlations[:_PROBE_SAMPLES],
                                                  None if start is None else start[:_PROBE_SAMPLES],
                                                  sweeps[:_PROBE_SAMPLES], alpha, positive, step,
                                                  max_sweeps, tol):
            if not converged[:_PROBE_SAMPLES].all():
                _warn_unconverged(int((~converged[:_PROBE_SAMPLES]).sum()), _PROBE_SAMPLES, max_sweeps,
                                  "active set", "raise max_iter", stacklevel=5)
            probed = (torch.from_numpy(head), torch.from_numpy(sweeps[:_PROBE_SAMPLES].copy()),
                      torch.from_numpy(gram))
            return None, None, probed, None
        rows[:_PROBE_SAMPLES] = head
        _, sweeps[_PROBE_SAMPLES:], converged[_PROBE_SAMPLES:] = lasso_active_set(
            gram, rows[_PROBE_SAMPLES:], alpha, positive=positive, max_sweeps=max_sweeps,
            init=None if init is None else init[_PROBE_SAMPLES:],
        )
    else:  # the Gram matrix is computed by the same threads, in the same call, as the codes
        _, sweeps[:], converged[:] = lasso_active_set(
            None, rows, alpha, positive=positive, max_sweeps=max_sweeps, init=init, atoms=atoms.numpy(),
        )
    return torch.from_numpy(rows), torch.from_numpy(sweeps), None, torch.from_numpy(converged)


def _fista_needs_more_passes(gram, correlations, start, sweeps, alpha, positive, step, max_iter, tol) -> bool:
    """Whether FISTA, run on the probe's rows (``correlations``, from ``start``) as it would run on the
    others, takes more than ``_FISTA_ITERATIONS_PER_SWEEP`` iterations per ``sweeps`` the active set took on
    them (a deterministic test: iteration counts, not times). The trial stops each row just past that
    bound: a row that reaches it counts as needing more, and a slow FISTA costs the trial no more than
    that."""
    bound = _FISTA_ITERATIONS_PER_SWEEP * max(float(sweeps.mean()), 1.0)
    first = start if start is not None else correlations.new_zeros(len(correlations), gram.shape[0])
    trial = _gram_fista(torch.from_numpy(gram).to(correlations.dtype), correlations, first, alpha, positive,
                        step, max_iter if bound >= max_iter else int(bound) + 1, tol)
    return float(trial.n_iter.double().mean()) > bound


def _warn_unconverged(count, total, max_iter, solver, advice, stacklevel=4):
    """A RuntimeWarning at the caller of ``sparse_encode`` (``stacklevel`` counts from here)."""
    warnings.warn(
        f"{solver}: {count} of {total} samples reached max_iter={max_iter} before converging; {advice}",
        RuntimeWarning,
        stacklevel=stacklevel,
    )


def lasso_objective(X, dictionary, codes, alpha: float) -> float:
    r"""Total scikit-learn lasso objective in float64 numpy: :math:`\sum_i \tfrac12\lVert x_i - z_i D\rVert^2
    + \alpha\lVert z_i\rVert_1` (the one function the tests and the benchmark score every solver with).
    Arrays or tensors of any real dtype (bfloat16, ones that require grad); NaN/inf and mismatched shapes
    are refused by name."""
    X, D, Z = (float_rows(value, name, float64=True)
               for value, name in ((X, "X"), (dictionary, "dictionary"), (codes, "codes")))
    alpha = check_nonnegative_number("alpha", alpha)
    if D.shape[1] != X.shape[1] or Z.shape != (X.shape[0], D.shape[0]):
        raise ValueError(f"X {X.shape}, dictionary {D.shape} and codes {Z.shape} do not fit: they must be "
                         f"(n_samples, n_features), (n_components, n_features) and (n_samples, n_components)")
    residual = X - Z @ D
    return float(0.5 * np.einsum("ij,ij->", residual, residual) + alpha * np.abs(Z).sum())
