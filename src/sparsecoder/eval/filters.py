"""Active vs noise filters of a sparse-coding VAE, and the sparse-coding baseline's reconstruction error
(Jiang & de la Iglesia, Table 1 and Fig. 5; SPEC §4).

A latent ``j`` of a linear-decoder VAE owns one decoder column ``U[:, j]`` (its filter). With ``Z`` the
posterior means over a test set (n, l):

* **caption criterion** (Fig. 5a): ``j`` is active when ``max_i |Z_ij| > threshold`` — a "noise" filter
  never reaches activity above the threshold on any test image;
* **text criterion** (§4.3): ``j`` is active when ``std_i Z_ij > threshold`` (population std).

Fig. 5b plots, per group, the variance of each latent's activation over the test set and the L2 norm of
its decoder column.
"""

from __future__ import annotations

import numpy as np

from sparsecoder.eval.metrics import _finite_number

__all__ = ["FilterGroups", "filter_groups", "localization", "LOCALIZED", "sparse_coding_mse", "relative_mse"]

# A filter counts as localised when its best half-width window holds at least this fraction of its energy.
# White-noise 16×16 filters give 0.26–0.43 (best 8×8 of 81 windows; median 0.32, 99.9th percentile 0.42 over
# 20,000 draws) and a full-patch grating 0.26; a Gabor with an envelope of σ ≤ 3 pixels gives ≥ 0.86, σ = 4
# pixels ≥ 0.70, wherever it sits (corners included).
LOCALIZED = 0.6


class FilterGroups(dict):
    """Result of :func:`filter_groups` (a dict; keys documented there)."""


def _matrix(value, name: str) -> np.ndarray:
    array = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds NaN or infinite values; check the trained model")
    return array


def filter_groups(codes, columns, threshold: float = 0.5) -> FilterGroups:
    r"""Split the latents into active and noise filters by both criteria of the paper.

    Parameters
    ----------
    codes : (n, l) array or tensor
        Posterior means of the test set (``model.encode(x)``).
    columns : (d, l) array or tensor
        Decoder columns (``model.atoms()``), one filter per latent.
    threshold : float
        0.5 in the paper.

    Returns
    -------
    FilterGroups
        ``active_max`` (bool, l): :math:`\max_i |Z_{ij}| > t` (Fig. 5a caption); ``active_std`` (bool, l):
        :math:`\operatorname{std}_i Z_{ij} > t` (§4.3 text, ddof = 0); ``variance`` (l): activation
        variance over the test set (ddof = 0, Fig. 5b top); ``norms`` (l): :math:`\|U_{:,j}\|_2`
        (Fig. 5b bottom); the counts ``n_active_max``, ``n_noise_max``, ``n_active_std``,
        ``n_noise_std``; ``order``: latent indices, active (caption criterion) first, each group by
        decreasing activation variance.
    """
    codes = _matrix(codes, "codes")
    columns = _matrix(columns, "columns")
    if codes.shape[0] < 2:
        raise ValueError(f"codes needs at least 2 test samples to compute a spread, got {codes.shape[0]}")
    if codes.shape[1] != columns.shape[1]:
        raise ValueError(f"codes has {codes.shape[1]} latents but columns has {columns.shape[1]} filters; "
                         f"pass model.encode(x) and model.atoms() of the same model")
    threshold = _finite_number(threshold, "threshold", positive=True)  # numpy scalars too, not a bool
    variance = codes.var(axis=0)
    active_max = np.abs(codes).max(axis=0) > threshold
    active_std = np.sqrt(variance) > threshold
    norms = np.linalg.norm(columns, axis=0)
    order = np.lexsort((-variance, ~active_max))
    l = codes.shape[1]
    return FilterGroups(
        active_max=active_max, active_std=active_std, variance=variance, norms=norms, order=order,
        n_active_max=int(active_max.sum()), n_noise_max=int(l - active_max.sum()),
        n_active_std=int(active_std.sum()), n_noise_std=int(l - active_std.sum()),
    )


def _is_positive_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


