"""``pyle-priors`` (Pyle, *A Sparse VAE*) end to end on its quick profile (serial executor): a cell per
task × prior with finite, in-range measures; the near-zero fraction, spread and atom recovery recomputed with
numpy from the saved run folders (atoms from the decoder itself, correlations with np.corrcoef); a rerun
skips the trained trials; bad settings fail before training; the claim tests on hand-made cells."""

import itertools
import json
import math

import numpy as np
import pytest
import torch

from sparsecoder.reproduce import reproduce
from sparsecoder.reproduce.pyle_priors import DATASETS, PRIORS, QUICK, check_settings, claim_verdicts
from sparsecoder.train import load_run
from sparsecoder.train.run import load_test_split


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("pyle") / "out"
    result = reproduce("pyle-priors", out, quick=True, executor="serial", progress=False)
    return out, result


def test_quick_profile_has_a_cell_per_task_and_prior_with_values_in_range(quick):
    out, result = quick
    assert [p.name for p in result["files"]] == ["results.md", "results.csv", "synthetic.png", "mnist.png",
                                                 "mnist2d.png", "patches.png"]
    for path in result["files"][2:]:
        assert path.stat().st_size > 10_000
    rows = result["rows"]
    assert [(r["dataset"], r["prior"]) for r in rows] == [(d, p) for d in DATASETS for p in PRIORS]
    for row in rows:
        assert row["n_seeds"] == 1 and row["preset"] == f"vae-{row['prior']}-{DATASETS[row['dataset']][0]}"
        for key in ("elbo_mean", "mse_mean", "kl_mean", "near_zero_mean", "spread_max_mean"):
            assert math.isfinite(row[key]), (row["dataset"], row["prior"], key)
        assert 0 < row["mse_mean"] < 1 and row["kl_mean"] >= 0 and 0 <= row["near_zero_mean"] <= 1
        assert 0 <= row["spread_min_mean"] <= row["spread_max_mean"]
        if row["dataset"] == "synthetic":
            assert 0 <= row["match_corr_mean"] <= 1 and 0 <= row["recovered_mean"] <= 1
            assert 0.2 < row["chance_corr_mean"] < 0.6
        if row["dataset"].startswith("mnist"):
            assert 0 <= row["knn_accuracy_mean"] <= 1
        else:
            assert "knn_accuracy_mean" not in row  # no labels: no column rather than NaN
    text = (out / "results.md").read_text()
    assert "## Ours beside Pyle's claims" in text and "embedded 5,000-digit subset" in text
    assert text.count("| synthetic |") >= 3 and "MLP 32-32 (Pyle: 500-500)" in text
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert {"dataset", "prior", "elbo_mean", "elbo_std", "near_zero_mean", "mse_mean"} <= set(header)


def test_measures_match_numpy_on_the_saved_runs(quick):
    """Near-zero fraction, spread and matched correlation recomputed from the run folder: posterior
    locations from the encoder network, atoms sigmoid(D(e_i)) − sigmoid(D(0)) from the decoder network."""
    out, result = quick
    rows = {(r["dataset"], r["prior"]): r for r in result["rows"]}
    for dataset, prior in (("synthetic", "cauchy"), ("mnist", "laplace"), ("patches", "gauss")):
        run_dir = out / "trials" / dataset / f"vae-{prior}-{DATASETS[dataset][0]}" / "default" / "seed=0"
        config, model, _ = load_run(run_dir)
        data = load_test_split(config)
        with torch.no_grad():
            loc = model.encoder(data.test.x)[0].double().numpy()  # first head: the location
            eye = torch.eye(config.n_latents)
            zero = torch.zeros(1, config.n_latents)
            atoms = torch.sigmoid(model.decoder(eye)) - torch.sigmoid(model.decoder(zero))
        row = rows[(dataset, prior)]
        near_zero = np.mean(np.abs(loc) < 0.1 * config.prior_scale)
        assert row["near_zero_mean"] == pytest.approx(near_zero, abs=1e-3)
        assert row["spread_max_mean"] == pytest.approx(loc.std(axis=0).max(), rel=1e-4)
        assert row["mse_mean"] == pytest.approx(json.loads((run_dir / "metrics.json").read_text())["mse"])
        if dataset == "synthetic":
            true = data.true_dictionary.double().numpy()
            corr = np.abs(np.corrcoef(true.T, atoms.double().numpy())[:true.shape[1], true.shape[1]:])
            corr = np.nan_to_num(corr)
            assert row["match_corr_mean"] == pytest.approx(corr.max(axis=1).mean(), abs=1e-5)
            assert row["recovered_mean"] == pytest.approx(np.mean(corr.max(axis=1) > 0.9))
            # the synthetic task trains with the Gaussian likelihood of σ = synthetic_sigma
            assert config.likelihood == "gaussian" and config.likelihood_sigma == QUICK["synthetic_sigma"]
        else:
            assert config.likelihood == "bce"
        assert config.epochs == QUICK["epochs"] and config.encoder_hidden == QUICK["hidden"]


