"""One VAE with pluggable prior, posterior, KL, encoder, decoder and likelihood (SPEC §4–§5).

Covers the sparse-coding VAEs (Barello et al. 2018; Jiang & de la Iglesia: Laplace prior, overcomplete
linear decoder, β-weighted KL, ResNet encoder, unit-norm decoder columns) and Pyle's Gaussian / Laplace /
Cauchy comparison with one code path. The training loss per sample is the β-weighted negative ELBO

    loss(x) = −log p(x|z) + β Σ_j KL(q(z_j|x) ‖ p(z_j)),     z ~ q(z|x) (reparameterised, fresh noise)

with ``−log p(x|z)`` a Gaussian likelihood of fixed σ (``Σ_pixels (x − x̂)²/2σ² + log σ + ½log 2π``),
Bernoulli cross-entropy on the decoder's logits (``bce``), or the plain squared error (``mse``).

The model declares one Adam optimiser (``"vae"``), the optional unit-norm projection and the loss of a
batch; the trainer takes the steps. Metrics are in :mod:`sparsecoder.eval.vae`, pictures in
:func:`sparsecoder.viz.vae_pictures`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.weak import WeakTensorKeyDictionary

from sparsecoder import util
from sparsecoder.config import ConfigError, check
from sparsecoder.data.base import DataSplits
from sparsecoder.models.common import (
    check_float32_model,
    check_model_arguments,
    check_rows,
    module_device,
)
from sparsecoder.models.configs import (  # noqa: F401 - re-exported under their old names
    ANALYTIC_PAIRS,
    MAX_BETA,
    MAX_EVAL_SAMPLES,
    MAX_KL_SAMPLES,
    MAX_RESNET_BLOCKS,
    SCALE_RANGE,
    VAEConfig,
)
from sparsecoder.models.distributions import Posterior, kl_divergence
from sparsecoder.nn.constraints import unit_norm_columns_
from sparsecoder.nn.vae_networks import PosteriorEncoder, build_decoder
from sparsecoder.train.protocol import OptimizerSpec, ParamGroupSpec, Reduce, StepOutput

# VAEConfig and its bounds (SCALE_RANGE, MAX_*) live in the torch-free sparsecoder.models.configs, so that
# listing and checking presets imports no torch; this module re-exports them under their old names.

_EVAL_CHUNK = 1000
# Monte-Carlo KL samples × rows of one no-grad pass (validation): 64 samples of 1000 rows, as evaluate's KL
_KL_SAMPLE_ROWS = 64 * _EVAL_CHUNK
# float32 (kl_samples, batch, n_latents) tensors one training step with a Monte-Carlo KL holds (measured:
# 11 with the backward pass)
_MC_KL_TENSORS = 12


def check_monte_carlo_memory(config: VAEConfig) -> None:
    """Refuse a Monte-Carlo KL whose training step cannot fit in this machine's memory: it holds about 12
    float32 tensors of ``kl_samples × batch_size × n_latents`` values (kl_samples=1000, batch 2000 and 450
    latents: 40 GiB), which ran into the allocator or the kernel's OOM killer at the first step."""
    memory = util.physical_memory()
    if config.kl != "monte_carlo" or memory is None:
        return
    needed = _MC_KL_TENSORS * 4 * config.kl_samples * config.batch_size * config.n_latents
    check(needed <= memory, "kl_samples",
          f"a training step's Monte-Carlo KL holds about {_MC_KL_TENSORS} float32 tensors of kl_samples × "
          f"batch_size × n_latents = {config.kl_samples} × {config.batch_size} × {config.n_latents} values, "
          f"{needed / 2**30:,.1f} GiB, more than this machine's {memory / 2**30:,.1f} GiB of memory; lower "
          f"kl_samples or batch_size" + (", or set kl=analytic" if (config.posterior, config.prior)
                                          in ANALYTIC_PAIRS else ""))


# tensors found inside [0, 1], with their version counter then (in-place changes bump it): the same unchanged
# rows are scanned once, though both the model's construction and the evaluation check them
_IN_UNIT_INTERVAL = WeakTensorKeyDictionary()


