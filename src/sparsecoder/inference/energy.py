"""Energy terms of sparse inference (SPEC §2.1, Evtimova & LeCun 2022, eq. 3, 11–12).

All functions are batch-first: ``Y`` is ``(n, d)``, ``Z`` is ``(n, l)``. They use the *reference-code
scaling* of the authors' released code, which is what the paper's hyperparameters (Table 3) assume::

    E(Z) = Σ_i mean_pixels (y_i − D(z_i))²          reconstruction_energy  (no 1/2, mean over d pixels)
         + λ Σ_i ||z_i||_1                           l1_energy
         + β Σ_j [(T − std_j(Z))_+]²                 variance_hinge         (once per batch)
         + γ Σ_i mean_k (z_ik − E(y_i)_k)²           encoder_proximity_energy

For a linear decoder ``D(z) = W z`` with β = γ = 0 the per-sample energy is a rescaled textbook lasso::

    (1/d)||y − Wz||² + λ||z||₁ = (2/d) · [ ½||y − Wz||² + α||z||₁ ],   α = d·λ/2,

so both have the same minimiser; :func:`lam_to_lasso_alpha`, :func:`lasso_alpha_to_lam`,
:func:`reference_to_lasso_objective` and :func:`lasso_to_reference_objective` do the conversion.
"""

from __future__ import annotations

import torch

__all__ = [
    "reconstruction_energy",
    "l1_energy",
    "variance_hinge",
    "variance_hinge_grad",
    "encoder_proximity_energy",
    "encoder_proximity_grad",
    "total_energy",
    "lam_to_lasso_alpha",
    "lasso_alpha_to_lam",
    "reference_to_lasso_objective",
    "lasso_to_reference_objective",
]


def reconstruction_energy(Y: torch.Tensor, reconstruction: torch.Tensor, *, per_sample: bool = False):
    r"""Reconstruction term in reference scaling, SPEC §2.1.

    .. math:: E_{rec} = \sum_i \frac{1}{d} \sum_p (y_{ip} - \hat y_{ip})^2

    (no factor ½, mean over the ``d`` pixels, sum over samples).

    Parameters
    ----------
    Y, reconstruction : Tensor, shape (n, d)
        Targets and decoder outputs ``D(z_i)``.
    per_sample : bool
        Return the ``(n,)`` per-sample terms instead of their sum.
    """
    per_row = (Y - reconstruction).square().mean(dim=1)
    return per_row if per_sample else per_row.sum()


def l1_energy(Z: torch.Tensor, lam: float, *, per_sample: bool = False):
    r"""Sparsity term :math:`\lambda \sum_i \lVert z_i \rVert_1`, SPEC §2.1.

    Parameters
    ----------
    Z : Tensor, shape (n, l)
    lam : float
        λ, the sparsity weight.
    per_sample : bool
        Return the ``(n,)`` per-sample terms instead of their sum.
    """
    per_row = lam * Z.abs().sum(dim=1)
    return per_row if per_sample else per_row.sum()


def _component_mean_std(Z: torch.Tensor, reduce=None):
    r"""Per-component batch mean, unbiased (n − 1) std and row count ``n`` of ``Z`` (n, l).

    With ``reduce`` (element-wise sum over all processes) they are those of the global batch: the
    per-component sums, sums of squares and the row count are all-reduced in one call (accumulated in
    float64), ``var = (Σz² − n μ²)/(n − 1)``.
    """
    if reduce is None:
        if Z.shape[0] < 2:
            raise ValueError(f"the variance hinge needs at least 2 rows (a batch std), got {Z.shape[0]}")
        return Z.mean(dim=0, keepdim=True), Z.std(dim=0, unbiased=True, keepdim=True), Z.shape[0]
    Z64 = Z.to(torch.float64)
    count = torch.full((1,), float(Z.shape[0]), dtype=torch.float64, device=Z.device)
    stats = reduce(torch.cat([Z64.sum(dim=0), Z64.square().sum(dim=0), count]))
    l = Z.shape[1]
    n = int(round(float(stats[-1])))
    if n < 2:
        raise ValueError(f"the variance hinge needs at least 2 rows in the global batch, got {n}")
    mean = stats[:l] / n
    variance = ((stats[l:2 * l] - n * mean * mean) / (n - 1)).clamp_min(0.0)
    return mean.to(Z.dtype).unsqueeze(0), variance.sqrt().to(Z.dtype).unsqueeze(0), n


def variance_hinge(Z: torch.Tensor, beta: float, var_threshold: float = 0.5, *, reduce=None) -> torch.Tensor:
    r"""Variance hinge of VDL, once per batch (paper eq. 11, SPEC §2.1).

    .. math:: E_{var} = \beta \sum_j \big[(T - \mathrm{std}_j(Z))_+\big]^2

    where :math:`\mathrm{std}_j` is the **unbiased** (n − 1) standard deviation of code component ``j``
    over the batch and ``T`` is ``var_threshold``.

    Parameters
    ----------
    Z : Tensor, shape (n, l), n ≥ 2
    beta : float
        β ≥ 0.
    var_threshold : float
        T > 0 (0.5 in the paper).
    reduce : callable, optional
        Data parallel: ``reduce(t)`` returns the element-wise sum of ``t`` over all processes; the std is
        then that of the global batch (every process returns the same global hinge).
    """
    _, std, _ = _component_mean_std(Z, reduce)
    return beta * torch.clamp(var_threshold - std, min=0.0).square().sum()


