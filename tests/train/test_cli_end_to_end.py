"""The commands end to end on a real preset and the embedded MNIST subset: train, resume, evaluate, encode."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sparsecoder.cli import main
from sparsecoder.train import load_run, load_test_split
from sparsecoder.train.logging import read_history_rows

torch.set_num_threads(1)

SMALL = ["limit=300", "fista_max_iter=30", "num_threads=1", "device=cpu"]


def test_train_resume_evaluate_encode_from_the_command_line(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "sdl-mnist", "--out", str(run), "--quiet", "--set", "epochs=2", *SMALL]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((run / "metrics.json").read_text())
    assert printed["epochs"] == 2 and printed["n_train"] == 300
    assert 0.0 <= printed["sparsity"] <= 1.0 and np.isfinite(printed["psnr"])
    for name in ("config.yaml", "history.csv", "model.safetensors", "checkpoint.pt", "atoms.png",
                 "reconstructions.png", "history.png"):
        assert (run / name).is_file(), name

    # continue for one more epoch without repeating the --set values
    assert main(["train", "sdl-mnist", "--out", str(run), "--quiet", "--resume", "--set", "epochs=3"]) == 0
    capsys.readouterr()
    assert [row["epoch"] for row in read_history_rows(run / "history.csv")] == [1, 2, 3]
    after_resume = json.loads((run / "metrics.json").read_text())

    # evaluate recomputes the same test metrics from the saved best weights
    assert main(["evaluate", str(run)]) == 0
    assert json.loads(capsys.readouterr().out) == after_resume

    # encode model-space rows with the run's encoder
    config, model, _ = load_run(run)  # sized from preprocessing.json; no data read
    rows = load_test_split(config).test.x[:25].numpy()
    np.save(tmp_path / "rows.npy", rows)
    codes_path = tmp_path / "codes.npy"
    assert main(["encode", str(run), str(tmp_path / "rows.npy"), "--out", str(codes_path)]) == 0
    codes = np.load(codes_path)
    assert codes.shape == (25, config.n_components) and codes.dtype == np.float32
    np.testing.assert_allclose(codes, model.encode(torch.from_numpy(rows)).numpy(), rtol=1e-5, atol=1e-6)
    assert main(["encode", str(run), str(tmp_path / "rows.npy"), "--out", str(codes_path)]) == 2
    assert "exists" in capsys.readouterr().err
    np.save(tmp_path / "wide.npy", np.zeros((2, 10), dtype=np.float32))
    assert main(["encode", str(run), str(tmp_path / "wide.npy"), "--out", str(tmp_path / "c2.npy")]) == 2
    assert "784" in capsys.readouterr().err


def test_a_diverging_run_exits_3_naming_the_knobs(tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "vdl-mnist", "--out", str(run), "--quiet", "--set", "epochs=2", "lr_decoder=1e30",
                 *SMALL])
    assert code == 3
    err = capsys.readouterr().err
    assert "diverged in epoch 1" in err and "lr_decoder=1e+30" in err and "fista_step=" in err
    assert "the loss's weights and scales (lam=0.02, beta=10.0, gamma=5.0, var_threshold=0.5)" in err
    assert not (run / "checkpoint.pt").exists() and not (run / "metrics.json").exists()


def test_a_diverging_vae_names_its_loss_weights_and_scales_too(tmp_path, capsys):
    """A VAE diverging through beta or prior_scale used to be told only to lower its learning rate."""
    code = main(["train", "vae-gauss-mnist2d", "--out", str(tmp_path / "run"), "--quiet", "--set", "epochs=2",
                 "limit=300", "lr=1e30", "beta=2.0"])
    err = capsys.readouterr().err
    assert code == 3 and "lr=1e+30" in err
    assert "the loss's weights and scales (beta=2.0, prior_scale=1.0, likelihood_sigma=0.367" in err


@pytest.mark.parametrize("batch_size, where", [(250, "the validation split"), (50, "batch 2/4")])
def test_vdl_codes_that_overflow_with_finite_weights_stop_as_a_divergence(tmp_path, capsys, batch_size,
                                                                           where):
    """A huge encoder learning rate leaves the weights finite but the LISTA codes inf/NaN: seen by the
    validation metrics (one batch per epoch) or by FISTA, which refuses them as its start (four batches).
    Both are the trainer's divergence stop (exit 3, naming the knobs), not "codes contains NaN or inf"."""
    run = tmp_path / "run"
    code = main(["train", "vdl-mnist", "--out", str(run), "--quiet", "--set",
                 *(s for s in SMALL if s != "limit=300"), "epochs=2", "limit=200",
                 "lr_encoder=1e12", f"batch_size={batch_size}", "n_components=32"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"training diverged in epoch 1: the model's codes of {where} are NaN/inf" in err
    assert "lr_encoder=1000000000000.0" in err and "No epoch had completed" in err
    assert not (run / "checkpoint.pt").exists() and not (run / "metrics.json").exists()


def test_a_model_too_large_for_memory_is_one_error_naming_its_sizes(tmp_path, capsys):
    """n_components=1e10 with the one-hidden-layer decoder asks torch for 29 TiB: its allocator error was
    an "unexpected" RuntimeError; now one line naming the sizes to lower, and no run folder."""
    run = tmp_path / "run"
    code = main(["train", "sdl-nl-mnist", "--out", str(run), "--quiet", "--set", "epochs=1", "limit=200",
                 "n_components=10000000000"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "does not fit in this machine's memory" in err and "n_components=10000000000" in err
    assert not run.exists()
