r"""Denoising with a trained sparse autoencoder's encoder (Evtimova & LeCun 2022, §4.3 and Table 1; SPEC §3).

Gaussian noise ``N(0, σ²)`` is added to the *model-space* (normalised) rows ``y``; the codes of the noisy
rows come from the encoder alone (amortised inference, no FISTA), and the decoder maps them back:

.. math::
    y_\sigma = y + \sigma\,\varepsilon,\ \varepsilon \sim \mathcal N(0, I), \qquad
    \tilde y_\sigma = \mathcal D(\mathcal E(y_\sigma)), \qquad \tilde y = \mathcal D(\mathcal E(y)).

Every PSNR is measured against the clean image in pixel space (:func:`sparsecoder.eval.metrics.psnr`,
after the split's ``to_pixels``), so for MNIST's ``(x/255 − 0.1307)/0.3081`` the noisy input's pixel MSE
is ``(0.3081 σ)²`` in expectation (10.2 dB at σ = 1, 6.7 dB at σ = 1.5, the paper's values).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sparsecoder.data.base import Split
from sparsecoder.eval.metrics import psnr, sparsity
from sparsecoder.nn.sizes import check_seed
from sparsecoder.util import finite_number

__all__ = ["DenoisingResult", "MAX_SIGMA", "add_noise", "denoise"]


@dataclass
class DenoisingResult:
    """What :func:`denoise` measured, and the pixel-space images it measured them on.

    ``metrics`` keys: ``sparsity_clean`` / ``sparsity_noisy`` (fraction of exactly-zero code entries of
    ``E(y)`` / ``E(y_σ)``), ``psnr_clean`` (``ỹ`` against ``y``), ``psnr_noisy`` (``y_σ`` against ``y``),
    ``psnr_denoised`` (``ỹ_σ`` against ``y``), all in dB. The image tensors are ``(n, d)`` pixel rows.
    """

    metrics: dict[str, float]
    clean: torch.Tensor
    noisy: torch.Tensor
    reconstruction: torch.Tensor
    denoised: torch.Tensor


MAX_SIGMA = 1e30  # Gaussian draws reach ~6σ: beyond ~5e37 they overflow float32 to ±inf


def add_noise(x: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    """``x + σ ε`` with ``ε ~ N(0, I)`` drawn from a generator seeded with ``seed`` (same seed, same noise).

    Raises ``ValueError`` for a negative or non-finite ``σ``.
    """
    sigma = finite_number(sigma, "noise σ")
    if sigma > MAX_SIGMA:
        raise ValueError(f"noise σ must be a finite number >= 0 and <= {MAX_SIGMA:g} (larger noise "
                         f"overflows float32), got {sigma!r}")
    seed = check_seed("add_noise", seed)
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    noise = torch.randn(x.shape, generator=generator, dtype=torch.float32)
    return x + sigma * noise.to(x.device, x.dtype)


@torch.no_grad()
def denoise(model, split: Split, sigma: float, *, seed: int = 0) -> DenoisingResult:
    """Encode clean and noisy rows of ``split`` with ``model``'s encoder, decode, and measure (Table 1).

    Parameters
    ----------
    model : SparseAutoencoder
        A trained model with an encoder (``model.encode`` gives amortised codes; without an encoder, as in
        DO, it would run FISTA, which is not what the paper's denoising measures — refused).
    split : Split
        Model-space rows (normalised) with their ``to_pixels`` map, e.g. the test split.
    sigma : float
        Standard deviation of the Gaussian noise in the normalised space.
    seed : int
        Seed of the noise.
    """
    from sparsecoder.models.sparse_autoencoder import SparseAutoencoder

    if not isinstance(model, SparseAutoencoder):  # a VAE has an encoder and a decoder too: it was measured
        raise ValueError(f"denoising measures a sparse autoencoder's encoder + decoder (Evtimova & LeCun "
                         f"§4.3); got a {type(model).__name__}: give a model of the sparse_autoencoder "
                         f"family (e.g. the sdl-mnist or vdl-mnist presets)")
    if not isinstance(split, Split):
        raise ValueError(f"split must be a Split (model-space rows with their to_pixels map), e.g. data.test "
                         f"of sparsecoder.data.load(...); got a {type(split).__name__}")
    if getattr(model, "encoder", None) is None:
        raise ValueError("denoising measures the encoder's codes (Evtimova & LeCun §4.3); this model has no "
                         "encoder (DO?): train a preset with a LISTA encoder")
    if len(split) == 0:
        raise ValueError("the split to denoise is empty; give the test split of the run's data")
    from sparsecoder.models.common import check_finite_output

    model.eval()
    clean = model._check_rows(split.x, "the split to denoise")
    noisy = add_noise(clean, sigma, seed)
    codes_clean = model.encode(clean)
    codes_noisy = model.encode(noisy)
    reconstruction = model.decoder(codes_clean)
    denoised = model.decoder(codes_noisy)
    # NaN/inf codes gave NaN PSNRs, returned as if measured
    cause = "rows far outside the training data's range, or weights that overflow on them"
    for what, values, inputs in (("the clean rows' reconstructions", reconstruction, clean),
                                 ("the noisy rows' reconstructions", denoised, noisy)):
        check_finite_output(values, what, inputs, cause)
    clean_px, noisy_px = split.to_pixels(clean), split.to_pixels(noisy)
    recon_px, denoised_px = split.to_pixels(reconstruction), split.to_pixels(denoised)
    metrics = {
        "sparsity_clean": sparsity(codes_clean),
        "psnr_clean": psnr(clean_px, recon_px),
        "psnr_noisy": psnr(clean_px, noisy_px),
        "sparsity_noisy": sparsity(codes_noisy),
        "psnr_denoised": psnr(clean_px, denoised_px),
    }
    return DenoisingResult(metrics, clean_px.cpu(), noisy_px.cpu(), recon_px.cpu(), denoised_px.cpu())
