"""Priors, posteriors and KL divergences of the VAE families (SPEC §4–§5).

Every distribution here is factorised over latents and parameterised per sample by a location and a
log-scale tensor of shape ``(n, l)``. KL divergences are per sample *and* per latent (shape ``(n, l)``),
so callers can sum over latents for the ELBO or average over samples for per-latent KL.

Closed forms used (``kl="analytic"``):

* Gauss‖Gauss: ``KL(N(μ,σ²)‖N(0,s²)) = log(s/σ) + (σ² + μ²)/(2s²) − ½``.
* Gauss‖Laplace(0, b): ``KL = −½log(2πeσ²) + log(2b) + E|z|/b`` with the folded-normal mean
  ``E|z| = σ√(2/π)·exp(−μ²/2σ²) + μ(1 − 2Φ(−μ/σ))`` (SPEC §4).
* Cauchy‖Cauchy: ``KL(C(μ₁,s₁)‖C(μ₂,s₂)) = log[((s₁+s₂)² + (μ₁−μ₂)²) / (4 s₁ s₂)]`` (SPEC §5).

Any other pair (or ``kl="monte_carlo"``) uses the Monte-Carlo estimate
``(1/S) Σ_s [log q(z_s) − log p(z_s)]`` with reparameterised samples ``z_s ~ q``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# the families and the closed-form pairs are defined torch-free, where VAEConfig checks them
from sparsecoder.models.configs import ANALYTIC_PAIRS, POSTERIORS, PRIORS  # noqa: F401 - re-exported

_LOG_2PI = math.log(2.0 * math.pi)
# |μ|/σ beyond which the folded-normal mean is |μ| to float64 precision (exp(−40²/2) underflows to 0)
_FOLDED_FAR = 40.0


@dataclass
class Posterior:
    """A factorised posterior ``q(z|x)``: ``family`` ∈ {"gaussian", "cauchy"}, location and log-scale.

    For the Gaussian the scale is the standard deviation σ (``log_scale = ½ log σ²``, the log-variance
    head divided by two); for the Cauchy it is the scale ``s``.
    """

    family: str
    loc: torch.Tensor
    log_scale: torch.Tensor

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.exp()

    def rsample(self, n_samples: int | None = None) -> torch.Tensor:
        """Reparameterised samples, fresh noise from torch's global generator on every call.

        Gaussian: ``z = μ + σ·ε``, ``ε ~ N(0, 1)``. Cauchy: ``z = μ + s·tan(π(u − ½))``, ``u ~ U(0, 1)``.
        Shape ``(n, l)``, or ``(S, n, l)`` with ``n_samples=S``.
        """
        return self.loc + self.scale * self._noise(n_samples)

    def rsample_and_log_prob(self, n_samples: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised samples ``z`` (as :meth:`rsample`) and ``log q(z)``, the latter from the noise:
        ``log q(z) = log f(ε) − log s`` exactly, as a function of the parameters too (``z − μ = s·ε``).

        Recomputed from ``z`` it is not: next to a location far larger than the scale (μ = 10, s = e^-16),
        ``z`` rounds to a float32 grid coarser than ``s`` and ``(z − μ)/s`` is 0 or ±8.5 instead of ``ε``
        (a Monte-Carlo KL 0.5 nats per latent too high).
        """
        noise = self._noise(n_samples)
        return self.loc + self.scale * noise, log_density(self.family, noise, 0.0, 0.0) - self.log_scale

    def _noise(self, n_samples: int | None) -> torch.Tensor:
        shape = self.loc.shape if n_samples is None else (n_samples, *self.loc.shape)
        if self.family == "gaussian":
            return torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        return standard_cauchy(shape, dtype=self.loc.dtype, device=self.loc.device)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return log_density(self.family, z, self.loc, self.log_scale)


def log_density(family: str, z: torch.Tensor, loc, log_scale) -> torch.Tensor:
    """Element-wise log density of a Gaussian (scale = σ), Laplace (scale = b) or Cauchy (scale = s)."""
    loc = torch.as_tensor(loc, dtype=z.dtype, device=z.device)
    log_scale = torch.as_tensor(log_scale, dtype=z.dtype, device=z.device)
    diff = z - loc
    # z = loc exactly (a posterior sample whose scale underflowed to 0 in float32) is t = 0, not 0/0 = NaN;
    # the stand-in denominator keeps the gradient of the unused branch finite too
    nonzero = diff != 0
    standard = torch.where(nonzero, diff, torch.zeros_like(diff)) / torch.where(
        nonzero, log_scale.exp(), torch.ones_like(log_scale))
    if family == "gaussian":
        return -0.5 * standard.square() - log_scale - 0.5 * _LOG_2PI
    if family == "laplace":
        return -standard.abs() - log_scale - math.log(2.0)
    if family == "cauchy":
        return -_log1p_square(z - loc, log_scale) - log_scale - math.log(math.pi)
    raise ValueError(f"unknown distribution family {family!r}; choose one of {list(PRIORS)}")