def _value_range(x) -> tuple[float, float]:
    """Smallest and largest value of the rows ``x``, read in row blocks: a memory-mapped split
    (MemmapRows) is read a block at a time, never whole."""
    step = max(1, (1 << 20) // max(1, int(x.shape[1])))
    low, high = math.inf, -math.inf
    for start in range(0, len(x), step):
        block = x[start:start + step]
        low, high = min(low, float(block.min())), max(high, float(block.max()))
    return low, high


def check_likelihood_data(config: VAEConfig, x: torch.Tensor, name: str) -> None:
    """Refuse data the likelihood cannot model: ``bce`` (Bernoulli cross-entropy) needs values in [0, 1].

    A tensor already found in range and not changed in place since is not scanned again (a memory-mapped
    split, not a tensor, is scanned every time).
    """
    n_rows = len(x)
    if config.likelihood != "bce" or n_rows == 0:
        return
    version = x._version if isinstance(x, torch.Tensor) else None
    if version is not None and _IN_UNIT_INTERVAL.get(x) == version:
        return
    low, high = _value_range(x)
    if low < 0 or high > 1:
        raise ConfigError(
            f"config key 'likelihood': bce needs data in [0, 1], but the {name} has values in "
            f"[{low:.4g}, {high:.4g}]; rescale the data to [0, 1] (the arrays source with "
            f"standardize: none keeps the file's values) or set likelihood=gaussian or likelihood=mse")
    if version is not None:
        _IN_UNIT_INTERVAL[x] = version


class VAE(nn.Module):
    """Variational autoencoder with a factorised posterior ``q(z|x)`` and a factorised sparse prior.

    Build it with :meth:`from_config` (on the CPU; ``model.to(device)`` moves it); the shared trainer
    drives it through the protocol of :mod:`sparsecoder.train.protocol`.
    """

    def __init__(self, config: VAEConfig, n_features: int, image_shape: tuple[int, ...] | None = None):
        super().__init__()
        n_features, image_shape = check_model_arguments(self, config, VAEConfig, n_features, image_shape,
                                                        "a VAE")
        check_monte_carlo_memory(config)
        self.config = config
        self.n_features = n_features
        self.image_shape = image_shape
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.encoder = PosteriorEncoder(config.encoder, self.n_features, config.n_latents,
                                            config.encoder_hidden, config.resnet_blocks)
            self.decoder = build_decoder(config.decoder, config.n_latents, config.decoder_hidden,
                                         self.n_features)
        if config.unit_norm_decoder:
            unit_norm_columns_(self.decoder.weight.data)

    @classmethod
    def from_config(cls, config: VAEConfig, data: DataSplits) -> VAE:
        """Build the model for ``data``; refuses data its likelihood cannot model, and a test split of one
        row (which :func:`sparsecoder.eval.vae.evaluate` cannot measure), before any work."""
        if isinstance(config, VAEConfig):
            for name in ("train", "val", "test"):
                check_likelihood_data(config, getattr(data, name).x, f"{name} split")
            if len(data.test) == 1:  # (an empty one is legitimate: a run folder's stored data, load_run)
                from sparsecoder.eval.vae import check_test_split

                check_test_split(data.test)
        return cls(config, data.dim, data.image_shape)

    @property
    def device(self) -> torch.device:
        """Where the parameters are (follows ``model.to``)."""
        return module_device(self)

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
        check_float32_model(self)
        return check_rows(x, self.n_features, self.device, name)

    # ------------------------------------------------------------------------------------------
    # trainer protocol
    # ------------------------------------------------------------------------------------------
    def optimizer_specs(self) -> list[OptimizerSpec]:
        """One Adam optimiser ``"vae"`` over every parameter, learning rate ``lr``, no schedule."""
        return [OptimizerSpec("vae", [ParamGroupSpec("all", list(self.parameters()), self.config.lr)])]

    def projections(self) -> list[Callable[[], None]]:
        """Unit-norm decoder columns after every step when ``unit_norm_decoder`` (SVAE-Norm, SPEC §4)."""
        if self.config.unit_norm_decoder:
            return [lambda: unit_norm_columns_(self.decoder.weight.data)]
        return []

    def training_losses(self, batch: torch.Tensor, *, reduce: Reduce | None = None) -> StepOutput:
        """The β-weighted negative ELBO of ``batch`` (mean over rows), one reparameterised sample per row.

        Logged, per sample: ``loss``, the negative ELBO at β = 1 (what ``val_loss`` measures on the validation
        split, so the two curves of ``history.png`` compare like with like), ``objective``, the β-weighted
        loss the step minimises (the same when β = 1), ``reconstruction`` (−log p(x|z)) and ``kl`` (summed
        over latents). ``reduce`` is unused: every term is a per-row mean, which the trainer averages over
        processes.
        """
        x = self._check_rows(batch, "batch")
        nll, kl = self.loss_terms(x)
        objective = (nll + self.config.beta * kl).mean()
        nll_mean, kl_mean = float(nll.detach().mean()), float(kl.detach().mean())
        # the β = 1 loss summed as the objective is (in float32, then the mean): at β = 1 the two logs are
        # the same number, where nll_mean + kl_mean (float64) differed from it in the 8th digit
        loss = float((nll + kl).detach().mean())
        return StepOutput(losses={"vae": objective},
                          logs={"loss": loss, "objective": float(objective.detach()),
                                "reconstruction": nll_mean, "kl": kl_mean})

    @torch.no_grad()
    def chunks(self, x: torch.Tensor, kl_samples: int = 1):
        """``x`` in row blocks of 1000 (bounded memory for evaluation); fewer rows a block when each row
        draws ``kl_samples`` Monte-Carlo KL samples (at most 64,000 samples × rows a block)."""
        rows = max(1, min(_EVAL_CHUNK, _KL_SAMPLE_ROWS // kl_samples))
        for start in range(0, x.shape[0], rows):
            yield x[start:start + rows]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstructions ``decode(encode(x))``: the mean reconstruction of each row's posterior location,
        as ``decode_run(run, encode_run(run, x))`` gives and as a sparse autoencoder's ``model(y)`` is its
        reconstruction (for inference: no gradient flows through the encoding; training uses
        :meth:`training_losses`)."""
        return self.decode(self.encode(x))

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior locations (the mean for a Gaussian posterior, the median for a Cauchy one).

        Computed in eval mode; the caller's train/eval mode is restored afterwards.
        """
        was_training = self.training
        self.eval()
        try:
            x = self._check_rows(x)
            parts = [self.posterior(chunk).loc for chunk in self.chunks(x)]
            return torch.cat(parts) if parts else x.new_zeros(0, self.config.n_latents)
        finally:
            self.train(was_training)

    @torch.no_grad()
    def atoms(self) -> torch.Tensor:
        """``(d, l)`` decoder columns: ``U`` for the linear decoder, ``D(e_i) − D(0)`` otherwise; a detached
        copy (the linear decoder's weight Parameter itself was returned: ``.numpy()`` raised, and editing it
        rewrote the model)."""
        return self.decoder.atoms()

    @torch.no_grad()
    def decoder_column_norms(self) -> torch.Tensor:
        """L2 norm of each decoder column (atom) — of ``U`` for the linear decoder, of its atoms otherwise."""
        return self.atoms().norm(dim=0)
