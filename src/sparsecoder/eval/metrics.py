"""Evaluation metrics shared by every family (SPEC §3, §4, §6): pure functions of tensors or arrays.

Every function accepts a :class:`torch.Tensor` or anything :func:`numpy.asarray` understands, computes in
float64 on the CPU, and returns a plain Python ``float`` or ``int``. Rows are samples (batch first).
"""

from __future__ import annotations

import math

import numpy as np

from sparsecoder.util import as_array, finite_number

__all__ = ["psnr", "sparsity", "active_units", "active_units_max", "dead_atoms", "dictionary_recovery"]


# The highest PSNR a sample gets: an error below float32's resolution of the peak (2^-24 · max, the models
# compute in float32) is not measurable, so it counts as that error: 20 log10(2^24) ≈ 144.49 dB. An exact
# reconstruction (e.g. of constant data) is thus a finite number, not +inf, which JSON cannot hold
# (metrics.json would say null, as for a missing value).
PSNR_MAX_DB = 20.0 * math.log10(2.0**24)


def psnr(target, recon, max_value: float = 1.0) -> float:
    r"""Peak signal-to-noise ratio in dB, averaged over samples (SPEC §3).

    .. math::
        \mathrm{PSNR} = \frac{1}{n}\sum_{i=1}^{n} 10 \log_{10}
        \frac{\mathrm{max}^2}{\frac{1}{d}\lVert y_i - \hat y_i\rVert_2^2}

    Per-sample PSNR, then the mean; no clamping of the images (the paper's convention). A sample's PSNR
    is at most :data:`PSNR_MAX_DB` (≈ 144.49 dB: an error below float32's resolution of the peak,
    ``2^-24 · max``, counts as that error), so a sample reconstructed exactly — constant data, a zero
    row — gives 144.49 dB, not +inf, and the mean stays finite. NaN/inf inputs (a diverged model)
    give NaN rather than an error, so the trainer's divergence guard can report them.

    Parameters
    ----------
    target, recon : (n, d) tensor or array
        Images in pixel space (``[0, 1]`` for ``max_value=1``), one flattened image per row.
    max_value : float
        The largest possible pixel value (1 for ``[0, 1]`` images, 255 for bytes).
    """
    target = as_array(target, "target", finite=False)
    recon = as_array(recon, "recon", finite=False)
    if target.shape != recon.shape:
        raise ValueError(f"target and recon must have the same shape, got {target.shape} and {recon.shape}")
    if target.shape[0] == 0 or target.shape[1] == 0:
        raise ValueError(f"psnr needs at least one sample and one feature, got shape {target.shape}")
    max_value = finite_number(max_value, "max_value", positive=True)
    difference = target - recon
    # per row scaled by its largest |difference| (a power of two: exact), so that squares of 1e200 do not
    # overflow: 10 log10(max²/mse) = 20 log10(max / m) − 10 log10(mean((difference / m)²))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        largest = np.abs(difference).max(axis=1)
        scale = np.where(np.isfinite(largest) & (largest > 0), np.exp2(np.floor(np.log2(largest))), 1.0)
        scaled_mse = np.mean((difference / scale[:, None]) ** 2, axis=1)
        per_sample = 20.0 * (np.log10(max_value) - np.log10(scale)) - 10.0 * np.log10(scaled_mse)
    # an inf in one image (not both) gave -inf dB, which a mean or a "best epoch" comparison takes as a number
    per_sample = np.where(np.isfinite(largest), per_sample, np.nan)
    return float(np.mean(np.minimum(per_sample, PSNR_MAX_DB)))  # NaN stays NaN


def sparsity(codes) -> float:
    """Fraction of exactly-zero entries of ``codes`` (n, l), in ``[0, 1]`` (SPEC §3, "sparsity").

    NaN entries count as non-zero (no error: a diverged model is reported by the trainer).
    """
    codes = as_array(codes, "codes", finite=False)
    if codes.size == 0:
        raise ValueError(f"codes is empty (shape {codes.shape}); sparsity is undefined")
    return float(np.mean(codes == 0))


def active_units(codes, threshold: float = 0.5) -> int:
    r"""Number of latents whose standard deviation over samples exceeds ``threshold``.

    .. math:: \#\{j : \operatorname{std}_i(z_{ij}) > \text{threshold}\}

    The "active units" criterion of the sparse-coding VAE papers (issue 5): ``codes`` are posterior
    means (n, l) over a test set; the std is the population std (``ddof=0``). Fewer than 2 samples are
    refused: the std of one sample is 0, which counted every latent inactive (as ``latent_spread`` and
    ``filter_groups`` refuse them).
    """
    return _count_active(codes, threshold, lambda c: c.std(axis=0), min_samples=2)