def _log1p_square(diff: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """``log(1 + t²)`` with ``t = diff / exp(log_scale)``, finite wherever the true value is.

    The plain ``log1p(t²)`` overflows once ``|t|`` passes ~1.8e19 in float32 (a heavy-tailed sample far
    out, or a tiny scale), giving a log density of −inf (and a KL of inf) where the value is about
    ``−2 log|t|``. For ``|t| > 1`` it is computed as ``2 log|t| + log1p(1/t²)`` with ``log|t|`` taken in
    log space, which cannot overflow.
    """
    log_scale = torch.as_tensor(log_scale, dtype=diff.dtype, device=diff.device)
    nonzero = diff != 0
    # the masked-out entries get harmless stand-ins, so that no branch gives NaN gradients (log 0, inf·0)
    log_abs_t = torch.log(torch.where(nonzero, diff, torch.ones_like(diff)).abs()) - log_scale
    small = ~nonzero | (log_abs_t <= 0)
    # (diff = 0 with a scale that underflowed to 0 was 0/0 = NaN: a Cauchy posterior's log q at z = μ)
    t_small = torch.where(small & nonzero, diff, torch.zeros_like(diff)) / torch.where(
        small & nonzero, log_scale.exp(), torch.ones_like(log_scale))
    big = torch.where(small, torch.zeros_like(log_abs_t), log_abs_t)
    return torch.where(small, torch.log1p(t_small.square()), 2 * big + torch.log1p(torch.exp(-2 * big)))


def _log_cosh(y: torch.Tensor) -> torch.Tensor:
    """``log cosh(y)`` without cancellation near 0 (``log1p(2 sinh²(y/2))``) or overflow for large
    ``|y|`` (``|y| + log1p(e^{−2|y|}) − log 2``); each branch on stand-in inputs: gradients stay finite."""
    small = y.abs() < 1
    y_small = torch.where(small, y, torch.zeros_like(y))
    y_big = torch.where(small, torch.ones_like(y), y).abs()
    return torch.where(small, torch.log1p(2 * torch.sinh(0.5 * y_small).square()),
                       y_big + torch.log1p(torch.exp(-2 * y_big)) - math.log(2.0))


def standard_cauchy(shape, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """Standard Cauchy noise ``tan(π(u − ½))``, ``u ~ U(0, 1)`` from torch's global generator, finite and
    accurate to float rounding in the tails.

    ``u`` is kept inside ``[eps, 1 − eps]`` (``eps`` of ``dtype``; ``tan(±π/2)`` is infinite), which bounds
    ``|noise|`` by ``1/tan(π·eps)`` (2.7e6 in float32, 1.4e15 in float64; the tails beyond have
    probability ``2·eps``). Near ``u = 0`` or ``1`` the argument ``π(u − ½)`` is within rounding of
    ``±π/2``, where ``tan`` is off by 20% in float32 (even of the wrong sign at ``float32(π/2)``); there the
    identity ``tan(π(u − ½)) = ±1/tan(π·m)`` with ``m = min(u, 1 − u)`` (exact, ``1 − u`` has no
    rounding for ``u ≥ ½``) is used, whose small argument ``π·m`` has full relative precision.
    """
    u = torch.rand(shape, dtype=dtype, device=device)
    eps = torch.finfo(u.dtype).eps
    u = u.clamp(eps, 1 - eps)
    m = torch.minimum(u, 1 - u)
    tail = torch.where(u < 0.5, -1.0, 1.0).to(u.dtype) / torch.tan(math.pi * m)
    return torch.where(m < 0.25, tail, torch.tan(math.pi * (u - 0.5)))


def sample_prior(family: str, scale: float, shape, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """Samples of the factorised prior (Gaussian N(0, scale²), Laplace(0, scale), Cauchy(0, scale)).

    Cauchy samples are ``scale · standard_cauchy`` (finite, ``|z| ≤ 2.7e6·scale`` in float32), as the
    posterior's: ``torch.distributions.Cauchy`` draws its uniforms in float64, up to ``1.6e16·scale``.
    """
    if family == "gaussian":
        return scale * torch.randn(shape, dtype=dtype, device=device)
    if family == "laplace":
        return torch.distributions.Laplace(0.0, scale).sample(shape).to(dtype=dtype, device=device)
    if family == "cauchy":
        return scale * standard_cauchy(shape, dtype=dtype, device=device)
    raise ValueError(f"unknown prior {family!r}; choose one of {list(PRIORS)}")


def folded_normal_mean(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``E|z|`` for ``z ~ N(μ, σ²)``: ``σ√(2/π)·exp(−μ²/2σ²) + μ(1 − 2Φ(−μ/σ))``.

    Where ``|μ| > 40σ`` (σ that underflowed to 0 included) it is ``|μ|``: there ``exp(−μ²/2σ²)`` and
    ``Φ(−|μ|/σ)`` are 0 even in float64, and the formula's ``μ/σ`` (0/0, or inf in float32) gave NaN values
    or NaN gradients. The other branch is computed on stand-in inputs, so its gradient stays finite too.
    """
    far = ~(mu.abs() <= _FOLDED_FAR * sigma) | (sigma == 0)
    ratio = torch.where(far, torch.zeros_like(mu), mu) / torch.where(far, torch.ones_like(sigma), sigma)
    phi = 0.5 * torch.erfc(ratio / math.sqrt(2.0))  # Φ(−μ/σ)
    near = sigma * math.sqrt(2.0 / math.pi) * torch.exp(-0.5 * ratio.square()) + mu * (1 - 2 * phi)
    return torch.where(far, mu.abs(), near)


def kl_analytic(posterior: Posterior, prior: str, prior_scale: float) -> torch.Tensor:
    """Closed-form ``KL(q‖p)`` per sample and latent, for the pairs in :data:`ANALYTIC_PAIRS`."""
    pair = (posterior.family, prior)
    mu, log_s = posterior.loc, posterior.log_scale
    if pair == ("gaussian", "gaussian"):
        # with d = log(σ/s): ½(e^{2d} − 1 − 2d) + μ²/2s², the first term by expm1: written as
        # log s − log σ + σ²/2s² − ½ its terms cancelled to ±6e-8 in float32 (a negative KL) for σ near s
        d = log_s - math.log(prior_scale)
        return 0.5 * (torch.expm1(2 * d) - 2 * d).clamp_min(0) + mu.square() / (2 * prior_scale**2)
    if pair == ("gaussian", "laplace"):
        entropy = 0.5 * (_LOG_2PI + 1.0) + log_s  # ½ log(2πeσ²)
        return -entropy + math.log(2 * prior_scale) + folded_normal_mean(mu, log_s.exp()) / prior_scale
    if pair == ("cauchy", "cauchy"):
        # (s₁+s₂)²/4s₁s₂ = cosh²(d/2) with d = log(s₁/s₂): KL = 2 log cosh(d/2) + log(1 + μ²/(s₁+s₂)²), in
        # log space, so that a scale s₁ = e^{log s} that under- or overflows in float32 still gives the finite
        # KL (it was log(x/0) = inf), and without the cancelling terms that gave ±2.4e-7 for s₁ near s₂
        log_s2 = math.log(prior_scale)
        log_sum = torch.logaddexp(log_s, torch.full_like(log_s, log_s2))
        return 2 * _log_cosh(0.5 * (log_s - log_s2)) + _log1p_square(mu, log_sum)
    raise ValueError(
        f"no closed-form KL for a {posterior.family} posterior and a {prior} prior; "
        f"analytic pairs (posterior, prior): {sorted(ANALYTIC_PAIRS)} — use kl=monte_carlo"
    )


def kl_monte_carlo(posterior: Posterior, prior: str, prior_scale: float, n_samples: int,
                   z: torch.Tensor | None = None) -> torch.Tensor:
    """Monte-Carlo ``KL(q‖p) ≈ (1/S) Σ_s [log q(z_s) − log p(z_s)]`` per sample and latent.

    ``z`` (shape ``(S, n, l)``) may be given to reuse reparameterised samples; else ``n_samples`` are drawn.
    """
    if z is None:
        z, log_q = posterior.rsample_and_log_prob(n_samples)
    else:
        log_q = posterior.log_prob(z)
    log_p = log_density(prior, z, 0.0, math.log(prior_scale))
    return (log_q - log_p).mean(dim=0)


def kl_divergence(posterior: Posterior, prior: str, prior_scale: float, *, method: str = "analytic",
                  n_samples: int = 1) -> torch.Tensor:
    """``KL(q‖p)`` per sample and latent by ``method`` ∈ {"analytic", "monte_carlo"}."""
    if method == "analytic":
        return kl_analytic(posterior, prior, prior_scale)
    if method == "monte_carlo":
        return kl_monte_carlo(posterior, prior, prior_scale, n_samples)
    raise ValueError(f"KL method {method!r} is not allowed; choose 'analytic' or 'monte_carlo'")
