"""Energy terms (SPEC §2.1) against hand computations and autograd; reference ↔ lasso scaling."""

import numpy as np
import pytest
import torch

from sparsecoder.inference import (
    encoder_proximity_energy,
    encoder_proximity_grad,
    l1_energy,
    lam_to_lasso_alpha,
    lasso_alpha_to_lam,
    lasso_objective,
    lasso_to_reference_objective,
    reconstruction_energy,
    reference_to_lasso_objective,
    total_energy,
    variance_hinge,
    variance_hinge_grad,
)


def test_terms_match_hand_computation():
    rng = np.random.default_rng(0)
    Y, R = rng.standard_normal((5, 7)), rng.standard_normal((5, 7))
    Z, E = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    t = torch.tensor
    assert reconstruction_energy(t(Y), t(R)).item() == pytest.approx(((Y - R) ** 2).sum() / 7)
    np.testing.assert_allclose(
        reconstruction_energy(t(Y), t(R), per_sample=True).numpy(), ((Y - R) ** 2).mean(1)
    )
    assert l1_energy(t(Z), 0.3).item() == pytest.approx(0.3 * np.abs(Z).sum())
    assert encoder_proximity_energy(t(Z), t(E), 2.0).item() == pytest.approx(2.0 * ((Z - E) ** 2).sum() / 3)
    std = Z.std(axis=0, ddof=1)
    assert variance_hinge(t(Z), 4.0, 1.2).item() == pytest.approx(4.0 * (np.maximum(1.2 - std, 0) ** 2).sum())
    total = total_energy(t(Y), t(R), t(Z), 0.3, beta=4.0, var_threshold=1.2, gamma=2.0, Z_encoder=t(E))
    expected = ((Y - R) ** 2).sum() / 7 + 0.3 * np.abs(Z).sum() + 4.0 * (np.maximum(1.2 - std, 0) ** 2).sum()
    assert total.item() == pytest.approx(expected + 2.0 * ((Z - E) ** 2).sum() / 3)


@pytest.mark.parametrize("var_threshold", [0.5, 1.0, 3.0])
def test_variance_hinge_gradient_equals_autograd(var_threshold):
    generator = torch.Generator().manual_seed(0)
    # columns with very different spreads: some below T (hinge active), some above (inactive)
    scales = torch.tensor([0.05, 0.2, 0.4, 0.8, 1.5, 3.0], dtype=torch.float64)
    Z = (torch.randn(40, 6, generator=generator, dtype=torch.float64) * scales).requires_grad_(True)
    (expected,) = torch.autograd.grad(variance_hinge(Z, 10.0, var_threshold), Z)
    closed_form = variance_hinge_grad(Z.detach(), 10.0, var_threshold)
    torch.testing.assert_close(closed_form, expected, rtol=1e-10, atol=1e-12)
    assert closed_form.abs().sum() > 0


def test_variance_hinge_gradient_is_zero_for_a_constant_column():
    Z = torch.randn(10, 3, dtype=torch.float64)
    Z[:, 1] = 0.7
    gradient = variance_hinge_grad(Z, 1.0, 0.5)
    assert torch.isfinite(gradient).all() and (gradient[:, 1] == 0).all()


def test_encoder_proximity_gradient_equals_autograd():
    Z = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    E = torch.randn(6, 4, dtype=torch.float64)
    (expected,) = torch.autograd.grad(encoder_proximity_energy(Z, E, 5.0), Z)
    torch.testing.assert_close(encoder_proximity_grad(Z.detach(), E, 5.0), expected)


def test_reference_scaling_equals_lasso_scaling_times_two_over_d():
    """(1/d)||y − Wz||² + λ||z||₁ = (2/d)[½||y − Wz||² + α||z||₁] with α = dλ/2, for any y, W, z."""
    rng = np.random.default_rng(3)
    d, l, lam = 50, 20, 0.013
    W, Y, Z = rng.standard_normal((d, l)), rng.standard_normal((8, d)), rng.standard_normal((8, l))
    alpha = lam_to_lasso_alpha(lam, d)
    assert alpha == pytest.approx(d * lam / 2)
    assert lasso_alpha_to_lam(alpha, d) == pytest.approx(lam)
    reference = (((Y - Z @ W.T) ** 2).mean(axis=1) + lam * np.abs(Z).sum(axis=1)).sum()
    lasso = (0.5 * ((Y - Z @ W.T) ** 2).sum(axis=1) + alpha * np.abs(Z).sum(axis=1)).sum()
    assert reference_to_lasso_objective(reference, d) == pytest.approx(lasso, rel=1e-12)
    assert lasso_to_reference_objective(lasso, d) == pytest.approx(reference, rel=1e-12)


def test_lasso_objective_by_hand():
    """The yardstick every solver test compares codes with (ours against scikit-learn's): ½||x − zD||² +
    α||z||₁ summed over rows, by hand on signed codes (tensors too)."""
    X = np.array([[1.0, 2.0], [0.0, -1.0]])
    D = np.array([[1.0, 0.0], [1.0, 1.0]])  # atoms as rows
    Z = np.array([[0.5, -1.0], [0.0, 0.0]])  # z D = (-0.5, -1): residual (1.5, 3); row 2: (0, -1)
    expected = 0.5 * (1.5**2 + 3**2) + 0.3 * 1.5 + 0.5 * 1.0
    assert lasso_objective(X, D, Z, 0.3) == pytest.approx(expected, rel=1e-15)
    assert lasso_objective(torch.tensor(X), torch.tensor(D), torch.tensor(Z), 0.3) == pytest.approx(expected)


@pytest.mark.parametrize("rows", [0, 1])
def test_variance_hinge_of_fewer_than_two_rows_is_refused_by_name(rows):
    """One row has no batch std: the hinge read NaN (with torch's degrees-of-freedom warning), its gradient
    raised ZeroDivisionError and total_energy(beta > 0) was NaN."""
    Z = torch.rand(rows, 4)
    for call in (lambda: variance_hinge(Z, 1.0), lambda: variance_hinge_grad(Z, 1.0),
                 lambda: total_energy(torch.rand(rows, 3), torch.rand(rows, 3), Z, 0.1, beta=1.0)):
        with pytest.raises(ValueError, match=f"variance hinge needs at least 2 rows .*got {rows}"):
            call()
