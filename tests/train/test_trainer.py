"""The shared trainer, driven by a small real model (tests/train/linear_autoencoder.py) on synthetic data."""

from __future__ import annotations

import errno
import json
import math

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from sparsecoder.config import ConfigError, load_config, save_config
from sparsecoder.train import TrainingDiverged, decode_run, encode_run, evaluate_run, load_run, train
from sparsecoder.train.checkpoint import load_checkpoint, rng_state
from sparsecoder.train.logging import read_history_rows
from sparsecoder.train.trainer import batch_indices
from tests.train.linear_autoencoder import (
    LinearAutoencoderConfig,
    interrupted_at,
    synthetic_splits,
    validation_metrics,
)

torch.set_num_threads(1)

DATA = synthetic_splits()


def config(**changes):
    values = {"epochs": 4, "batch_size": 50, "seed": 3, "device": "cpu"}
    values.update(changes)
    return LinearAutoencoderConfig(**values)


def without_seconds(rows):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def weights(path):
    return load_file(str(path))


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_run_folder_has_every_artifact_and_consistent_history(tmp_path):
    out = tmp_path / "run"
    metrics = train(config(), out, data=DATA, progress=False)
    for name in ("config.yaml", "history.csv", "model.safetensors", "checkpoint.pt", "metrics.json",
                 "atoms.png", "history.png"):
        assert (out / name).is_file(), name
    rows = read_history_rows(out / "history.csv")
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert list(rows[0]) == ["epoch", "loss", "noise_norm", "val_loss", "val_psnr", "lr_model", "seconds"]
    assert all(r["lr_model"] == 1e-2 for r in rows)
    # The averaged training noise norm estimates E||ε|| for ε ~ N(0, 0.1² I_16): 0.1·√2·Γ(8.5)/Γ(8).
    expected_noise = 0.1 * math.sqrt(2) * math.exp(math.lgamma(8.5) - math.lgamma(8))
    assert all(abs(r["noise_norm"] - expected_noise) < 0.02 for r in rows)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == metrics
    best = min(rows, key=lambda r: r["val_loss"])
    assert metrics["best_epoch"] == best["epoch"]
    assert metrics["best_val_loss"] == pytest.approx(best["val_loss"])
    assert metrics["epochs"] == 4 and metrics["n_train"] == len(DATA.train)
    assert metrics["seconds"] == pytest.approx(sum(r["seconds"] for r in rows))
    assert metrics["version"] and "psnr" in metrics and len(metrics["column_norms"]) == 4
    model_name, saved_config = load_config(out / "config.yaml")
    assert model_name == "test_linear_autoencoder" and saved_config == config()


def test_best_weights_are_the_lowest_val_loss_epoch_not_the_last(tmp_path):
    # lr doubling every epoch: validation improves, then the run gets worse (best epoch 3 of 6).
    out = tmp_path / "run"
    metrics = train(config(epochs=6, lr=0.05, lr_growth=2.0), out, data=DATA, progress=False)
    rows = read_history_rows(out / "history.csv")
    losses = [r["val_loss"] for r in rows]
    best_epoch = int(np.argmin(losses)) + 1
    assert best_epoch < 6 and metrics["best_epoch"] == best_epoch
    assert [r["lr_model"] for r in rows] == [0.05 * 2**k for k in range(6)]
    _, model, _ = load_run(out, data=DATA)
    assert validation_metrics(model, DATA.val)["val_loss"] == pytest.approx(losses[best_epoch - 1], rel=1e-6)
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 6


def test_same_seed_same_numbers_other_seed_other_numbers(tmp_path):
    train(config(), tmp_path / "a", data=DATA, progress=False)
    train(config(), tmp_path / "b", data=DATA, progress=False)
    train(config(seed=4), tmp_path / "c", data=DATA, progress=False)
    a, b, c = (read_history_rows(tmp_path / n / "history.csv") for n in "abc")
    assert without_seconds(a) == without_seconds(b)
    assert without_seconds(a) != without_seconds(c)
    assert same_weights(weights(tmp_path / "a/model.safetensors"), weights(tmp_path / "b/model.safetensors"))


def test_resume_after_ctrl_c_mid_epoch_reproduces_the_uninterrupted_run(tmp_path):
    full = tmp_path / "full"
    train(config(epochs=5), full, data=DATA, progress=False)
    cut = tmp_path / "cut"
    # 5 batches per epoch: step 13 is batch 3 of epoch 3, so epochs 1-2 are saved and epoch 3 is lost.
    with interrupted_at(13), pytest.raises(KeyboardInterrupt):
        train(config(epochs=5), cut, data=DATA, progress=False)
    assert load_checkpoint(cut / "checkpoint.pt")["epoch"] == 2
    assert [r["epoch"] for r in read_history_rows(cut / "history.csv")] == [1, 2]
    metrics = train(config(epochs=5), cut, data=DATA, progress=False, resume=True)
    assert without_seconds(read_history_rows(cut / "history.csv")) == without_seconds(
        read_history_rows(full / "history.csv"))
    assert same_weights(weights(cut / "model.safetensors"), weights(full / "model.safetensors"))
    full_state, cut_state = load_checkpoint(full / "checkpoint.pt"), load_checkpoint(cut / "checkpoint.pt")
    assert all(torch.equal(full_state["model"][k], cut_state["model"][k]) for k in full_state["model"])
    full_metrics = json.loads((full / "metrics.json").read_text())
    assert {k: v for k, v in metrics.items() if k != "seconds"} == {
        k: v for k, v in full_metrics.items() if k != "seconds"}


def test_a_finished_run_continued_and_stopped_keeps_no_metrics_of_its_old_weights(tmp_path):
    """`--resume --set epochs=more` of a finished run, stopped (Ctrl-C, kill -9) after a new epoch: its
    metrics.json of the old weights stayed, `evaluate` reported the old epochs beside the new weights and a
    sweep counted the trial as done."""
    out = tmp_path / "run"
    train(config(epochs=2), out, data=DATA, progress=False)
    old = (out / "metrics.json").read_bytes()
    # 5 batches per epoch: step 8 is batch 3 of epoch 4, so epoch 3 is saved
    with interrupted_at(8), pytest.raises(KeyboardInterrupt):
        train(None, out, overrides={"epochs": 4}, resume=True, data=DATA, progress=False)
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["epoch"] == 3
    assert not (out / "metrics.json").exists()
    # a folder left so by an older sparsecoder: `evaluate` takes the epochs from the checkpoint
    (out / "metrics.json").write_bytes(old)
    evaluated = evaluate_run(out, data=DATA)
    assert (evaluated["epochs"], evaluated["best_epoch"]) == (3, state["best_epoch"])
    assert train(None, out, resume=True, data=DATA, progress=False)["epochs"] == 4


