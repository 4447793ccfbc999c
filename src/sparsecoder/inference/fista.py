"""Batched FISTA sparse inference for any decoder (SPEC §2.1–2.2; Beck & Teboulle 2009).

Minimises the reference-scaled energy of :mod:`sparsecoder.inference.energy` over the codes ``Z``::

    E(Z) = Σ_i mean_pixels (y_i − D(z_i))² + λ Σ_i ||z_i||₁
         + β Σ_j [(T − std_j(Z))_+]² + γ Σ_i mean_k (z_ik − E(y_i)_k)²

by proximal gradient steps on the smooth part (everything but the L1 term) followed by shrinkage with
threshold ``λ·η``, with FISTA momentum ``t_k = (1 + √(1 + 4 t_{k−1}²)) / 2``. Every sample stops on its own:
once ``||z^k − z^{k−1}||₂ ≤ tol · ||z^{k−1}||₂`` (zero-safe: a sample that stays exactly at zero also
counts as converged) it is frozen — it is removed from the working set and never moves again.

Every step rule (fixed, 1/L, per-sample adaptive, backtracking) runs in one loop, :func:`fista_loop`,
which owns the momentum, the freezing and compaction of the working set and the divergence check.
Linear decoders use the closed-form gradient in Gram form ``(2/d)(Z·WᵀW − Y·W)``, with ``WᵀW`` and
``Y·W`` precomputed once per call; the one-hidden-layer ReLU decoder (``MLPDecoder``, or
``nn.Sequential(Linear, ReLU, Linear)``) uses its gradient in closed form (:class:`_MLPStep`: four matrix
products per iteration, no autograd); any other ``torch.nn.Module`` decoder goes through autograd.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sparsecoder.inference.energy import (
    encoder_proximity_energy,
    reconstruction_energy,
    total_energy,
    variance_hinge,
    variance_hinge_grad,
)
from sparsecoder.nn.sizes import check_nonnegative_number, check_size
from sparsecoder.util import autograd_on, check_dense, check_has_values, torch_threads

__all__ = ["FistaResult", "fista", "fista_gram", "power_iteration_max_eigenvalue"]

_BACKTRACK_SHRINK = 0.5
_MAX_BACKTRACKS = 60
LIPSCHITZ_SAFETY = 1.01


@dataclass
class FistaResult:
    """What :func:`fista` returns.

    Attributes
    ----------
    codes : Tensor, shape (n, l)
        The inferred codes, detached, same dtype and device as ``Y``.
    n_iter : Tensor, shape (n,), int64
        Iterations each sample ran before it froze (``max_iter`` when it never did).
    energy : Tensor, shape (k,), float64, CPU
        Total batch energy (SPEC §2.1, reference scaling) after each of the ``k`` iterations run;
        empty when ``record_energy=False``.
    converged : Tensor, shape (n,), bool
        Whether each sample met the relative-change tolerance before ``max_iter``.
    """

    codes: torch.Tensor
    n_iter: torch.Tensor
    energy: torch.Tensor
    converged: torch.Tensor


# --------------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------------
def all_finite(tensor: torch.Tensor) -> bool:
    """No NaN or inf in ``tensor``: its sum is finite exactly then, unless the sum overflows (then every
    entry is checked). One reduction instead of ``isfinite(x).all()``'s four passes over the data; on the
    CPU a numpy sum (one thread: a torch thread team costs milliseconds on a busy machine)."""
    tensor = tensor.detach()
    if tensor.device.type == "cpu" and tensor.dtype in (torch.float32, torch.float64):
        array = tensor.numpy()
        with np.errstate(over="ignore", invalid="ignore"):
            total = float(array.sum())
        return math.isfinite(total) or bool(np.isfinite(array).all())
    if math.isfinite(float(tensor.sum())):
        return True
    return bool(torch.isfinite(tensor).all())


def _check_finite_matrix(name: str, value: torch.Tensor) -> None:
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    check_dense(value, name, "dense rows")  # sparse and meta tensors
    if value.dim() != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {tuple(value.shape)}")
    if value.is_complex():
        raise ValueError(
            f"{name} is complex ({value.dtype}); sparse coding needs real numbers: pass its real part"
        )
    if not torch.is_floating_point(value):
        raise ValueError(f"{name} must be a floating-point tensor (float32 or float64; float16 and bfloat16 "
                         f"are solved in their own precision), got {value.dtype}: convert it with .float()")
    if not all_finite(value):
        raise ValueError(f"{name} contains NaN or inf; clean or impute the data before inference")


def check_flag(name: str, value) -> bool:
    """``value`` as a ``bool`` when it is ``True``/``False`` (numpy's ``np.bool_`` too), else a ``ValueError``
    naming ``name``: a string such as ``"no"`` or a ``None`` would otherwise be read by its truthiness."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError(f"{name} must be True or False, got {value!r}")


def _check_no_overflow(Y: torch.Tensor, weight, smooth) -> None:
    """A ``ValueError`` when a linear decoder's finite inputs overflow ``Y``'s dtype in the Gram form (float32
    atoms beyond about 1e19, or ``Y·W`` beyond the dtype's range): ``(2/d)WᵀW`` and ``(2/d)Y·W`` must be
    finite, or the Lipschitz estimate reads NaN and the codes become NaN (reported as a divergence)."""
    if weight is None or (all_finite(smooth.gram) and all_finite(smooth.linear_term)):
        return
    raise ValueError(
        f"Y's entries reach {float(Y.abs().max()):.3g} and the dictionary's {float(weight.abs().max()):.3g}: "
        f"the Gram matrix WᵀW or Y·W overflows {Y.dtype}; pass float64 tensors (.double()) or rescale the "
        f"dictionary (codes of (Y, s·W, λ) are 1/s × the codes of (Y, W, λ/s))"
    )


def power_iteration_max_eigenvalue(matrix: torch.Tensor, *, max_iter: int = 200, tol: float = 1e-6) -> float:
    """Largest eigenvalue of a symmetric positive semi-definite ``(l, l)`` matrix by power iteration.

    Iterates ``v ← A v / ||A v||`` until the Rayleigh quotient changes by less than ``tol`` relatively,
    from a seeded Gaussian start vector (deterministic; a fixed structured start such as all ones can be
    orthogonal to the top eigenvector — e.g. atoms ``±u`` with signs summing to 0 — and the iteration then
    finds a lower eigenvalue or 0). ``A`` is first divided by its largest absolute entry, so that the
    norms of the products cannot overflow (float32 entries of 1e20 and more) or underflow. Power
    iteration approaches the top eigenvalue from below. Returns 0 for a zero matrix, NaN when ``A`` is
    not finite.
    """
    if not isinstance(matrix, torch.Tensor) or matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
        got = tuple(matrix.shape) if hasattr(matrix, "shape") else None
        raise ValueError(f"matrix must be a square 2-D torch.Tensor (l, l), e.g. dictionary @ dictionary.T; "
                         f"got a {type(matrix).__name__} of shape {got}")
    check_has_values("matrix", matrix)
    size = matrix.shape[0]
    scale = float(matrix.abs().max()) if matrix.numel() else 0.0
    if not math.isfinite(scale):
        return math.nan
    if scale == 0.0:
        return 0.0
    matrix = matrix / scale
    generator = torch.Generator(device="cpu").manual_seed(0)
    vector = torch.randn(size, generator=generator, dtype=torch.float64).to(matrix.dtype).to(matrix.device)
    vector /= vector.norm()
    estimate = 0.0
    for _ in range(max_iter):
        product = matrix @ vector
        new_estimate = float(vector @ product)
        norm = product.norm()
        if float(norm) == 0.0:
            return 0.0
        vector = product / norm
        if abs(new_estimate - estimate) <= tol * abs(new_estimate):
            return new_estimate * scale
        estimate = new_estimate
    return estimate * scale


# --------------------------------------------------------------------------------------------------
# smooth parts: value and gradient of everything except the L1 term, restricted to a set of rows
# --------------------------------------------------------------------------------------------------
class _LinearSmooth:
    r"""Reconstruction + encoder proximity for ``D(z) = W z + b`` in Gram form.

    Per row: ``f(z) = ½ zᵀ G z − zᵀ b_i + c_i`` with ``G = (2/d) WᵀW + (2γ/l) I``,
    ``b_i = (2/d) Wᵀ(y_i − b) + (2γ/l) e_i``, so ``∇f = z G − b_i``.
    """

    def __init__(self, Y, weight, bias, gamma, z_encoder):
        d, l = weight.shape
        self.weight, self.bias = weight, bias
        target = Y if bias is None else Y - bias
        self.gram = (2.0 / d) * (weight.T @ weight)
        self.linear_term = (2.0 / d) * (target @ weight)
        self.constant = target.square().sum(dim=1) / d
        if gamma > 0:
            self.gram.diagonal().add_(2.0 * gamma / l)
            self.linear_term.add_(z_encoder, alpha=2.0 * gamma / l)
            self.constant += (gamma / l) * z_encoder.square().sum(dim=1)

    def grad(self, V, rows):
        return torch.addmm(self.linear_term[rows], V, self.gram, alpha=1.0, beta=-1.0)

    def value(self, V, rows):
        VG = V @ self.gram
        per_row = 0.5 * (V * VG).sum(dim=1) - (V * self.linear_term[rows]).sum(dim=1)
        return (per_row + self.constant[rows]).sum()

    def reconstruct(self, Z):
        out = Z @ self.weight.T
        return out if self.bias is None else out + self.bias

    def lipschitz(self, Z0):
        return LIPSCHITZ_SAFETY * power_iteration_max_eigenvalue(self.gram)


class _ModuleSmooth:
    """Reconstruction + encoder proximity for any ``nn.Module`` decoder, gradients by autograd.

    Only the codes are differentiated (``torch.autograd.grad`` w.r.t. the codes), so decoder parameters
    never accumulate ``.grad``. Rows are assumed independent (no batch statistics inside the decoder).
    """

    def __init__(self, Y, module, gamma, z_encoder):
        self.Y, self.module, self.gamma, self.z_encoder = Y, module, gamma, z_encoder

    def _rows_value(self, V, rows):
        energy = reconstruction_energy(self.Y[rows], self.module(V))
        if self.gamma > 0:
            energy = energy + encoder_proximity_energy(V, self.z_encoder[rows], self.gamma)
        return energy

    def grad(self, V, rows):
        with autograd_on():
            # an iterate made under torch.inference_mode cannot record a graph: a normal copy of it can
            V = (V.clone() if V.is_inference() else V.detach()).requires_grad_(True)
            (gradient,) = torch.autograd.grad(self._rows_value(V, rows), V)
        return gradient

    def value(self, V, rows):
        return self._rows_value(V, rows).detach()

    def reconstruct(self, Z):
        return self.module(Z)

    def lipschitz(self, Z0, n_power_iter: int = 30):
        r"""Estimate of L for the reconstruction + proximity gradient at the starting codes.

        Per sample, the Hessian of ``(1/d)||y − D(z)||²`` is ``(2/d) JᵀJ`` plus a term with the decoder's
        second derivatives, which vanishes almost everywhere for piecewise-linear (ReLU) decoders. The
        estimate is ``(2/d) max_i λ_max(J_iᵀ J_i) + 2γ/l`` with ``J_i`` the decoder Jacobian at ``z0_i``
        (power iteration with forward- and reverse-mode products), times a 1.01 safety factor. It is a
        local estimate: far from ``z0`` the curvature can be larger — use ``step="backtracking"`` when in
        doubt.
        """
        d = self.Y.shape[1]
        l = Z0.shape[1]
        generator = torch.Generator(device="cpu").manual_seed(0)
        tangent = torch.randn(Z0.shape, generator=generator, dtype=Z0.dtype).to(Z0.device)
        params = dict(self.module.named_parameters())
        buffers = dict(self.module.named_buffers())
        state = {**{k: v.detach() for k, v in params.items()}, **buffers}

        def decode(codes):
            return torch.func.functional_call(self.module, state, (codes,))

        rayleigh = torch.zeros(Z0.shape[0], dtype=Z0.dtype, device=Z0.device)
        for _ in range(n_power_iter):
            tangent = tangent / tangent.norm(dim=1, keepdim=True).clamp_min(1e-30)
            _, jv = torch.func.jvp(decode, (Z0,), (tangent,))
            _, pullback = torch.func.vjp(decode, Z0)
            (jtjv,) = pullback(jv)
            rayleigh = (tangent * jtjv).sum(dim=1)
            tangent = jtjv
        curvature = (2.0 / d) * float(rayleigh.max()) + 2.0 * self.gamma / l
        return LIPSCHITZ_SAFETY * curvature


def _resolve_decoder(decoder, d: int, dtype, device):
    """Return (weight, bias, module): a closed-form linear decoder sets weight, else module is set."""
    if isinstance(decoder, torch.Tensor):
        check_dense(decoder, "decoder", "dense atoms")
        if decoder.dim() != 2:
            raise ValueError(f"decoder tensor must be 2-D (d, l), got shape {tuple(decoder.shape)}")
        if decoder.shape[0] != d:
            raise ValueError(
                f"decoder has {decoder.shape[0]} rows but Y has d={d} columns; a dictionary tensor W must be "
                f"(d, l) with reconstruction Z @ W.T (transpose a scikit-learn-style (l, d) dictionary)"
            )
        check_has_values("decoder", decoder)
        if decoder.is_complex():
            raise ValueError(
                f"decoder is complex ({decoder.dtype}); sparse coding needs real numbers: pass its real part"
            )
        if not all_finite(decoder):
            raise ValueError("decoder contains NaN or inf")
        return decoder.detach().to(dtype=dtype, device=device), None, None
    if isinstance(decoder, nn.Module):
        check_has_values("a parameter of the decoder module", *decoder.parameters(), *decoder.buffers())
    if isinstance(decoder, nn.Linear):
        if decoder.out_features != d:
            raise ValueError(
                f"decoder nn.Linear has out_features={decoder.out_features} but Y has d={d} columns"
            )
        if not all_finite(decoder.weight) or (decoder.bias is not None and not all_finite(decoder.bias)):
            raise ValueError("decoder nn.Linear has NaN or inf in its weight or bias")
        bias = None if decoder.bias is None else decoder.bias.detach().to(dtype=dtype, device=device)
        return decoder.weight.detach().to(dtype=dtype, device=device), bias, None
    if isinstance(decoder, nn.Module):
        _check_module_matches(decoder, dtype, device)
        return None, None, decoder
    raise ValueError(
        f"decoder must be a (d, l) tensor, an nn.Linear or an nn.Module mapping (n, l) -> (n, d); "
        f"got {type(decoder).__name__}"
    )


def _check_module_matches(module: nn.Module, dtype, device) -> None:
    """A ``ValueError`` naming both and the fix when a module decoder's floating parameters are of another
    dtype or on another device than the rows it decodes (a float32 model's decoder given float64 rows from
    numpy): torch's "mat1 and mat2 must have the same dtype" surfaced as a wrong code size."""
    tensors = [t for t in (*module.parameters(), *module.buffers()) if t.is_floating_point()]
    dtypes = sorted({str(t.dtype).removeprefix("torch.") for t in tensors})
    devices = sorted({str(t.device) for t in tensors})
    wanted = str(dtype).removeprefix("torch.")
    if dtypes and wanted not in dtypes:
        raise ValueError(f"the decoder module's parameters are {' and '.join(dtypes)} but Y is {wanted} "
                         f"(fista computes in Y's dtype): pass Y.to(torch.{dtypes[0]}), or the module "
                         f"converted with decoder.to(torch.{wanted})")
    if devices and str(device) not in devices:
        raise ValueError(f"the decoder module's parameters are on {' and '.join(devices)} but Y is on "
                         f"{device}: pass Y.to('{devices[0]}'), or move the module with "
                         f"decoder.to('{device}')")


# --------------------------------------------------------------------------------------------------
# the one FISTA loop: pluggable step rules over one momentum, freezing and compaction mechanism
# --------------------------------------------------------------------------------------------------
_COMPACT_FRACTION = 0.1
_STEP_GROWTH = 1.25
_STEP_SHRINK = 0.5
_MAX_STEP_SHRINKS = 40


def _next_t(t, ratio=1.0):
    r"""FISTA momentum sequence ``t_{k+1} = (1 + √(1 + 4 r t_k²)) / 2`` (``r = η_k/η_{k+1}``; 1 for a
    fixed step). ``t`` is a Python float (one sequence for the batch) or an ``(m, 1)`` tensor (per sample)."""
    if isinstance(t, torch.Tensor):
        return (1.0 + torch.sqrt(1.0 + 4.0 * ratio * t * t)) * 0.5
    return (1.0 + math.sqrt(1.0 + 4.0 * ratio * t * t)) / 2.0


def _extrapolate(current, previous, t, t_next):
    """The FISTA point ``V = z^k + ((t_k − 1)/t_{k+1}) (z^k − z^{k−1})``."""
    if isinstance(t, torch.Tensor):
        return torch.addcmul(current, (t - 1.0) / t_next, current - previous)
    momentum = (t - 1.0) / t_next
    return torch.lerp(previous, current, 1.0 + momentum) if momentum > 0 else current


def _shrink_(U: torch.Tensor, threshold, positive: bool) -> torch.Tensor:
    """In place: proximal map of ``threshold·||z||₁`` (+ ``z ≥ 0`` when ``positive``); ``threshold`` is a
    float or an ``(m, 1)`` tensor."""
    if positive:
        return U.sub_(threshold).clamp_min_(0.0)
    if isinstance(threshold, torch.Tensor):
        return U.sub_(torch.maximum(torch.minimum(U, threshold), -threshold))
    return U.sub_(U.clamp(-threshold, threshold))


def _shrink_folded_(new: torch.Tensor, shrink: float, positive: bool) -> torch.Tensor:
    """The proximal map after a fused update whose offset already holds ``−τη`` for positive codes: a clamp
    at 0 in place, or the signed soft threshold ``shrink`` in one kernel (the same values as
    ``new − clamp(new, −τη, τη)``)."""
    if positive:
        return new.clamp_min_(0.0)
    return torch.nn.functional.softshrink(new, shrink)


class GramFixedStep:
    r"""Fixed step η on ``½ zᵀGz − zᵀb_i``, gradient step and shrinkage fused in one ``addmm``:
    ``z ← shrink(V (I − ηG) + η b_i, τη)`` (for ``positive``: ``relu(V(I − ηG) + (ηb_i − τη))``)."""

    compact_fraction = _COMPACT_FRACTION
    per_sample_t = False
    small_operations = True

    def __init__(self, gram, linear_term, threshold, eta, positive):
        l = gram.shape[0]
        self.eta, self.positive = eta, positive
        self.update = torch.eye(l, dtype=gram.dtype, device=gram.device).sub_(gram, alpha=eta)
        self.offset = linear_term * eta
        self.shrink = threshold * eta
        if positive:
            self.offset.sub_(self.shrink)

    def __call__(self, current, previous, t, rows, codes):
        t_next = _next_t(t)
        point = _extrapolate(current, previous, t, t_next)
        new = torch.addmm(self.offset, point, self.update)
        new = _shrink_folded_(new, self.shrink, self.positive)
        return new, point, t_next

    def keep(self, kept, dropped):
        self.offset = self.offset.index_select(0, kept)


class _BatchHinge:
    """The variance hinge's gradient factors over the whole batch, shared by the fused steps: the
    working rows' ``point`` plus the frozen rows' per-component sums ``frozen_sum`` /
    ``frozen_square_sum`` (float64), batch size ``n``; needs ``eta``, ``beta``, ``var_threshold``."""

    def _start_hinge(self, l: int, device) -> None:
        self.frozen_sum = torch.zeros(l, dtype=torch.float64, device=device)
        self.frozen_square_sum = torch.zeros(l, dtype=torch.float64, device=device)

    def _add_frozen(self, dropped) -> None:
        """Add the rows ``dropped`` (indices) of the last iterate, which leave the working set, to the
        frozen sums."""
        frozen = self.last.index_select(0, dropped)
        self.frozen_sum += frozen.sum(dim=0, dtype=torch.float64)
        self.frozen_square_sum += frozen.square().sum(dim=0, dtype=torch.float64)

    def _hinge_coefficient(self, point):
        """``(scale, mean)`` in ``point``'s dtype: the hinge term of the update is ``scale ⊙ (V − μ)``."""
        n = self.n
        # per-column sums of the working rows in point's dtype (a float64 reduction first copies the
        # whole block to float64), accumulated with the frozen rows' sums in float64
        total = torch.add(self.frozen_sum, point.sum(dim=0))
        square = torch.add(self.frozen_square_sum, torch.mul(point, point).sum(dim=0))
        mean = total.div_(n)
        # c = η·2β/(n−1)·(T/σ − 1)₊ with σ² = (Σz² − nμ²)/(n−1): written as (a·rsqrt(Σz² − nμ²) − b)₊ with
        # a = η·2β·T/√(n−1), b = η·2β/(n−1); σ = 0 gives rsqrt = inf → inf → 0 (nan_to_num), as does NaN
        factor = self.eta * 2.0 * self.beta / (n - 1)
        scale = square.addcmul_(mean, mean, value=-float(n)).clamp_min_(0.0).rsqrt_()
        scale.mul_(factor * self.var_threshold * math.sqrt(n - 1)).sub_(factor).clamp_min_(0.0)
        scale.nan_to_num_(nan=0.0, posinf=0.0)
        return scale.to(point.dtype), mean.to(point.dtype)


class _GramHingeStep(_BatchHinge):
    r"""Fixed step η on the Gram-form quadratic plus the variance hinge (VDL, paper eq. 11–12), fused:

    .. math:: z_i \leftarrow \mathrm{shrink}\big(v_i (I - \eta G) + \eta b_i
              - \eta\, c \odot (v_i - \mu),\ \tau\eta\big),
              \qquad c_s = -\frac{2\beta}{n-1}\,\frac{T - \sigma_s}{\sigma_s}\,[0 < \sigma_s < T]

    The hinge gradient is per component on the batch mean ``μ`` and unbiased std ``σ``, so it is one
    ``addcmul`` after the ``addmm``. ``μ`` and ``σ`` come from per-component sums and sums of squares
    (float64) of the working rows plus those of the frozen rows, which are accumulated once when they
    freeze (frozen rows leave the working set at once: ``compact_fraction = 0``), so no full-batch copy
    is made per iteration. Same iterates as :class:`_GradientStep` with a fixed step, up to rounding.
    """

    compact_fraction = 0.0
    per_sample_t = False
    small_operations = True

    def __init__(self, gram, linear_term, threshold, eta, positive, *, beta, var_threshold, n):
        self.base = GramFixedStep(gram, linear_term, threshold, eta, positive)
        self.eta, self.positive, self.beta, self.var_threshold, self.n = eta, positive, beta, var_threshold, n
        self._start_hinge(gram.shape[0], gram.device)
        self.last = None

    def __call__(self, current, previous, t, rows, codes):
        t_next = _next_t(t)
        point = _extrapolate(current, previous, t, t_next)
        scale, mean = self._hinge_coefficient(point)
        new = torch.addmm(self.base.offset, point, self.base.update)
        new.addcmul_(point - mean, scale)
        new = _shrink_folded_(new, self.base.shrink, self.positive)
        self.last = new
        return new, point, t_next

    def keep(self, kept, dropped):
        self._add_frozen(dropped)
        self.base.keep(kept, dropped)


class GramAdaptiveStep:
    r"""Per-sample step of Scheinberg, Goldfarb & Bai (2014) on ``½ zᵀGz − zᵀb_i``.

    Each iteration first tries ``1.25 η_i`` and halves it until the quadratic upper bound
    ``½ (p − V)ᵀ G (p − V) ≤ ||p − V||² / (2η_i)`` holds at ``p = shrink(V − η_i(VG − b_i), τη_i)``, with
    momentum ``t_{k+1} = (1 + √(1 + 4 (η_k/η_{k+1}) t_k²)) / 2``. The products with ``G`` of the iterates
    are kept (``VG`` is their combination), so an iteration costs one ``(m, l) × (l, l)`` product plus one
    for the rows that had to shrink their step.
    """

    compact_fraction = _COMPACT_FRACTION
    per_sample_t = True
    small_operations = True

    def __init__(self, gram, linear_term, threshold, eta, positive, z0):
        n = linear_term.shape[0]
        self.gram, self.targets, self.threshold, self.positive = gram, linear_term, threshold, positive
        self.eta = torch.full((n, 1), eta, dtype=gram.dtype, device=gram.device)
        self.current_gram = z0 @ gram
        self.previous_gram = self.current_gram
        self.row_products = n

    def _attempt(self, eta_old, eta_new, t_old, cur, prev, cur_g, prev_g, b):
        t_new = _next_t(t_old, eta_old / eta_new)
        momentum = (t_old - 1.0) / t_new
        point = torch.addcmul(cur, momentum, cur - prev)
        point_gram = torch.addcmul(cur_g, momentum, cur_g - prev_g)
        new = _shrink_(torch.addcmul(point, eta_new, b - point_gram), self.threshold * eta_new, self.positive)
        new_gram = new @ self.gram
        self.row_products += new.shape[0]
        move = new - point
        curvature = torch.linalg.vecdot(move, new_gram - point_gram)
        accepted = curvature <= torch.linalg.vecdot(move, move) / eta_new.squeeze(1) * (1.0 + 1e-6)
        return new, new_gram, point, t_new, accepted

    def __call__(self, current, previous, t, rows, codes):
        eta, eta_new = self.eta, self.eta * _STEP_GROWTH
        new, new_gram, point, t_new, accepted = self._attempt(
            eta, eta_new, t, current, previous, self.current_gram, self.previous_gram, self.targets
        )
        if not bool(accepted.all()):
            retry = (~accepted).nonzero().squeeze(1)
            retry_eta = eta_new[retry]
            for shrink_count in range(1, _MAX_STEP_SHRINKS + 1):
                retry_eta = retry_eta * _STEP_SHRINK
                sub_new, sub_gram, sub_point, sub_t, sub_ok = self._attempt(
                    eta[retry], retry_eta, t[retry], current[retry], previous[retry],
                    self.current_gram[retry], self.previous_gram[retry], self.targets[retry],
                )
                if shrink_count == _MAX_STEP_SHRINKS:  # rounding noise only: accept the smallest step tried
                    sub_ok = torch.ones_like(sub_ok)
                done = retry[sub_ok]
                new[done], new_gram[done], point[done] = sub_new[sub_ok], sub_gram[sub_ok], sub_point[sub_ok]
                t_new[done], eta_new[done] = sub_t[sub_ok], retry_eta[sub_ok]
                if bool(sub_ok.all()):
                    break
                retry, retry_eta = retry[~sub_ok], retry_eta[~sub_ok]
        self.previous_gram, self.current_gram, self.eta = self.current_gram, new_gram, eta_new
        return new, point, t_new

    def keep(self, kept, dropped):
        self.targets, self.eta = self.targets.index_select(0, kept), self.eta.index_select(0, kept)
        self.current_gram = self.current_gram.index_select(0, kept)
        self.previous_gram = self.previous_gram.index_select(0, kept)


class _GradientStep:
    r"""Proximal gradient step on any smooth part (Gram form or autograd), optionally plus the variance
    hinge (closed-form gradient, eq. 12), with a fixed step or the Beck–Teboulle backtracking line search
    (one step for the batch, halved until ``f(p) ≤ f(V) + ⟨∇f(V), p − V⟩ + ||p − V||²/(2η)``; it never
    grows). The hinge couples the rows, so frozen rows leave the working set at once (their codes stay in
    the batch statistics through ``codes``).
    """

    compact_fraction = 0.0
    per_sample_t = False
    small_operations = False

    def __init__(self, smooth, threshold, eta, positive, *, beta, var_threshold, backtracking, reduce,
                 slack):
        self.smooth, self.threshold, self.eta, self.positive = smooth, threshold, eta, positive
        self.beta, self.var_threshold, self.backtracking = beta, var_threshold, backtracking
        self.reduce, self.slack = reduce, slack

    def _full(self, V, rows, codes):
        point = codes.clone()
        point[rows] = V
        return point

    def _grad(self, V, rows, codes):
        gradient = self.smooth.grad(V, rows) if V.shape[0] else torch.zeros_like(V)
        if self.beta > 0:
            hinge = variance_hinge_grad(self._full(V, rows, codes), self.beta, self.var_threshold,
                                        reduce=self.reduce)
            gradient = gradient + hinge[rows]
        return gradient

    def _smooth_value(self, V, rows):
        return self.smooth.value(V, rows) if V.shape[0] else V.new_zeros(())

    def _hinge_value(self, V, rows, codes):
        if self.beta == 0:
            return 0.0
        return float(variance_hinge(self._full(V, rows, codes), self.beta, self.var_threshold,
                                    reduce=self.reduce))

    def __call__(self, current, previous, t, rows, codes):
        t_next = _next_t(t)
        point = _extrapolate(current, previous, t, t_next)
        gradient = self._grad(point, rows, codes)
        if not self.backtracking:
            new = _shrink_(point - self.eta * gradient, self.threshold * self.eta, self.positive)
            return new, point, t_next
        value_at_point = self._smooth_value(point, rows)
        hinge_at_point = self._hinge_value(point, rows, codes)
        for _ in range(_MAX_BACKTRACKS):
            new = _shrink_(point - self.eta * gradient, self.threshold * self.eta, self.positive)
            delta = new - point
            local = torch.stack([
                self._smooth_value(new, rows),
                value_at_point + (gradient * delta).sum() + delta.square().sum() / (2.0 * self.eta),
            ])
            if self.reduce is not None:
                local = self.reduce(local)
            value_new = float(local[0]) + self._hinge_value(new, rows, codes)
            bound = float(local[1]) + hinge_at_point
            if value_new <= bound + self.slack * abs(bound):
                break
            self.eta *= _BACKTRACK_SHRINK
        return new, point, t_next

    def keep(self, kept, dropped):
        pass


def _relu_mlp_layers(module):
    """``(W1, b1, W2, b2)`` of a one-hidden-layer ReLU decoder ``D(z) = W2 relu(W1 z + b1) + b2`` (biases
    may be None), or None when ``module`` is not one: an :class:`~sparsecoder.nn.decoders.MLPDecoder`
    (its own ``forward``) or an ``nn.Sequential(nn.Linear, nn.ReLU, nn.Linear)``."""
    from sparsecoder.nn.decoders import MLPDecoder

    if isinstance(module, MLPDecoder) and type(module).forward is MLPDecoder.forward:
        first, second = module.hidden, module.output
    elif (type(module) is nn.Sequential and len(module) == 3 and type(module[0]) is nn.Linear
          and type(module[1]) is nn.ReLU and type(module[2]) is nn.Linear):
        first, second = module[0], module[2]
    else:
        return None
    if type(first) is not nn.Linear or type(second) is not nn.Linear:
        return None
    return first.weight, first.bias, second.weight, second.bias


class _MLPStep(_BatchHinge):
    r"""Fixed step η for the one-hidden-layer ReLU decoder ``D(z) = W2 relu(W1 z + b1) + b2`` with the
    gradient in closed form (no autograd), optionally plus the variance hinge (VDL-NL, paper eq. 11–12):

    .. math:: a = V W_1^\top + b_1,\quad h = \max(a, 0),\quad r = h W_2^\top + b_2 - y,
              \quad \nabla_V = \tfrac{2}{d}\,\big((r W_2) \odot [h > 0]\big) W_1
              + \tfrac{2\gamma}{l}(V - E(y))

    and ``z ← shrink(V − η ∇_V − η c ⊙ (V − μ), λη)`` with the hinge coefficient ``c`` of
    :class:`_GramHingeStep` — four ``addmm``/``mm`` per iteration into preallocated buffers: the forward
    and input-gradient of the decoder, the proximity and shrinkage folded into the last ``addmm``. The rows
    are independent except through the hinge's batch mean and std, which are kept from per-component sums
    (float64) of the working rows plus those of the frozen rows, accumulated when they freeze; so a row
    leaves the working set at once when it freezes (``compact_fraction = 0``): each pass costs
    ≈ 4(lh + hd) FLOP per *live* row only.

    **Gram form for long solves.** ``r W_2 = h G − c`` with ``G = W_2^\top W_2`` (h, h) and
    ``c = (y − b_2) W_2``: one ``(m, h) × (h, h)`` product instead of two ``(m, h) × (h, d)`` ones,
    2(2lh + h²) instead of 4(lh + hd) FLOP per row and pass (SDL-NL on MNIST, h = 1024, d = 784: −30 %),
    for a one-off ``h²d + m·hd`` multiply-adds. A solve cannot know how many passes it will need, so it
    switches the way the ski-rental rule buys: once the row-passes already made would have saved that
    one-off cost (``Σ m_k · h(2d − h) ≥ h²d + m·hd``) — never in the few passes of a warm-started solve
    (VDL-NL: ≈ 3), after ≈ 7 full passes in a long one (SDL-NL: ≈ 60). Same iterates up to rounding.
    """

    compact_fraction = 0.0
    per_sample_t = False
    small_operations = False

    def __init__(self, Y, layers, threshold, eta, positive, *, gamma, z_encoder, beta, var_threshold):
        n, d = Y.shape
        weight_in, bias_in, weight_out, bias_out = (
            None if p is None else p.detach().to(dtype=Y.dtype, device=Y.device) for p in layers
        )
        hidden, l = weight_in.shape
        self.eta, self.threshold, self.positive = eta, threshold, positive
        self.weight_in, self.weight_out = weight_in, weight_out
        self.bias_in = bias_in if bias_in is not None else torch.zeros(hidden, dtype=Y.dtype, device=Y.device)
        self.target = (Y if bias_out is None else Y - bias_out).contiguous()
        self.gradient_scale = 2.0 * eta / d
        proximity = 2.0 * gamma * eta / l
        self.keep_fraction = 1.0 - proximity
        # everything of the update that does not depend on V: η(2γ/l)E(y) and, for positive codes, −λη
        offset = 0.0 if gamma == 0 else z_encoder * proximity
        if positive:
            offset = offset - threshold * eta
        self.offset = offset
        self.shrink = threshold * eta
        self.beta, self.var_threshold, self.n = beta, var_threshold, n
        if beta > 0:
            self._start_hinge(l, Y.device)
        # Gram form (class docstring): the one-off cost in multiply-adds is h²d + m·hd, the saving per
        # row-pass h(2d − h); never when h ≥ 2d
        self.gram = self.correlation = None
        self.saving_per_row_pass = hidden * (2 * d - hidden)
        self.row_passes = 0
        self.hidden_buffer = torch.empty(n, hidden, dtype=Y.dtype, device=Y.device)
        self.back_buffer = torch.empty(n, hidden, dtype=Y.dtype, device=Y.device)
        self.residual_buffer = torch.empty(n, d, dtype=Y.dtype, device=Y.device)
        self.last = None

    def gradient_step(self, point):
        """``V − η ∇f(V)`` of the reconstruction + proximity terms (no hinge, no shrinkage)."""
        m = point.shape[0]
        hidden = torch.addmm(self.bias_in, point, self.weight_in.T, out=self.hidden_buffer[:m])
        hidden.clamp_min_(0.0)
        if self.gram is None and self._gram_form_pays(m):
            self.gram = self.weight_out.T @ self.weight_out
            self.correlation = self.target @ self.weight_out
            self.target = None
        self.row_passes += m
        if self.gram is None:
            residual = torch.addmm(self.target, hidden, self.weight_out.T, beta=-1.0,
                                   out=self.residual_buffer[:m])  # D(V) − y
            back = torch.mm(residual, self.weight_out, out=self.back_buffer[:m])
        else:  # (D(V) − y) W2 = h G − c
            back = torch.addmm(self.correlation, hidden, self.gram, beta=-1.0, out=self.back_buffer[:m])
        # ReLU'(a) = [h > 0], autograd's convention at a = 0, with autograd's own fused kernel (in place;
        # mul_(hidden > 0) makes a mask and converts it: ~8× slower at (250, 1024))
        torch.ops.aten.threshold_backward.grad_input(back, hidden, 0.0, grad_input=back)
        new = torch.addmm(point, back, self.weight_in, beta=self.keep_fraction, alpha=-self.gradient_scale)
        if isinstance(self.offset, torch.Tensor) or self.offset != 0.0:
            new.add_(self.offset)
        return new

    def _gram_form_pays(self, m: int) -> bool:
        hidden, d = self.weight_out.shape[1], self.weight_out.shape[0]
        if m == 0 or self.saving_per_row_pass <= 0:
            return False
        return self.row_passes * self.saving_per_row_pass >= hidden * hidden * d + m * hidden * d

    def __call__(self, current, previous, t, rows, codes):
        t_next = _next_t(t)
        point = _extrapolate(current, previous, t, t_next)
        new = self.gradient_step(point)
        if self.beta > 0:
            scale, mean = self._hinge_coefficient(point)
            new.addcmul_(point - mean, scale)
        new = _shrink_folded_(new, self.shrink, self.positive)
        self.last = new
        return new, point, t_next

    def keep(self, kept, dropped):
        if self.beta > 0:
            self._add_frozen(dropped)
        if self.gram is None:
            self.target = self.target.index_select(0, kept)
        else:
            self.correlation = self.correlation.index_select(0, kept)
        if isinstance(self.offset, torch.Tensor):
            self.offset = self.offset.index_select(0, kept)


def _freeze_limit(codes: torch.Tensor, tol: float) -> torch.Tensor:
    """Per-row ``tol·||z||₂``; −1 (never met) where the norm is not finite, so a diverging row never
    freezes (a norm overflowing to inf would otherwise accept any change)."""
    return torch.linalg.vector_norm(codes, dim=1).mul_(tol).nan_to_num_(nan=-1.0, posinf=-1.0)


@dataclass
class _LoopResult:
    codes: torch.Tensor
    n_iter: torch.Tensor
    converged: torch.Tensor
    diverged: torch.Tensor


# A CPU solve on at most this many rows with a Gram-form step runs torch on one thread: its products
# ((n, k) × (k, k) per iteration, (n, d) × (d, k) in sparse_encode) take a millisecond or less and each
# iteration is ~25 such small operations, so a thread team's start-up and barriers cost more than they
# save (on a busy 2-core machine tens of times more: issue 14, n = 250; issue 15, a vdl-mnist epoch with
# two threads 35–52 s instead of 1.4 s).
SMALL_CALL_SAMPLES = 1024


@contextlib.contextmanager
def one_torch_thread(enabled: bool):
    """``torch.set_num_threads(1)`` inside the block when ``enabled`` (restored after; process-global)."""
    with torch_threads(1 if enabled else None):
        yield


def fista_loop(stepper, z0, **options):
    """:func:`_run_fista_loop`, on one intra-op thread when the stepper's operations are small (Gram-form
    steps, ``stepper.small_operations``) on at most :data:`SMALL_CALL_SAMPLES` CPU rows (thread policy);
    the caller's thread count is restored after."""
    small = stepper.small_operations and z0.device.type == "cpu" and z0.shape[0] <= SMALL_CALL_SAMPLES
    with one_torch_thread(small):
        return _run_fista_loop(stepper, z0, **options)


def _run_fista_loop(stepper, z0, *, max_iter, tol, restart=False, reduce=None, on_iteration=None):
    r"""The FISTA iteration shared by every solver here (Beck & Teboulle 2009).

    ``stepper(current, previous, t, rows, codes)`` returns ``(z^{k+1}, V, t_{k+1})`` for the working rows
    (``rows``: their indices in the batch; ``codes``: the batch with every frozen row's final code);
    ``stepper.keep(kept, dropped)`` is told which working rows (indices into the working set) stay and
    which leave it when the loop compacts. The loop owns the rest:

    * momentum restart (O'Donoghue & Candès 2015, gradient scheme): per sample ``t ← 1`` when
      ``(V − z^{k+1})·(z^{k+1} − z^k) > 0``;
    * freezing: a sample whose ``||z^{k+1} − z^k||₂ ≤ tol·||z^k||₂`` (zero-safe: a sample staying at 0
      counts) is written out and never updated again; frozen rows stay in the working set until they are
      ``stepper.compact_fraction`` of it (compacting copies every working tensor);
    * divergence: a sample whose code norm stops being finite (a step above the stability bound grows
      the iterate geometrically until it overflows) never freezes; it runs to ``max_iter`` and is
      reported as *diverged* (not converged);
    * ``reduce`` (data parallel): the number of live samples is summed over all processes every
      iteration and the loop runs until it is 0 everywhere, so every process makes the same collective
      calls (a process whose own samples are all frozen keeps calling the stepper on an empty set).
    """
    n = z0.shape[0]
    device = z0.device
    codes = z0.clone()
    n_iter = torch.full((n,), max_iter, dtype=torch.int64, device=device)
    converged = torch.zeros(n, dtype=torch.bool, device=device)
    rows = torch.arange(n, device=device)
    current = z0.clone()
    previous = current
    limit = _freeze_limit(current, tol)
    per_sample_t = restart or stepper.per_sample_t
    # t_0 = 0, so the first step gives t_1 = 1 and the first momentum is at V_3 (Beck & Teboulle 2009:
    # y_1 = x_0, t_1 = 1, y_2 = x_1 + ((t_1 − 1)/t_2)(x_1 − x_0) = x_1), as in the authors' code
    t = torch.zeros(n, 1, dtype=z0.dtype, device=device) if per_sample_t else 0.0
    live = None  # None: every working row is live; else a mask of the rows not yet frozen
    n_live = n
    for iteration in range(1, max_iter + 1):
        new, point, t_next = stepper(current, previous, t, rows, codes)
        difference = new - current
        frozen = torch.linalg.vector_norm(difference, dim=1) <= limit  # NaN/inf never freeze
        if restart:
            wrong_way = ((point - new) * difference).sum(dim=1, keepdim=True) > 0
            t_next = torch.where(wrong_way, torch.ones_like(t_next), t_next)
        previous, current, t = current, new, t_next
        limit = _freeze_limit(current, tol)
        if live is not None:
            frozen &= live
        if on_iteration is not None:
            if live is None:
                codes[rows] = current
            else:
                codes[rows[live]] = current[live]
        if rows.numel() and bool(frozen.any()):
            # index_select / index_copy_ with the indices found once: boolean-mask indexing costs ~5×
            # as much at this size, and a batch has a freezing iteration almost every iteration
            newly_frozen = frozen.nonzero().squeeze(1)
            frozen_rows = rows.index_select(0, newly_frozen)
            codes.index_copy_(0, frozen_rows, current.index_select(0, newly_frozen))
            n_iter.index_fill_(0, frozen_rows, iteration)
            converged.index_fill_(0, frozen_rows, True)
            live = ~frozen if live is None else live & ~frozen
            n_live = int(live.sum())
            if n_live == 0 or rows.numel() - n_live >= stepper.compact_fraction * rows.numel():
                kept, dropped = live.nonzero().squeeze(1), (~live).nonzero().squeeze(1)
                rows, current, previous, limit = (
                    x.index_select(0, kept) for x in (rows, current, previous, limit))
                if per_sample_t:
                    t = t.index_select(0, kept)
                stepper.keep(kept, dropped)
                live = None
        if on_iteration is not None:
            on_iteration(codes)
        if reduce is not None:
            total_live = int(reduce(torch.tensor([n_live], dtype=torch.int64, device=device))[0])
        else:
            total_live = n_live
        if total_live == 0:
            break
    if rows.numel():
        if live is None:
            codes[rows] = current
        else:
            codes[rows[live]] = current[live]
    diverged = ~converged & ~torch.isfinite(codes).all(dim=1)  # not the norm: finite 1e20s square to inf
    return _LoopResult(codes=codes, n_iter=n_iter, converged=converged, diverged=diverged)


def fista_gram(
    gram: torch.Tensor,
    linear_term: torch.Tensor,
    threshold: float,
    step: float,
    z0: torch.Tensor,
    *,
    positive: bool,
    max_iter: int,
    tol: float,
    restart: bool = False,
    on_iteration=None,
):
    r"""FISTA with a fixed step for a batch of independent quadratic-plus-L1 problems in Gram form.

    Solves, for every row ``i``,

    .. math:: \min_{z} \tfrac12 z^\top G z - z^\top b_i + \tau \lVert z\rVert_1 \;(+\; z \ge 0)

    with ``G = gram`` (l, l), ``b_i`` the rows of ``linear_term`` (n, l) and ``τ = threshold``: the loop of
    :func:`fista_loop` with the fused step ``z ← shrink(V (I − ηG) + η b, τη)``, one ``addmm`` per
    iteration.

    Parameters
    ----------
    restart : bool
        Per-sample gradient-based adaptive restart of the momentum (O'Donoghue & Candès 2015).
    on_iteration : callable, optional
        Called as ``on_iteration(codes)`` after every iteration with the full, up-to-date ``(n, l)`` codes.

    Returns
    -------
    codes, n_iter, converged
        ``converged`` is False for samples that diverged (non-finite codes; a step above 2/λ_max(G)).
    """
    stepper = GramFixedStep(gram, linear_term, threshold, step, positive)
    result = fista_loop(stepper, z0, max_iter=max_iter, tol=tol, restart=restart, on_iteration=on_iteration)
    return result.codes, result.n_iter, result.converged


# --------------------------------------------------------------------------------------------------
# the solver
# --------------------------------------------------------------------------------------------------
def fista(
    Y: torch.Tensor,
    decoder,
    lam: float,
    *,
    z0: torch.Tensor | None = None,
    n_components: int | None = None,
    step: float | str = 0.5,
    max_iter: int = 200,
    tol: float = 1e-3,
    positive: bool = True,
    beta: float = 0.0,
    var_threshold: float = 0.5,
    gamma: float = 0.0,
    z_encoder: torch.Tensor | None = None,
    record_energy: bool = True,
    reduce=None,
    restart: bool = False,
    check_overflow: bool = True,
) -> FistaResult:
    r"""Infer sparse codes of a batch by FISTA on the energy of SPEC §2.1 (paper Evtimova & LeCun 2022, §3).

    .. math::
        Z^* = \arg\min_Z \sum_i \tfrac1d\lVert y_i - D(z_i)\rVert^2 + \lambda\sum_i\lVert z_i\rVert_1
              + \beta\sum_j\big[(T-\mathrm{std}_j Z)_+\big]^2
              + \gamma\sum_i\tfrac1l\lVert z_i - E(y_i)\rVert^2

    Each iteration (Beck & Teboulle 2009): ``V = Z^k + ((t_k − 1)/t_{k+1})(Z^k − Z^{k−1})``,
    ``Z^{k+1} = shrink(V − η ∇f(V), λη)`` with ``shrink(u) = max(u − λη, 0)`` when ``positive`` else the
    signed soft-threshold ``sign(u)·max(|u| − λη, 0)``. A sample freezes once
    ``||z^{k+1} − z^k|| ≤ tol·||z^k||`` (also when both are exactly zero) and is never updated again.

    Parameters
    ----------
    Y : Tensor, shape (n, d)
        Batch of inputs (n ≥ 1; n ≥ 2 when ``beta > 0``).
    decoder : Tensor (d, l) | nn.Linear | nn.Module
        A dictionary ``W`` with reconstruction ``Z @ W.T``; an ``nn.Linear`` (its weight; a bias is
        subtracted from ``Y``), both with the closed-form Gram gradient; a one-hidden-layer ReLU decoder
        (``MLPDecoder``, ``nn.Sequential(Linear, ReLU, Linear)``) with its gradient in closed form for a
        fixed step (or ``"lipschitz"``); or any module mapping ``(n, l)`` to ``(n, d)`` row by row (gradient
        by autograd; its parameters do not accumulate gradients).
    lam : float
        λ ≥ 0, the L1 weight in reference scaling (α = d·λ/2 in textbook-lasso scaling).
    z0 : Tensor (n, l), optional
        Initial codes (the encoder's prediction); zeros when omitted.
    n_components : int, optional
        Code size ``l``; needed only for a module decoder when ``z0`` is omitted (elsewhere, when given,
        it must equal the size the decoder or ``z0`` fixes).
    step : float | "lipschitz" | "backtracking"
        A fixed step η > 0; ``"lipschitz"``: η = 1/L with L the largest eigenvalue of the linear smooth
        part (power iteration on ``(2/d)WᵀW + (2γ/l)I``; the variance hinge is not included) or, for a
        module, the local estimate of ``_ModuleSmooth.lipschitz``; ``"backtracking"``: Beck–Teboulle
        line search shared by the batch, starting from 2/L and halving until the quadratic upper bound
        holds (η never increases).
    max_iter : int
        K ≥ 1, the most iterations (200 in the paper).
    tol : float
        Relative-change tolerance ≥ 0 for freezing a sample (1e-3 in the paper).
    positive : bool
        Non-negative codes (all paper experiments) or signed soft-thresholding.
    beta, var_threshold : float
        β ≥ 0 and T > 0 of the variance hinge (VDL); applied once over the whole batch (n ≥ 2).
    gamma : float
        γ ≥ 0, weight of the encoder-proximity term.
    z_encoder : Tensor (n, l), optional
        Encoder predictions for the proximity term; defaults to ``z0`` when ``gamma > 0``.
    record_energy : bool
        Record the total batch energy after every iteration (costs one decoder pass per iteration). Under
        ``reduce`` it is this process's energy (its rows; the hinge from its rows' std).
    reduce : callable, optional
        Data-parallel inference: ``reduce(t)`` returns the element-wise sum of ``t`` over all processes
        (e.g. ``torch.distributed.all_reduce(t); return t``). The variance hinge then uses the mean and
        (unbiased) std of the global batch, all-reduced every iteration (each process differentiates it
        w.r.t. its own rows), and the loop runs until every sample of every process is frozen (the live
        count is all-reduced every iteration), so N processes holding the parts of a batch return the codes
        and iteration counts of one process holding all of it. Every process must pass the same
        arguments; ``step="lipschitz"``/``"backtracking"`` need a linear decoder here (a module's L is
        estimated from local rows). ``beta > 0`` needs ≥ 2 rows in the global batch.
    restart : bool
        Per-sample gradient-based adaptive restart of the momentum (O'Donoghue & Candès 2015): a sample's
        ``t`` goes back to 1 (its next step is a plain proximal gradient step) whenever
        ``(V − z^{k+1})·(z^{k+1} − z^k) > 0``, i.e. the momentum points uphill. Same objective and
        tolerance, other iterates: on a non-convex decoder (one-hidden-layer, SDL-NL) it stops the momentum's
        oscillation and needs about 40 % fewer passes. Off by default (the paper's plain FISTA).
    check_overflow : bool
        Refuse (``ValueError``) a linear decoder whose Gram matrix ``WᵀW`` or ``Y·W`` overflows ``Y``'s dtype
        before any iteration (default). ``False``: solve anyway; the codes become NaN and are reported as
        diverged — what training wants (its decoder overflowing is a divergence: the run stops and keeps its
        last good checkpoint, :class:`~sparsecoder.train.TrainingDiverged`).

    Returns
    -------
    FistaResult
        ``codes`` (n, l), ``n_iter`` (n,), ``energy`` (k,), ``converged`` (n,). A sample whose codes
        overflow (diverge) stops there with ``converged=False``.

    Raises
    ------
    ValueError
        Wrong shapes, NaN/inf values, complex inputs, an empty batch, a non-positive step, negative λ/β/γ,
        an unknown step rule, a non-callable ``reduce``, a linear decoder whose ``WᵀW`` or ``Y·W`` overflows
        (``check_overflow``).

    Warns
    -----
    RuntimeWarning
        When samples diverged (a fixed step above the stability bound 2/L); the message names the step and
        2/L (L by power iteration).
    """
    _check_finite_matrix("Y", Y)
    n, d = Y.shape
    if n == 0:
        raise ValueError("Y is an empty batch (0 samples); pass at least one row")
    if d == 0:
        raise ValueError("Y has 0 features")
    lam = check_nonnegative_number("lam", lam)
    beta = check_nonnegative_number("beta", beta)
    gamma = check_nonnegative_number("gamma", gamma)
    var_threshold = check_nonnegative_number("var_threshold", var_threshold, strictly_positive=True)
    tol = check_nonnegative_number("tol", tol)
    max_iter = check_size("fista", "max_iter", max_iter)
    restart = check_flag("restart", restart)
    positive = check_flag("positive", positive)
    record_energy = check_flag("record_energy", record_energy)
    check_overflow = check_flag("check_overflow", check_overflow)
    if isinstance(step, str):
        if step not in ("lipschitz", "backtracking"):
            raise ValueError(f"step must be a positive float, 'lipschitz' or 'backtracking'; got {step!r}")
    else:
        step = check_nonnegative_number("step", step, strictly_positive=True)
        if step > torch.finfo(Y.dtype).max:
            largest = torch.finfo(Y.dtype).max
            raise ValueError(f"step {step:.4g} is beyond {Y.dtype}'s range (largest {largest:.4g}); "
                             f"steps above 2/L diverge anyway: use step='lipschitz' or a step <= 1/L")
    if beta > 0 and n < 2 and reduce is None:
        raise ValueError("beta > 0 (variance hinge) needs a batch of at least 2 samples to compute a std")

    weight, bias, module = _resolve_decoder(decoder, d, Y.dtype, Y.device)
    if z0 is not None:
        _check_finite_matrix("z0", z0)
        l = z0.shape[1]
        if z0.shape[0] != n:
            raise ValueError(f"z0 has {z0.shape[0]} rows but Y has n={n}")
    elif weight is not None:
        l = weight.shape[1]
    else:
        if (n_components is None or isinstance(n_components, bool)
                or not isinstance(n_components, numbers.Integral)):
            raise ValueError("n_components (the code size l) is needed for a module decoder when z0 is None")
        if n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        l = int(n_components)
    if weight is not None and weight.shape[1] != l:
        raise ValueError(f"z0 has l={l} columns but the decoder has {weight.shape[1]} atoms")
    if n_components is not None and (z0 is not None or weight is not None) and n_components != l:
        # it was ignored there: codes of another size came back without a word
        source = "z0 has" if z0 is not None else "the decoder has"
        raise ValueError(f"n_components={n_components!r} but {source} {l} code columns; pass "
                         f"n_components={l} or leave it out (it is needed only for a module decoder "
                         f"without z0)")
    if gamma > 0:
        if z_encoder is None:
            z_encoder = z0
        if z_encoder is None:
            raise ValueError("gamma > 0 needs the encoder prediction: pass z_encoder (or z0)")
    if z_encoder is not None:
        _check_finite_matrix("z_encoder", z_encoder)
        if tuple(z_encoder.shape) != (n, l):
            raise ValueError(f"z_encoder must have shape (n, l) = {(n, l)}, got {tuple(z_encoder.shape)}")
        z_encoder = z_encoder.detach().to(dtype=Y.dtype, device=Y.device)

    if reduce is not None and not callable(reduce):
        raise ValueError(
            f"reduce must be a callable returning the element-wise sum over processes, got {reduce!r}"
        )
    if reduce is not None and module is not None and isinstance(step, str):
        raise ValueError(
            f"step={step!r} with a module decoder estimates L from this process's rows only, so processes "
            f"would take different steps under reduce; pass a fixed step"
        )

    Y_given = Y
    # (not under reduce: each process would pick its own scale for the shared hinge statistics)
    scale = 1.0 if module is not None or reduce is not None else row_scale(Y)
    if scale != 1.0:
        # codes(Y/s, λ/s, T/s, z0/s) = codes(Y, λ, T, z0)/s for a linear decoder, step and β, γ unchanged:
        # solved on rows brought to magnitude ~1 by a power of two (exact), so that the codes' squared norms
        # in the freezing test and the energy cannot underflow (rows of 1e-20 froze at once, unsolved) or
        # overflow (rows of 1e20 never froze)
        Y = Y / scale
        bias = None if bias is None else bias / scale
        z0 = None if z0 is None else z0 / scale
        z_encoder = None if z_encoder is None else z_encoder / scale
        lam, var_threshold = lam / scale, var_threshold / scale
    with torch.no_grad():
        Y = Y.detach()
        Z = (
            torch.zeros(n, l, dtype=Y.dtype, device=Y.device)
            if z0 is None
            else z0.detach().to(dtype=Y.dtype, device=Y.device).clone()
        )
        if module is not None:
            try:
                with torch.enable_grad():
                    out_shape = tuple(module(Z[:1]).shape)
            except RuntimeError as err:  # e.g. a first layer that does not take l inputs
                raise ValueError(
                    f"the decoder module cannot decode codes of size l={l} (from "
                    f"{'z0' if z0 is not None else 'n_components'}): {err}; pass the code size the decoder "
                    f"takes"
                ) from None
            if out_shape != (1, d):
                raise ValueError(f"decoder module maps (1, {l}) to {out_shape}, expected (1, {d})")
            smooth = _ModuleSmooth(Y, module, gamma, z_encoder)
        else:
            smooth = _LinearSmooth(Y, weight, bias, gamma, z_encoder)
        if check_overflow:
            _check_no_overflow(Y_given, weight, smooth)

        if isinstance(step, str):
            lipschitz = smooth.lipschitz(Z)
            if not math.isfinite(lipschitz) or lipschitz <= 0:
                # a smooth part that does not depend on z: any step is exact
                if lipschitz == 0 and (module is None or (lam == 0 and beta == 0)):
                    lipschitz = 1.0
                else:
                    raise ValueError(
                        f"could not estimate a Lipschitz constant ({lipschitz}); pass a fixed step"
                    )
            eta = 1.0 / lipschitz if step == "lipschitz" else 2.0 / lipschitz
        else:
            eta = float(step)

        if module is None and beta == 0 and step != "backtracking":
            stepper = GramFixedStep(smooth.gram, smooth.linear_term, lam, eta, positive)
        elif module is None and step != "backtracking" and reduce is None:
            stepper = _GramHingeStep(smooth.gram, smooth.linear_term, lam, eta, positive, beta=beta,
                                     var_threshold=var_threshold, n=n)
        elif (mlp_layers := None if module is None else _relu_mlp_layers(module)) is not None and (
                step != "backtracking" and (reduce is None or beta == 0)):
            stepper = _MLPStep(Y, mlp_layers, lam, eta, positive, gamma=gamma, z_encoder=z_encoder, beta=beta,
                               var_threshold=var_threshold)
        else:
            stepper = _GradientStep(
                smooth, lam, eta, positive, beta=beta, var_threshold=var_threshold,
                backtracking=step == "backtracking", reduce=reduce,
                slack=1e-6 if Y.dtype == torch.float32 else 1e-12,
            )

        energies = []

        def record(codes):
            terms = (Y, smooth.reconstruct(codes), codes, z_encoder)
            if scale != 1.0:  # the rescaled energy is E/s²: in float64, where neither E nor s² overflow
                terms = tuple(None if t is None else t.to(torch.float64) for t in terms)
            y, reconstruction, z, z_enc = terms
            energy = total_energy(y, reconstruction, z, lam, beta=beta, var_threshold=var_threshold,
                                  gamma=gamma, Z_encoder=z_enc)
            energies.append(energy.to(torch.float64) * scale**2)

        result = fista_loop(
            stepper, Z, max_iter=max_iter, tol=tol, restart=restart, reduce=reduce,
            on_iteration=record if record_energy else None,
        )
        unstable = _unstable_fixed_step(result, smooth, eta, step, module)
        if unstable is not None:
            largest = float(result.codes.abs().max()) * scale
            warnings.warn(
                f"fista did not converge: {int(unstable.sum())} of {n} samples ran all max_iter={max_iter} "
                f"iterations with step {eta:.4g}, above the stability bound 2/L <= "
                f"{2.0 / _lipschitz_lower_bound(smooth):.4g} (L: Lipschitz constant of the smooth part), so "
                f"their codes oscillate or grow (largest |code| {largest:.4g}) without overflowing yet; they "
                f"are marked not converged. Use step <= 1/L, step='lipschitz' or step='backtracking'",
                RuntimeWarning,
                stacklevel=2,
            )
        if bool(result.diverged.any()):
            lipschitz = smooth.lipschitz(Z) / LIPSCHITZ_SAFETY
            if math.isfinite(lipschitz) and lipschitz > 0:
                cause = (
                    f"with step {eta:.4g} against 2/L = {2.0 / lipschitz:.4g} (L: Lipschitz constant of the "
                    f"smooth part by power iteration, without the variance hinge; with FISTA's momentum only "
                    f"steps below about 4/(3L) = {4.0 / (3.0 * lipschitz):.4g} are stable); use step <= "
                    f"1/L = {1.0 / lipschitz:.4g}, step='lipschitz' or step='backtracking'"
                )
            else:
                cause = (
                    f"with step {eta:.4g}; L (and so 2/L) cannot be computed: L = {lipschitz} — the "
                    f"decoder's weights are not finite"
                )
            warnings.warn(
                f"fista diverged: {int(result.diverged.sum())} of {n} samples' codes overflowed {cause}; "
                f"they are marked not converged",
                RuntimeWarning,
                stacklevel=2,
            )
        energy = torch.stack(energies).cpu() if energies else torch.zeros(0, dtype=torch.float64)
        codes = result.codes
        if scale != 1.0:
            codes = codes * scale
            if check_overflow and not all_finite(codes):
                raise ValueError(
                    f"the codes overflow {codes.dtype}: Y's entries reach {float(Y_given.abs().max()):.3g}, "
                    f"so codes reach about {float(result.codes.abs().max()) * scale:.3g}; pass float64 "
                    f"tensors (.double()) or rescale Y"
                )
        return FistaResult(codes=codes, n_iter=result.n_iter, energy=energy, converged=result.converged)


def in_safe_range(peak: float, dtype: torch.dtype) -> bool:
    """Whether a largest magnitude ``peak`` lies in ``[tiny^¼, max^¼]`` of ``dtype`` (float32: about 2e-10
    to 4e9; 0 counts as in range), where the squared norms and Gram products of such values stay in range."""
    info = torch.finfo(dtype)
    return peak == 0 or info.tiny ** 0.25 <= peak <= info.max ** 0.25


def power_of_two_below(peak: float) -> float:
    """The power of two that brings a largest magnitude ``peak`` into ``[1, 2)`` by division (exact in
    floating point); 1.0 for 0."""
    return 2.0 ** math.floor(math.log2(peak)) if peak > 0 else 1.0


def row_scale(Y: torch.Tensor) -> float:
    """The power of two to divide rows ``Y`` by before solving: 1.0 while their largest magnitude is
    :func:`in_safe_range`, where squared norms of codes and residuals stay in range; otherwise
    :func:`power_of_two_below` it."""
    low, high = torch.aminmax(Y.detach())  # one pass, no |Y| copy (training calls this every batch)
    peak = max(-float(low), float(high))
    return 1.0 if in_safe_range(peak, Y.dtype) else power_of_two_below(peak)


def _lipschitz_lower_bound(smooth) -> float:
    """A lower bound of the largest eigenvalue of a linear smooth part's ``G``: its largest diagonal entry,
    or ten power iterations' Rayleigh quotient (which approaches it from below) if that is larger."""
    diagonal = float(smooth.gram.diagonal().max())
    return max(diagonal, power_iteration_max_eigenvalue(smooth.gram, max_iter=10))


def _unstable_fixed_step(result, smooth, eta, step, module):
    """The samples that ran out of iterations with a fixed step certainly above the stability bound 2/L
    without overflowing (slow geometric growth, e.g. in float64, or a bounded oscillation of non-negative
    codes), or None. Linear decoders only (a cheap lower bound of L certifies it); those whose codes
    overflowed are :func:`fista`'s divergence warning."""
    if module is not None or isinstance(step, str):
        return None
    stopped = ~result.converged & ~result.diverged
    if not bool(stopped.any()):
        return None
    lower = _lipschitz_lower_bound(smooth)
    if not (math.isfinite(lower) and lower > 0 and eta > 2.0 / lower):
        return None
    return stopped
