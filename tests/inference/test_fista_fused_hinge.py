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