def test_a_weights_write_failing_after_the_checkpoint_says_to_resume_from_it(tmp_path, monkeypatch):
    """A full disk after checkpoint.pt of epoch 1 was written, at the best weights: the error said "before
    any checkpoint: train again with --overwrite", which would have thrown the saved epoch away."""
    import sparsecoder.train.checkpoint as checkpoint

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "safetensors_save", disk_full)  # the library's serialiser
    out = tmp_path / "run"
    with pytest.raises(OSError, match="checkpoint.pt holds epoch 1: .*--resume") as raised:
        train(config(epochs=1), out, data=DATA, progress=False)
    assert "--overwrite" not in str(raised.value)
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1
    monkeypatch.undo()
    assert train(None, out, resume=True, data=DATA, progress=False)["epochs"] == 1  # weights written back


def test_resume_can_extend_epochs_and_equals_a_longer_run(tmp_path):
    train(config(epochs=4), tmp_path / "long", data=DATA, progress=False)
    train(config(epochs=2), tmp_path / "short", data=DATA, progress=False)
    train(None, tmp_path / "short", overrides={"epochs": 4}, resume=True, data=DATA, progress=False)
    assert without_seconds(read_history_rows(tmp_path / "short/history.csv")) == without_seconds(
        read_history_rows(tmp_path / "long/history.csv"))
    assert load_config(tmp_path / "short/config.yaml")[1].epochs == 4


def test_resume_by_preset_needs_no_repeated_overrides(tmp_path):
    preset = tmp_path / "tiny-linear.yaml"
    save_config(preset, "test_linear_autoencoder", config(epochs=2), extra={"description": "test preset"})
    out = tmp_path / "run"
    train(str(preset), out, overrides={"lr": 0.02}, data=DATA, progress=False)
    train(str(preset), out, overrides={"epochs": 3}, resume=True, data=DATA, progress=False)
    _, saved = load_config(out / "config.yaml")
    assert saved.lr == 0.02 and saved.epochs == 3
    assert yaml.safe_load((out / "config.yaml").read_text())["preset"] == "tiny-linear"
    assert len(read_history_rows(out / "history.csv")) == 3
    with pytest.raises(ConfigError, match="run of preset 'tiny-linear', not 'sdl-mnist'"):
        train("sdl-mnist", out, resume=True, data=DATA, progress=False)
    with pytest.raises(ConfigError, match="only device, epochs, num_threads may change"):
        train(str(preset), out, overrides={"lr": 0.5}, resume=True, data=DATA, progress=False)


def test_resume_refuses_a_different_config_or_a_missing_checkpoint(tmp_path):
    out = tmp_path / "run"
    train(config(epochs=1), out, data=DATA, progress=False)
    with pytest.raises(ConfigError, match=r"cannot resume .*lr: run has 0\.01, asked 0\.5"):
        train(config(epochs=2, lr=0.5), out, resume=True, data=DATA, progress=False)
    train(config(epochs=2), out, resume=True, data=DATA, progress=False)
    with pytest.raises(ConfigError, match="already trained 2 epochs"):
        train(config(epochs=1), out, resume=True, data=DATA, progress=False)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(config(), tmp_path / "empty", resume=True, data=DATA, progress=False)


def test_divergence_stops_naming_epoch_and_knobs_and_keeps_last_good_epoch(tmp_path):
    out = tmp_path / "run"
    # lr × 1e12 after epoch 1: the first steps of epoch 2 blow the weights up to inf.
    with pytest.raises(TrainingDiverged, match=r"epoch 2: training log 'loss' = (inf|nan).*lr=0\.01") as err:
        train(config(lr_growth=1e12), out, data=DATA, progress=False)
    assert "last good epoch 1" in str(err.value)
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1
    assert [r["epoch"] for r in read_history_rows(out / "history.csv")] == [1]
    assert all(torch.isfinite(t).all() for t in weights(out / "model.safetensors").values())
    assert not (out / "metrics.json").exists()
    # the message said "resumable" and "train again", but a resume diverges the same way and refuses a
    # lower lr, and `train` into the same folder is refused: it now names the ways that work
    assert "--overwrite" in str(err.value) and "would diverge again" in str(err.value)
    assert "`--resume --set epochs=1` ends the run there" in str(err.value)
    metrics = train(None, out, resume=True, overrides={"epochs": 1}, data=DATA, progress=False)
    assert metrics["best_epoch"] == 1 and (out / "metrics.json").is_file()


def test_divergence_in_the_first_epoch_says_nothing_was_saved(tmp_path):
    with pytest.raises(TrainingDiverged, match="epoch 1.*no checkpoint"):
        train(config(lr=1e30), tmp_path / "run", data=DATA, progress=False)


def test_out_dir_is_never_overwritten_without_permission(tmp_path):
    out = tmp_path / "run"
    train(config(epochs=1), out, data=DATA, progress=False)
    before = (out / "history.csv").read_bytes()
    with pytest.raises(FileExistsError, match="not empty.*--resume.*--overwrite"):
        train(config(epochs=1, seed=9), out, data=DATA, progress=False)
    assert (out / "history.csv").read_bytes() == before
    (out / "notes.txt").write_text("mine")
    train(config(epochs=2, seed=9), out, data=DATA, progress=False, overwrite=True)
    assert len(read_history_rows(out / "history.csv")) == 2 and (out / "notes.txt").read_text() == "mine"
    user_folder = tmp_path / "documents"
    user_folder.mkdir()
    (user_folder / "thesis.tex").write_text("x")
    with pytest.raises(FileExistsError, match="not a sparsecoder run folder"):
        train(config(), user_folder, data=DATA, progress=False, overwrite=True)
    # audit 2026-11-30: without --overwrite it offered --resume and --overwrite, which both refuse such a
    # folder
    with pytest.raises(FileExistsError, match="not a sparsecoder run folder") as refused:
        train(config(), user_folder, data=DATA, progress=False)
    assert "--resume" not in str(refused.value) and "--overwrite" not in str(refused.value)
    assert [p.name for p in user_folder.iterdir()] == ["thesis.tex"]


