"""The fused Gram-form step with the variance hinge (VDL, linear decoder, fixed step; issue 15)."""

import pytest
import torch

from sparsecoder.inference.fista import fista
from tests.inference.helpers import assert_energy_optimality


@pytest.mark.parametrize("positive", [True, False])
def test_linear_decoder_with_hinge_meets_optimality_of_full_energy(positive):
    """β > 0 with a dictionary: the codes satisfy the L1 optimality conditions of the SPEC §2.1 energy,
    whose smooth gradient is taken by autograd (independent of the fused closed form)."""
    torch.manual_seed(1)
    n, l, d = 30, 8, 12
    W = torch.randn(d, l, dtype=torch.float64)
    W /= W.norm(dim=0)
    Y = torch.randn(n, d, dtype=torch.float64)
    z_encoder = torch.rand(n, l, dtype=torch.float64) * 0.3
    lam, beta, gamma, T = 0.01, 0.5, 0.3, 0.5
    result = fista(Y, W, lam, z0=z_encoder, step=1.0, max_iter=5000, tol=1e-10, positive=positive,
                   beta=beta, var_threshold=T, gamma=gamma, record_energy=False)
    assert_energy_optimality(result.codes, Y, lambda Z: Z @ W.T, z_encoder, lam, beta, T, gamma, positive)
    assert bool(result.converged.all())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_hinge_step_follows_the_generic_step(dtype):
    """Same iterates, iteration counts and freezing as the generic (full-batch copy) step, which the
    data-parallel path still uses: a single process with an identity ``reduce`` takes it."""
    torch.manual_seed(0)
    W = torch.randn(50, 20, dtype=dtype)
    W /= W.norm(dim=0)
    Y = torch.randn(40, 50, dtype=dtype)
    z0 = torch.rand(40, 20, dtype=dtype) * 0.1
    kwargs = dict(z0=z0, beta=5.0, var_threshold=0.5, step=0.2, gamma=0.3, max_iter=150, tol=1e-3,
                  record_energy=False)
    fused = fista(Y, W, 0.01, **kwargs)
    generic = fista(Y, W, 0.01, reduce=lambda t: t, **kwargs)
    assert 0 < int(fused.converged.sum()) < 40 or bool(fused.converged.all())
    assert torch.equal(fused.n_iter, generic.n_iter)
    atol = 1e-12 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(fused.codes, generic.codes, atol=atol, rtol=0)
    assert fused.n_iter.min() < fused.n_iter.max()  # samples froze at different times: frozen stats used


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fused_hinge_step_on_cuda_matches_cpu():
    """The same problem on CUDA and on the CPU (float64): same codes and iteration counts."""
    torch.manual_seed(2)
    W = torch.randn(50, 20, dtype=torch.float64)
    W /= W.norm(dim=0)
    Y = torch.randn(40, 50, dtype=torch.float64)
    z0 = torch.rand(40, 20, dtype=torch.float64) * 0.1
    kwargs = dict(beta=5.0, var_threshold=0.5, step=0.2, max_iter=150, tol=1e-3, record_energy=False)
    cpu = fista(Y, W, 0.01, z0=z0, **kwargs)
    gpu = fista(Y.cuda(), W.cuda(), 0.01, z0=z0.cuda(), **kwargs)
    assert torch.equal(cpu.n_iter, gpu.n_iter.cpu())
    torch.testing.assert_close(gpu.codes.cpu(), cpu.codes, atol=1e-10, rtol=0)


def test_batch_hinge_factors_match_autograd_with_frozen_rows_and_degenerate_components():
    """``scale ⊙ (V − μ)`` of the fused steps is −η times the hinge gradient over the whole batch (working
    rows plus the frozen rows' sums): autograd on :func:`variance_hinge` for components with 0 < σ, and 0
    for a component with no spread (σ = 0) and one above the threshold (σ > T)."""
    from sparsecoder.inference.energy import variance_hinge
    from sparsecoder.inference.fista import _BatchHinge

    torch.manual_seed(3)
    n, l, eta, beta, T = 12, 5, 0.3, 2.0, 0.5
    Z = torch.rand(n, l, dtype=torch.float64) * 0.4
    Z[:, 0] = 0.0  # a dead component: σ = 0
    Z[:, 1] = torch.randn(n, dtype=torch.float64) * 3.0  # σ > T: no hinge
    frozen, working = Z[:4], Z[4:]
    hinge = _BatchHinge()
    hinge.eta, hinge.beta, hinge.var_threshold, hinge.n = eta, beta, T, n
    hinge._start_hinge(l, Z.device)
    hinge.last = frozen
    hinge._add_frozen(torch.arange(4))
    scale, mean = hinge._hinge_coefficient(working)
    torch.testing.assert_close(mean, Z.mean(dim=0), atol=1e-14, rtol=0)
    full = Z.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(variance_hinge(full, beta, T), full)
    expected = -eta * gradient[4:]
    torch.testing.assert_close(scale * (working - mean), expected, atol=1e-12, rtol=1e-10)
    assert float(scale[0]) == 0.0 and float(scale[1]) == 0.0
    assert bool((scale[2:] > 0).all())
