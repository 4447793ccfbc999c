"""Presets of the sparse-autoencoder family (issue 4): every row of SPEC §2.7 as a preset, a short run of
each MNIST preset through the shared trainer writes every artifact, bad overrides fail before training."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from sparsecoder.config import ConfigError, list_presets, load_preset
from sparsecoder.train import train

torch.set_num_threads(1)

MNIST_PRESETS = [f"{v}{nl}-mnist" for v in ("sdl", "vdl", "wdl", "do", "none") for nl in ("", "-nl")]
PATCH_PRESETS = [f"{v}{nl}-patches" for v in ("sdl", "vdl", "wdl", "do") for nl in ("", "-nl")]

# SPEC §2.7 (paper Table 3), transcribed: (λ grid, γ, β, η_D, η_E, wd(b1), wd(b), η_k, lr halving).
TABLE3 = {
    "sdl-mnist": ([0, 1e-4, 5e-4, 1e-3, 3e-3, 5e-3], 1, 0, 1e-3, 3e-4, 0, 0, 1, None),
    "vdl-mnist": ([0, 1e-3, 3e-3, 5e-3, 1e-2, 2e-2], 5, 10, 3e-4, 1e-4, 0, 0, 0.5, None),
    "sdl-nl-mnist": ([0, 1e-3, 3e-3, 5e-3, 1e-2, 2e-2], 1, 0, 1e-3, 1e-4, 1e-3, 0, 1, None),
    "vdl-nl-mnist": ([0, 1e-3, 3e-3, 5e-3, 1e-2, 2e-2], 100, 10, 3e-4, 1e-4, 1e-3, 0, 0.5, 30),
    "sdl-patches": ([0, 5e-4, 1e-3, 2e-3, 3e-3, 5e-3], 1, 0, 1e-3, 1e-4, 0, 1e-2, 0.5, None),
    "vdl-patches": ([0, 1e-3, 3e-3, 5e-3, 1e-2, 1.5e-2], 5, 10, 3e-4, 1e-4, 0, 1e-2, 0.5, None),
    "sdl-nl-patches": ([0, 1e-3, 3e-3, 5e-3, 8e-3, 1e-2], 1, 0, 1e-3, 1e-4, 1e-2, 1e-2, 0.5, None),
    "vdl-nl-patches": ([0, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 2e-2], 20, 10, 5e-5, 1e-4, 1e-1, 1e-2, 0.5, 30),
}
# Default λ of each preset: a value the paper reports numbers for (SPEC §3).
REPORTED_LAM = {"sdl-mnist": 5e-3, "vdl-mnist": 2e-2, "vdl-nl-mnist": 2e-2, "sdl-nl-mnist": 1e-2,
                "wdl-mnist": 5e-3, "do-mnist": 5e-3, "sdl-patches": 2e-3, "vdl-patches": 5e-3,
                "sdl-nl-patches": 3e-3, "vdl-nl-patches": 3e-3}


def test_every_variant_has_a_preset_with_paper_and_description():
    presets = {p.name: p for p in list_presets() if p.model == "sparse_autoencoder"}
    assert set(MNIST_PRESETS + PATCH_PRESETS) <= set(presets)
    for name in MNIST_PRESETS + PATCH_PRESETS:
        assert presets[name].paper and presets[name].description, name


@pytest.mark.parametrize("name", MNIST_PRESETS + PATCH_PRESETS)
def test_preset_configures_the_variant_its_name_says(name):
    preset, config = load_preset(name)
    variant, nl = name.split("-")[0], "-nl-" in name
    assert config.decoder == ("mlp" if nl else "linear")
    assert config.encoder == ("none" if variant == "do" else "lista")
    guard = {"sdl": "unit_norm", "do": "unit_norm", "vdl": "variance", "wdl": "weight_decay", "none": "none"}
    assert config.collapse_guard == guard[variant]
    mnist = name.endswith("-mnist")
    assert config.data == ("mnist" if mnist else "patches")
    assert config.n_components == (128 if mnist else 256)
    assert preset.config["hidden_size"] == (1024 if mnist else 2048)  # the paper's m, for --set decoder=mlp
    # a linear preset's config keeps the field's default: its hidden_size has no effect (layered_config)
    assert config.hidden_size == (preset.config["hidden_size"] if nl else 1024)
    assert config.epochs == (200 if mnist else 100) and config.batch_size == 250
    assert config.lam in config.lam_grid
    assert config.fista_max_iter == 200 and config.fista_tol == 1e-3
    if name in REPORTED_LAM:
        assert config.lam == REPORTED_LAM[name]


@pytest.mark.parametrize("name", sorted(TABLE3))
def test_sdl_and_vdl_presets_match_table_3(name):
    _, c = load_preset(name)
    grid, gamma, beta, lr_d, lr_e, wd_b1, wd_b, step, halve = TABLE3[name]
    assert list(c.lam_grid) == pytest.approx(grid)
    assert (c.gamma, c.beta, c.lr_decoder, c.lr_encoder) == pytest.approx((gamma, beta, lr_d, lr_e))
    assert (c.weight_decay_hidden_bias, c.weight_decay_encoder_bias, c.fista_step) == pytest.approx(
        (wd_b1, wd_b, step))
    assert c.lr_halve_every == halve
    if beta:
        assert c.var_threshold == 0.5


@pytest.mark.parametrize("data", ["mnist", "patches"])
@pytest.mark.parametrize("nl", ["", "-nl"])
def test_wdl_and_do_take_sdls_settings(data, nl):
    _, sdl = load_preset(f"sdl{nl}-{data}")
    _, wdl = load_preset(f"wdl{nl}-{data}")
    _, do = load_preset(f"do{nl}-{data}")
    assert wdl.weight_decay_decoder == 5e-4 and sdl.weight_decay_decoder == 0
    for key in ("lam", "lam_grid", "gamma", "lr_decoder", "lr_encoder", "weight_decay_hidden_bias",
                "weight_decay_encoder_bias", "fista_step"):
        assert getattr(wdl, key) == getattr(sdl, key), key
    # the paper's DO list (epochs, η_D, wd(b), wd(b1), η_k) leaves out λ: do-nl-mnist trains at 3e-3 of
    # the grid, where the random MLP decoder's codes are not all zero from the start (they are at 1e-2)
    for key in ("lam_grid", "lr_decoder", "weight_decay_hidden_bias", "fista_step", "epochs"):
        assert getattr(do, key) == getattr(sdl, key), key
    assert do.lam == (0.003 if (nl, data) == ("-nl", "mnist") else sdl.lam) and do.lam in sdl.lam_grid
    assert do.gamma == 0 and do.fista_init == (0.1 if nl else 0.0)


@pytest.mark.parametrize("nl", ["", "-nl"])
def test_no_guard_ablation_is_vdl_without_the_hinge(nl):
    _, vdl = load_preset(f"vdl{nl}-mnist")
    _, none = load_preset(f"none{nl}-mnist")
    assert none.beta == 0 and none.collapse_guard == "none"
    for key in ("lam", "gamma", "lr_decoder", "lr_encoder", "weight_decay_hidden_bias", "fista_step"):
        assert getattr(none, key) == getattr(vdl, key), key


@pytest.mark.parametrize(
    "overrides, match",
    [
        (["lambda=0.1"], r"unknown config key\(s\) \['lambda'\].*valid keys:.*lam"),
        (["collapse_guard=l2"], r"collapse_guard.*choose one of"),
        (["lam=-1"], r"'lam': must be a finite number >= 0"),
        (["beta=0"], r"'beta': collapse_guard=variance"),
        (["fista_step=abc"], r"fista_step"),
        # scales whose first step was inf/NaN, reported as a divergence blaming the learning rates
        (["var_threshold=1e30"], r"'var_threshold': must be > 0 and <= 1e\+08"),
        (["gamma=1e30"], r"'gamma': must be a finite number >= 0 and <= 1e\+08"),
        (["lam_grid=[0.1, 1e30]"], r"'lam_grid': every value must be a finite number >= 0 and <= 1e\+08"),
    ],
)
def test_bad_override_fails_before_training_writes_anything(tmp_path, overrides, match):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=match):
        train("vdl-mnist", out, overrides=overrides, progress=False)
    assert not out.exists()


@pytest.mark.parametrize(
    "preset, overrides, key, setting",
    [
        ("sdl-mnist", {"hidden_size": 4096}, "hidden_size", "decoder=linear"),
        ("vdl-mnist", {"weight_decay_hidden_bias": 1e-3}, "weight_decay_hidden_bias", "decoder=linear"),
        ("sdl-mnist", {"var_threshold": 0.3}, "var_threshold", "collapse_guard=unit_norm"),
        ("sdl-mnist", {"beta": 1}, "beta", "collapse_guard=unit_norm"),
        ("vdl-mnist", {"weight_decay_decoder": 1e-4}, "weight_decay_decoder", "collapse_guard=variance"),
        ("do-mnist", {"lr_encoder": 0.1}, "lr_encoder", "encoder=none"),
        ("do-mnist", {"lista_iterations": 5}, "lista_iterations", "encoder=none"),
        ("sdl-mnist", {"encoder": "none", "gamma": 2}, "gamma", "encoder=none"),
    ],
)
def test_an_override_without_effect_is_refused_naming_it_the_setting_and_the_fix(preset, overrides, key,
                                                                                  setting):
    # before: accepted and silently ignored (the run was not what the user asked for)
    with pytest.raises(ConfigError, match=rf"config key '{key}' \(set to .*\) has no effect with {setting}: "
                                          rf"it is used only with .*; leave {key} out"):
        load_preset(preset, overrides)  # what `train` and `sparsecoder train --set` resolve first


@pytest.mark.parametrize(
    "preset, overrides, unused",
    [
        ("vdl-nl-mnist", {"decoder": "linear"}, {"weight_decay_hidden_bias": 0.0, "hidden_size": 1024}),
        ("vdl-mnist", {"collapse_guard": "unit_norm"}, {"beta": 0.0}),
        ("wdl-mnist", {"collapse_guard": "unit_norm"}, {"weight_decay_decoder": 0.0}),
        ("sdl-mnist", {"encoder": "none"}, {"gamma": 0.0}),
        ("sdl-mnist", {"encoder": "none", "gamma": 0}, {"gamma": 0.0}),  # the off value may be given
    ],
)
def test_a_presets_own_keys_made_unused_by_an_override_do_not_block_it(preset, overrides, unused):
    # before: refused naming the preset's beta / weight decays / gamma, which the user had not given
    _, config = load_preset(preset, overrides)
    assert {key: getattr(config, key) for key in unused} == unused  # the config shows what runs


def test_the_sae_estimator_refuses_a_keyword_without_effect():
    from sparsecoder.estimators import SAE

    rows = torch.rand(20, 16).numpy()
    with pytest.raises(ConfigError, match="'hidden_size' .* no effect with decoder=linear"):
        SAE("sdl", hidden_size=8, n_components=4, max_epochs=1).fit(rows)


# ----------------------------------------------------------------------------------------------
# short real runs through the shared trainer on a few hundred embedded-MNIST images
# ----------------------------------------------------------------------------------------------
SHORT = {"limit": 300, "epochs": 2, "fista_max_iter": 25, "device": "cpu", "num_threads": 1}


@pytest.mark.parametrize("name", MNIST_PRESETS)
def test_short_run_of_each_mnist_preset_writes_every_artifact(tmp_path, name):
    out = tmp_path / name
    metrics = train(name, out, overrides=SHORT, progress=False)
    expected = ["config.yaml", "model.safetensors", "checkpoint.pt", "history.csv", "metrics.json",
                "atoms.png", "reconstructions.png"] + ([] if name.startswith("do") else ["encoder.png"])
    for file in expected:
        assert (out / file).is_file() and (out / file).stat().st_size > 0, file
    assert json.loads((out / "metrics.json").read_text()) == metrics
    for key in ("psnr", "sparsity", "psnr_fista", "sparsity_fista", "code_l1", "dead_atoms", "epochs",
                "seconds"):
        assert key in metrics, key
    assert 0.0 <= metrics["sparsity"] <= 1.0 and 0.0 <= metrics["sparsity_fista"] <= 1.0
    assert 0 <= metrics["dead_atoms"] <= 128 and metrics["epochs"] == 2 and metrics["n_train"] == 300
    assert 5.0 < metrics["psnr"] < 40.0  # pixel-space dB of a (barely) trained model
    with (out / "history.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2
    for column in ("energy", "reconstruction", "l1", "hinge", "fista_iterations", "code_l1", "val_loss",
                   "val_psnr", "val_sparsity", "lr_decoder", "seconds"):
        assert column in rows[0], column
    assert ("lr_encoder" in rows[0]) == (not name.startswith("do"))
    if name.startswith(("sdl", "do")):
        from sparsecoder.train import load_run

        _, model, _ = load_run(out)
        for module in model.decoder.modules():
            if isinstance(module, torch.nn.Linear):
                torch.testing.assert_close(module.weight.norm(dim=0), torch.ones(module.in_features),
                                           atol=1e-5, rtol=0)


def test_demo_main_job_trains_prints_the_pictures_and_refuses_to_clobber(tmp_path, capsys):
    from sparsecoder import demo

    out = tmp_path / "demo"
    assert demo.main(["--out", str(out), "--epochs", "1"]) == 0
    printed = capsys.readouterr().out
    # README: the demo prints where atoms.png, encoder.png, reconstructions.png and history.png are
    for name in ("atoms.png", "encoder.png", "reconstructions.png", "history.png"):
        assert (out / name).is_file() and str((out / name).resolve()) in printed
    assert "PSNR (dB)" in printed and "sparsity" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and metrics["data"].startswith("mnist")
    before = (out / "metrics.json").stat().st_mtime_ns
    assert demo.main(["--out", str(out), "--epochs", "1"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "metrics.json").stat().st_mtime_ns == before


def test_demo_banner_names_the_device_it_was_given(tmp_path, capsys):
    # audit 2026-11-29: the banner said "CPU" whatever --device was (cuda, auto, meta)
    from sparsecoder import demo

    assert demo.main(["--out", str(tmp_path / "d"), "--epochs", "1", "--device", "meta"]) == 2
    captured = capsys.readouterr()
    assert "device meta" in captured.out and "CPU" not in captured.out
    assert "meta" in captured.err and not (tmp_path / "d" / "checkpoint.pt").exists()


def test_demo_refuses_a_folder_or_option_it_cannot_use_before_anything_runs(tmp_path, capsys):
    # the trainer's refusal offered --resume, which the demo does not have; --threads 0 was silently
    # torch's default and --epochs 0 was announced as "training ... for 0 epochs" before its refusal
    from sparsecoder import demo

    out = tmp_path / "demo"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert demo.main(["--out", str(out), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "is not empty" in err and "--overwrite" in err and "--out" in err and "--resume" not in err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    for option in ("--epochs", "--threads"):
        with pytest.raises(SystemExit) as exited:
            demo.main(["--out", str(tmp_path / "new"), option, "0"])
        assert exited.value.code == 2
        captured = capsys.readouterr()
        assert f"argument {option}: must be an integer >= 1, got 0" in captured.err and not captured.out
    assert not (tmp_path / "new").exists()


def test_demo_reports_a_busy_folder_in_one_line_not_a_traceback(tmp_path, capsys):
    # audit 2026-11-29: the demo caught four error types only: a folder in use by another run (and Ctrl-C,
    # a read-only folder, a divergence) ended in a traceback
    from sparsecoder import demo
    from sparsecoder.train.integrity import run_folder_lock

    out = tmp_path / "demo"
    with run_folder_lock(out, "train", create=True):
        assert demo.main(["--out", str(out), "--epochs", "1", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the run folder") and "in use by another sparsecoder process" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("name", ["vdl-patches", "sdl-nl-patches"])
def test_short_run_on_natural_image_patches_writes_the_artifacts(tmp_path, name):
    out = tmp_path / name
    overrides = {"epochs": 1, "limit": 300, "data_options": {"n_val": 100, "n_test": 100},
                 "fista_max_iter": 25, "device": "cpu", "num_threads": 1}
    metrics = train(name, out, overrides=overrides, progress=False)
    for file in ("atoms.png", "encoder.png", "reconstructions.png", "metrics.json", "model.safetensors"):
        assert (out / file).is_file(), file
    assert metrics["n_train"] == 300 and metrics["data"].startswith("patches")
    assert 0.0 <= metrics["sparsity"] <= 1.0 and metrics["psnr"] > 5.0