def test_overwrite_keeps_the_old_run_when_the_new_data_fail_to_load(tmp_path):
    out = tmp_path / "run"
    train(config(epochs=1), out, data=DATA, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and not p.name.startswith(".")}
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        train(config(epochs=1), out, overrides={"data": "arrays", "data_dir": str(tmp_path / "missing.npy")},
              progress=False, overwrite=True)
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and not p.name.startswith(".")}
    assert after == before


def test_overwrite_needs_a_config_written_by_sparsecoder_and_removes_only_its_pictures(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "config.yaml").write_text("name: my web app\n")
    (project / "history.csv").write_text("a,b\n")
    with pytest.raises(FileExistsError, match="not a sparsecoder run folder"):
        train(config(), project, data=DATA, progress=False, overwrite=True)
    assert (project / "config.yaml").read_text() == "name: my web app\n"
    assert (project / "history.csv").exists()
    out = tmp_path / "run"
    train(config(epochs=1), out, data=DATA, progress=False)
    (out / "figure1.png").write_bytes(b"mine")
    train(config(epochs=1, seed=9), out, data=DATA, progress=False, overwrite=True)
    assert (out / "figure1.png").read_bytes() == b"mine"


def test_a_run_that_stopped_before_its_first_epoch_says_how_to_start_again(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged):
        train(config(lr=1e30), out, data=DATA, progress=False)
    with pytest.raises(FileExistsError, match="before the first epoch completed.*--overwrite starts"):
        train(config(), out, data=DATA, progress=False)
    train(config(epochs=1), out, data=DATA, progress=False, overwrite=True)
    assert (out / "checkpoint.pt").is_file()


def test_bad_override_fails_before_anything_is_written(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) \['lam'\].*valid keys: .*lr_growth"):
        train(config(), out, overrides={"lam": 0.1}, data=DATA, progress=False)
    with pytest.raises(ConfigError, match="epochs"):
        train(config(), out, overrides=["epochs=0"], data=DATA, progress=False)
    with pytest.raises(ConfigError, match="unknown preset"):
        train("no-such-preset", out, progress=False)
    assert not out.exists()


def test_yes_no_arguments_must_be_bools(tmp_path):
    # overwrite="no" (a truthy string) used to replace the run; resume="no" to look for a checkpoint
    out = tmp_path / "run"
    train(config(epochs=1), out, data=DATA, progress=np.False_)  # NumPy's bools are bools
    before = (out / "model.safetensors").read_bytes()
    for flag in ("overwrite", "resume", "progress"):
        arguments = {"progress": False, flag: "no"}
        with pytest.raises(ValueError, match=f"{flag} must be True or False, got 'no'"):
            train(config(epochs=1, seed=9), out, data=DATA, **arguments)
    assert (out / "model.safetensors").read_bytes() == before


def test_resume_by_another_runs_config_yaml_is_checked_by_the_preset_it_names(tmp_path):
    """audit 2026-11-30: any file named config.yaml was taken for the run's own, so `train
    other/config.yaml --out run --resume` (another preset's run) continued `run` without a word, where the
    preset's name is refused; the run's own config.yaml still resumes it, a run of a config object too."""
    preset = tmp_path / "tiny-linear.yaml"
    save_config(preset, "test_linear_autoencoder", config(epochs=1), extra={"description": "test preset"})
    other = tmp_path / "other"
    train(str(preset), other, data=DATA, progress=False)
    out = tmp_path / "run"
    train(config(epochs=1), out, data=DATA, progress=False)
    with pytest.raises(ConfigError, match="from a config object, not a preset.*not 'tiny-linear'"):
        train(str(other / "config.yaml"), out, overrides={"epochs": 2}, resume=True, data=DATA,
              progress=False)
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")  # a file that holds no mapping: named, no crash
    with pytest.raises(ConfigError, match="not a preset, so it is not 'list'"):
        train(str(tmp_path / "list.yaml"), out, overrides={"epochs": 2}, resume=True, data=DATA,
              progress=False)
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1
    train(str(out / "config.yaml"), out, overrides={"epochs": 2}, resume=True, data=DATA, progress=False)
    assert train(str(other / "config.yaml"), other, overrides={"epochs": 2}, resume=True, data=DATA,
                 progress=False)["epochs"] == 2


def test_resume_by_a_preset_name_refuses_a_run_trained_from_a_config_object(tmp_path):
    # the preset used to be ignored without a word (a VAE preset "resumed" an SAE run from its own config)
    out = tmp_path / "run"
    train(config(epochs=1), out, data=DATA, progress=False)
    with pytest.raises(ConfigError, match="from a config object, not a preset.*not 'vae-gauss-mnist'"):
        train("vae-gauss-mnist", out, overrides={"epochs": 2}, resume=True, data=DATA, progress=False)
    assert len(read_history_rows(out / "history.csv")) == 1
    train(str(out / "config.yaml"), out, overrides={"epochs": 2}, resume=True, data=DATA, progress=False)
    assert len(read_history_rows(out / "history.csv")) == 2


def test_train_in_a_notebooks_inference_mode_and_its_threads_are_left_as_they_were(tmp_path):
    # audit 2026-11-29: train() inside torch.inference_mode() or torch.no_grad() failed with torch's "element
    # 0 of tensors does not require grad", and train / evaluate_run with num_threads set left torch on that
    # count for the rest of the session
    train(config(epochs=1), tmp_path / "plain", data=DATA, progress=False)
    torch.set_num_threads(2)
    try:
        with torch.inference_mode():
            train(config(epochs=1, num_threads=1), tmp_path / "inference", data=DATA, progress=False)
        assert torch.get_num_threads() == 2
        evaluate_run(tmp_path / "inference", data=DATA)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    assert same_weights(weights(tmp_path / "plain/model.safetensors"),
                        weights(tmp_path / "inference/model.safetensors"))


