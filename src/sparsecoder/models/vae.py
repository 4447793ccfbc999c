"""One VAE with pluggable prior, posterior, KL, encoder, decoder and likelihood (SPEC §4–§5).

Covers the sparse-coding VAEs (Barello et al. 2018; Jiang & de la Iglesia: Laplace prior, overcomplete
linear decoder, β-weighted KL, ResNet encoder, unit-norm decoder columns) and Pyle's Gaussian / Laplace /
Cauchy comparison with one code path. The training loss per sample is the β-weighted negative ELBO

    loss(x) = −log p(x|z) + β Σ_j KL(q(z_j|x) ‖ p(z_j)),     z ~ q(z|x) (reparameterised, fresh noise)

with ``−log p(x|z)`` a Gaussian likelihood of fixed σ (``Σ_pixels (x − x̂)²/2σ² + log σ + ½log 2π``),
Bernoulli cross-entropy on the decoder's logits (``bce``), or the plain squared error (``mse``).
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
from sparsecoder.models.common import check_rows, resolve_device
from sparsecoder.models.distributions import (
    ANALYTIC_PAIRS,
    Posterior,
    kl_divergence,
    sample_prior,
)
from sparsecoder.nn.constraints import unit_norm_columns_
from sparsecoder.nn.vae_networks import PosteriorEncoder, build_decoder

_EVAL_CHUNK = 1000


@register_config("vae")
@dataclass(frozen=True)
class VAEConfig(CommonConfig):
    """Configuration of :class:`VAE`; the paper symbol is given where there is one."""

    n_latents: int = 450  # latent size l (450 in Jiang & de la Iglesia, 16x16 patches)
    posterior: Literal["gaussian", "cauchy"] = "gaussian"
    prior: Literal["gaussian", "laplace", "cauchy"] = "laplace"
    prior_scale: float = 0.1  # b of Laplace(0, b); std of N(0, s²); scale of Cauchy(0, s)
    kl: Literal["analytic", "monte_carlo"] = "analytic"
    kl_samples: int = 1  # samples of the Monte-Carlo KL per training step
    beta: float = 1.0  # β, weight of the KL term (β < 1: the SVAE heuristic)
    encoder: Literal["mlp", "resnet", "pyle"] = "mlp"
    encoder_hidden: int = 512
    resnet_blocks: int = 2
    decoder: Literal["linear", "pyle"] = "linear"
    decoder_hidden: int = 500
    unit_norm_decoder: bool = False  # project each decoder column onto the unit sphere after every step
    likelihood: Literal["gaussian", "bce", "mse"] = "gaussian"
    likelihood_sigma: float = math.exp(-1.0)  # σ of the Gaussian likelihood (Barello: e^-1)
    lr: float = 1e-3  # Adam learning rate
    eval_samples: int = 50  # posterior samples for the test MSE (SPEC §4)
    active_threshold: float = 0.5  # a latent is active when the std of its posterior mean exceeds this

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.n_latents >= 1, "n_latents", f"must be >= 1, got {self.n_latents}")
        check(self.prior_scale > 0, "prior_scale", f"must be > 0, got {self.prior_scale}")
        check(self.kl_samples >= 1, "kl_samples", f"must be >= 1, got {self.kl_samples}")
        check(self.beta >= 0, "beta", f"must be >= 0, got {self.beta}")
        check(self.encoder_hidden >= 1, "encoder_hidden", f"must be >= 1, got {self.encoder_hidden}")
        check(self.resnet_blocks >= 1, "resnet_blocks", f"must be >= 1, got {self.resnet_blocks}")
        check(self.decoder_hidden >= 1, "decoder_hidden", f"must be >= 1, got {self.decoder_hidden}")
        check(self.likelihood_sigma > 0, "likelihood_sigma", f"must be > 0, got {self.likelihood_sigma}")
        check(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        check(self.eval_samples >= 1, "eval_samples", f"must be >= 1, got {self.eval_samples}")
        check(self.active_threshold >= 0, "active_threshold", f"must be >= 0, got {self.active_threshold}")
        if self.kl == "analytic":
            check((self.posterior, self.prior) in ANALYTIC_PAIRS, "kl",
                  f"no closed form for a {self.posterior} posterior and a {self.prior} prior; closed forms "
                  f"exist for (posterior, prior) in {sorted(ANALYTIC_PAIRS)}; set kl=monte_carlo")
        check(not self.unit_norm_decoder or self.decoder == "linear", "unit_norm_decoder",
              "unit-norm columns apply to the linear decoder only; "
              "set decoder=linear or unit_norm_decoder=false")
        check(self.likelihood != "bce" or self.decoder == "pyle", "likelihood",
              "bce needs decoder=pyle (logit outputs in [0, 1] after the sigmoid); use gaussian or mse")


class VAE(nn.Module):
    """Variational autoencoder with a factorised posterior ``q(z|x)`` and a factorised sparse prior.

    Build it with :meth:`from_config`; the shared trainer drives it through the protocol of
    :mod:`sparsecoder.train.protocol`.
    """

    def __init__(self, config: VAEConfig, n_features: int, image_shape: tuple[int, ...] | None = None):
        super().__init__()
        if not isinstance(config, VAEConfig):
            raise ValueError(f"VAE needs a VAEConfig, not {type(config).__name__}")
        self.config = config
        self.n_features = int(n_features)
        self.image_shape = tuple(image_shape) if image_shape else None
        self.device = resolve_device(config.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.encoder = PosteriorEncoder(config.encoder, self.n_features, config.n_latents,
                                            config.encoder_hidden, config.resnet_blocks)
            self.decoder = build_decoder(config.decoder, config.n_latents, config.decoder_hidden,
                                         self.n_features)
        if config.unit_norm_decoder:
            unit_norm_columns_(self.decoder.weight.data)
        self.to(self.device)
        self._optimizers = {"vae": torch.optim.Adam(self.parameters(), lr=config.lr)}

    @classmethod
    def from_config(cls, config: VAEConfig, data: DataSplits) -> VAE:
        return cls(config, data.dim, data.image_shape)

    # ------------------------------------------------------------------------------------------
    # model pieces
    # ------------------------------------------------------------------------------------------
    def posterior(self, x: torch.Tensor) -> Posterior:
        loc, log_scale = self.encoder(x)
        if self.config.posterior == "gaussian":
            log_scale = 0.5 * log_scale  # the head predicts log σ²
        return Posterior(self.config.posterior, loc, log_scale)

    def decoder_output(self, z: torch.Tensor) -> torch.Tensor:
        """Raw decoder output: ``U z`` (linear) or the logits of Pyle's decoder."""
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Mean reconstruction in model space: ``U z``, or ``sigmoid(logits)`` for Pyle's decoder."""
        out = self.decoder(z)
        return torch.sigmoid(out) if self.config.decoder == "pyle" else out

    def reconstruction_nll(self, x: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        """``−log p(x|z)`` per sample (summed over pixels) for the configured likelihood."""
        kind = self.config.likelihood
        mean = torch.sigmoid(output) if self.config.decoder == "pyle" else output
        if kind == "gaussian":
            sigma = self.config.likelihood_sigma
            per_pixel = (x - mean).square() / (2 * sigma**2) + math.log(sigma) + 0.5 * math.log(2 * math.pi)
            return per_pixel.sum(dim=-1)
        if kind == "mse":
            return (x - mean).square().sum(dim=-1)
        return F.binary_cross_entropy_with_logits(output, x.clamp(0, 1), reduction="none").sum(dim=-1)

    def kl(self, posterior: Posterior, n_samples: int | None = None) -> torch.Tensor:
        """``KL(q‖p)`` per sample and latent, analytic or Monte Carlo as configured."""
        c = self.config
        return kl_divergence(posterior, c.prior, c.prior_scale, method=c.kl,
                             n_samples=n_samples or c.kl_samples)

    def loss_terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample reconstruction NLL (one reparameterised sample) and KL summed over latents."""
        q = self.posterior(x)
        z = q.rsample()
        return self.reconstruction_nll(x, self.decoder_output(z)), self.kl(q).sum(dim=-1)

    def _check_rows(self, x: torch.Tensor, name: str = "x") -> torch.Tensor:
        return check_rows(x, self.n_features, self.device, name)

    # ------------------------------------------------------------------------------------------
    # trainer protocol
    # ------------------------------------------------------------------------------------------
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._optimizers

    def training_step(self, batch: torch.Tensor) -> dict[str, float]:
        """One Adam step on the β-weighted negative ELBO, then the unit-norm projection if switched on."""
        x = self._check_rows(batch, "batch")
        self.train()
        nll, kl = self.loss_terms(x)
        loss = (nll + self.config.beta * kl).mean()
        optimizer = self._optimizers["vae"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if self.config.unit_norm_decoder:
            unit_norm_columns_(self.decoder.weight.data)
        return {"loss": float(loss.detach()), "reconstruction": float(nll.detach().mean()),
                "kl": float(kl.detach().mean())}

    def end_epoch(self, epoch: int) -> None:
        """No schedule: the learning rate is constant."""

    @torch.no_grad()
    def _chunks(self, x: torch.Tensor):
        for start in range(0, x.shape[0], _EVAL_CHUNK):
            yield x[start:start + _EVAL_CHUNK]

    @torch.no_grad()
    def validation_metrics(self, split: Split) -> dict[str, float]:
        """``val_loss`` = negative ELBO per sample (β = 1, one posterior sample), plus its two terms."""
        if len(split) == 0:
            raise ValueError("the validation split is empty; check the data source / limit")
        self.eval()
        nll_sum = kl_sum = 0.0
        for x in self._chunks(self._check_rows(split.x)):
            nll, kl = self.loss_terms(x)
            nll_sum += float(nll.sum())
            kl_sum += float(kl.sum())
        n = len(split)
        return {"val_loss": (nll_sum + kl_sum) / n, "val_reconstruction": nll_sum / n, "val_kl": kl_sum / n}

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior locations (the mean for a Gaussian posterior, the median for a Cauchy one)."""
        self.eval()
        x = self._check_rows(x)
        parts = [self.posterior(chunk).loc for chunk in self._chunks(x)]
        return torch.cat(parts) if parts else x.new_zeros(0, self.config.n_latents)

    @torch.no_grad()
    def decoder_column_norms(self) -> torch.Tensor:
        """L2 norm of each decoder column (atom) — of ``U`` for the linear decoder, of its atoms otherwise."""
        atoms = self.decoder.weight if self.config.decoder == "linear" else self.decoder.atoms()
        return atoms.norm(dim=0)

    @torch.no_grad()
    def evaluate(self, data: DataSplits) -> dict:
        """Test metrics (SPEC §4): MSE over posterior samples, active units, per-latent KL, norms, ELBO.

        ``mse`` / ``mse_std``: mean and std over ``eval_samples`` posterior samples of the test set's
        pixelwise MSE (model space) of the decoded mean. ``active_units``: latents whose posterior mean has
        a std over the test set above ``active_threshold``; ``active_units_max``: latents whose |posterior
        mean| exceeds it for at least one test input. ``elbo`` (per sample, nats) averages the
        reconstruction term over the same samples.
        """
        from sparsecoder.eval.metrics import active_units, active_units_max

        split = data.test
        if len(split) == 0:
            raise ValueError("the test split is empty; nothing to evaluate")
        self.eval()
        c = self.config
        x_all = self._check_rows(split.x)
        sq_err = torch.zeros(c.eval_samples, dtype=torch.float64)
        nll_total = 0.0
        kl_latent = torch.zeros(c.n_latents, dtype=torch.float64)
        locs = []
        for x in self._chunks(x_all):
            q = self.posterior(x)
            locs.append(q.loc)
            kl_latent += self.kl(q, n_samples=max(c.kl_samples, 64)).double().sum(dim=0).cpu()
            for s in range(c.eval_samples):
                output = self.decoder_output(q.rsample())
                mean = torch.sigmoid(output) if c.decoder == "pyle" else output
                sq_err[s] += float((x - mean).square().double().sum())
                nll_total += float(self.reconstruction_nll(x, output).double().sum())
        n = x_all.shape[0]
        mse_per_sample = sq_err / (n * self.n_features)
        codes = torch.cat(locs).cpu()
        active_mask = codes.std(dim=0) > c.active_threshold if n > 1 else torch.zeros(c.n_latents, dtype=bool)
        norms = self.decoder_column_norms().cpu()
        kl_per_latent = kl_latent / n
        nll = nll_total / (n * c.eval_samples)

        def mean_or_nan(values: torch.Tensor) -> float:
            return float(values.mean()) if values.numel() else float("nan")

        return {
            "mse": float(mse_per_sample.mean()),
            "mse_std": float(mse_per_sample.std()) if c.eval_samples > 1 else 0.0,
            "active_units": int(active_units(codes, c.active_threshold)) if n > 1 else 0,
            "active_units_max": int(active_units_max(codes, c.active_threshold)),
            "n_latents": c.n_latents,
            "elbo": float(-(nll + kl_per_latent.sum())),
            "kl": float(kl_per_latent.sum()),
            "kl_per_latent": [float(v) for v in kl_per_latent],
            "kl_active_mean": mean_or_nan(kl_per_latent[active_mask]),
            "kl_inactive_mean": mean_or_nan(kl_per_latent[~active_mask]),
            "decoder_norm_active": mean_or_nan(norms[active_mask]),
            "decoder_norm_inactive": mean_or_nan(norms[~active_mask]),
            "decoder_norms": [float(v) for v in norms],
            "n_test": int(n),
        }

    # ------------------------------------------------------------------------------------------
    # pictures
    # ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def save_pictures(self, data: DataSplits, out_dir: Path) -> list[Path]:
        """``atoms.png`` (active first), ``samples.png``, ``reconstructions.png``; 2-latent runs also get
        ``latent_scatter.png`` and ``latent_grid.png``."""
        from sparsecoder.viz import atom_grid, image_grid, latent_grid, latent_scatter, reconstruction_grid

        if data.image_shape is None:
            return []
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.eval()
        c = self.config
        split = data.test if len(data.test) else data.val
        x = self._check_rows(split.x[:2000])
        codes = self.encode(x)
        spread = codes.std(dim=0) if codes.shape[0] > 1 else torch.zeros(c.n_latents)
        order = torch.argsort(spread.cpu(), descending=True, stable=True)
        n_active = int((spread > c.active_threshold).sum())
        atoms = self.decoder.weight if c.decoder == "linear" else self.decoder.atoms()
        paths = [
            atom_grid(atoms.cpu(), data.image_shape, out_dir / "atoms.png", order=order,
                      title=f"decoder columns, active first ({n_active} of {c.n_latents} active)"),
        ]
        prior = sample_prior(c.prior, c.prior_scale, (64, c.n_latents), device=self.device)
        paths.append(image_grid(self.decode(prior).cpu(), data.image_shape, out_dir / "samples.png",
                                normalize="each", title=f"decoded samples of the {c.prior} prior"))
        shown = slice(0, min(16, x.shape[0]))
        recon = self.decode(codes[shown])
        paths.append(reconstruction_grid(split.to_pixels(x[shown], shown).cpu(),
                                         split.to_pixels(recon, shown).cpu(), data.image_shape,
                                         out_dir / "reconstructions.png",
                                         title="test inputs (top) over decoded posterior means"))
        if c.n_latents == 2:
            labels = split.labels[: codes.shape[0]] if split.labels is not None else None
            paths.append(latent_scatter(codes.cpu(), labels, out_dir / "latent_scatter.png",
                                        title=f"test posterior locations, {c.prior} prior"))
            span = float(codes.abs().quantile(0.95)) if codes.numel() else 3.0
            paths.append(latent_grid(lambda z: self.decode(z.to(self.device)).cpu(), data.image_shape,
                                     out_dir / "latent_grid.png", span=max(span, 1e-3),
                                     title=f"decoded latent grid, {c.prior} prior"))
        return paths