def test_rerun_skips_trained_trials(quick):
    out, _ = quick
    weights = sorted(out.glob("trials/*/*/default/seed=0/model.safetensors"))
    assert len(weights) == len(DATASETS) * len(PRIORS)
    before = [w.stat().st_mtime_ns for w in weights]
    result = reproduce("pyle-priors", out, quick=True, executor="serial", progress=False)
    assert [w.stat().st_mtime_ns for w in weights] == before
    assert len(result["rows"]) == len(DATASETS) * len(PRIORS)


@pytest.mark.parametrize("key, value, message", [
    ("datasets", ["mnist", "cifar"], "datasets"),
    ("priors", [], "priors"),
    ("hidden", 0, "hidden"),
    ("limit", 1, "limit=1: expected an integer >= 2 or null"),
    ("near_zero", -0.1, "near_zero"),
    ("synthetic_likelihood", "poisson", "synthetic_likelihood"),
    ("seeds", [0, -1], "seeds"),
])
def test_bad_settings_fail_before_training(tmp_path, key, value, message):
    settings = dict(QUICK, **{key: value})
    with pytest.raises(ValueError, match=message):
        check_settings(settings)
    with pytest.raises(ValueError, match=message):
        reproduce("pyle-priors", tmp_path / "out", quick=True, executor="serial", progress=False,
                  overrides={key: value})
    assert not (tmp_path / "out" / "trials").exists()


def _cells(**values):
    """(dataset, prior) -> aggregate-style row with <metric>_mean from ``values[dataset][metric][prior]``."""
    cells = {}
    for dataset, metrics in values.items():
        for metric, per_prior in metrics.items():
            for prior, value in per_prior.items():
                cells.setdefault((dataset, prior), {})[f"{metric}_mean"] = value
    return cells


def test_claim_verdicts_on_hand_made_cells():
    cells = _cells(
        mnist={"mse": {"gauss": 0.02, "laplace": 0.021, "cauchy": 0.03},
               "near_zero_active": {"gauss": 0.1, "laplace": 0.3, "cauchy": 0.5}},
        mnist2d={"knn_accuracy": {"gauss": 0.6, "laplace": 0.7, "cauchy": 0.65},
                 "spread_ratio": {"gauss": 0.9, "laplace": 0.8, "cauchy": 0.05},
                 "near_zero_active": {"gauss": 0.1, "laplace": 0.05, "cauchy": 0.5}},
        synthetic={"mse_ratio": {"gauss": 0.1, "laplace": 0.2, "cauchy": 0.3}})
    verdicts = {v["claim"]: v["agrees"] for v in claim_verdicts(cells)}
    assert verdicts == {"mnist_cauchy_blurrier": "yes", "mnist2d_laplace_separates": "yes",
                        # Cauchy uses one dimension (ratio 0.05) but is not the least separable (0.65 > 0.6)
                        "mnist2d_cauchy_one_dim": "no",
                        "synthetic_reconstruct": "no",  # Cauchy's 0.3 >= 0.25
                        # near-zero: Laplace 0.05 < Gaussian 0.1 on mnist2d
                        "sparse_priors_sparser": "no"}
    # a task missing a prior gives no verdict on it (no patches cells here: no patches claims)
    assert not any(v.startswith("patches") for v in verdicts)
    cells[("mnist2d", "laplace")]["near_zero_active_mean"] = 0.2  # now sparser than Gaussian everywhere
    assert {v["claim"]: v["agrees"] for v in claim_verdicts(cells)}["sparse_priors_sparser"] == "yes"


