"""``evtimova-table1`` end to end on its quick profile (serial executor): files, one row per (model, σ) with
the paper's values beside ours, the noisy input's PSNR against its analytic value, the denoised PSNR
recomputed with numpy from a trial's saved model, a rerun that trains nothing, and bad settings."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from sparsecoder.data.mnist import MNIST_MEAN, MNIST_STD
from sparsecoder.reproduce import reproduce
from sparsecoder.reproduce.evtimova_table1 import PAPER
from sparsecoder.train import load_run
from sparsecoder.train.run import load_test_split


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("table1") / "out"
    result = reproduce("evtimova-table1", out, quick=True, executor="serial", progress=False)
    return out, result


def test_quick_profile_writes_one_row_per_model_and_sigma_beside_the_paper(quick):
    out, result = quick
    assert [p.name for p in result["files"]] == ["results.md", "results.csv", "denoising.png"]
    assert 10_000 < (out / "denoising.png").stat().st_size < 400_000
    rows = result["rows"]
    assert [(r["model"], r["sigma"]) for r in rows] == [("SDL", 1.0), ("SDL", 1.5), ("VDL-NL", 1.0),
                                                       ("VDL-NL", 1.5)]
    for row in rows:
        assert row["n_seeds"] == 1
        for key in ("sparsity_clean", "sparsity_noisy"):
            assert 0.0 <= row[f"{key}_mean"] <= 1.0
        for key in ("psnr_clean", "psnr_noisy", "psnr_denoised"):
            assert 3.0 < row[f"{key}_mean"] < 60.0 and math.isnan(row[f"{key}_std"])  # one seed: no spread
        paper = PAPER.get(("sdl-mnist", row["sigma"])) if row["model"] == "SDL" else {}
        assert row["paper_psnr_denoised"] == (paper or {}).get("psnr_denoised")
    assert rows[0]["paper_psnr_denoised"] == 16.9 and rows[1]["paper_psnr_noisy"] == 6.7
    with open(out / "results.csv", newline="") as fh:
        written = list(csv.DictReader(fh))
    assert [float(w["psnr_denoised_mean"]) for w in written] == pytest.approx(
        [r["psnr_denoised_mean"] for r in rows], rel=1e-12)
    text = (out / "results.md").read_text()
    assert "(16.9)" in text and "(10.20)" in text and "seeds: 1 (paper: 5)" in text
    assert "training split capped at 200 samples" in text
    # the data line is the trials' data (it named the MNIST subset even for patch presets), the paper's
    # split and epochs per data; Table 1's ImageNet-patch rows are the paper values of the patch presets
    assert "* data: mnist (embedded 5k subset): train 200, val 357, test 714;" in text
    assert "the paper: 55k / 5k / 10k MNIST" in text and "(paper: 200 on mnist, early stopping" in text
    assert PAPER[("sdl-patches", 1.0)]["psnr_noisy"] == 20.0
    assert PAPER[("vdl-patches", 1.0)]["psnr_clean"] == 27.3


def test_noisy_input_psnr_is_the_analytic_value(quick):
    # pixel noise σ·0.3081: expected pixel MSE (0.3081 σ)², i.e. 10.23 dB at σ = 1 and 6.71 dB at σ = 1.5
    for row in quick[1]["rows"]:
        assert row["psnr_noisy_mean"] == pytest.approx(-10 * math.log10((row["sigma"] * MNIST_STD) ** 2),
                                                       abs=0.08)


def test_denoised_psnr_matches_a_numpy_recomputation_from_the_saved_model(quick):
    out, result = quick
    run_dir = out / "trials/sdl-mnist/sdl-mnist/lam=0.005/seed=0"
    config, model, _ = load_run(run_dir)
    test = load_test_split(config).test
    noise = torch.randn(test.x.shape, generator=torch.Generator().manual_seed(0))  # the trial's seed
    with torch.no_grad():
        denoised = model.decoder(model.encoder(test.x + 1.5 * noise)).numpy().astype(np.float64)
    clean = test.x.numpy().astype(np.float64) * MNIST_STD + MNIST_MEAN
    mse = np.mean((denoised * MNIST_STD + MNIST_MEAN - clean) ** 2, axis=1)
    expected = float(np.mean(10 * np.log10(1.0 / mse)))
    row = next(r for r in result["rows"] if r["model"] == "SDL" and r["sigma"] == 1.5)
    assert row["psnr_denoised_mean"] == pytest.approx(expected, abs=1e-3)


def test_rerun_trains_nothing(quick):
    out, _ = quick
    weights = sorted((out / "trials").rglob("model.safetensors"))
    assert len(weights) == 2
    stamps = [w.stat().st_mtime_ns for w in weights]
    again = reproduce("evtimova-table1", out, quick=True, executor="serial", progress=False)
    assert [w.stat().st_mtime_ns for w in weights] == stamps
    assert [r["psnr_denoised_mean"] for r in again["rows"]] == pytest.approx(
        [r["psnr_denoised_mean"] for r in quick[1]["rows"]], abs=1e-9)


@pytest.mark.parametrize("change, message", [
    ({"models": {}}, "models={}: expected a non-empty mapping preset"),
    ({"models": {"nope-mnist": 0.1}}, "unknown preset 'nope-mnist'"),
    ({"models": {"sdl-mnist": -1}}, "sdl-mnist needs a λ >= 0, got -1"),
    ({"sigmas": [-1.0]}, "sigmas=\\[-1.0\\]: expected a non-empty list of numbers >= 0"),
    ({"seeds": []}, "seeds=\\[\\]: no seed given; expected a non-empty list of integers >= 0"),
    ({"epochs": -1}, "epochs=-1: expected an integer >= 1 or null"),
    ({"limit": 0}, "limit=0: expected an integer >= 2 or null"),
    ({"n_pictures": 100_000}, "n_pictures=100000: expected an integer >= 1 and <= 64"),
    # these three were refused only after the folder was written (VAE: by the sweep; DO and σ > 1e30: by
    # denoise, after every model had trained), whose reproduce.yaml then refused the corrected command
    ({"models": {"vae-gauss-mnist": 0.1}}, "preset vae-gauss-mnist is a vae model; this experiment takes "
                                           "sparse_autoencoder presets"),
    ({"models": {"do-mnist": 0.005}}, "preset do-mnist has no encoder .*give one of .*sdl-mnist"),
    ({"sigmas": [1.0, 1e31]}, "sigmas=\\[1.0, 1e\\+31\\]: expected a non-empty list of numbers >= 0 and "
                              "<= 1e\\+30"),
])
def test_bad_settings_are_refused_before_training(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        reproduce("evtimova-table1", tmp_path / "out", quick=True, executor="serial", progress=False,
                  overrides=change)
    assert not (tmp_path / "out").exists()


def test_denoising_picture_says_what_it_shows_and_has_no_blank_margin(tmp_path, kept_figures):
    """denoising.png had no title (neither the experiment nor the noise levels) and its right third was
    blank: the figure's width allowed for the labels twice."""
    from PIL import Image

    from sparsecoder.reproduce.evtimova_table1 import _picture

    rng = np.random.default_rng(0)
    keys = ["clean", "reconstruction", "noisy 1", "denoised 1", "noisy 1.5", "denoised 1.5"]
    examples = {name: {k: rng.random((4, 784)) for k in keys} for name in ("SDL", "VDL-NL")}
    shown = kept_figures
    path = _picture(examples, [1.0, 1.5], tmp_path / "d.png", (28, 28))
    assert "denoising" in shown[0].axes[0].get_title(loc="right") and "σ = 1, 1.5" in \
        shown[0].axes[0].get_title(loc="right")
    image = np.asarray(Image.open(path).convert("L"), dtype=float)
    assert (image[:, -image.shape[1] // 5:] < 200).any()  # digits reach the right fifth of the picture
