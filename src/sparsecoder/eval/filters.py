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

from sparsecoder.util import as_array, finite_number

__all__ = ["FilterGroups", "filter_groups", "localization", "LOCALIZED", "gabor_fit", "sparse_coding_mse",
           "relative_mse"]

# A filter counts as localised when its best half-width window holds at least this fraction of its energy.
# White-noise 16×16 filters give 0.27–0.47 (best 8×8 of 81 windows; median 0.32, 99.9th percentile 0.42 over
# 20,000 draws) and a full-patch grating 0.26; a Gabor with an envelope of σ ≤ 3 pixels gives ≥ 0.85, σ = 4
# pixels ≥ 0.68, wherever it sits (corners included; centres on every pixel, 4 orientations, f = 0.1, 0.25).
LOCALIZED = 0.6


class FilterGroups(dict):
    """Result of :func:`filter_groups` (a dict; keys documented there)."""


def _matrix(value, name: str) -> np.ndarray:
    array = as_array(value, name, ndim=None, finite=False)
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
    threshold = finite_number(threshold, "threshold", positive=True)  # numpy scalars too, not a bool
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


def _filters_of_shape(columns, shape) -> tuple[np.ndarray, tuple[int, int]]:
    """``columns`` as a checked (pixels, filters) matrix and ``shape`` as ``(h, w)`` with ``h·w`` pixels."""
    columns = _matrix(columns, "columns")
    if (not isinstance(shape, (tuple, list)) or len(shape) != 2
            or not all(_is_positive_int(v) for v in shape)):
        raise ValueError(f"shape must be (h, w), two integers >= 1, got {shape!r}")
    h, w = (int(v) for v in shape)
    if h * w != columns.shape[0]:
        raise ValueError(f"shape {shape} has {h * w} pixels but the columns have {columns.shape[0]}")
    return columns, (h, w)


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
    columns, (h, w) = _filters_of_shape(columns, shape)
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


_GABOR_KEYS = ("amplitude", "center_row", "center_col", "orientation", "frequency", "phase", "sigma_along",
               "sigma_across", "r2")


