"""The metrics on tiny tensors against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import torch

from sparsecoder.eval.metrics import active_units, active_units_max, dead_atoms, psnr, sparsity
from sparsecoder.eval.probe import topk_error


def test_psnr_is_the_mean_of_per_image_values_on_the_peak():
    target = np.array([[0.0, 0.5, 1.0, 0.25], [1.0, 1.0, 1.0, 1.0]])
    recon = np.array([[0.1, 0.5, 0.9, 0.25], [0.5, 1.0, 1.0, 1.0]])
    # per image: MSE 0.005 and 0.0625 → 23.0103 and 12.0412 dB (not the PSNR of the pooled MSE, 14.69)
    expected = (10 * math.log10(1 / 0.005) + 10 * math.log10(1 / 0.0625)) / 2
    assert math.isclose(psnr(target, recon), expected, rel_tol=1e-12)
    assert math.isclose(psnr(255 * target, 255 * recon, max_value=255), expected, rel_tol=1e-12)
    assert math.isclose(psnr(target[:1], recon[:1]), 10 * math.log10(200), rel_tol=1e-12)


def test_sparsity_active_units_dead_atoms_and_topk_by_hand():
    assert sparsity(np.array([[0, 1e-9, 0, 2], [0, 0, -1, 0.0]])) == 5 / 8  # exact zeros only
    codes = np.array([[0, 1, 2], [0, 3, 2.1], [0, -1, 2.0]])
    # population stds 0, 1.633, 0.047; max |z| 0, 3, 2.1
    assert active_units(codes, 0.5) == 1 and active_units(codes, 0.04) == 2
    assert active_units_max(codes, 0.5) == 2 and dead_atoms(codes) == 1
    logits = torch.tensor([[1.0, 2, 3], [3, 2, 1], [1, 3, 2.0], [0, 0, 1.0]])
    labels = torch.tensor([0, 0, 0, 2])
    assert topk_error(logits, labels, 1) == 0.5 and topk_error(logits, labels, 2) == 0.5
    assert topk_error(logits, labels, 3) == 0.0


def test_psnr_of_non_finite_images_is_nan_as_documented():
    """An inf in the reconstruction only (a diverged decoder) gave -inf dB: a number that a mean, a sweep's
    table or a best-epoch comparison takes at face value; NaN and inf in either image give NaN."""
    target = np.zeros((2, 4))
    for bad in (np.inf, -np.inf, np.nan):
        recon = np.zeros((2, 4))
        recon[1, 2] = bad
        assert math.isnan(psnr(target, recon)) and math.isnan(psnr(recon, target))
    assert psnr(target, np.full((2, 4), 0.5)) == 20 * math.log10(1 / 0.5)  # finite rows unchanged
