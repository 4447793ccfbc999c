"""Denoising (Evtimova & LeCun Table 1) against hand computations: the analytic PSNR of the noisy input and
an independent per-sample PSNR (scikit-image) of a real model's reconstructions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

from sparsecoder.config import load_preset
from sparsecoder.data.base import Split
from sparsecoder.data.mnist import MNIST_MEAN, MNIST_STD, load_mnist
from sparsecoder.eval.denoise import add_noise, denoise
from sparsecoder.eval.metrics import PSNR_MAX_DB
from sparsecoder.models import build_model


@pytest.fixture(scope="module")
def mnist():
    return load_mnist(seed=0)


@pytest.fixture(scope="module")
def sdl_model(mnist):
    torch.manual_seed(0)
    _, config = load_preset("sdl-mnist", {"num_threads": 1})
    return build_model(config, mnist)


@pytest.mark.parametrize("sigma", [1.0, 1.5])
def test_noisy_input_psnr_is_the_analytic_value(mnist, sdl_model, sigma, one_torch_thread):
    # Pixel-space noise is σ·0.3081·ε, so the expected pixel MSE is (σ·0.3081)² (10.23 dB at σ = 1,
    # 6.71 dB at σ = 1.5: the paper's 10.2 and 6.7).
    result = denoise(sdl_model, mnist.test, sigma, seed=3)
    expected = -10 * math.log10((sigma * MNIST_STD) ** 2)
    assert result.metrics["psnr_noisy"] == pytest.approx(expected, abs=0.05)
    assert expected == pytest.approx({1.0: 10.2, 1.5: 6.7}[sigma], abs=0.05)


def test_metrics_match_an_independent_computation(mnist, sdl_model, one_torch_thread):
    sigma, seed = 1.0, 7
    result = denoise(sdl_model, mnist.test, sigma, seed=seed)
    x = mnist.test.x
    generator = torch.Generator().manual_seed(seed)
    noisy = x + sigma * torch.randn(x.shape, generator=generator)
    with torch.no_grad():
        codes_clean, codes_noisy = sdl_model.encoder(x), sdl_model.encoder(noisy)
        recon, denoised = sdl_model.decoder(codes_clean), sdl_model.decoder(codes_noisy)

    def pixels(rows):
        return rows.double().numpy() * MNIST_STD + MNIST_MEAN

    def mean_psnr(target, estimate):
        return float(np.mean([peak_signal_noise_ratio(t, e, data_range=1.0)
                              for t, e in zip(target, estimate, strict=True)]))

    clean = pixels(x)
    assert np.allclose(result.clean.numpy(), clean, atol=1e-5)
    assert result.metrics["psnr_clean"] == pytest.approx(mean_psnr(clean, pixels(recon)), abs=1e-3)
    assert result.metrics["psnr_noisy"] == pytest.approx(mean_psnr(clean, pixels(noisy)), abs=1e-3)
    assert result.metrics["psnr_denoised"] == pytest.approx(mean_psnr(clean, pixels(denoised)), abs=1e-3)
    assert result.metrics["sparsity_clean"] == pytest.approx(float((codes_clean == 0).double().mean()))
    assert result.metrics["sparsity_noisy"] == pytest.approx(float((codes_noisy == 0).double().mean()))
    # the same seed gives the same noise; another seed another
    assert denoise(sdl_model, mnist.test, sigma, seed=seed).metrics == result.metrics
    assert denoise(sdl_model, mnist.test, sigma, seed=seed + 1).metrics["psnr_noisy"] != \
        result.metrics["psnr_noisy"]


def test_zero_noise_changes_nothing(mnist, sdl_model, one_torch_thread):
    result = denoise(sdl_model, mnist.test, 0.0, seed=0)
    assert result.metrics["psnr_noisy"] == PSNR_MAX_DB  # exact: the cap, not +inf
    assert result.metrics["psnr_denoised"] == pytest.approx(result.metrics["psnr_clean"])


def test_bad_input_is_refused(mnist, sdl_model):
    with pytest.raises(ValueError, match="σ must be a finite number >= 0"):
        add_noise(mnist.test.x, -1.0, seed=0)
    with pytest.raises(ValueError, match="split to denoise is empty"):
        denoise(sdl_model, mnist.test.subset(slice(0, 0)), 1.0)
    _, config = load_preset("do-mnist", {"num_threads": 1})
    with pytest.raises(ValueError, match="no encoder"):
        denoise(build_model(config, mnist), mnist.test, 1.0)
    # a VAE has an encoder and a decoder too, and was measured as if it were a sparse autoencoder
    _, config = load_preset("svae-mnist", {"num_threads": 1})
    with pytest.raises(ValueError, match="got a VAE: give a model of the sparse_autoencoder family"):
        denoise(build_model(config, mnist), mnist.test, 1.0)
    with pytest.raises(ValueError, match="split must be a Split .* got a Tensor"):  # was an AttributeError
        denoise(sdl_model, mnist.test.x, 1.0)
    # codes that overflow gave NaN PSNRs, returned as measured values
    with pytest.raises(ValueError, match="clean rows' reconstructions are NaN/inf for 3 of 3 rows"):
        denoise(sdl_model, Split(x=torch.full((3, 784), 3e38)), 1.0)
    with pytest.raises(ValueError, match="the split to denoise contains NaN"):
        denoise(sdl_model, Split(x=torch.full((3, 784), float("nan"))), 1.0)


@pytest.mark.parametrize("sigma, seed, words", [
    ("1", 0, "noise σ must be a finite number"), (1e300, 0, "overflows float32"), (-0.1, 0, "noise σ"),
    (float("nan"), 0, "noise σ"), (0.5, 2**64, "seed must be an integer"), (0.5, -3, "seed must be"),
])
def test_add_noise_refuses_what_would_give_inf_noise_or_an_obscure_error(sigma, seed, words):
    """σ=1e300 gave ±inf noise silently, σ="1" was accepted, a seed of 2**64 was numpy's overflow."""
    with pytest.raises(ValueError, match=words):
        add_noise(torch.zeros(4, 3), sigma, seed)
