"""Synthetic data with a known dictionary (SPEC §5, §6): recovery of the true atoms can be scored."""

from __future__ import annotations

import math

import numpy as np

from sparsecoder.data.base import DataSplits, Split, check_rows_fit
from sparsecoder.data.images import MAX_VARIANCE, SPLITS, split_counts
from sparsecoder.data.preprocessing import Identity
from sparsecoder.nn.sizes import check_nonnegative_number, check_size


def _square_shape(dim: int) -> tuple[int, int] | None:
    side = math.isqrt(dim)
    return (side, side) if side * side == dim else None


def _check_fits(requested: dict, counts: dict, width: int, n_components: int, what: str) -> None:
    """Refuse, before anything is drawn, sizes whose arrays exceed this machine's memory: the dictionary
    (float64), one split drawn in full at a time (its float64 codes, the random keys and the argsort that
    pick their support, rows and noise) and the float32 splits kept."""
    largest = max(requested.values())
    needed = (8 * width * n_components + 8 * largest * (3 * n_components + 2 * width)
              + 4 * sum(counts.values()) * (width + n_components))
    check_rows_fit(needed, 1, f"{what} ({width} values per sample, {n_components} components, splits "
                   f"{'/'.join(str(n) for n in requested.values())})",
                   "lower dim / n_components or the split sizes (n_train, n_val, n_test)")


def load_synthetic(*, seed: int = 0, limit: int | None = None, data_dir: str | None = None, dim: int = 64,
                   n_components: int = 128, n_active: int = 5, noise: float = 0.01, n_train: int = 10000,
                   n_val: int = 1000, n_test: int = 1000) -> DataSplits:
    """``y = W_true z_true + ε`` (SPEC §6).

    ``W_true`` (``dim × n_components``) has Gaussian columns scaled to unit L2 norm; each code
    ``z_true`` has exactly ``n_active`` non-zero entries at uniformly random positions with values
    ``|N(0, 1)|`` (sparse, non-negative); ``ε ~ N(0, noise²)`` per entry. No normalisation. Sets
    ``true_dictionary = W_true`` and ``info["true_codes"][split]`` (n × n_components).
    """
    import torch

    if data_dir is not None:
        raise ValueError("the synthetic source takes no data_dir")
    dim = check_size("the synthetic source", "dim", dim)
    n_components = check_size("the synthetic source", "n_components", n_components)
    n_active = check_size("the synthetic source", "n_active", n_active)
    if n_active > n_components:
        raise ValueError(f"n_active={n_active} exceeds n_components={n_components}")
    noise = check_nonnegative_number("noise", noise)
    if noise > math.sqrt(MAX_VARIANCE):  # 1e300 overflows float32 to inf; 1e20 once squared in a loss
        raise ValueError(f"noise must be at most {math.sqrt(MAX_VARIANCE):g} (the std of the Gaussian noise "
                         f"added to y = W_true z_true, whose entries are about 1; larger values overflow "
                         f"float32 once squared in a model's loss), got {noise!r}")
    requested, counts = split_counts(n_train, n_val, n_test, limit)
    _check_fits(requested, counts, dim, n_components, "the synthetic data")
    rng = np.random.default_rng(seed)
    dictionary = rng.standard_normal((dim, n_components))
    dictionary /= np.linalg.norm(dictionary, axis=0, keepdims=True)
    splits, codes = {}, {}
    for k, key in enumerate(SPLITS):
        rng = np.random.default_rng([seed, k + 1])  # one stream per split: val/test do not move with limit
        n = requested[key]  # drawn in full, then cut to the limit: a limited train split is a prefix
        z = np.zeros((n, n_components))
        support = np.argsort(rng.random((n, n_components)), axis=1)[:, :n_active]
        np.put_along_axis(z, support, np.abs(rng.standard_normal((n, n_active))), axis=1)
        y = z @ dictionary.T + noise * rng.standard_normal((n, dim))
        splits[key] = Split(x=torch.from_numpy(y[:counts[key]].astype(np.float32)))
        codes[key] = torch.from_numpy(z[:counts[key]].astype(np.float32))
    return DataSplits(
        name="synthetic", **splits, image_shape=_square_shape(dim),
        normalization=f"none: y = W_true z_true + N(0, {noise}²), unit-norm atoms, {n_active} active codes",
        true_dictionary=torch.from_numpy(dictionary.astype(np.float32)),
        info={"true_codes": codes, "n_active": n_active, "noise": noise}, preprocessing=Identity(),
    )


def load_synthetic_pyle(*, seed: int = 0, limit: int | None = None, data_dir: str | None = None,
                        n_basis: int = 5, side: int = 5, active_probability: float = 0.5, noise: float = 0.02,
                        n_train: int = 10000, n_val: int = 1000, n_test: int = 1000) -> DataSplits:
    """Pyle's synthetic ``5×5`` patches from 5 random basis functions plus noise (SPEC §5).

    The paper gives no more detail; our construction keeps the data in [0, 1] (Pyle's decoders end in a
    sigmoid): basis images ``b_k`` with entries ``U(0, 1)``; each sample uses each basis with probability
    ``active_probability`` and coefficient ``c_k ~ U(0, 1)``; ``x = clip(Σ_k c_k b_k / n_basis + N(0,
    noise²), 0, 1)``. ``true_dictionary`` holds the basis images as unit-norm columns (``side² × n_basis``);
    ``info["true_codes"]`` the coefficients ``c / n_basis`` times the basis norms (so ``x ≈ D c'``
    before noise and clipping).
    """
    import torch

    if data_dir is not None:
        raise ValueError("the synthetic_pyle source takes no data_dir")
    n_basis = check_size("the synthetic_pyle source", "n_basis", n_basis)
    side = check_size("the synthetic_pyle source", "side", side)
    noise = check_nonnegative_number("noise", noise)
    if isinstance(active_probability, bool) or not (isinstance(active_probability, (int, float))
                                                    and 0 < active_probability <= 1):
        raise ValueError(f"active_probability must be in (0, 1], got {active_probability!r}")
    requested, counts = split_counts(n_train, n_val, n_test, limit)
    _check_fits(requested, counts, side * side, n_basis, "the synthetic_pyle data")
    rng = np.random.default_rng(seed)
    basis = rng.random((side * side, n_basis))
    norms = np.linalg.norm(basis, axis=0)
    splits, codes = {}, {}
    for k, key in enumerate(SPLITS):
        rng = np.random.default_rng([seed, k + 1])  # one stream per split: val/test do not move with limit
        n = requested[key]
        c = rng.random((n, n_basis)) * (rng.random((n, n_basis)) < active_probability) / n_basis
        x = np.clip(c @ basis.T + noise * rng.standard_normal((n, side * side)), 0.0, 1.0)
        splits[key] = Split(x=torch.from_numpy(x[:counts[key]].astype(np.float32)))
        codes[key] = torch.from_numpy((c * norms)[:counts[key]].astype(np.float32))
    return DataSplits(
        name="synthetic_pyle", **splits, image_shape=(side, side),
        normalization=f"none: values in [0, 1] (Σ c_k b_k / {n_basis} + N(0, {noise}²), clipped)",
        true_dictionary=torch.from_numpy((basis / norms).astype(np.float32)),
        info={"true_codes": codes, "noise": noise}, preprocessing=Identity(),
    )