def test_load_evaluate_and_encode_a_saved_run(tmp_path):
    out = tmp_path / "run"
    metrics = train(config(), out, data=DATA, progress=False)
    cfg, model, data = load_run(out, data=DATA)
    assert cfg == config() and data is DATA
    x = DATA.test.x[:7]
    codes = encode_run(out, x.numpy(), data=DATA)
    assert codes.shape == (7, 4)
    np.testing.assert_allclose(codes, (x @ model.encoder.weight.T).detach().numpy(), rtol=1e-6)
    (out / "metrics.json").write_text(json.dumps({**metrics, "psnr": -1.0}))
    again = evaluate_run(out, data=DATA)
    assert again == metrics  # test metrics recomputed, training bookkeeping kept
    with pytest.raises(ValueError, match="16"):
        encode_run(out, np.zeros((3, 5)), data=DATA)
    with pytest.raises(FileNotFoundError, match="no run folder"):
        load_run(tmp_path / "missing", data=DATA)


def test_encode_and_decode_a_run_take_bfloat16_tensors_and_name_toarray_for_sparse_matrices(tmp_path):
    # audit 2026-11-29: a bfloat16 tensor was torch's "Got unsupported ScalarType BFloat16" and a scipy
    # sparse matrix "sparse array length is ambiguous; use getnnz() or shape[0]"
    import scipy.sparse

    out = tmp_path / "run"
    train(config(epochs=1), out, data=DATA, progress=False)
    x = DATA.test.x[:5].bfloat16()
    codes = encode_run(out, x, data=DATA)
    np.testing.assert_array_equal(codes, encode_run(out, x.float().numpy(), data=DATA))
    np.testing.assert_array_equal(decode_run(out, torch.from_numpy(codes).bfloat16(), data=DATA),
                                  decode_run(out, torch.from_numpy(codes).bfloat16().float(), data=DATA))
    with pytest.raises(TypeError, match=r"x is a scipy sparse csr_matrix.*pass x.toarray\(\)"):
        encode_run(out, scipy.sparse.csr_matrix(x.float().numpy()), data=DATA)
    with pytest.raises(TypeError, match=r"codes is a scipy sparse coo_matrix.*pass codes.toarray\(\)"):
        decode_run(out, scipy.sparse.coo_matrix(codes), data=DATA)


def test_evaluate_refuses_a_config_yaml_edited_after_training(tmp_path):
    out = tmp_path / "run"
    metrics = train(config(epochs=1), out, data=DATA, progress=False)
    original = (out / "config.yaml").read_text()
    assert "  seed: 3\n" in original and "  device: cpu\n" in original
    (out / "config.yaml").write_text(original.replace("  seed: 3\n", "  seed: 4\n"))
    with pytest.raises(ValueError, match=r"cannot evaluate .*seed: trained with 3, config.yaml now says 4"):
        evaluate_run(out, data=DATA)
    assert json.loads((out / "metrics.json").read_text()) == metrics  # untouched
    (out / "config.yaml").write_text(original.replace("  device: cpu\n", "  device: auto\n"))
    again = evaluate_run(out, data=DATA)  # where it runs may change
    if not torch.cuda.is_available():
        assert again == metrics
    else:  # device auto evaluated on the GPU: float32 rounding differs from the CPU's
        assert again.keys() == metrics.keys()
        for key, value in metrics.items():
            if isinstance(value, float | list):
                np.testing.assert_allclose(again[key], value, rtol=1e-5, err_msg=key)
            else:
                assert again[key] == value, key


