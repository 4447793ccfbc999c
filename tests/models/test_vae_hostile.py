"""Hostile input to the VAE family: heavy-tailed densities at extreme scales are computed finitely."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

from sparsecoder.models.distributions import Posterior, kl_monte_carlo, log_density


@pytest.mark.parametrize("scale", [1e-30, 1e-8, 1.0, 1e8])
def test_cauchy_log_density_is_finite_far_in_the_tails(scale):
    # before: log1p(t²) overflowed for |t| > ~1.8e19 in float32, giving -inf where scipy gives ~-160
    z = torch.tensor([0.0, 1e-3, 1.0, -7.0, 1e20, -1e30])
    got = log_density("cauchy", z, 0.0, math.log(scale))
    want = scipy.stats.cauchy(0, scale).logpdf(z.double().numpy())
    assert torch.isfinite(got).all()
    np.testing.assert_allclose(got.double().numpy(), want, rtol=1e-5)


def test_cauchy_log_density_gradients_are_finite_including_at_the_location():
    z = torch.tensor([0.0, 1e-3, -2.0, 1e30], requires_grad=True)
    log_scale = torch.tensor(math.log(0.5), requires_grad=True)
    log_density("cauchy", z, 0.0, log_scale).sum().backward()
    assert torch.isfinite(z.grad).all() and torch.isfinite(log_scale.grad)
    assert z.grad[0] == 0.0
    t = z.detach()[1:3] / 0.5
    np.testing.assert_allclose(z.grad[1:3].numpy(), (-2 * t / (1 + t**2) / 0.5).numpy(), rtol=1e-5)


def test_monte_carlo_kl_with_a_cauchy_prior_of_tiny_scale_is_finite():
    q = Posterior("gaussian", torch.zeros(2, 3), torch.zeros(2, 3))
    torch.manual_seed(0)
    kl = kl_monte_carlo(q, "cauchy", 1e-30, n_samples=64)
    assert torch.isfinite(kl).all() and (kl > 0).all()