def _gabor(params: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    amplitude, row0, col0, theta, frequency, phase, sigma_along, sigma_across = params
    x, y = cols - col0, -(rows - row0)  # y counted upwards: θ turns counter-clockwise as displayed
    along = x * np.cos(theta) + y * np.sin(theta)
    across = -x * np.sin(theta) + y * np.cos(theta)
    envelope = np.exp(-0.5 * ((along / sigma_along) ** 2 + (across / sigma_across) ** 2))
    return amplitude * envelope * np.cos(2 * np.pi * frequency * along + phase)


def gabor_fit(columns, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    r"""Least-squares fit of a 2-D Gabor function to every filter (column): its position, orientation,
    spatial frequency and envelope, the usual description of V1-like filters learned from natural images.

    .. math::
        g(r, c) = A \exp\!\Big(-\frac{u^2}{2\sigma_\parallel^2} - \frac{v^2}{2\sigma_\perp^2}\Big)
                  \cos(2\pi f u + \varphi), \qquad
        u = x\cos\theta + y\sin\theta,\quad v = -x\sin\theta + y\cos\theta

    with ``x = c − c₀`` (columns, to the right) and ``y = −(r − r₀)`` (rows counted upwards, so ``θ`` turns
    counter-clockwise as the filter is displayed). ``θ`` is the direction of the carrier's wave vector: the
    stripes (an edge) run at ``θ + 90°``; ``θ = 0`` is a vertical grating. Started from the peak of the
    zero-padded spectrum (``f``, ``θ``) and the energy centroid and spread (position, envelope), four
    starting phases, refined by :func:`scipy.optimize.least_squares`.

    Parameters
    ----------
    columns : (d, l) array or tensor
        Filters as columns of ``d = h·w`` pixels (row-major images), e.g. ``model.atoms()``.
    shape : (h, w)
        Image shape of one filter.

    Returns
    -------
    dict of (l,) arrays
        ``amplitude`` (> 0, in the filter's units), ``center_row``, ``center_col`` (pixels, may lie
        outside the patch for a filter cut by its border), ``orientation`` ``θ`` in ``[0, π)`` (radians),
        ``frequency`` ``f`` (cycles per pixel, ``[0, 0.5]``), ``phase`` ``φ`` in ``(−π, π]`` (0: even,
        ±π/2: odd, an edge), ``sigma_along`` / ``sigma_across`` (envelope σ in pixels along / across the
        wave vector), ``r2``: fraction of the filter's energy the fit explains,
        ``1 − ‖U − g‖² / ‖U‖²`` (16×16 white noise: median 0.07, at most 0.12 in 200 draws; keep fits with,
        e.g., ``r2 > 0.5`` for statistics).
        An all-zero filter has NaN parameters and ``r2 = 0``.
    """
    from scipy.optimize import least_squares

    columns, (h, w) = _filters_of_shape(columns, shape)
    if h < 3 or w < 3:
        raise ValueError(f"a Gabor fit needs filters of at least 3×3 pixels, got {h}×{w}")
    rows, cols = (grid.ravel() for grid in np.mgrid[0:h, 0:w].astype(np.float64))
    pad = (2 * h, 2 * w)  # frequency resolution of the starting point: 1/(2h), 1/(2w) cycles per pixel
    f_rows = np.fft.fftfreq(pad[0])[:, None]
    f_cols = np.fft.fftfreq(pad[1])[None, :]
    side = max(h, w)
    lower = [0.0, -side, -side, -np.inf, 0.0, -np.inf, 0.3, 0.3]
    upper = [np.inf, h - 1 + side, w - 1 + side, np.inf, 0.5, np.inf, 2.0 * side, 2.0 * side]
    out = {key: np.full(columns.shape[1], np.nan) for key in _GABOR_KEYS}
    out["r2"][:] = 0.0
    for j, column in enumerate(columns.T):
        peak = np.abs(column).max()
        if not peak > 0:
            continue
        target = column / peak  # the fit does not depend on the filter's scale
        image = target.reshape(h, w)
        spectrum = np.abs(np.fft.fft2(image, s=pad)) ** 2
        spectrum[0, 0] = 0.0
        k_row, k_col = np.unravel_index(np.argmax(spectrum), spectrum.shape)
        fx, fy = f_cols[0, k_col], -f_rows[k_row, 0]  # y counted upwards
        energy = target ** 2 / np.sum(target ** 2)
        row0, col0 = energy @ rows, energy @ cols
        spread = np.sqrt(max(energy @ ((rows - row0) ** 2 + (cols - col0) ** 2) / 2, 0.25))
        sigma = float(np.clip(np.sqrt(2.0) * spread, 0.5, side))  # the squared envelope halves σ²
        start = np.array([1.0, row0, col0, np.arctan2(fy, fx), min(np.hypot(fx, fy), 0.5), 0.0, sigma, sigma])
        # amplitude and phase of the start: A cos(2πfu + φ) = a cos(2πfu) − b sin(2πfu), linear in (a, b)
        even = _gabor(start, rows, cols)
        odd = _gabor(start + [0, 0, 0, 0, 0, np.pi / 2, 0, 0], rows, cols)  # −envelope·sin(2πfu)
        (a, b), *_ = np.linalg.lstsq(np.c_[even, odd], target, rcond=None)
        start[0], start[5] = max(np.hypot(a, b), 1e-6), np.arctan2(b, a)
        best = least_squares(lambda p, target=target: _gabor(p, rows, cols) - target, start,
                             bounds=(lower, upper), x_scale="jac")
        amplitude, row0, col0, theta, frequency, phase, sigma_along, sigma_across = best.x
        if theta % (2 * np.pi) >= np.pi:  # (θ + π, −φ) is the same function
            theta, phase = theta - np.pi, -phase
        for key, value in (("amplitude", amplitude * peak), ("center_row", row0), ("center_col", col0),
                           ("orientation", theta % np.pi), ("frequency", frequency),
                           ("phase", np.angle(np.exp(1j * phase))), ("sigma_along", sigma_along),
                           ("sigma_across", sigma_across)):
            out[key][j] = value
        out["r2"][j] = 1.0 - 2.0 * best.cost / np.sum(target ** 2)
    return out


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
    mse = finite_number(mse, "mse")
    variance = x.var() if x.size else 0.0
    if not variance > 0:
        raise ValueError(f"x (shape {x.shape}) has no variance (empty or constant): the relative MSE is "
                         f"undefined")
    return float(mse / variance)