def test_weights_of_another_architecture_are_refused_clearly(tmp_path):
    out = tmp_path / "run"
    train(config(epochs=1), out, data=DATA, progress=False)
    bigger = synthetic_splits(side=5)
    with pytest.raises(ValueError, match=r"the data given have 25 features per row .* was trained on 16 "):
        load_run(out, data=bigger)
    (out / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors|damaged or was replaced"):
        load_run(out, data=DATA)
    (out / "checkpoint.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable checkpoint|damaged or was replaced"):
        train(config(epochs=2), out, resume=True, data=DATA, progress=False)


def test_a_run_file_replaced_by_a_folder_is_named_before_any_work(tmp_path):
    """Read as "missing", a folder named like a run file gave wrong advice ("nothing to resume", a run read
    unverified when digests.json was a folder); written, it failed only after an epoch had trained."""
    out = tmp_path / "run"
    train(config(epochs=1), out, data=DATA, progress=False)
    history = (out / "history.csv").read_bytes()
    for name in ("history.csv", "metrics.json", "checkpoint.pt", "digests.json", "model.safetensors"):
        (out / name).rename(tmp_path / name)
        (out / name).mkdir()
        with pytest.raises(ValueError, match=rf"run/{name} is a folder, not the file .* move it away"):
            train(config(epochs=2), out, resume=True, data=DATA, progress=False)
        with pytest.raises(ValueError, match=rf"run/{name} is a folder"):
            train(config(epochs=2), out, overwrite=True, data=DATA, progress=False)
        if name in ("digests.json", "model.safetensors"):  # what encode reads
            with pytest.raises(ValueError, match=rf"run/{name} is a folder"):
                encode_run(out, DATA.test.x[:2].numpy(), data=DATA)
        if name != "history.csv":  # what evaluate reads or writes
            with pytest.raises(ValueError, match=rf"run/{name} is a folder"):
                evaluate_run(out, data=DATA)
        (out / name).rmdir()
        (tmp_path / name).rename(out / name)
    assert (out / "history.csv").read_bytes() == history


def test_resume_checks_the_best_weights_before_training(tmp_path):
    """The weights reloaded at the end of a resumed run were first read then: a damaged file failed after
    every epoch had trained (or passed unseen when a later epoch replaced it), a deleted one likewise."""
    out = tmp_path / "run"
    # lr × 10 after epoch 1: epoch 2 is worse, so the best weights (epoch 1) are not in the checkpoint
    train(config(epochs=2, lr=0.05, lr_growth=10.0), out, data=DATA, progress=False)
    assert load_checkpoint(out / "checkpoint.pt")["best_epoch"] == 1
    good = (out / "model.safetensors").read_bytes()
    (out / "model.safetensors").write_bytes(good[:-8] + bytes(8))
    with pytest.raises(ValueError, match="model.safetensors is damaged or was replaced"):
        train(config(epochs=3, lr=0.05, lr_growth=10.0), out, resume=True, data=DATA, progress=False)
    (out / "model.safetensors").unlink()
    for call in (lambda: train(config(epochs=3, lr=0.05, lr_growth=10.0), out, resume=True, data=DATA,
                               progress=False),
                 lambda: encode_run(out, DATA.test.x[:2].numpy(), data=DATA)):
        with pytest.raises(FileNotFoundError, match="best weights were deleted or moved, or the run stopped"):
            call()
    assert [r["epoch"] for r in read_history_rows(out / "history.csv")] == [1, 2]
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 2


def test_a_run_stopped_between_its_checkpoint_and_its_best_weights_resumes_with_that_epochs_weights(
        tmp_path):
    """audit 2026-11-29: the best weights were written before the checkpoint; a kill between the two left
    epoch N's weights beside epoch N-1's checkpoint, and `--resume --set epochs=N-1` wrote a metrics.json
    naming epoch N-1 over epoch N's weights. Now the checkpoint goes first, and a resume whose checkpoint
    is its best epoch writes the weights the stop cost (missing, or an older epoch's) from it."""
    from sparsecoder.train.checkpoint import save_weights

    out = tmp_path / "run"
    train(config(epochs=2), out, data=DATA, progress=False)
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["best_epoch"] == state["epoch"] == 2
    best = weights(out / "model.safetensors")
    # the state a stop between the checkpoint of epoch 2 and its weights leaves: epoch 1's weights
    _, older, _ = load_run(out, data=DATA)
    older.encoder.weight.data.add_(1.0)
    save_weights(out / "model.safetensors", older, model_name="test_linear_autoencoder", epoch=1)
    metrics = train(None, out, resume=True, data=DATA, progress=False)
    assert metrics["best_epoch"] == 2 and same_weights(weights(out / "model.safetensors"), best)
    (out / "model.safetensors").unlink()  # stopped in epoch 1's writes: no weights file yet
    train(None, out, resume=True, data=DATA, progress=False)
    assert same_weights(weights(out / "model.safetensors"), best)


def test_a_run_stopped_between_its_last_checkpoint_and_its_history_resumes_with_the_whole_history(tmp_path):
    """audit 2026-11-30: history.csv is written after checkpoint.pt; a stop between the two (kill -9, Ctrl-C,
    a full disk) in the last epoch, then `--resume` (nothing left to train), finished the run with
    metrics.json naming epoch 2 as the best while history.csv (and history.png) ended at epoch 1; a deleted
    history.csv failed the resume after the test metrics were written. The checkpoint's history is written
    back."""
    out = tmp_path / "run"
    train(config(epochs=2), out, data=DATA, progress=False)
    expected = without_seconds(read_history_rows(out / "history.csv"))
    lines = (out / "history.csv").read_text().splitlines(keepends=True)
    (out / "history.csv").write_text("".join(lines[:-1]))  # what the stop left: epoch 1
    assert train(None, out, resume=True, data=DATA, progress=False)["epochs"] == 2
    assert without_seconds(read_history_rows(out / "history.csv")) == expected


def test_an_unreadable_checkpoint_or_weights_file_says_what_to_do(tmp_path):
    # audit 2026-11-29: a truncated file in a run without digests.json was "not a readable checkpoint
    # (RuntimeError: ... five sentences of torch's ...)", with no fix
    out = tmp_path / "run"
    train(config(epochs=1), out, data=DATA, progress=False)
    (out / "digests.json").unlink()
    with open(out / "checkpoint.pt", "r+b") as fh:
        fh.truncate(1000)
    with pytest.raises(ValueError, match=r"checkpoint.pt is not a readable checkpoint \(RuntimeError: "
                                         r"[^.]*\); restore it from a copy: .* still encodes and decodes$"):
        train(None, out, resume=True, data=DATA, progress=False)
    assert encode_run(out, DATA.test.x[:2].numpy(), data=DATA).shape == (2, 4)
    with open(out / "model.safetensors", "r+b") as fh:
        fh.truncate(1000)
    with pytest.raises(ValueError, match=r"model.safetensors is not a readable safetensors file \(.*\); "
                                         r"restore it from a copy, or train the run again \(--overwrite\)$"):
        encode_run(out, DATA.test.x[:2].numpy(), data=DATA)


@pytest.mark.parametrize("n, batch_size", [(240, 50), (501, 250), (7, 250), (250, 250)])
def test_batches_are_a_seeded_permutation_in_near_equal_sizes(n, batch_size):
    batches = batch_indices(n, batch_size, seed=1, epoch=2)
    assert len(batches) == math.ceil(n / batch_size)
    sizes = [len(b) for b in batches]
    assert max(sizes) - min(sizes) <= 1 and max(sizes) <= batch_size
    assert sorted(torch.cat(batches).tolist()) == list(range(n))
    again = batch_indices(n, batch_size, seed=1, epoch=2)
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))
    if n > 2:
        other = torch.cat(batch_indices(n, batch_size, seed=1, epoch=3))
        assert not torch.equal(torch.cat(batches), other)


def test_the_checkpoint_has_no_zip_crcs_and_its_digest_covers_it(tmp_path):
    """``checkpoint.pt`` skips torch.save's per-record CRC-32 (the SHA-256 in ``digests.json`` covers every
    byte), still loads and resumes, and a changed byte is still refused by the digest."""
    import zipfile

    from sparsecoder.train.integrity import DigestMismatch, verify_digest

    out = tmp_path / "run"
    train(config(epochs=2), out, data=DATA, progress=False)
    with zipfile.ZipFile(out / "checkpoint.pt") as archive:
        tensors = [info for info in archive.infolist() if "/data/" in info.filename]
        assert tensors and all(info.CRC == 0 for info in tensors)
    train(config(epochs=3), out, resume=True, data=DATA, progress=False)
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 3
    raw = bytearray((out / "checkpoint.pt").read_bytes())
    raw[-100] ^= 0x01
    (out / "checkpoint.pt").write_bytes(bytes(raw))
    with pytest.raises(DigestMismatch):
        verify_digest(out / "checkpoint.pt")


