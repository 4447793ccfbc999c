"""Sparse autoencoders of Evtimova & LeCun 2022 — all eight variants and the no-guard ablation as ONE model.

A LISTA encoder (or none) predicts codes, FISTA refines them on the energy of SPEC §2.1, and a linear or
one-hidden-layer decoder is trained to reconstruct the inputs from the refined codes. What keeps the
code L1 norm from collapsing is a configuration value, ``collapse_guard`` (SPEC §2.5):

=========  ========  ========  ===============  =============================================
variant    encoder   decoder   collapse_guard   what it does
=========  ========  ========  ===============  =============================================
SDL(-NL)   lista     linear    unit_norm        decoder columns rescaled to norm 1 after each step
                     / mlp
VDL(-NL)   lista     … / mlp   variance         variance hinge β Σ_j [(T − std_j Z)_+]² in FISTA
WDL(-NL)   lista     … / mlp   weight_decay     Adam weight decay on the decoder weights
DO(-NL)    none      … / mlp   unit_norm        no encoder, FISTA from zero
ablation   lista     … / mlp   none             nothing: the code L1 norm shrinks toward zero
=========  ========  ========  ===============  =============================================

The model declares its optimisers (:meth:`SparseAutoencoder.optimizer_specs`), its projection and its
losses for a batch (:meth:`SparseAutoencoder.training_losses`); the trainer
(:mod:`sparsecoder.train`) owns the optimisers and takes the steps of SPEC §2.6. Validation and test
metrics are in :mod:`sparsecoder.eval.sae`, pictures in :func:`sparsecoder.viz.sae_pictures`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from sparsecoder.config import MAX_LOSS_WEIGHT, CommonConfig, UsedWhen, check, register_config
from sparsecoder.data.base import DataSplits
from sparsecoder.inference.fista import all_finite, fista
from sparsecoder.models.common import (
    check_float32_model,
    check_model_arguments,
    check_rows,
    module_device,
    resolve_device,
)
from sparsecoder.nn.constraints import unit_norm_decoder_, weight_decay_param_groups
from sparsecoder.nn.decoders import LinearDecoder, MLPDecoder
from sparsecoder.nn.encoders import LISTAEncoder
from sparsecoder.train.protocol import OptimizerSpec, ParamGroupSpec, Reduce, StepOutput

__all__ = ["SparseAutoencoderConfig", "SparseAutoencoder", "resolve_device"]

# Unrolled LISTA steps of the encoder (the paper's: 3); every encoding runs them all, so 10**9 would hang
# each batch instead of failing.
MAX_LISTA_ITERATIONS = 1000


@register_config("sparse_autoencoder")
@dataclass(frozen=True)
class SparseAutoencoderConfig(CommonConfig):
    """Configuration of :class:`SparseAutoencoder` (paper symbols in brackets; SPEC §2.5–2.7).

    The defaults are the VDL / MNIST row of the paper's Table 3; the presets in
    ``sparsecoder/presets/*.yaml`` set every variant explicitly.

    Attributes
    ----------
    encoder : {"lista", "none"}
        LISTA encoder (Algorithm 1) or none (DO: FISTA starts from ``fista_init``, codes always come from
        FISTA).
    decoder : {"linear", "mlp"}
        ``ŷ = W z`` or ``ŷ = W2 ReLU(W1 z + b1)`` (the "-NL" variants).
    collapse_guard : {"unit_norm", "variance", "weight_decay", "none"}
        SDL/DO, VDL, WDL, or the no-guard ablation.
    n_components : int
        Code size ``l`` (128 MNIST, 256 patches).
    hidden_size : int
        Hidden size ``m`` of the ``mlp`` decoder (1024 MNIST, 2048 patches).
    lista_iterations : int
        LISTA refinements ``L`` (3).
    lam : float
        Sparsity weight λ in reference scaling (SPEC §2.1).
    lam_grid : tuple of float
        The paper's λ grid for this preset (used by sweeps; training uses ``lam``).
    gamma : float
        γ, weight of the encoder-proximity term in FISTA (must be 0 without an encoder).
    beta : float
        β, weight of the variance hinge (> 0 exactly when ``collapse_guard == "variance"``).
    var_threshold : float
        T, the hinge's lower bound on each code component's batch std (0.5).
    fista_step : float or {"lipschitz", "backtracking"}
        FISTA step η_k (a fixed float in the paper: 0.5 or 1).
    fista_max_iter, fista_tol : int, float
        FISTA's iteration cap K (200) and per-sample relative-change tolerance (1e-3).
    fista_init : float
        The value every code component starts FISTA from without an encoder (DO, DO-NL; the authors'
        ``--Zs_init_val``, default 0). The ``mlp`` decoder needs it > 0: with ``b1 = 0`` at
        initialisation, zero codes give zero hidden pre-activations, where ReLU's gradient is 0, so FISTA
        never leaves 0 and nothing is learned (the ``do-nl-*`` presets set 0.1).
    fista_restart : bool
        Per-sample adaptive momentum restart in FISTA (O'Donoghue & Candès 2015; ``fista(restart=...)``):
        the same energy and tolerance in fewer passes where the momentum oscillates. On in ``sdl-nl-mnist``
        (about 40 % fewer passes, the same test PSNR and sparsity as plain FISTA and the authors' code:
        issue 15); off — the paper's plain FISTA — elsewhere.
    lr_decoder, lr_encoder : float
        Adam learning rates η_D, η_E.
    weight_decay_decoder : float
        Adam weight decay on the decoder's weight matrices (WDL: 5e-4; > 0 exactly for that guard).
    weight_decay_hidden_bias : float
        wd(b1), weight decay on the hidden bias of the ``mlp`` decoder.
    weight_decay_encoder_bias : float
        wd(b), weight decay on the LISTA bias.
    lr_halve_every : int or None
        Halve the decoder learning rate every this many epochs (30 for VDL-NL), or never.
    """

    # named by the trainer's divergence message besides the step sizes and learning rates (not a config key)
    LOSS_SCALES: ClassVar[tuple[str, ...]] = ("lam", "beta", "gamma", "var_threshold")
    # keys used only under some setting of another (a preset's take their off value or default when unused;
    # a user's are refused: config.layered_config)
    USED_WHEN: ClassVar[dict[str, UsedWhen]] = {
        "hidden_size": UsedWhen("decoder", ("mlp",)),
        "weight_decay_hidden_bias": UsedWhen("decoder", ("mlp",), off=0.0),
        "lista_iterations": UsedWhen("encoder", ("lista",)),
        "lr_encoder": UsedWhen("encoder", ("lista",)),
        "gamma": UsedWhen("encoder", ("lista",), off=0.0),
        "weight_decay_encoder_bias": UsedWhen("encoder", ("lista",), off=0.0),
        "beta": UsedWhen("collapse_guard", ("variance",), off=0.0),
        "var_threshold": UsedWhen("collapse_guard", ("variance",)),
        "weight_decay_decoder": UsedWhen("collapse_guard", ("weight_decay",), off=0.0),
        "fista_init": UsedWhen("encoder", ("none",), off=0.0),
    }

    encoder: Literal["lista", "none"] = "lista"
    decoder: Literal["linear", "mlp"] = "linear"
    collapse_guard: Literal["unit_norm", "variance", "weight_decay", "none"] = "variance"
    n_components: int = 128
    hidden_size: int = 1024
    lista_iterations: int = 3
    lam: float = 2e-2
    lam_grid: tuple[float, ...] = (0.0, 1e-3, 3e-3, 5e-3, 1e-2, 2e-2)
    gamma: float = 5.0
    beta: float = 10.0
    var_threshold: float = 0.5
    fista_step: float | Literal["lipschitz", "backtracking"] = 0.5
    fista_max_iter: int = 200
    fista_tol: float = 1e-3
    fista_restart: bool = False
    fista_init: float = 0.0
    lr_decoder: float = 3e-4
    lr_encoder: float = 1e-4
    weight_decay_decoder: float = 0.0
    weight_decay_hidden_bias: float = 0.0
    weight_decay_encoder_bias: float = 0.0
    lr_halve_every: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.n_components >= 1, "n_components", f"must be >= 1, got {self.n_components}")
        check(self.hidden_size >= 1, "hidden_size", f"must be >= 1, got {self.hidden_size}")
        check(0 <= self.lista_iterations <= MAX_LISTA_ITERATIONS, "lista_iterations",
              f"must be in [0, {MAX_LISTA_ITERATIONS}], got {self.lista_iterations}")
        check(math.isfinite(self.fista_tol) and self.fista_tol >= 0, "fista_tol",
              f"must be a finite number >= 0, got {self.fista_tol}")
        float32 = "it enters the float32 energy or Adam's squared gradients"
        for key in ("lam", "gamma", "beta", "weight_decay_decoder", "weight_decay_hidden_bias",
                    "weight_decay_encoder_bias"):
            value = getattr(self, key)
            check(0 <= value <= MAX_LOSS_WEIGHT, key,
                  f"must be a finite number >= 0 and <= {MAX_LOSS_WEIGHT:g} ({float32}), got {value}")
        check(all(0 <= v <= MAX_LOSS_WEIGHT for v in self.lam_grid), "lam_grid",
              f"every value must be a finite number >= 0 and <= {MAX_LOSS_WEIGHT:g} ({float32}), got "
              f"{list(self.lam_grid)}")
        check(0 < self.var_threshold <= MAX_LOSS_WEIGHT, "var_threshold",
              f"must be > 0 and <= {MAX_LOSS_WEIGHT:g} (its square enters the float32 energy), "
              f"got {self.var_threshold}")
        if not isinstance(self.fista_step, str):
            check(self.fista_step > 0 and math.isfinite(self.fista_step), "fista_step",
                  f"must be a number > 0, 'lipschitz' or 'backtracking', got {self.fista_step}")
        check(self.fista_max_iter >= 1, "fista_max_iter", f"must be >= 1, got {self.fista_max_iter}")
        check(0 <= self.fista_init <= MAX_LOSS_WEIGHT, "fista_init",
              f"must be a finite number >= 0 and <= {MAX_LOSS_WEIGHT:g} (codes are non-negative), "
              f"got {self.fista_init}")
        for key in ("lr_decoder", "lr_encoder"):
            value = getattr(self, key)
            check(math.isfinite(value) and value > 0, key, f"must be a number > 0, got {value}")
        check(self.lr_halve_every is None or self.lr_halve_every >= 1, "lr_halve_every",
              f"must be >= 1 or null (never), got {self.lr_halve_every}")
        if self.collapse_guard == "variance":
            check(self.beta > 0, "beta", "collapse_guard=variance (VDL) needs beta > 0 (the paper uses 10)")
        else:
            check(self.beta == 0, "beta",
                  f"beta={self.beta} > 0 turns on the variance hinge; set collapse_guard=variance for that "
                  f"(collapse_guard is '{self.collapse_guard}', which needs beta=0)")
        if self.collapse_guard == "weight_decay":
            check(self.weight_decay_decoder > 0, "weight_decay_decoder",
                  "collapse_guard=weight_decay (WDL) needs weight_decay_decoder > 0 (the paper uses 5e-4)")
        else:
            check(self.weight_decay_decoder == 0, "weight_decay_decoder",
                  f"decoder weight decay is the WDL guard; set collapse_guard=weight_decay to use it "
                  f"(collapse_guard is '{self.collapse_guard}', which needs weight_decay_decoder=0)")
        if self.encoder == "none":
            check(self.gamma == 0, "gamma",
                  "encoder=none (DO) has no encoder prediction to stay close to; set gamma=0")
            check(self.weight_decay_encoder_bias == 0, "weight_decay_encoder_bias",
                  "encoder=none has no encoder bias; set weight_decay_encoder_bias=0")
        if self.decoder == "linear":
            check(self.weight_decay_hidden_bias == 0, "weight_decay_hidden_bias",
                  "the linear decoder has no hidden bias b1; set weight_decay_hidden_bias=0 or decoder=mlp")


class SparseAutoencoder(nn.Module):
    r"""LISTA encoder (optional) + linear / one-hidden-layer decoder trained with FISTA targets.

    Training step on a mini-batch ``Y`` (SPEC §2.6, paper §3.3), split between this model (what) and the
    trainer (how, :class:`sparsecoder.train.optimization.Optimization`):

    1. ``Z_E = E(Y)`` without gradient (zeros when ``encoder="none"``);
    2. ``Z* = FISTA(Y; D, λ, β, T, γ, Z_E)`` started from ``Z_E``, minimising
       ``Σ_i (1/d)||y_i − D(z_i)||² + λ Σ_i ||z_i||₁ + β Σ_j [(T − std_j Z)_+]²
       + γ Σ_i (1/l)||z_i − E(y_i)||²``
       (β > 0 only for the variance guard, γ = 0 without an encoder), then detached;
    3. one Adam step on the decoder, loss ``MSE(D(Z*), Y)`` (optimiser ``"decoder"``);
    4. one Adam step on the encoder, loss ``MSE(E(Y), Z*)`` (optimiser ``"encoder"``);
    5. for the unit-norm guard, every decoder column back to unit L2 norm (the projection).

    Steps 1–2 and the two losses are :meth:`training_losses`; 3–5 are the trainer's, following
    :meth:`optimizer_specs` and :meth:`projections`. Build the model with :meth:`from_config`; it is
    created on the CPU and moved with ``model.to(device)``.

    Parameters
    ----------
    config : SparseAutoencoderConfig
    n_features : int
        Input size ``d``.
    image_shape : tuple of int, optional
        How to draw a row as an image (atoms, encoder filters, reconstructions).
    """

    def __init__(self, config: SparseAutoencoderConfig, n_features: int,
                 image_shape: tuple[int, ...] | None = None):
        super().__init__()
        n_features, image_shape = check_model_arguments(self, config, SparseAutoencoderConfig, n_features,
                                                        image_shape, "a sparse autoencoder")
        self.config = config
        self.n_features = n_features
        self.image_shape = image_shape
        # Initialise from the run's seed regardless of the global RNG state, without disturbing it.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.encoder = (
                LISTAEncoder(self.n_features, config.n_components, config.lista_iterations)
                if config.encoder == "lista" else None
            )
            if config.decoder == "linear":
                self.decoder = LinearDecoder(config.n_components, self.n_features)
            else:
                self.decoder = MLPDecoder(config.n_components, config.hidden_size, self.n_features)
        if config.collapse_guard == "unit_norm":
            unit_norm_decoder_(self.decoder)

    # ------------------------------------------------------------------------------------------
    # construction
    # ------------------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: SparseAutoencoderConfig, data: DataSplits) -> SparseAutoencoder:
        """Model sized for ``data`` (``d = data.dim``), on the CPU (``model.to(device)`` moves it)."""
        return cls(config, data.dim, data.image_shape)

    @property
    def device(self) -> torch.device:
        """Where the parameters are (follows ``model.to``)."""
        return module_device(self)

    @property
    def n_components(self) -> int:
        return self.config.n_components

    @property
    def _beta(self) -> float:
        return self.config.beta if self.config.collapse_guard == "variance" else 0.0

    def batch_requirement(self) -> tuple[int, str]:
        """The fewest rows a training mini-batch may have, and why (the trainer checks its batches before
        the first epoch): 2 with the variance guard, which needs each code component's std over a batch."""
        if self._beta > 0:
            return 2, (f"the variance guard (collapse_guard=variance, beta={self.config.beta}) takes the std "
                       f"of each code component over a batch, so it")
        return 1, ""

    @property
    def _gamma(self) -> float:
        return self.config.gamma if self.encoder is not None else 0.0

    # ------------------------------------------------------------------------------------------
    # inference
    # ------------------------------------------------------------------------------------------
    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """Reconstructions ``D(E(y))`` of the amortised codes (``D(FISTA codes)`` without an encoder)."""
        return self.decoder(self.encode(y))

    @torch.no_grad()
    def _encoder_codes(self, Y: torch.Tensor) -> torch.Tensor | None:
        return None if self.encoder is None else self.encoder(Y)

    def infer(self, Y: torch.Tensor, *, z_encoder: torch.Tensor | None = None, record_energy: bool = False,
              reduce: Reduce | None = None, n_global: int | None = None):
        """FISTA codes for the rows ``Y`` (checked and moved to the model's device as float32, like
        :meth:`encode`'s) as in training: started from the
        encoder's prediction ``z_encoder`` (computed when omitted; zeros without an encoder) with the
        configured λ, β (variance guard only), T and γ. A batch of one row is solved without the hinge,
        which needs a batch std.

        With ``reduce`` (data-parallel training: the element-wise sum over processes) the rows are this
        process's shard of a global batch of ``n_global`` rows, and FISTA's variance hinge uses the
        per-component std of the *global* batch.

        Returns
        -------
        FistaResult
        """
        return self._fista(self._check_rows(Y, "Y"), z_encoder=z_encoder, record_energy=record_energy,
                           reduce=reduce, n_global=n_global)

    def _fista(self, Y: torch.Tensor, *, z_encoder: torch.Tensor | None = None, record_energy: bool = False,
               reduce: Reduce | None = None, n_global: int | None = None):
        """:meth:`infer` on rows already checked (:meth:`_check_rows`)."""
        if z_encoder is None:
            z_encoder = self._encoder_codes(Y)
        if z_encoder is not None and not all_finite(z_encoder):
            raise FloatingPointError(self._non_finite_codes(z_encoder))
        c = self.config
        beta = self._beta if (Y.shape[0] if n_global is None else n_global) > 1 else 0.0
        distributed = {} if reduce is None else {"reduce": reduce}
        z0 = z_encoder
        if z0 is None and c.fista_init:  # DO: every code starts at fista_init (0: fista's zeros)
            z0 = Y.new_full((Y.shape[0], c.n_components), c.fista_init)
        return fista(
            Y, self.decoder, c.lam, z0=z0, n_components=c.n_components, step=c.fista_step,
            max_iter=c.fista_max_iter, tol=c.fista_tol, restart=c.fista_restart, positive=True, beta=beta,
            var_threshold=c.var_threshold, gamma=self._gamma, z_encoder=z_encoder,
            # a decoder that overflows is a divergence of training (NaN codes), not a bad argument
            record_energy=record_energy, check_overflow=False, **distributed,
        )

    def _non_finite_codes(self, codes: torch.Tensor) -> str:
        """Why the LISTA encoder's ``codes`` (of finite rows) are NaN/inf: the encoder's weights (named) are
        NaN/inf or so large that its outputs overflow, i.e. training diverged (FISTA would otherwise refuse
        them as a bad start and ask to clean the data)."""
        bad = int((~torch.isfinite(codes).all(dim=1)).sum())
        weights = [name for name, p in self.encoder.named_parameters() if not bool(torch.isfinite(p).all())]
        largest = max(float(p.detach().abs().max()) for p in self.encoder.parameters())
        state = (f"non-finite weights {weights}" if weights else
                 f"finite weights up to {largest:.3g} whose outputs overflow float32")
        return (f"the LISTA encoder's codes are NaN/inf for {bad} of {codes.shape[0]} rows: the encoder has "
                f"{state}; training diverged (lower lr_encoder, then lr_decoder, λ, γ) — the rows are not "
                f"the cause")

    def _check_rows(self, x: torch.Tensor, name: str = "x") -> torch.Tensor:
        check_float32_model(self)
        return check_rows(x, self.n_features, self.device, name)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes ``(n, l)`` of model-space rows ``x``: the encoder's (amortised), or FISTA's for DO.

        Processed in mini-batches of ``batch_size`` (the variance hinge of FISTA is per batch).
        """
        x = self._check_rows(x)
        chunks = []
        for start in range(0, x.shape[0], self.config.batch_size):
            Y = x[start:start + self.config.batch_size]
            codes = self.encoder(Y) if self.encoder is not None else self._fista(Y).codes
            chunks.append(codes)
        return torch.cat(chunks) if chunks else x.new_zeros(0, self.n_components)

    @torch.no_grad()
    def atoms(self) -> torch.Tensor:
        """``(d, l)``: decoder columns (linear) or ``D(e_i) − D(0)`` (mlp), SPEC §2.4."""
        return self.decoder.atoms()

    # ------------------------------------------------------------------------------------------
    # training (the trainer protocol)
    # ------------------------------------------------------------------------------------------
    def optimizer_specs(self) -> list[OptimizerSpec]:
        """``decoder`` then ``encoder`` (none for DO): Adam, weight decay split weights/biases (Table 3),
        the decoder's learning rate multiplied by 0.5 every ``lr_halve_every`` epochs."""
        c = self.config

        def groups(module, lr, **decay):
            return [ParamGroupSpec(g["name"], g["params"], g["lr"], g["weight_decay"])
                    for g in weight_decay_param_groups(module, lr, **decay)]

        specs = [OptimizerSpec("decoder", groups(self.decoder, c.lr_decoder,
                                                 weight_decay=c.weight_decay_decoder,
                                                 bias_weight_decay=c.weight_decay_hidden_bias),
                               lr_step_every=c.lr_halve_every, lr_step_factor=0.5)]
        if self.encoder is not None:
            specs.append(OptimizerSpec("encoder", groups(self.encoder, c.lr_encoder,
                                                         bias_weight_decay=c.weight_decay_encoder_bias)))
        return specs

    def projections(self) -> list[Callable[[], None]]:
        """Unit-norm decoder columns after every step for the unit-norm guard (SDL, DO)."""
        if self.config.collapse_guard == "unit_norm":
            return [lambda: unit_norm_decoder_(self.decoder)]
        return []

    def training_losses(self, batch: torch.Tensor, *, reduce: Reduce | None = None) -> StepOutput:
        """FISTA codes ``Z*`` of ``batch`` and the decoder/encoder losses of SPEC §2.6.

        Logged (per-sample means at ``Z*``): ``energy`` (total energy of SPEC §2.1), ``reconstruction``,
        ``l1`` (λ-weighted), ``hinge`` (β-weighted, once per batch, divided by n), ``fista_iterations``,
        ``code_l1`` (mean ||z*||₁), ``decoder_loss`` (MSE), ``encoder_loss`` (MSE to Z*), and the smallest
        per-component batch std of ``Z*`` (``min_code_std``). With ``reduce`` the hinge and
        ``min_code_std`` are those of the global batch.
        """
        Y = self._check_rows(batch, "batch")
        n = Y.shape[0]
        c = self.config
        n_global = n if reduce is None else int(reduce(torch.tensor([float(n)], device=Y.device)).item())
        if self._beta > 0 and n_global < 2:
            raise ValueError(f"the variance guard needs mini-batches of at least 2 samples, got a batch of "
                             f"{n_global}; use batch_size >= 2 and at least 2 training rows")
        # one encoder pass serves both FISTA's start / proximity target (detached) and the encoder loss
        encoded = None if self.encoder is None else self.encoder(Y)
        z_encoder = None if encoded is None else encoded.detach()
        result = self._fista(Y, z_encoder=z_encoder, reduce=reduce, n_global=n_global)
        Z = result.codes.detach()
        reconstruction = self.decoder(Z)
        decoder_loss = F.mse_loss(reconstruction, Y)
        losses = {"decoder": decoder_loss}
        logs = {}
        if self.encoder is not None:
            encoder_loss = F.mse_loss(encoded, Z)
            losses["encoder"] = encoder_loss
            logs["encoder_loss"] = encoder_loss.item()

        with torch.no_grad():
            # the energy's terms from the losses where they coincide: per sample, the reconstruction term
            # (1/d)||y − D(z)||² averages to the decoder's MSE, the proximity (γ/l)||z − E(y)||² to γ times
            # the encoder's, and λ||z||₁ to λ·code_l1 — no second pass over the batch for the logs
            rec = decoder_loss.item()
            code_l1 = float(Z.abs().sum(dim=1).mean())
            l1 = c.lam * code_l1
            if reduce is None:
                std = Z.std(dim=0) if n > 1 else None
            else:
                std = _global_std(Z, reduce, n_global) if n_global > 1 else None
            hinge = 0.0
            if self._beta > 0:  # β Σ_j [(T − std_j)_+]², once per batch, per sample
                shortfall = torch.clamp(c.var_threshold - std, min=0)
                hinge = self._beta * float(shortfall.square().sum()) / n_global
            proximity = 0.0
            if z_encoder is not None and self._gamma > 0:
                proximity = self._gamma * logs["encoder_loss"]
            logs.update(
                energy=rec + l1 + hinge + proximity,
                reconstruction=rec,
                l1=l1,
                hinge=hinge,
                fista_iterations=float(result.n_iter.float().mean()),
                code_l1=code_l1,
                min_code_std=float(std.min()) if std is not None else float("nan"),
                decoder_loss=rec,
            )
        return StepOutput(losses=losses, logs=logs)


def _global_std(Z: torch.Tensor, reduce: Reduce, n_global: int) -> torch.Tensor:
    """Unbiased per-component std of the rows of ``Z`` on every process (sums in float64)."""
    Z64 = Z.double()
    sums = reduce(torch.cat([Z64.sum(dim=0), Z64.square().sum(dim=0)]))
    total, squares = sums[:Z.shape[1]], sums[Z.shape[1]:]
    variance = (squares - total.square() / n_global) / max(n_global - 1, 1)
    return variance.clamp_min(0).sqrt().to(Z.dtype)
