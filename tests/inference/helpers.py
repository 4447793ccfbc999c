"""Checks shared by the FISTA tests."""

import torch

from sparsecoder.inference import variance_hinge


def assert_energy_optimality(codes, Y, decode, z_encoder, lam, beta, T, gamma, positive):
    """The L1 optimality conditions of the full SPEC §2.1 energy at ``codes``, with the smooth gradient
    (reconstruction through ``decode`` + variance hinge + encoder proximity) taken by autograd."""
    Z = codes.clone().requires_grad_(True)
    smooth = (
        ((Y - decode(Z)) ** 2).mean(dim=1).sum()
        + variance_hinge(Z, beta, T)
        + gamma * ((Z - z_encoder) ** 2).mean(dim=1).sum()
    )
    (gradient,) = torch.autograd.grad(smooth, Z)
    Z = Z.detach()
    nonzero = Z != 0
    scale = gradient.abs().max().item() + lam
    if positive:
        assert (Z >= 0).all()
        assert torch.allclose(gradient[nonzero], torch.full_like(gradient[nonzero], -lam), atol=1e-5 * scale)
        assert (gradient[~nonzero] >= -lam - 1e-5 * scale).all()
    else:
        assert torch.allclose(gradient[nonzero], -lam * torch.sign(Z[nonzero]), atol=1e-5 * scale)
        assert (gradient[~nonzero].abs() <= lam + 1e-5 * scale).all()
    assert nonzero.any() and (~nonzero).any()
    assert variance_hinge(Z, beta, T) > 0  # the hinge is active, so the test exercises its gradient