def test_resume_refuses_other_in_memory_data_but_not_an_old_checkpoint_without_a_fingerprint(tmp_path):
    import io

    from sparsecoder.train.integrity import data_fingerprint, write_digested

    out = tmp_path / "run"
    train(config(epochs=1), out, data=DATA, progress=False)
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["data_fingerprint"] == data_fingerprint(DATA)
    assert state["data_fingerprint"]["train"]["rows"] == len(DATA.train)
    other = synthetic_splits(seed=1)
    with pytest.raises(ValueError, match=r"data changed since the checkpoint was written at epoch 1 \(train: "
                                         r"240 × 16, SHA-256 .* then, now 240 × 16, SHA-256 .*; val: "):
        train(config(epochs=2), out, resume=True, data=other, progress=False)
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1
    train(config(epochs=2), out, resume=True, data=DATA, progress=False)

    # a checkpoint written before fingerprints existed cannot tell: it resumes (and records one from now on)
    del state["data_fingerprint"]
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_digested(out / "checkpoint.pt", buffer.getvalue())
    train(config(epochs=2), out, resume=True, data=other, progress=False)
    assert load_checkpoint(out / "checkpoint.pt")["data_fingerprint"] == data_fingerprint(other)


@pytest.mark.parametrize("n_train, batch_size, message", [
    (1, 250, r"the training split has 1 row, so every mini-batch has 1 sample whatever batch_size is, but "
             r"the variance guard .* needs mini-batches of at least 2 rows; train on more data \(a larger "),
    (240, 1, r"batch_size=1, but the variance guard .* needs mini-batches of at least 2 rows; set "
             r"batch_size >= 2"),
    (7, 2, r"batch_size=2 splits the 7 training rows into 4 batches, the smallest of 1 row, but the "
           r"variance guard .* set batch_size >= 3"),
])
def test_batches_too_small_for_the_variance_guard_name_the_cause_before_anything_is_written(
        tmp_path, n_train, batch_size, message):
    vdl = {"epochs": 1, "batch_size": batch_size, "n_components": 8, "fista_max_iter": 10, "device": "cpu"}
    data = synthetic_splits(n_train=n_train)
    with pytest.raises(ConfigError, match=message):
        train("vdl-mnist", tmp_path / "new", overrides=vdl, data=data, progress=False)
    assert not (tmp_path / "new").exists()
    # --overwrite of an existing run: refused before the old run's files are removed
    out = tmp_path / "run"
    train(config(epochs=1), out, data=DATA, progress=False)

    def files():
        return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and not p.name.startswith(".")}

    before = files()
    with pytest.raises(ConfigError, match=message):
        train("vdl-mnist", out, overrides=vdl, data=data, progress=False, overwrite=True)
    assert files() == before


@pytest.mark.parametrize("split, role", [("train", "train"), ("val", "validate"),
                                          ("test", "evaluate the trained model")])
def test_an_empty_split_is_refused_before_the_first_epoch(tmp_path, split, role):
    """An empty test split used to train every epoch and only then fail in the final evaluation."""
    sizes = {"n_train": 240, "n_val": 60, "n_test": 60, f"n_{split}": 0}
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=rf"the {split} split is empty; nothing to {role} on"):
        train(config(epochs=1), out, data=synthetic_splits(**sizes), progress=False)
    assert not (out / "checkpoint.pt").exists() and not (out / "history.csv").exists()


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_bad_rows_of_data_given_in_memory_are_refused_before_anything_is_written(tmp_path, split):
    """NaN test rows used to fail after every epoch had trained; NaN training or validation rows, and float64
    values float32 cannot hold, after config.yaml was written, as "batch/x contains NaN or inf"."""
    import dataclasses

    def with_rows(x):
        return dataclasses.replace(DATA, **{split: dataclasses.replace(getattr(DATA, split), x=x)})

    rows = getattr(DATA, split).x
    out = tmp_path / "run"
    nan = rows.clone()
    nan[7, 3] = float("nan")
    cases = [(nan, rf"the {split} split contains NaN or inf in 1 of {len(rows)} rows \(the first: row 7\)"),
             (rows.double() * 1e300, rf"the {split} split hold values up to .*beyond float32's range"),
             (rows[:, :15], rf"the {split} split must be a 2-D tensor \(n, 16\), got \(\d+, 15\)")]
    if split == "train":  # the width every split must have
        cases[-1] = (rows[:, 0], r"the train split must be a 2-D tensor \(n, d\), got \(240,\)")
    for x, message in cases:
        with pytest.raises(ValueError, match=message):
            train(config(epochs=1), out, data=with_rows(x), progress=False)
        assert not out.exists()


def test_resume_on_changed_data_too_small_for_the_batches_names_the_changed_data_first(tmp_path):
    """A VDL run resumed on other data that is also too small for its batches: the cause is the changed
    data (restore it), not the batch size (which no batch_size would fix for the run's own data)."""
    vdl = {"epochs": 1, "batch_size": 50, "n_components": 8, "fista_max_iter": 10, "device": "cpu"}
    out = tmp_path / "run"
    train("vdl-mnist", out, overrides=vdl, data=DATA, progress=False)
    with pytest.raises(ValueError, match=r"cannot resume .*data changed since the checkpoint was written at "
                                         r"epoch 1 \(train: 240 × 16, SHA-256 .* then, now 1 × 16"):
        train("vdl-mnist", out, overrides={**vdl, "epochs": 2}, resume=True, data=synthetic_splits(n_train=1),
              progress=False)
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1


def test_test_rows_whose_codes_overflow_are_refused_not_written_as_null_metrics(tmp_path):
    """Test rows of 3e38 (finite float32) overflow FISTA's codes: psnr_fista, code_l1, energy were
    written as null into metrics.json with success. Now the evaluation stops naming the cause; the
    trained run's files stay. (FISTA now solves such rows rescaled, so the codes are finite but their L1
    norms and energies overflow: the same refusal, by metric.)"""
    import dataclasses

    from sparsecoder.config import load_preset
    from sparsecoder.data.registry import load

    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(0).random((300, 16)).astype(np.float32))
    data = load("arrays", path=str(path), seed=0)
    data = dataclasses.replace(data, test=dataclasses.replace(data.test, x=data.test.x * 3e38))
    _, cfg = load_preset("vdl-mnist", {"epochs": 1, "n_components": 8, "data": "arrays", "device": "cpu",
                                       "data_options": {"path": str(path)}, "batch_size": 50,
                                       "fista_step": "lipschitz"})
    with pytest.raises(ValueError, match=r"cannot evaluate: code_l1, code_l1_fista, energy, energy_fista are "
                                         r"NaN/inf on the test split \(largest \|x\|: 3e\+38\)"):
        train(cfg, tmp_path / "run", data=data, progress=False)
    assert not (tmp_path / "run" / "metrics.json").exists()
    assert (tmp_path / "run" / "model.safetensors").exists() and (tmp_path / "run" / "checkpoint.pt").exists()