def variance_hinge_grad(
    Z: torch.Tensor, beta: float, var_threshold: float = 0.5, *, reduce=None
) -> torch.Tensor:
    r"""Closed-form gradient of :func:`variance_hinge` (paper eq. 12, SPEC §2.2).

    .. math::
        \frac{\partial E_{var}}{\partial Z_{ts}} = -\frac{2\beta}{n-1}\,
        \frac{T - \mathrm{std}_s}{\mathrm{std}_s}\,(Z_{ts} - \mu_s)
        \quad\text{if } \mathrm{std}_s < T, \text{ else } 0,

    with :math:`\mu_s` the batch mean of component ``s``. A component with zero spread has
    ``Z_ts − μ_s = 0`` for every row; its gradient is defined as 0 there (the hinge is not differentiable
    at std = 0, and 0 is the value of the limit along the data).

    With ``reduce`` (element-wise sum over all processes), ``n``, ``μ`` and ``std`` are those of the
    global batch and the result is the gradient of the global hinge w.r.t. this process's rows.

    Returns
    -------
    Tensor, shape (n, l)
    """
    mean, std, n = _component_mean_std(Z, reduce)
    active = std < var_threshold
    safe_std = torch.where(std > 0, std, torch.ones_like(std))
    coeff = torch.where(active & (std > 0), (var_threshold - std) / safe_std, torch.zeros_like(std))
    return (-2.0 * beta / (n - 1)) * coeff * (Z - mean)


def encoder_proximity_energy(Z: torch.Tensor, Z_encoder: torch.Tensor, gamma: float) -> torch.Tensor:
    r"""Encoder-proximity term, SPEC §2.1.

    .. math:: E_{enc} = \gamma \sum_i \frac{1}{l}\sum_k (z_{ik} - E(y_i)_k)^2

    The encoder predictions ``Z_encoder`` are constants during inference.
    """
    return gamma * (Z - Z_encoder).square().mean(dim=1).sum()


def encoder_proximity_grad(Z: torch.Tensor, Z_encoder: torch.Tensor, gamma: float) -> torch.Tensor:
    r"""Gradient of :func:`encoder_proximity_energy`: :math:`\frac{2\gamma}{l}(Z - E(Y))`."""
    return (2.0 * gamma / Z.shape[1]) * (Z - Z_encoder)


def total_energy(
    Y: torch.Tensor,
    reconstruction: torch.Tensor,
    Z: torch.Tensor,
    lam: float,
    *,
    beta: float = 0.0,
    var_threshold: float = 0.5,
    gamma: float = 0.0,
    Z_encoder: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Total batch energy of SPEC §2.1 (sum of the four terms; a 0-d tensor).

    .. math:: E = E_{rec} + \lambda\sum_i\lVert z_i\rVert_1 + E_{var} + E_{enc}

    The hinge is added only when ``beta > 0`` and the encoder term only when ``gamma > 0``.
    """
    energy = reconstruction_energy(Y, reconstruction) + l1_energy(Z, lam)
    if beta > 0:
        energy = energy + variance_hinge(Z, beta, var_threshold)
    if gamma > 0:
        if Z_encoder is None:
            raise ValueError("total_energy: gamma > 0 needs Z_encoder (the encoder's predicted codes)")
        energy = energy + encoder_proximity_energy(Z, Z_encoder, gamma)
    return energy


def lam_to_lasso_alpha(lam: float, n_features: int) -> float:
    r"""λ of the reference scaling → α of the textbook lasso ``½||y − Dz||² + α||z||₁``: α = d·λ/2."""
    return n_features * lam / 2.0


def lasso_alpha_to_lam(alpha: float, n_features: int) -> float:
    r"""α of the textbook lasso → λ of the reference scaling: λ = 2α/d (inverse of ``lam_to_lasso_alpha``)."""
    return 2.0 * alpha / n_features


def reference_to_lasso_objective(reference_energy, n_features: int):
    r"""Reference-scaled energy (β = γ = 0, linear decoder) → textbook lasso objective: multiply by d/2.

    .. math:: \tfrac12\lVert y - Dz\rVert^2 + \alpha\lVert z\rVert_1
              = \tfrac{d}{2}\Big[\tfrac1d\lVert y - Dz\rVert^2 + \lambda\lVert z\rVert_1\Big],
              \quad \alpha = d\lambda/2
    """
    return reference_energy * (n_features / 2.0)


def lasso_to_reference_objective(lasso_objective, n_features: int):
    r"""Textbook lasso objective → reference-scaled energy: multiply by 2/d."""
    return lasso_objective * (2.0 / n_features)
