"""``sparse_encode`` in scikit-learn's convention, solved by batched FISTA in Gram form.

Same call shape and objective as :func:`sklearn.decomposition.sparse_encode` with ``algorithm="lasso_cd"``:
``X`` is ``(n_samples, n_features)``, ``dictionary`` is ``(n_components, n_features)`` (one atom per row),
and every sample's code minimises

    ½ ||x − z · dictionary||² + alpha · ||z||₁        (z ≥ 0 when ``positive``)

The relation to the reference scaling of :func:`sparsecoder.inference.fista` (SPEC §2.1) is
``alpha = d·λ/2`` with ``W = dictionary.T`` (see :mod:`sparsecoder.inference.energy`).
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

from sparsecoder.inference.fista import _LIPSCHITZ_SAFETY, fista_gram, power_iteration_max_eigenvalue

__all__ = ["sparse_encode", "lasso_objective"]


def _resolve_device(device, default: torch.device) -> torch.device:
    if device is None:
        return default
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as error:
        message = f"device must be None, 'auto', 'cpu', 'cuda' or a torch.device, not {device!r}"
        raise ValueError(message) from error


def _as_tensor(name: str, value, dtype=None) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
    elif isinstance(value, np.ndarray):
        if value.dtype.kind not in "fiu":
            raise ValueError(f"{name} must hold real numbers, got numpy dtype {value.dtype}")
        array = value if value.dtype in (np.float32, np.float64) else value.astype(np.float64)
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    else:
        raise ValueError(f"{name} must be a numpy array or a torch tensor, got {type(value).__name__}")
    if not torch.is_floating_point(tensor):
        tensor = tensor.to(torch.float64)
    if dtype is not None:
        tensor = tensor.to(dtype)
    return tensor


def sparse_encode(
    X,
    dictionary,
    *,
    alpha: float,
    positive: bool = False,
    max_iter: int = 1000,
    tol: float = 1e-4,
    init=None,
    step: float | str = "lipschitz",
    restart: bool = True,
    device=None,
    return_n_iter: bool = False,
):
    r"""Sparse codes of ``X`` over ``dictionary`` (scikit-learn convention), by batched FISTA.

    For every sample ``x`` (a row of ``X``) solves

    .. math:: \min_z \tfrac12\lVert x - z D\rVert_2^2 + \alpha\lVert z\rVert_1
              \quad (z \ge 0 \text{ if positive})

    exactly the objective of ``sklearn.decomposition.sparse_encode(X, D, algorithm="lasso_cd", alpha=…)``.
    The Gram matrix ``G = D Dᵀ`` and the correlations ``X Dᵀ`` are computed once; each FISTA iteration is
    then one fused ``addmm`` + shrinkage over the samples still moving (see
    :func:`sparsecoder.inference.fista.fista_gram`). A sample stops once its relative change
    ``||z^k − z^{k−1}|| ≤ tol·||z^{k−1}||``.

    Parameters
    ----------
    X : ndarray or Tensor, shape (n_samples, n_features)
        Data; float32 stays float32, float64 stays float64 (other numeric types become float64).
    dictionary : ndarray or Tensor, shape (n_components, n_features)
        Atoms as rows (scikit-learn's ``components_``); need not be normalised.
    alpha : float
        L1 weight α > 0 (as in scikit-learn's ``sparse_encode``; ``Lasso`` itself uses α/n_features).
    positive : bool
        Constrain codes to be non-negative.
    max_iter : int
        Most FISTA iterations per sample.
    tol : float
        Relative-change tolerance ≥ 0 at which a sample is frozen.
    init : array or Tensor, shape (n_samples, n_components), optional
        Warm start (zeros by default).
    step : float | "lipschitz"
        Step η > 0, or ``"lipschitz"``: η = 1/L with L the largest eigenvalue of ``D Dᵀ`` (power iteration).
    restart : bool
        Per-sample adaptive momentum restart (O'Donoghue & Candès 2015); speeds up coherent dictionaries.
    device : None | "auto" | str | torch.device
        Where to compute; ``None``: the device of ``X`` (CPU for numpy), ``"auto"``: CUDA when available.
    return_n_iter : bool
        Also return the ``(n_samples,)`` iterations each sample used.

    Returns
    -------
    codes : same kind as ``X`` (ndarray or Tensor on ``X``'s device), shape (n_samples, n_components)
    n_iter : same kind, int64, shape (n_samples,) — only when ``return_n_iter``

    Raises
    ------
    ValueError
        Non-2-D or mismatched shapes, NaN/inf, an empty ``X``, ``alpha ≤ 0``, a non-positive step,
        ``max_iter < 1``, ``tol < 0``.
    """
    numpy_in = not isinstance(X, torch.Tensor)
    data = _as_tensor("X", X)
    if data.dim() != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {tuple(data.shape)}")
    atoms = _as_tensor("dictionary", dictionary, dtype=data.dtype)
    if atoms.dim() != 2:
        raise ValueError(f"dictionary must be 2-D (n_components, n_features), got shape {tuple(atoms.shape)}")
    n_samples, n_features = data.shape
    n_components = atoms.shape[0]
    if n_samples == 0:
        raise ValueError("X is empty (0 samples); pass at least one row")
    if atoms.shape[1] != n_features:
        raise ValueError(
            f"dictionary has {atoms.shape[1]} features but X has {n_features}: dictionary must be "
            f"(n_components, n_features) = (?, {n_features}) — transpose a (n_features, n_components) matrix"
        )
    if n_components == 0:
        raise ValueError("dictionary has 0 atoms")
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not (0 < alpha < math.inf):
        raise ValueError(f"alpha must be a finite number > 0, got {alpha!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or max_iter < 1:
        raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not math.isfinite(tol) or tol < 0:
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    if isinstance(step, str):
        if step != "lipschitz":
            raise ValueError(f"step must be a positive float or 'lipschitz', got {step!r}")
    elif isinstance(step, bool) or not isinstance(step, numbers.Real) or not math.isfinite(step) or step <= 0:
        raise ValueError(f"step must be a positive float or 'lipschitz', got {step!r}")
    if not bool(torch.isfinite(data).all()):
        raise ValueError("X contains NaN or inf; clean or impute the data first")
    if not bool(torch.isfinite(atoms).all()):
        raise ValueError("dictionary contains NaN or inf")
    output_device = data.device
    device = _resolve_device(device, data.device)
    data, atoms = data.to(device), atoms.to(device)
    if init is not None:
        start = _as_tensor("init", init, dtype=data.dtype).to(device)
        if tuple(start.shape) != (n_samples, n_components):
            raise ValueError(f"init must have shape (n_samples, n_components) = {(n_samples, n_components)}, "
                             f"got {tuple(start.shape)}")
        if not bool(torch.isfinite(start).all()):
            raise ValueError("init contains NaN or inf")
        if positive:
            start = start.clamp_min(0.0)
    else:
        start = torch.zeros(n_samples, n_components, dtype=data.dtype, device=device)

    with torch.no_grad():
        gram = atoms @ atoms.T
        correlations = data @ atoms.T
        if step == "lipschitz":
            lipschitz = _LIPSCHITZ_SAFETY * power_iteration_max_eigenvalue(gram)
            if lipschitz <= 0:
                raise ValueError("dictionary is all zeros; nothing to encode with")
            step = 1.0 / lipschitz
        codes, n_iter, _ = fista_gram(
            gram, correlations, float(alpha), float(step), start, positive=positive, max_iter=int(max_iter),
            tol=float(tol), restart=restart,
        )
    if numpy_in:
        codes_out = codes.cpu().numpy()
        return (codes_out, n_iter.cpu().numpy()) if return_n_iter else codes_out
    codes = codes.to(output_device)
    return (codes, n_iter.to(output_device)) if return_n_iter else codes


def lasso_objective(X, dictionary, codes, alpha: float) -> float:
    r"""Total scikit-learn lasso objective in float64 numpy: :math:`\sum_i \tfrac12\lVert x_i - z_i D\rVert^2
    + \alpha\lVert z_i\rVert_1` (the one function the tests and the benchmark score every solver with)."""
    X = np.asarray(X.cpu() if isinstance(X, torch.Tensor) else X, dtype=np.float64)
    D = np.asarray(dictionary.cpu() if isinstance(dictionary, torch.Tensor) else dictionary, dtype=np.float64)
    Z = np.asarray(codes.cpu() if isinstance(codes, torch.Tensor) else codes, dtype=np.float64)
    residual = X - Z @ D
    return float(0.5 * np.einsum("ij,ij->", residual, residual) + alpha * np.abs(Z).sum())
