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

The training step (SPEC §2.6) is in :meth:`SparseAutoencoder.training_step`; the shared trainer
(:mod:`sparsecoder.train`) drives epochs, checkpoints and artifacts through the
:class:`sparsecoder.train.protocol.TrainableModel` methods implemented here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from sparsecoder.config import CommonConfig, check, register_config
from sparsecoder.data.base import DataSplits, Split
from sparsecoder.inference.energy import l1_energy, reconstruction_energy, variance_hinge
from sparsecoder.inference.fista import fista
from sparsecoder.models.common import check_rows, resolve_device
from sparsecoder.nn.constraints import unit_norm_decoder_, weight_decay_param_groups
from sparsecoder.nn.decoders import LinearDecoder, MLPDecoder
from sparsecoder.nn.encoders import LISTAEncoder

__all__ = ["SparseAutoencoderConfig", "SparseAutoencoder", "resolve_device"]


@register_config("sparse_autoencoder")
@dataclass(frozen=True)
class SparseAutoencoderConfig(CommonConfig):
    """Configuration of :class:`SparseAutoencoder` (paper symbols in brackets; SPEC §2.5–2.7).

    The defaults are the VDL / MNIST row of the paper's Table 3; the presets in
    ``sparsecoder/presets/*.yaml`` set every variant explicitly.

    Attributes
    ----------
    encoder : {"lista", "none"}
        LISTA encoder (Algorithm 1) or none (DO: FISTA starts from zero, codes always come from FISTA).
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
        check(self.lista_iterations >= 0, "lista_iterations", f"must be >= 0, got {self.lista_iterations}")
        for key in ("lam", "gamma", "beta", "fista_tol", "weight_decay_decoder", "weight_decay_hidden_bias",
                    "weight_decay_encoder_bias"):
            value = getattr(self, key)
            check(math.isfinite(value) and value >= 0, key, f"must be a finite number >= 0, got {value}")
        check(all(math.isfinite(v) and v >= 0 for v in self.lam_grid), "lam_grid",
              f"every value must be a finite number >= 0, got {list(self.lam_grid)}")
        check(self.var_threshold > 0, "var_threshold", f"must be > 0, got {self.var_threshold}")
        if not isinstance(self.fista_step, str):
            check(self.fista_step > 0 and math.isfinite(self.fista_step), "fista_step",
                  f"must be a number > 0, 'lipschitz' or 'backtracking', got {self.fista_step}")
        check(self.fista_max_iter >= 1, "fista_max_iter", f"must be >= 1, got {self.fista_max_iter}")
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

    Training step on a mini-batch ``Y`` (SPEC §2.6, paper §3.3):

    1. ``Z_E = E(Y)`` without gradient (zeros when ``encoder="none"``);
    2. ``Z* = FISTA(Y; D, λ, β, T, γ, Z_E)`` started from ``Z_E``, minimising
       ``Σ_i (1/d)||y_i − D(z_i)||² + λ Σ_i ||z_i||₁ + β Σ_j [(T − std_j Z)_+]²
       + γ Σ_i (1/l)||z_i − E(y_i)||²``
       (β > 0 only for the variance guard, γ = 0 without an encoder), then detached;
    3. one Adam step on the decoder, loss ``MSE(D(Z*), Y)``;
    4. one Adam step on the encoder, loss ``MSE(E(Y), Z*)``;
    5. for the unit-norm guard, every decoder column back to unit L2 norm.

    Build it with :meth:`from_config`; the shared trainer drives it through ``optimizers``,
    ``training_step``, ``end_epoch``, ``validation_metrics``, ``evaluate``, ``encode`` and
    ``save_pictures``.

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
        if not isinstance(config, SparseAutoencoderConfig):
            kind = type(config).__name__
            raise ValueError(f"SparseAutoencoder needs a SparseAutoencoderConfig, not {kind}")
        self.config = config
        self.n_features = int(n_features)
        self.image_shape = tuple(image_shape) if image_shape else None
        self.device = resolve_device(config.device)
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
        self.to(self.device)
        self._optimizers = {
            "decoder": torch.optim.Adam(weight_decay_param_groups(
                self.decoder, config.lr_decoder, weight_decay=config.weight_decay_decoder,
                bias_weight_decay=config.weight_decay_hidden_bias)),
        }
        if self.encoder is not None:
            self._optimizers["encoder"] = torch.optim.Adam(weight_decay_param_groups(
                self.encoder, config.lr_encoder, bias_weight_decay=config.weight_decay_encoder_bias))

    # ------------------------------------------------------------------------------------------
    # construction
    # ------------------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: SparseAutoencoderConfig, data: DataSplits) -> SparseAutoencoder:
        """Model sized for ``data`` (``d = data.dim``), on the device the config names."""
        return cls(config, data.dim, data.image_shape)

    @property
    def n_components(self) -> int:
        return self.config.n_components

    @property
    def _beta(self) -> float:
        return self.config.beta if self.config.collapse_guard == "variance" else 0.0

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

    def infer(self, Y: torch.Tensor, *, z_encoder: torch.Tensor | None = None, record_energy: bool = False):
        """FISTA codes for the rows ``Y`` (on the model's device) as in training: started from the
        encoder's prediction ``z_encoder`` (computed when omitted; zeros without an encoder) with the
        configured λ, β (variance guard only), T and γ. A batch of one row is solved without the hinge,
        which needs a batch std.

        Returns
        -------
        FistaResult
        """
        if z_encoder is None:
            z_encoder = self._encoder_codes(Y)
        c = self.config
        beta = self._beta if Y.shape[0] > 1 else 0.0
        return fista(
            Y, self.decoder, c.lam, z0=z_encoder, n_components=c.n_components, step=c.fista_step,
            max_iter=c.fista_max_iter, tol=c.fista_tol, positive=True, beta=beta,
            var_threshold=c.var_threshold, gamma=self._gamma, z_encoder=z_encoder,
            record_energy=record_energy,
        )

    def _check_rows(self, x: torch.Tensor, name: str = "x") -> torch.Tensor:
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
            codes = self.encoder(Y) if self.encoder is not None else self.infer(Y).codes
            chunks.append(codes)
        return torch.cat(chunks) if chunks else x.new_zeros(0, self.n_components)

    # ------------------------------------------------------------------------------------------
    # training (the trainer protocol)
    # ------------------------------------------------------------------------------------------
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """``{"decoder": Adam, "encoder": Adam}`` (no encoder optimiser for DO)."""
        return self._optimizers

    def training_step(self, batch: torch.Tensor) -> dict[str, float]:
        """One mini-batch of SPEC §2.6; returns per-sample means of the energy terms at ``Z*``.

        Logged: ``energy`` (total energy of SPEC §2.1 per sample), ``reconstruction``, ``l1`` (λ-weighted),
        ``hinge`` (β-weighted, once per batch, divided by n), ``fista_iterations`` (mean per sample),
        ``code_l1`` (mean ||z*||₁), ``decoder_loss`` (MSE), ``encoder_loss`` (MSE to Z*), and the
        smallest per-component batch std of ``Z*`` (``min_code_std``).
        """
        Y = self._check_rows(batch, "batch")
        n = Y.shape[0]
        c = self.config
        if self._beta > 0 and n < 2:
            raise ValueError("the variance guard needs mini-batches of at least 2 samples; raise batch_size")
        self.train()
        z_encoder = self._encoder_codes(Y)
        result = self.infer(Y, z_encoder=z_encoder)
        Z = result.codes.detach()

        optimizer = self._optimizers["decoder"]
        optimizer.zero_grad(set_to_none=True)
        reconstruction = self.decoder(Z)
        decoder_loss = F.mse_loss(reconstruction, Y)
        decoder_loss.backward()
        optimizer.step()

        logs = {}
        if self.encoder is not None:
            optimizer = self._optimizers["encoder"]
            optimizer.zero_grad(set_to_none=True)
            encoder_loss = F.mse_loss(self.encoder(Y), Z)
            encoder_loss.backward()
            optimizer.step()
            logs["encoder_loss"] = encoder_loss.item()

        if c.collapse_guard == "unit_norm":
            unit_norm_decoder_(self.decoder)

        with torch.no_grad():
            reconstruction = reconstruction.detach()
            rec = float(reconstruction_energy(Y, reconstruction)) / n
            l1 = float(l1_energy(Z, c.lam)) / n
            hinge = float(variance_hinge(Z, self._beta, c.var_threshold)) / n if self._beta > 0 else 0.0
            proximity = 0.0
            if z_encoder is not None and self._gamma > 0:
                proximity = self._gamma * float((Z - z_encoder).square().mean(dim=1).mean())
            logs.update(
                energy=rec + l1 + hinge + proximity,
                reconstruction=rec,
                l1=l1,
                hinge=hinge,
                fista_iterations=float(result.n_iter.float().mean()),
                code_l1=float(Z.abs().sum(dim=1).mean()),
                min_code_std=float(Z.std(dim=0).min()) if n > 1 else float("nan"),
                decoder_loss=decoder_loss.item(),
            )
        return logs

    def end_epoch(self, epoch: int) -> None:
        """Halve the decoder learning rate after every ``lr_halve_every``-th epoch (1-based ``epoch``)."""
        every = self.config.lr_halve_every
        if every and epoch > 0 and epoch % every == 0:
            for group in self._optimizers["decoder"].param_groups:
                group["lr"] *= 0.5

    # ------------------------------------------------------------------------------------------
    # evaluation
    # ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def _energy_terms(self, split: Split, codes: torch.Tensor) -> dict[str, float]:
        """Energy of ``codes`` on ``split`` per sample (hinge per batch of ``batch_size``, as in training)."""
        x = split.x.to(self.device, torch.float32)
        c = self.config
        rec = l1 = hinge = 0.0
        recon_chunks = []
        for start in range(0, x.shape[0], c.batch_size):
            Y, Z = x[start:start + c.batch_size], codes[start:start + c.batch_size]
            reconstruction = self.decoder(Z)
            recon_chunks.append(reconstruction)
            rec += float(reconstruction_energy(Y, reconstruction))
            l1 += float(l1_energy(Z, c.lam))
            if self._beta > 0 and Z.shape[0] > 1:
                hinge += float(variance_hinge(Z, self._beta, c.var_threshold))
        n = max(x.shape[0], 1)
        return {
            "energy": (rec + l1 + hinge) / n, "reconstruction": rec / n, "l1": l1 / n, "hinge": hinge / n,
            "_recon": torch.cat(recon_chunks) if recon_chunks else x[:0],
        }

    @torch.no_grad()
    def _summary(self, split: Split, codes: torch.Tensor) -> dict[str, float]:
        from sparsecoder.eval.metrics import psnr, sparsity

        terms = self._energy_terms(split, codes)
        recon = terms.pop("_recon")
        target_pixels = split.to_pixels(split.x.to(self.device, torch.float32))
        recon_pixels = split.to_pixels(recon)
        return {
            **terms,
            "psnr": float(psnr(target_pixels, recon_pixels)),
            "sparsity": float(sparsity(codes)),
            "code_l1": float(codes.abs().sum(dim=1).mean()),
        }

    def _check_split(self, split: Split, what: str) -> None:
        if len(split) == 0:
            raise ValueError(f"the {what} split is empty; nothing to evaluate (check the data source/limit)")

    @torch.no_grad()
    def validation_metrics(self, split: Split) -> dict[str, float]:
        """Energy of the amortised codes on ``split`` (``val_loss``, SPEC §2.6), plus PSNR and sparsity.

        The energy is ``(1/n)[Σ_i (1/d)||y_i − D(E(y_i))||² + λ Σ_i ||E(y_i)||₁ + β Σ_batches hinge]``:
        the γ term vanishes because the codes *are* the encoder's. Without an encoder (DO) the codes come
        from FISTA started at zero.
        """
        self._check_split(split, "validation")
        self.eval()
        summary = self._summary(split, self.encode(split.x))
        return {
            "val_loss": summary["energy"],
            "val_reconstruction": summary["reconstruction"],
            "val_l1": summary["l1"],
            "val_hinge": summary["hinge"],
            "val_psnr": summary["psnr"],
            "val_sparsity": summary["sparsity"],
            "val_code_l1": summary["code_l1"],
        }

    @torch.no_grad()
    def evaluate(self, data: DataSplits) -> dict:
        """Test-set metrics (SPEC §3) for ``metrics.json``.

        Keys: ``psnr`` (dB, pixel space) and ``sparsity`` (fraction of exactly-zero entries) of the
        encoder's codes (FISTA's for DO); ``psnr_fista`` / ``sparsity_fista`` of FISTA codes inferred as in
        training (from the encoder's prediction); ``code_l1`` / ``code_l1_fista`` (mean ||z||₁);
        ``energy`` (per sample, encoder codes); ``dead_atoms`` (components never non-zero on the test set,
        encoder codes); ``fista_iterations`` (mean per sample); ``min_code_std`` (smallest std over the
        test set of a code component); ``decoder_column_norm_mean``/``_min``/``_max`` (of the atoms).
        """
        from sparsecoder.eval.metrics import dead_atoms

        split = data.test
        self._check_split(split, "test")
        self.eval()
        x = split.x.to(self.device, torch.float32)
        amortised = self.encode(x)
        fista_chunks, iterations = [], []
        for start in range(0, x.shape[0], self.config.batch_size):
            result = self.infer(x[start:start + self.config.batch_size])
            fista_chunks.append(result.codes)
            iterations.append(result.n_iter.float())
        fista_codes = torch.cat(fista_chunks)
        enc = self._summary(split, amortised)
        fis = self._summary(split, fista_codes)
        atom_norms = self.atoms().norm(dim=0)
        return {
            "psnr": enc["psnr"],
            "sparsity": enc["sparsity"],
            "psnr_fista": fis["psnr"],
            "sparsity_fista": fis["sparsity"],
            "code_l1": enc["code_l1"],
            "code_l1_fista": fis["code_l1"],
            "energy": enc["energy"],
            "energy_fista": fis["energy"],
            "dead_atoms": int(dead_atoms(amortised)),
            "fista_iterations": float(torch.cat(iterations).mean()) if iterations else float("nan"),
            "min_code_std": float(amortised.std(dim=0).min()) if amortised.shape[0] > 1 else float("nan"),
            "decoder_column_norm_mean": float(atom_norms.mean()),
            "decoder_column_norm_min": float(atom_norms.min()),
            "decoder_column_norm_max": float(atom_norms.max()),
            "n_test": int(x.shape[0]),
        }

    # ------------------------------------------------------------------------------------------
    # pictures
    # ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def atoms(self) -> torch.Tensor:
        """``(d, l)``: decoder columns (linear) or ``D(e_i) − D(0)`` (mlp), SPEC §2.4."""
        return self.decoder.atoms()

    def save_pictures(self, data: DataSplits, out_dir: Path) -> list[Path]:
        """Write ``atoms.png``, ``encoder.png`` (rows of U; not for DO) and ``reconstructions.png``.

        Atoms and filters are ordered by how often their code component is active on the test set (most
        used first). Nothing is drawn for data without an ``image_shape``.
        """
        from sparsecoder.viz import atom_grid, reconstruction_grid

        if data.image_shape is None:
            return []
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.eval()
        split = data.test if len(data.test) else data.val
        x = split.x[: min(len(split), 2000)].to(self.device, torch.float32)
        codes = self.encode(x)
        order = torch.argsort((codes != 0).float().mean(dim=0), descending=True, stable=True).cpu()
        paths = []
        path = out_dir / "atoms.png"
        kind = "decoder columns" if self.config.decoder == "linear" else "D(e_i) - D(0)"
        atom_grid(self.atoms().cpu(), data.image_shape, path, order=order,
                  title=f"atoms ({kind}), most used first")
        paths.append(path)
        if self.encoder is not None:
            path = out_dir / "encoder.png"
            atom_grid(self.encoder.filters.detach().T.cpu(), data.image_shape, path, order=order,
                      title="encoder filters (rows of U), same order as the atoms")
            paths.append(path)
        shown = slice(0, min(16, x.shape[0]))
        with torch.no_grad():
            recon = self.decoder(codes[shown])
        path = out_dir / "reconstructions.png"
        reconstruction_grid(split.to_pixels(x[shown], shown).cpu(), split.to_pixels(recon, shown).cpu(),
                            data.image_shape, path, title="test inputs (top) over reconstructions D(codes)")
        paths.append(path)
        return paths