def test_a_library_error_is_quoted_by_its_first_sentence():
    # the checkpoint readers and resolve_device each had their own copy of this rule (200 / 120 characters,
    # one also cutting at the first line break); one helper now
    from sparsecoder.util import first_sentence

    torch_zip = RuntimeError("PytorchStreamReader failed reading zip archive: failed finding central\n"
                             "directory. This may be a truncated file. Check it")
    assert first_sentence(torch_zip) == "PytorchStreamReader failed reading zip archive: failed finding " \
                                        "central directory"
    assert first_sentence(RuntimeError("x" * 300), 120) == "x" * 120
    assert first_sentence(AssertionError()) == "AssertionError"  # an empty message still says something


def test_the_train_sweep_and_reproduce_packages_are_reachable_and_callable(tmp_path):
    # `import sparsecoder.train.run as run` was "ImportError: cannot import name 'run' from 'train'" and
    # `sparsecoder.train.trainer` an AttributeError: the function train hid the package (sweep, reproduce
    # too); the packages are now callable as their function
    import importlib
    import inspect

    import sparsecoder

    for package, module in (("train", "run"), ("sweep", "spec"), ("reproduce", "base")):
        imported = importlib.import_module(f"sparsecoder.{package}.{module}")
        exec(f"import sparsecoder.{package}.{module} as aliased", namespace := {})
        assert namespace["aliased"] is imported is getattr(getattr(sparsecoder, package), module)
        function = getattr(getattr(sparsecoder, package), package)
        assert inspect.signature(getattr(sparsecoder, package)) == inspect.signature(function)
    from sparsecoder import train as train_package

    with pytest.raises(ValueError, match="resume must be"):  # the call reaches train's own checks
        train_package(config(epochs=1), tmp_path / "run", data=DATA, resume="no")
    with pytest.raises(ValueError, match="executor must be 'ray' or 'serial'"):
        sparsecoder.sweep("sdl-mnist", tmp_path / "sw", executor="threads")


def test_the_random_state_of_a_run_does_not_start_cuda_where_it_is_unused(monkeypatch):
    # audit 2026-11-30 (H200): every checkpoint of a CPU run on a machine with a GPU called
    # torch.cuda.get_rng_state_all(), which starts CUDA (a context on the GPU; in a process forked from one
    # that had started it: "CUDA error: initialization error", seen in the forked ranks of test_distributed)
    def starts_cuda():
        raise AssertionError("CUDA started by rng_state()")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", starts_cuda)
    assert rng_state()["cuda"] == []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)  # a run on the GPU keeps its CUDA state
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [torch.zeros(16, dtype=torch.uint8)])
    assert len(rng_state()["cuda"]) == 1


# ----------------------------------------------------------------------------------------------
# validate_every (issue 15): validation of every k-th epoch and the last
# ----------------------------------------------------------------------------------------------
def validated(rows):
    return [r["epoch"] for r in rows if "val_loss" in r]


def test_validate_every_k_validates_epochs_k_2k_and_the_last_and_picks_the_best_among_them(tmp_path):
    # lr doubling every epoch (as in the test above): validating every epoch the best is epoch 2 of 6
    every = train(config(epochs=6, lr=0.05, lr_growth=2.0), tmp_path / "every", data=DATA, progress=False)
    metrics = train(config(epochs=6, lr=0.05, lr_growth=2.0, validate_every=4), tmp_path / "k", data=DATA,
                    progress=False)
    all_rows = read_history_rows(tmp_path / "every/history.csv")
    rows = read_history_rows(tmp_path / "k/history.csv")
    assert validated(rows) == [4, 6]
    text = (tmp_path / "k/history.csv").read_text().splitlines()
    assert text[0] == "epoch,loss,noise_norm,val_loss,val_psnr,lr_model,seconds"  # as validating every epoch
    assert text[1].split(",")[3:5] == ["", ""]
    # skipping a validation changes nothing else: the training logs and the validated epochs' metrics are
    # those of the run validating every epoch
    for row, full in zip(rows, all_rows, strict=True):
        assert row["loss"] == full["loss"] and row["lr_model"] == full["lr_model"]
        if "val_loss" in row:
            assert (row["val_loss"], row["val_psnr"]) == (full["val_loss"], full["val_psnr"])
    assert every["best_epoch"] == 2
    best = min((r for r in rows if "val_loss" in r), key=lambda r: r["val_loss"])
    assert metrics["best_epoch"] == best["epoch"] == 4 and metrics["best_val_loss"] == best["val_loss"]
    _, model, _ = load_run(tmp_path / "k", data=DATA)
    assert validation_metrics(model, DATA.val)["val_loss"] == pytest.approx(best["val_loss"], rel=1e-6)
    assert load_config(tmp_path / "k/config.yaml")[1].validate_every == 4


def test_validate_every_changes_which_epochs_are_validated_not_what_is_trained(tmp_path):
    """A validation that draws from the random generators (a VAE's samples its latents) took those draws
    from training's stream, so validate_every=2 trained other noise than validate_every=1 (a vae-gauss-mnist
    epoch-2 loss of 262.344 against 262.511); the trainer now restores the generators after validating."""
    runs = {}
    for every in (1, 2):
        out = tmp_path / f"every{every}"
        train(config(epochs=4, validate_every=every, validation_draws=True), out, data=DATA, progress=False)
        runs[every] = (read_history_rows(out / "history.csv"), load_checkpoint(out / "checkpoint.pt"))
    (rows_1, state_1), (rows_2, state_2) = runs[1], runs[2]
    assert [r["noise_norm"] for r in rows_1] == [r["noise_norm"] for r in rows_2]
    assert [r["loss"] for r in rows_1] == [r["loss"] for r in rows_2]
    assert [r.get("val_loss") for r in rows_2][::2] == [None, None]  # epochs 1 and 3 were not validated
    assert all(torch.equal(state_1["model"][k], state_2["model"][k]) for k in state_1["model"])