def active_units_max(codes, threshold: float = 0.5) -> int:
    r"""Number of latents with ``|z_ij| > threshold`` for at least one sample ``i``.

    .. math:: \#\{j : \max_i |z_{ij}| > \text{threshold}\}

    The criterion of the figure caption in the sparse-coding VAE paper (issue 5), beside
    :func:`active_units`'s std criterion of its text.
    """
    return _count_active(codes, threshold, lambda c: np.abs(c).max(axis=0))


def _count_active(codes, threshold, statistic, min_samples: int = 1) -> int:
    """How many latents (columns of ``codes``) have ``statistic(codes)`` above ``threshold``."""
    codes = as_array(codes, "codes")
    threshold = finite_number(threshold, "threshold")
    if codes.shape[0] == 0:
        raise ValueError("codes has no samples; active units are undefined")
    if codes.shape[0] < min_samples:
        raise ValueError(f"codes has {codes.shape[0]} sample(s), but the std criterion of active units needs "
                         f"at least {min_samples} (the std of one sample is 0: every latent would count "
                         f"inactive); pass the codes of more samples, or use active_units_max")
    return int(np.sum(statistic(codes) > threshold))


def dead_atoms(codes) -> int:
    r"""Number of code components (atoms) that are exactly zero for every sample.

    .. math:: \#\{j : z_{ij} = 0 \ \forall i\}
    """
    codes = as_array(codes, "codes")
    if codes.shape[0] == 0:
        raise ValueError("codes has no samples; dead atoms are undefined")
    return int(np.sum(np.all(codes == 0, axis=0)))


def dictionary_recovery(learned, true, threshold: float = 0.9) -> float:
    r"""Fraction of true atoms matched by some learned atom with absolute cosine similarity > threshold.

    .. math::
        \frac{1}{k}\#\Big\{t : \max_j \frac{|\langle w_j, v_t\rangle|}{\lVert w_j\rVert\,\lVert v_t\rVert}
        > \text{threshold}\Big\}

    The recovery measure for synthetic data with a known dictionary (SPEC §6). Several true atoms may be
    matched by the same learned atom (no one-to-one assignment), as in the usual definition.

    Parameters
    ----------
    learned : (d, l) tensor or array
        Learned atoms as columns.
    true : (d, k) tensor or array
        Ground-truth atoms as columns.
    threshold : float
        Cosine threshold in ``(0, 1)`` (0.9 in SPEC §6); no cosine exceeds 1.
    """
    learned = as_array(learned, "learned")
    true = as_array(true, "true")
    if learned.shape[0] != true.shape[0]:
        raise ValueError(
            f"learned (d, l) and true (d, k) atoms must have the same dimension d, "
            f"got {learned.shape} and {true.shape}; atoms are columns"
        )
    if true.shape[1] == 0 or learned.shape[1] == 0 or true.shape[0] == 0:
        raise ValueError(f"need at least one atom of at least one dimension, got learned {learned.shape} and "
                         f"true {true.shape}")
    threshold = finite_number(threshold, "threshold", positive=True)
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1) (a match is a cosine above it, and no cosine exceeds "
                         f"1; e.g. 0.99 for near-exact recovery), got {threshold}")
    # each atom divided by its largest entry first, so that the norms neither overflow (entries ≳ 1e154
    # square beyond float64) nor underflow (≲ 1e-154) — cosines do not depend on the atoms' scale
    learned = learned / np.where(np.abs(learned).max(axis=0) > 0, np.abs(learned).max(axis=0), 1.0)
    true = true / np.where(np.abs(true).max(axis=0) > 0, np.abs(true).max(axis=0), 1.0)
    learned_norms = np.linalg.norm(learned, axis=0)
    true_norms = np.linalg.norm(true, axis=0)
    if np.any(true_norms == 0):
        raise ValueError("true dictionary has an all-zero atom; its cosine similarity is undefined")
    # A zero learned atom (dead) matches nothing: give it cosine 0 instead of dividing by zero.
    safe_learned = learned / np.where(learned_norms > 0, learned_norms, 1.0)
    cosines = np.abs(safe_learned.T @ (true / true_norms))  # (l, k)
    return float(np.mean(cosines.max(axis=0) > threshold))