def localization(columns, shape: tuple[int, int], window: int | None = None) -> np.ndarray:
    r"""Per filter, the largest fraction of its energy inside one ``window × window`` square.

    .. math:: \rho_j = \max_{\text{squares } S} \frac{\sum_{p \in S} U_{pj}^2}{\sum_p U_{pj}^2}

    A spatially localised filter (Gabor, edge, blob) puts most of its energy in one small square; white
    noise and full-patch gratings spread it evenly, so ``ρ ≈ window² / (h·w)`` plus the fluctuation of
    the best window (:data:`LOCALIZED` is the threshold the experiments use).

    Parameters
    ----------
    columns : (d, l) array or tensor
        Decoder columns, one filter of ``d = h·w`` pixels per column (row-major images).
    shape : (h, w)
        Image shape of one filter.
    window : int, optional
        Side of the square; default ``min(h, w) // 2`` (at least 1: a filter one pixel high or wide).

    Returns
    -------
    ndarray (l,)
        ``ρ`` per filter in ``[window²/(h·w), 1]``; 0 for an all-zero filter.
    """
    columns = _matrix(columns, "columns")
    if (not isinstance(shape, (tuple, list)) or len(shape) != 2
            or not all(_is_positive_int(v) for v in shape)):
        raise ValueError(f"shape must be (h, w), two integers >= 1, got {shape!r}")
    h, w = (int(v) for v in shape)
    if h * w != columns.shape[0]:
        raise ValueError(f"shape {shape} has {h * w} pixels but the columns have {columns.shape[0]}")
    window = max(1, min(h, w) // 2) if window is None else window
    if not _is_positive_int(window) or window > min(h, w):
        raise ValueError(f"window must be an integer between 1 and {min(h, w)}, got {window!r}")
    window = int(window)
    # each filter on its own scale first: squares of 1e200 overflowed to inf (ρ = NaN), of 1e-200 underflowed
    # to 0 (ρ = 0, as for an all-zero filter); ρ does not depend on the filter's scale
    peak = np.abs(columns).max(axis=0)
    columns = np.divide(columns, peak, out=np.zeros_like(columns), where=peak > 0)
    energy = (columns.T ** 2).reshape(-1, h, w)
    integral = np.zeros((energy.shape[0], h + 1, w + 1))
    integral[:, 1:, 1:] = energy.cumsum(axis=1).cumsum(axis=2)
    k = window
    boxes = (integral[:, k:, k:] - integral[:, :-k, k:] - integral[:, k:, :-k] + integral[:, :-k, :-k])
    total = energy.sum(axis=(1, 2))
    best = boxes.reshape(energy.shape[0], -1).max(axis=1)
    return np.divide(best, total, out=np.zeros_like(total), where=total > 0)


def sparse_coding_mse(x, atoms, codes) -> float:
    r"""Pixelwise MSE of the sparse-coding reconstruction ``codes @ atoms``.

    .. math:: \frac{1}{n d}\sum_i \|x_i - z_i D\|_2^2

    ``x`` (n, d), ``atoms`` (l, d) rows = atoms (scikit-learn's ``components_``), ``codes`` (n, l).
    """
    x = _matrix(x, "x")
    atoms = _matrix(atoms, "atoms")
    codes = _matrix(codes, "codes")
    if atoms.shape[1] != x.shape[1] or codes.shape != (x.shape[0], atoms.shape[0]):
        raise ValueError(f"shapes do not match: x {x.shape}, atoms {atoms.shape} (l, d), codes {codes.shape} "
                         f"(n, l)")
    if x.size == 0:
        raise ValueError(f"x is empty (shape {x.shape}); the MSE of no pixels is undefined")
    return float(np.mean((x - codes @ atoms) ** 2))


def relative_mse(mse: float, x) -> float:
    """``mse`` divided by the mean per-pixel variance of ``x`` (n, d) (population variance over all
    entries about the global mean): 1 means no better than predicting the mean."""
    x = _matrix(x, "x")
    mse = _finite_number(mse, "mse")
    variance = x.var() if x.size else 0.0
    if not variance > 0:
        raise ValueError(f"x (shape {x.shape}) has no variance (empty or constant): the relative MSE is "
                         f"undefined")
    return float(mse / variance)