def test_in_all_cases_gets_no_verdict_when_a_prior_was_not_measured():
    # before: with the Cauchy trials diverged (no cell), "In all cases ... low reconstruction error" was
    # judged on Gaussian and Laplace alone and read "yes"
    cells = _cells(synthetic={"mse_ratio": {"gauss": 0.1, "laplace": 0.2}})
    assert not any(v["claim"] == "synthetic_reconstruct" for v in claim_verdicts(cells))
    cells[("synthetic", "cauchy")] = {"mse_ratio_mean": 0.2}
    assert [v["agrees"] for v in claim_verdicts(cells) if v["claim"] == "synthetic_reconstruct"] == ["yes"]


def test_a_claim_whose_numbers_are_undefined_gets_no_verdict():
    # before: without an active latent (the quick profile's patches) every prior's atom kurtosis is NaN, and
    # "Cauchy's patterns have the largest kurtosis" read "no" on nan > max(nan, nan); a NaN spread ratio
    # (a latent spread of 0) read "no" too
    nan = math.nan
    cells = _cells(patches={"mse": {"gauss": 0.01, "laplace": 0.01, "cauchy": 0.02},
                            "atom_kurtosis": {"gauss": nan, "laplace": nan, "cauchy": nan}},
                   mnist2d={"knn_accuracy": {"gauss": 0.6, "laplace": 0.7, "cauchy": 0.5},
                            "spread_ratio": {"gauss": 0.9, "laplace": 0.8, "cauchy": nan}})
    verdicts = {v["claim"]: v["agrees"] for v in claim_verdicts(cells)}
    assert verdicts == {"patches_cauchy_blurrier": "yes", "mnist2d_laplace_separates": "yes"}


@pytest.mark.parametrize("likelihood", ["bce", "gaussian"])
def test_the_synthetic_likelihood_setting_is_what_the_trials_train_with(likelihood):
    # the presets now train the synthetic task with a Gaussian of σ = 0.02; synthetic_likelihood=bce must
    # still give bce (it used to fall back to the preset's likelihood)
    from sparsecoder.config import load_preset
    from sparsecoder.reproduce.pyle_priors import _overrides

    overrides = _overrides(dict(QUICK, synthetic_likelihood=likelihood), "synthetic")
    _, config = load_preset("vae-laplace-synthetic", overrides)
    assert config.likelihood == likelihood
    assert _overrides(dict(QUICK, synthetic_likelihood=likelihood), "mnist").get("likelihood") is None


def test_montage_panel_titles_are_wrapped_to_their_panel_and_text_is_not_shrunk(tmp_path, kept_figures):
    """Side by side, the patches figure's panel titles ran into each other (and off the right edge); the
    mnist2d figure shrank its 2,100-pixel-wide row of latent grids to 1,500, their ranges to 7-pixel text."""
    import matplotlib.pyplot as plt

    from sparsecoder import viz
    from sparsecoder.reproduce.pyle_priors import _montage

    figures = kept_figures
    paths = [viz.image_grid(np.random.default_rng(k).random((25, 144)), (12, 12), tmp_path / f"{k}.png",
                            ncols=5) for k in range(3)]
    wide = viz.image_grid(np.random.default_rng(0).random((12, 784)), (28, 28), tmp_path / "w.png", ncols=12)
    titles = [f"{p}: atoms, widest spread first (0 active)" for p in ("gauss", "laplace", "cauchy")]
    _montage(paths, titles, 3, tmp_path / "m.png", "patches")
    fig = figures[-1]
    fig.canvas.draw()
    boxes = [ax.title.get_window_extent() for ax in fig.axes]
    assert all(not a.overlaps(b) for a, b in itertools.pairwise(boxes)) and boxes[-1].x1 <= fig.bbox.x1
    _montage([wide] * 3, ["a", "b", "c"], 3, tmp_path / "m2.png", "mnist2d")
    image = np.asarray(figures[-1].axes[0].images[0].get_array())
    assert image.shape[1] == plt.imread(wide).shape[1]  # drawn at full size ...
    assert figures[-1].axes[0].get_window_extent().width >= 0.8 * image.shape[1]  # ... not shrunk to 0.69
