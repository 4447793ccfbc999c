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

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from sparsecoder.data.base import DataSplits
from sparsecoder.inference.fista import all_finite, fista
from sparsecoder.models.common import (
    check_float32_model,
    check_model_arguments,
    check_rows,
    module_device,
    resolve_device,
)
from sparsecoder.models.configs import MAX_LISTA_ITERATIONS, SparseAutoencoderConfig
from sparsecoder.nn.constraints import unit_norm_decoder_, weight_decay_param_groups
from sparsecoder.nn.decoders import LinearDecoder, MLPDecoder
from sparsecoder.nn.encoders import LISTAEncoder
from sparsecoder.train.protocol import OptimizerSpec, ParamGroupSpec, Reduce, StepOutput

# SparseAutoencoderConfig and its bounds live in the torch-free sparsecoder.models.configs (listing presets
# imports no torch); re-exported here under their old names
__all__ = ["SparseAutoencoderConfig", "SparseAutoencoder", "resolve_device", "MAX_LISTA_ITERATIONS"]


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