def test_a_run_resumed_continues_the_validate_every_schedule_or_ends_validating_its_last_epoch(tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    train(config(epochs=5, validate_every=2), full, data=DATA, progress=False)
    # 5 batches per epoch: step 18 is batch 3 of epoch 4, so epochs 1-3 are saved, epoch 3 not validated
    with interrupted_at(18), pytest.raises(KeyboardInterrupt):
        train(config(epochs=5, validate_every=2), cut, data=DATA, progress=False)
    state = load_checkpoint(cut / "checkpoint.pt")
    assert (state["epoch"], state["best_epoch"]) == (3, 2)
    assert validated(read_history_rows(cut / "history.csv")) == [2]
    ended = tmp_path / "ended"
    ended.mkdir()
    for path in cut.iterdir():
        (ended / path.name).write_bytes(path.read_bytes())
    with pytest.raises(ConfigError, match="validate_every: run has 2, asked 1.*only device, epochs"):
        train(None, cut, overrides={"validate_every": 1}, resume=True, data=DATA, progress=False)

    train(None, cut, resume=True, data=DATA, progress=False)
    expected = without_seconds(read_history_rows(full / "history.csv"))
    assert without_seconds(read_history_rows(cut / "history.csv")) == expected
    assert validated(expected) == [2, 4, 5]
    assert same_weights(weights(cut / "model.safetensors"), weights(full / "model.safetensors"))

    # ended at its last saved epoch (--resume --set epochs=3): that epoch is validated, as a run's last is
    metrics = train(None, ended, overrides={"epochs": 3}, resume=True, data=DATA, progress=False)
    rows = read_history_rows(ended / "history.csv")
    assert validated(rows) == [2, 3]
    assert [r["loss"] for r in rows] == [r["loss"] for r in expected[:3]]
    best = min((r for r in rows if "val_loss" in r), key=lambda r: r["val_loss"])
    assert metrics["best_epoch"] == best["epoch"] and metrics["epochs"] == 3
    assert load_checkpoint(ended / "checkpoint.pt")["best_epoch"] == best["epoch"]


@pytest.mark.parametrize("value, problem", [
    (0, "must be an integer >= 1"), (-2, "must be an integer >= 1"), (2.5, "expected an integer"),
    (True, "expected an integer"), ("two", "expected an integer")])
def test_a_bad_validate_every_is_refused_before_anything_is_written(tmp_path, value, problem):
    with pytest.raises(ConfigError, match=f"config key 'validate_every': {problem}"):
        train(config(), tmp_path / "run", overrides={"validate_every": value}, data=DATA, progress=False)
    assert not (tmp_path / "run").exists()


def test_a_divergence_before_the_first_validated_epoch_keeps_the_checkpoint_and_says_there_are_no_weights(
        tmp_path):
    out = tmp_path / "run"
    # lr × 1e12 after epoch 1: the first steps of epoch 2 blow the weights up to inf; epoch 1 not validated
    with pytest.raises(TrainingDiverged, match=r"epoch 2: training log 'loss'") as err:
        train(config(lr_growth=1e12, validate_every=3), out, data=DATA, progress=False)
    assert "no best weights (no epoch validated yet: validate_every=3)" in str(err.value)
    assert "`--resume --set epochs=1` ends the run there (validating epoch 1 first" in str(err.value)
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1 and not (out / "model.safetensors").exists()
    with pytest.raises(FileNotFoundError, match="stopped after epoch 1 before validating any epoch") as err:
        evaluate_run(out, data=DATA)
    assert "(validate_every=3 validates epochs 3, 6, … and the last)" in str(err.value)  # not "every 3-th"
    # said before the test split is loaded (here the config's mnist, which would be refused as other data)
    with pytest.raises(FileNotFoundError, match="stopped after epoch 1 before validating any epoch"):
        evaluate_run(out)
    metrics = train(None, out, resume=True, overrides={"epochs": 1}, data=DATA, progress=False)
    assert metrics["best_epoch"] == 1 and validated(read_history_rows(out / "history.csv")) == [1]


def test_a_run_written_before_validate_every_existed_still_resumes_and_loads(tmp_path):
    import io

    from sparsecoder.train.checkpoint import save_weights
    from sparsecoder.train.integrity import config_digest, write_digested

    out = tmp_path / "run"
    train(config(epochs=1), out, data=DATA, progress=False)
    document = yaml.safe_load((out / "config.yaml").read_text())
    del document["config"]["validate_every"]
    (out / "config.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    state = load_checkpoint(out / "checkpoint.pt")
    del state["config"]["validate_every"]
    state["config_digest"] = config_digest(state["config"])
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_digested(out / "checkpoint.pt", buffer.getvalue())
    _, model, _ = load_run(out, data=DATA)
    save_weights(out / "model.safetensors", model, model_name="test_linear_autoencoder", epoch=1,
                 config=state["config"])
    assert load_run(out, data=DATA)[0].validate_every == 1
    assert evaluate_run(out, data=DATA)["best_epoch"] == 1
    assert train(None, out, overrides={"epochs": 2}, resume=True, data=DATA, progress=False)["epochs"] == 2


def test_a_run_ended_at_an_epoch_whose_validation_diverges_keeps_its_best_weights(tmp_path, monkeypatch):
    from sparsecoder.models import _FAMILIES

    out = tmp_path / "run"
    with interrupted_at(13), pytest.raises(KeyboardInterrupt):  # batch 3 of epoch 3: epochs 1-2 saved
        train(config(epochs=4, validate_every=3), out, data=DATA, progress=False)
    monkeypatch.setitem(_FAMILIES["test_linear_autoencoder"], "validate",
                        lambda model, split: {**validation_metrics(model, split), "val_loss": math.nan})
    with pytest.raises(TrainingDiverged, match=r"epoch 2: val_loss = nan.*no best weights \(no epoch "
                                               r"validated yet: validate_every=3\)") as err:
        train(None, out, overrides={"epochs": 2}, resume=True, data=DATA, progress=False)
    assert "(epoch 2, whose validation failed, so the run cannot end there)" in str(err.value)
    state = load_checkpoint(out / "checkpoint.pt")
    assert (state["epoch"], state["best_epoch"]) == (2, 0) and not (out / "metrics.json").exists()
