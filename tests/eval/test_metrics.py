"""Evaluation metrics against values computed by hand (and scikit-image's PSNR)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

from sparsecoder.eval.metrics import (
    PSNR_MAX_DB,
    active_units,
    active_units_max,
    dead_atoms,
    dictionary_recovery,
    psnr,
    sparsity,
)


def test_psnr_by_hand_is_the_mean_of_per_sample_values():
    target = np.zeros((2, 4))
    recon = np.array([[0.1, 0.1, 0.1, 0.1],    # MSE 0.01 -> 20 dB
                      [0.0, 0.0, 0.0, 0.2]])   # MSE 0.04/4 = 0.01 -> 20 dB
    assert psnr(target, recon) == pytest.approx(20.0)
    recon[1] = [0.0, 0.0, 0.0, 0.02]           # MSE 1e-4 -> 40 dB; mean of 20 and 40, not PSNR of mean MSE
    assert psnr(target, recon) == pytest.approx(30.0)
    assert psnr(target * 255, recon * 255, max_value=255) == pytest.approx(30.0)


def test_psnr_matches_skimage_per_sample_without_clamping():
    rng = np.random.default_rng(0)
    target = rng.uniform(0, 1, (5, 64))
    recon = target + rng.normal(0, 0.3, (5, 64))  # values outside [0, 1]: no clamping
    expected = np.mean([peak_signal_noise_ratio(t, r, data_range=1.0)
                        for t, r in zip(target, recon, strict=True)])
    assert psnr(torch.tensor(target, dtype=torch.float64), torch.tensor(recon)) == pytest.approx(expected)


def test_psnr_edge_cases():
    # an exact reconstruction is PSNR_MAX_DB (float32's resolution of the peak), not +inf (null in JSON)
    assert psnr(np.ones((1, 3)), np.ones((1, 3))) == pytest.approx(144.4943979, abs=1e-6) == PSNR_MAX_DB
    assert psnr(np.ones((2, 3)) * 7, np.ones((2, 3)) * 7, max_value=255) == PSNR_MAX_DB
    # a sample below the cap keeps its value; the mean mixes them (was +inf whenever one sample was exact)
    assert psnr(np.zeros((2, 3)), np.array([[0.0] * 3, [0.1] * 3])) == pytest.approx((PSNR_MAX_DB + 20) / 2)
    assert psnr(np.zeros((1, 3)), np.full((1, 3), 2.0**-25)) == PSNR_MAX_DB  # below float32's resolution
    assert math.isnan(psnr(np.ones((1, 3)), np.full((1, 3), np.nan)))
    with pytest.raises(ValueError, match="same shape"):
        psnr(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="2-D"):
        psnr(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="max_value"):
        psnr(np.ones((1, 3)), np.zeros((1, 3)), max_value=0)


def test_sparsity_counts_exact_zeros():
    codes = torch.tensor([[0.0, 1e-12, -2.0], [0.0, 0.0, 3.0]])
    assert sparsity(codes) == pytest.approx(3 / 6)
    with pytest.raises(ValueError, match="empty"):
        sparsity(np.zeros((0, 3)))


def test_active_units_std_and_max_criteria():
    codes = np.array([[0.0, 2.0, 0.9, 0.1],
                      [0.0, -2.0, 0.9, 0.1],
                      [0.0, 0.0, 0.9, 0.1]])
    # std (ddof=0) per column: 0, sqrt(8/3)=1.63, 0, 0 -> one active unit
    assert active_units(codes) == 1
    assert active_units(codes, threshold=2.0) == 0
    # max |z| per column: 0, 2, 0.9, 0.1 -> two above 0.5, one above 1
    assert active_units_max(codes) == 2
    assert active_units_max(torch.tensor(codes), threshold=1.0) == 1
    # one sample: no spread to measure (was 0 active, silently); the max criterion is defined
    with pytest.raises(ValueError, match="1 sample.*at least 2"):
        active_units(codes[:1])
    assert active_units_max(codes[:1]) == 2


def test_dead_atoms_are_never_non_zero():
    codes = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, -1e-30]])
    assert dead_atoms(codes) == 1
    assert dead_atoms(np.zeros((4, 5))) == 5


def test_dictionary_recovery_by_hand():
    true = np.eye(3)  # atoms e1, e2, e3 (columns)
    angle = np.deg2rad(20)  # cos 20° = 0.94 > 0.9
    learned = np.array([[np.cos(angle), 0.0, 0.0],
                        [np.sin(angle), 0.0, 0.0],
                        [0.0, -3.0, 0.0]])  # matches e1 (cos .94), -e3 scaled (|cos| 1), dead atom
    assert dictionary_recovery(learned, true) == pytest.approx(2 / 3)
    assert dictionary_recovery(learned, true, threshold=0.95) == pytest.approx(1 / 3)
    # A learned atom equally close to e1 and e2 (cos 0.707) recovers neither.
    assert dictionary_recovery(np.array([[1.0], [1.0], [0.0]]), true) == 0.0
    with pytest.raises(ValueError, match="same dimension"):
        dictionary_recovery(np.ones((4, 2)), true)
    with pytest.raises(ValueError, match="all-zero"):
        dictionary_recovery(learned, np.zeros((3, 1)))


def test_dictionary_recovery_of_a_permuted_rescaled_dictionary_is_complete():
    rng = np.random.default_rng(1)
    true = rng.normal(size=(25, 10))
    learned = true[:, rng.permutation(10)] * rng.choice([-2.0, 0.5], size=10)
    learned = np.concatenate([learned, rng.normal(size=(25, 5))], axis=1)
    assert dictionary_recovery(learned, true) == 1.0
    assert dictionary_recovery(rng.normal(size=(25, 15)), true) == 0.0


def test_metrics_reject_non_finite_codes():
    with pytest.raises(ValueError, match="NaN"):
        active_units(np.array([[np.nan, 1.0]]))


@pytest.mark.parametrize("bad", [torch.zeros(1, 3, dtype=torch.complex64), np.zeros((1, 3)) + 1j])
def test_metrics_refuse_complex_values_instead_of_dropping_the_imaginary_part(bad):
    with pytest.raises(ValueError, match="complex"):
        psnr(bad, np.zeros((1, 3)))


def test_psnr_max_value_takes_a_zero_d_array_or_tensor_and_refuses_the_rest():
    target, recon = np.zeros((2, 4)), np.full((2, 4), 0.1)  # MSE 0.01: 20 dB at max 1
    assert psnr(target, recon, max_value=torch.tensor(1.0)) == pytest.approx(20.0)
    assert psnr(target, recon, max_value=np.float32(1.0)) == pytest.approx(20.0)
    for bad in (np.array([1.0, 2.0]), float("inf"), float("nan"), 0.0, "1"):
        with pytest.raises(ValueError, match="max_value"):
            psnr(target, recon, max_value=bad)


def test_dictionary_recovery_does_not_depend_on_the_atoms_scale():
    atoms = np.random.default_rng(0).standard_normal((5, 4))
    for scale in (1e-200, 1e-170, 1.0, 1e200):
        assert dictionary_recovery(atoms * scale, atoms) == 1.0
        assert dictionary_recovery(atoms * scale, atoms * scale) == 1.0
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        dictionary_recovery(np.eye(3), np.eye(3), threshold=1.0)


@pytest.mark.parametrize("fn", ["active_units", "active_units_max"])
@pytest.mark.parametrize("threshold", [float("nan"), -1.0, "0.5", True, float("inf")])
def test_active_units_refuse_a_threshold_that_is_not_a_finite_number_ge_0(fn, threshold):
    """NaN counted no unit active and -1 every unit, silently; a string failed inside numpy."""
    import sparsecoder.eval.metrics as metrics

    codes = np.arange(12.0).reshape(4, 3)
    with pytest.raises(ValueError, match="threshold must be a finite number >= 0"):
        getattr(metrics, fn)(codes, threshold=threshold)
    assert getattr(metrics, fn)(codes, threshold=np.float32(0.5)) == 3


def test_psnr_of_huge_and_tiny_differences_is_finite_and_exact():
    """Squares of 1e200 overflowed to inf, so the PSNR was −inf instead of about −4000 dB; by hand, a
    constant difference c gives 10 log10(1 / c²) = −20 log10(c)."""
    x = np.random.default_rng(0).random((4, 10))
    for c in (1e200, 1e-7, 3.0):
        assert psnr(np.zeros((4, 10)), np.full((4, 10), c)) == pytest.approx(-20 * np.log10(c), rel=1e-9)
    assert psnr(np.zeros((4, 10)), np.full((4, 10), 1e-200)) == PSNR_MAX_DB  # below float32's resolution
    assert psnr(x * 1e200, x * 1e200 + 1e200) == pytest.approx(-4000.0, rel=1e-9)
    assert psnr(x, x) == PSNR_MAX_DB
    assert math.isnan(psnr(x, x * np.nan))


@pytest.mark.parametrize("bad", [[["a", "b"]], [[1.0, 2.0], [3.0]]])
def test_unreadable_arrays_are_refused_naming_the_argument(bad):
    with pytest.raises(ValueError, match="recon must be an array of real numbers"):
        psnr(np.ones((1, 2)), bad)


def test_scipy_sparse_is_refused_naming_toarray_and_bfloat16_tensors_are_read():
    # audit 2026-11-29: a sparse matrix was "numpy cannot read this csr_matrix as one (setting an array
    # element with a sequence.)", without the fix
    import scipy.sparse

    codes = np.array([[0.0, 1.0], [2.0, 0.0]])
    with pytest.raises(TypeError, match=r"codes is a scipy sparse csr_matrix.*pass codes.toarray\(\)"):
        sparsity(scipy.sparse.csr_matrix(codes))
    with pytest.raises(TypeError, match=r"recon is a scipy sparse"):
        psnr(codes, scipy.sparse.csr_matrix(codes))
    assert sparsity(torch.tensor(codes).bfloat16()) == 0.5


@pytest.mark.parametrize("threshold", ["0.9", None, float("nan"), True])
def test_dictionary_recovery_refuses_a_threshold_that_is_not_a_number(threshold):
    with pytest.raises(ValueError, match="threshold must be"):
        dictionary_recovery(np.eye(3), np.eye(3), threshold=threshold)


def test_dictionary_recovery_takes_a_zero_d_threshold_and_refuses_zero_dimensions():
    assert dictionary_recovery(np.eye(3), np.eye(3), threshold=torch.tensor(0.9)) == 1.0
    with pytest.raises(ValueError, match="at least one dimension"):
        dictionary_recovery(np.zeros((0, 2)), np.zeros((0, 2)))


def test_no_module_imports_another_modules_private_name():
    # audit 2026-11-29: viz and the eval measures imported metrics' _as_array, _native_array and
    # _finite_number (and data, config and inference each other's private names); shared helpers have a
    # public home (sparsecoder.util, or a public name in their module)
    import ast
    from pathlib import Path

    import sparsecoder

    root = Path(sparsecoder.__file__).parent
    private = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sparsecoder"):
                private += [f"{path.relative_to(root)}: {node.module}.{alias.name}" for alias in node.names
                            if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert private == []
