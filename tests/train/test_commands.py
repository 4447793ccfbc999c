"""The `sparsecoder train / evaluate / presets / encode` commands, run in-process through cli.main."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sparsecoder.cli import main
from sparsecoder.config import list_presets
from sparsecoder.train import train
from tests.train.linear_autoencoder import MODEL_NAME, LinearAutoencoderConfig, synthetic_splits

torch.set_num_threads(1)


def test_presets_lists_every_preset_with_paper_and_description(capsys):
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "PAPER", "DESCRIPTION"]
    presets = list_presets()
    assert len(lines) == 1 + len(presets)
    for line, preset in zip(lines[1:], presets, strict=True):
        assert line.startswith(preset.name + " ") and preset.paper in line
        assert line.endswith(preset.description)


def test_train_with_a_bad_override_fails_before_training(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "sdl-mnist", "--out", str(out), "--set", "epochs=2", "no_such_key=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown config key(s) ['no_such_key']")
    assert "valid keys:" in err and "lam" in err and "epochs" in err
    assert not out.exists()
    assert main(["train", "sdl-mnist", "--out", str(out), "--set", "lam"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main(["train", "no-such-preset", "--out", str(out)]) == 2
    assert "unknown preset 'no-such-preset'" in capsys.readouterr().err


def test_train_refuses_a_preset_file_that_would_be_misread(tmp_path, capsys):
    """Each of these trained (or said something misleading) before: a key outside `config:` was ignored,
    a missing file was "unknown preset" with the list of presets, a repeated key kept its last value."""
    out = tmp_path / "run"
    preset = tmp_path / "mine.yaml"
    preset.write_text("model: sparse_autoencoder\npreset: mine\nepochs: 3\n"
                      "config:\n  epochs: 1\n  limit: 100\n  n_components: 8\n")
    missing = tmp_path / "missing.yaml"
    twice = "--set key 'epochs' is given twice"
    cases = [
        (["train", str(preset)], "unknown top-level key(s) ['epochs']; the top level may only hold model, "),
        (["train", str(missing)], f"preset file {missing} does not exist"),
        (["train", "sdl-mnist", "--set", "epochs=1", "epochs=2"], twice),
        (["train", "sdl-mnist", "--set", "epochs=1", "--set", "epochs=2"], twice),
    ]
    for argv, message in cases:
        assert main([*argv, "--quiet", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and "unexpected" not in err, err
        assert "sdl-patches" not in err and not out.exists()
    preset.write_text("model: sparse_autoencoder\nconfig:\n  epochs: 1\n  epochs: 3\n")
    assert main(["train", str(preset), "--quiet", "--out", str(out)]) == 2
    assert "found the key 'epochs' twice" in capsys.readouterr().err and not out.exists()


def test_train_refuses_a_non_empty_folder(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep me")
    assert main(["train", "sdl-mnist", "--out", str(tmp_path), "--set", "epochs=1"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_evaluate_and_encode_report_missing_runs(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nothing")]) == 2
    assert "no run folder" in capsys.readouterr().err
    np.save(tmp_path / "x.npy", np.zeros((2, 3), dtype=np.float32))
    assert main(["encode", str(tmp_path / "nothing"), str(tmp_path / "x.npy"), "--out",
                 str(tmp_path / "codes.npy")]) == 2
    assert "no run folder" in capsys.readouterr().err


def test_encode_refuses_to_overwrite_and_checks_its_input(tmp_path, capsys):
    data = synthetic_splits()
    run = tmp_path / "run"
    train(LinearAutoencoderConfig(epochs=1, batch_size=60), run, data=data, progress=False)
    existing = tmp_path / "codes.npy"
    existing.write_bytes(b"precious")
    np.save(tmp_path / "x.npy", data.test.x.numpy())
    assert main(["encode", str(run), str(tmp_path / "x.npy"), "--out", str(existing)]) == 2
    assert "exists" in capsys.readouterr().err and existing.read_bytes() == b"precious"
    assert main(["encode", str(run), str(tmp_path / "x.npy"), "--out", str(tmp_path / "codes.txt")]) == 2
    assert ".npy" in capsys.readouterr().err
    (tmp_path / "bad.npy").write_text("not numpy")
    assert main(["encode", str(run), str(tmp_path / "bad.npy"), "--out", str(tmp_path / "c.npy")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_help_says_encode_takes_model_space_rows(capsys):
    with pytest.raises(SystemExit):
        main(["encode", "--help"])
    assert "in MODEL SPACE" in " ".join(capsys.readouterr().out.split())


def train_sdl_on_arrays(run, path, *, batch_size: int, n_components: int) -> int:
    """Exit status of one quick `sparsecoder train sdl-mnist` epoch on the array file ``path`` (features
    standardised) into ``run``."""
    return main(["train", "sdl-mnist", "--quiet", "--out", str(run), "--set", "data=arrays",
                 f"data_dir={path}", "epochs=1", f"batch_size={batch_size}", f"n_components={n_components}",
                 "fista_step=lipschitz", "num_threads=1", "device=cpu",
                 "data_options={standardize: feature}"])


def test_a_run_on_rows_without_an_image_shape_says_why_it_has_no_atom_pictures(tmp_path, capsys):
    # audit 2026-11-29: atoms.png and reconstructions.png were left out without a word for 2-D rows
    np.save(tmp_path / "rows.npy", np.random.default_rng(0).normal(size=(60, 16)).astype(np.float32))
    common = ["train", "sdl-mnist", "--set", "data=arrays", f"data_dir={tmp_path / 'rows.npy'}", "epochs=1",
              "batch_size=20", "n_components=8", "fista_step=lipschitz", "num_threads=1", "device=cpu"]
    capsys.readouterr()
    assert main([*common[:2], "--out", str(tmp_path / "flat"), *common[2:]]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "no pictures of atoms or reconstructions" in err and "data_options={image_shape: [H, W]}" in err
    assert not (tmp_path / "flat" / "atoms.png").exists()
    assert main([*common[:2], "--out", str(tmp_path / "img"), *common[2:],
                 "data_options={image_shape: [4, 4]}"]) == 0
    assert "no pictures" not in capsys.readouterr().err and (tmp_path / "img" / "atoms.png").is_file()


def test_arrays_of_per_sample_images_train_and_encode_alike(tmp_path, capsys):
    # audit 2026-11-29: training on an (n, 4, 5) .npy flattened it to 20 features (image_shape null), but
    # `encode` of the very same file was refused ("expected a 2-D array"). Both now read the file with one
    # function (sparsecoder.data.arrays.read_rows_file), and the run records image_shape [4, 5].
    import json

    from sparsecoder.train.run import decode_run, encode_run

    x = np.random.default_rng(0).normal(size=(60, 4, 5)).astype(np.float32)
    np.save(tmp_path / "acts.npy", x)
    run = tmp_path / "run"
    assert train_sdl_on_arrays(run, tmp_path / "acts.npy", batch_size=20, n_components=8) == 0, \
        capsys.readouterr().err
    stored = json.loads((run / "preprocessing.json").read_text())
    assert stored["n_features"] == 20 and stored["image_shape"] == [4, 5]
    capsys.readouterr()
    for space in ("raw", "model"):
        out = tmp_path / f"codes-{space}.npy"
        code = main(["encode", str(run), str(tmp_path / "acts.npy"), "--input", space, "--out", str(out)])
        assert code == 0, capsys.readouterr().err
        flat = encode_run(run, x.reshape(60, 20), input_space=space)
        np.testing.assert_array_equal(np.load(out), flat)
        np.testing.assert_array_equal(encode_run(run, x, input_space=space), flat)  # the Python API alike
    codes = np.load(tmp_path / "codes-raw.npy")
    np.save(tmp_path / "codes3d.npy", codes.reshape(60, 2, 4))  # decode flattens per sample the same way
    assert main(["decode", str(run), str(tmp_path / "codes3d.npy"), "--out", str(tmp_path / "r.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "r.npy"), decode_run(run, codes))
    np.save(tmp_path / "one.npy", x[:1])  # one sample is enough to encode (the loader needs 3 to split)
    assert main(["encode", str(run), str(tmp_path / "one.npy"), "--out", str(tmp_path / "c1.npy")]) == 0
    np.save(tmp_path / "wide.npy", np.zeros((2, 4, 6), np.float32))
    assert main(["encode", str(run), str(tmp_path / "wide.npy"), "--out", str(tmp_path / "c2.npy")]) == 2
    assert "are samples of shape (4, 6), but the run was trained on images of shape (4, 5)" in \
        capsys.readouterr().err
    # as many values per sample but transposed images: other pixels, silently wrong codes before
    np.save(tmp_path / "transposed.npy", x.transpose(0, 2, 1).copy())
    for space in ("raw", "model"):
        assert main(["encode", str(run), str(tmp_path / "transposed.npy"), "--input", space, "--out",
                     str(tmp_path / "c3.npy")]) == 2
        assert ("inputs are samples of shape (5, 4), but the run was trained on images of shape (4, 5); give "
                "them as (n, 4, 5) or as rows (n, 20)") in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"samples of shape \(5, 4\)"):
        encode_run(run, x.transpose(0, 2, 1))
    # singleton axes aside (a channel axis, (n, 1, 4, 5)), the same images: accepted, the same codes
    np.testing.assert_array_equal(encode_run(run, x[:, None]), encode_run(run, x))


def test_constant_data_reconstructed_exactly_gives_a_number_not_null(tmp_path, capsys):
    # audit: constant arrays (standardize: feature; σ replaced by 1) reconstructed exactly wrote psnr: null
    # and psnr_fista: null (+inf, which JSON cannot hold); each sample's PSNR is now capped at PSNR_MAX_DB
    import json

    from sparsecoder.eval.metrics import PSNR_MAX_DB

    np.save(tmp_path / "flat.npy", np.full((40, 6), 2.5, np.float32))
    run = tmp_path / "run"
    assert train_sdl_on_arrays(run, tmp_path / "flat.npy", batch_size=10, n_components=4) == 0, \
        capsys.readouterr().err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["psnr"] == pytest.approx(PSNR_MAX_DB)
    assert metrics["psnr_fista"] == pytest.approx(PSNR_MAX_DB)


def _linear_run_and_codes(tmp_path):
    """A 1-epoch linear run on the synthetic splits, two zero rows and their codes."""
    from sparsecoder.train import encode_run

    run = tmp_path / "run"
    train(LinearAutoencoderConfig(epochs=1, batch_size=60), run, data=synthetic_splits(), progress=False)
    x = np.zeros((2, 16), np.float32)
    return run, x, encode_run(run, x)


def test_a_run_whose_config_yaml_was_edited_is_refused_as_evaluate_refuses_it(tmp_path, capsys):
    # audit 2026-11-29: lista_iterations 3 -> 10 in config.yaml still loaded the weights and `encode`
    # silently gave other codes (0.05 apart on MNIST); evaluate already refused the edit
    from sparsecoder.train import decode_run, encode_run, load_run

    run, x, codes = _linear_run_and_codes(tmp_path)
    config = run / "config.yaml"
    text = config.read_text()
    assert "epochs: 1" in text and "n_components: 4" in text
    config.write_text(text.replace("epochs: 1", "epochs: 3"))  # as for evaluate: epochs may change
    np.testing.assert_array_equal(encode_run(run, x), codes)
    config.write_text(text.replace("n_components: 4", "n_components: 5"))
    for call in (lambda: load_run(run), lambda: encode_run(run, x), lambda: decode_run(run, codes)):
        with pytest.raises(ValueError, match=r"cannot use .*config.yaml was edited .*n_components: trained "
                                             r"with 4, config.yaml now says 5"):
            call()


def test_using_a_run_reads_its_weights_alone_and_still_checks_its_config_yaml(tmp_path):
    # audit 2026-11-29: load_run (encode, decode) read and hashed the whole checkpoint.pt (model and Adam
    # moments; 12.6 MB for vdl-nl-mnist, 195 -> 80 ms per load) only to compare config.yaml with its config;
    # the weights now carry the config, so checkpoint.pt is not read: damaged, it does not stop an encode,
    # and deleted, an edited config.yaml is still refused (it used to pass unchecked)
    from sparsecoder.train import decode_run, encode_run, load_run
    from sparsecoder.train.checkpoint import save_weights

    run, x, codes = _linear_run_and_codes(tmp_path)
    checkpoint = run / "checkpoint.pt"
    saved = checkpoint.read_bytes()
    checkpoint.write_bytes(saved[:100])
    np.testing.assert_array_equal(encode_run(run, x), codes)
    checkpoint.unlink()
    config = run / "config.yaml"
    text = config.read_text()
    config.write_text(text.replace("n_components: 4", "n_components: 5"))
    for call in (lambda: encode_run(run, x), lambda: decode_run(run, codes)):
        with pytest.raises(ValueError, match=r"cannot use .*config.yaml was edited after its weights "
                                             r"were written \(n_components: trained with 4, config.yaml now "
                                             r"says 5"):
            call()
    # weights written without the config (an older sparsecoder): checked against checkpoint.pt as before
    config.write_text(text)
    checkpoint.write_bytes(saved)
    _, model, _ = load_run(run)
    save_weights(run / "model.safetensors", model, model_name=MODEL_NAME, epoch=1)
    np.testing.assert_array_equal(encode_run(run, x), codes)
    config.write_text(text.replace("n_components: 4", "n_components: 5"))
    with pytest.raises(ValueError, match=r"config.yaml was edited after the checkpoint was written"):
        encode_run(run, x)


def test_a_config_yaml_of_another_model_family_is_named_as_such(tmp_path):
    # a VAE's config.yaml put into a run of another family was refused as a list of every differing key
    from sparsecoder.config import save_config
    from sparsecoder.models.vae import VAEConfig
    from sparsecoder.train import encode_run, evaluate_run

    run = tmp_path / "run"
    train(LinearAutoencoderConfig(epochs=1, batch_size=60), run, data=synthetic_splits(), progress=False)
    save_config(run / "config.yaml", "vae", VAEConfig(n_latents=4))
    message = (r"config.yaml is for a 'vae' model, but its checkpoint and weights are of a "
               r"'test_linear_autoencoder' model; put the run's own config.yaml back$")
    for call in (lambda: encode_run(run, np.zeros((2, 16), np.float32)), lambda: evaluate_run(run),
                 lambda: train(None, run, resume=True, progress=False)):
        with pytest.raises(ValueError, match=message):
            call()


def test_a_run_moved_to_a_machine_without_its_device_says_where_to_change_it(tmp_path, capsys):
    # audit 2026-11-29: "config key 'device': 'cuda' needs CUDA (not available); use auto or cpu" did not
    # say which file holds that key (the run's config.yaml, where device may be edited)
    run = tmp_path / "run"
    train(LinearAutoencoderConfig(epochs=1, batch_size=60), run, data=synthetic_splits(), progress=False)
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("device: auto", "device: cuda:99"))
    np.save(tmp_path / "x.npy", np.zeros((2, 16), np.float32))
    assert main(["encode", str(run), str(tmp_path / "x.npy"), "--out", str(tmp_path / "c.npy")]) == 2
    err = capsys.readouterr().err
    assert f"{config}: config key 'device': 'cuda:99'" in err and "--device cpu" in err


def test_a_run_of_a_device_this_machine_lacks_is_used_with_device_cpu(tmp_path, capsys):
    # audit 2026-11-29: a run trained on a GPU could be used on a laptop only by editing its config.yaml;
    # load_run, encode_run, decode_run, evaluate_run and the encode/decode/evaluate commands take a device
    from sparsecoder.train import decode_run, encode_run, evaluate_run, load_run

    run = tmp_path / "run"
    train(LinearAutoencoderConfig(epochs=1, batch_size=60), run, data=synthetic_splits(), progress=False)
    x = np.random.default_rng(0).normal(size=(3, 16)).astype(np.float32)
    codes = encode_run(run, x)
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("device: auto", "device: cuda:99"))
    with pytest.raises(ValueError, match="cuda:99"):
        load_run(run)
    _, model, _ = load_run(run, device="cpu")
    assert next(model.parameters()).device.type == "cpu"
    # exactly the codes, unless the run was trained and first encoded on a GPU (device auto, a GPU present):
    # float32 rounding differs from the CPU's there
    if torch.cuda.is_available():
        def same_codes(actual, expected):
            np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
    else:
        same_codes = np.testing.assert_array_equal
    same_codes(encode_run(run, x, device="cpu"), codes)
    assert decode_run(run, codes, device="cpu").shape == (3, 16)
    with pytest.raises(ValueError, match=r"^device: 'cuda:5' needs CUDA"):
        encode_run(run, x, device="cuda:5")
    np.save(tmp_path / "x.npy", x)
    assert main(["encode", str(run), str(tmp_path / "x.npy"), "--out", str(tmp_path / "c.npy"),
                 "--device", "cpu"]) == 0
    same_codes(np.load(tmp_path / "c.npy"), codes)
    assert evaluate_run(run, data=synthetic_splits(), device="cpu")["epochs"] == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_run_trained_on_cuda_is_evaluated_encoded_and_decoded_on_either_device(tmp_path):
    # audit 2026-11-30 (H200): encode_run handed a family's encode rows on the CPU with its model on the GPU
    # (decode_run moved them): a device mismatch for a family written like tests/train/linear_autoencoder.py
    from sparsecoder.train import decode_run, encode_run, evaluate_run

    run = tmp_path / "run"
    train(LinearAutoencoderConfig(epochs=1, batch_size=60, device="cuda"), run, data=synthetic_splits(),
          progress=False)
    x = np.random.default_rng(0).normal(size=(3, 16)).astype(np.float32)
    codes = encode_run(run, x, device="cuda")
    np.testing.assert_allclose(encode_run(run, x, device="cpu"), codes, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(decode_run(run, codes, device="cuda"), decode_run(run, codes, device="cpu"),
                               rtol=1e-4, atol=1e-5)
    assert evaluate_run(run, data=synthetic_splits(), device="cuda")["epochs"] == 1


@pytest.mark.parametrize("name", ["SIGTERM", pytest.param("SIGHUP", marks=pytest.mark.skipif(
    not hasattr(__import__("signal"), "SIGHUP"), reason="no SIGHUP on this platform"))])
def test_sigterm_mid_epoch_stops_like_ctrl_c_and_says_how_to_resume(tmp_path, capsys, name):
    # audit 2026-11-29: SIGTERM (kill, timeout, a scheduler) ended `train` on the spot: no message, status
    # -15, the temp file of a write in progress left behind; and the resume hint did not quote a folder
    # name with a space. SIGHUP (the terminal closed) did the same (status -1); it stops as SIGTERM does
    import shlex
    import signal

    signum = getattr(signal, name)

    from sparsecoder.config import save_config
    from sparsecoder.train.integrity import run_folder_lock
    from tests.train.linear_autoencoder import interrupted_at

    preset = tmp_path / "tiny.yaml"
    save_config(preset, MODEL_NAME, LinearAutoencoderConfig(
        epochs=2, batch_size=50, num_threads=1, device="cpu", data="synthetic",
        data_options={"dim": 16, "n_components": 8, "n_train": 240, "n_val": 60, "n_test": 60}))
    out = tmp_path / "my run"
    # a library an earlier test used may have left its own SIGTERM handler in this process (Ray's driver
    # does), which the command leaves alone, as it should: the default is what a `sparsecoder` process has
    earlier = signal.signal(signum, signal.SIG_DFL)
    before = signal.getsignal(signum)
    try:
        with interrupted_at(7, signum):  # batch 2 of epoch 2: epoch 1 is saved
            assert main(["train", str(preset), "--out", str(out), "--quiet"]) == 128 + signum  # 143, 129
    finally:
        after = signal.signal(signum, earlier)
    err = capsys.readouterr().err
    resume = shlex.join(["sparsecoder", "train", str(preset), "--out", str(out), "--resume"])
    assert err.startswith(f"stopped by {name}; the last completed epoch is saved in") and resume in err
    assert after is before  # the handler is the command's only
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    from sparsecoder.train.checkpoint import load_checkpoint

    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1
    with run_folder_lock(out, "test"):  # released: a resume may start at once
        pass


@pytest.mark.skipif(not hasattr(__import__("os"), "openpty"), reason="no terminals on this platform")
def test_sighup_from_a_closed_terminal_stops_without_writing_there(tmp_path):
    # a real closed terminal (`python hup.py` in the audit: a train on a pty, the pty closed, SIGHUP): its
    # stop ended with status 1, as the lines saying what the checkpoint holds failed with EIO there
    import os

    from sparsecoder.cli import _leave_closed_terminal

    alive, kept = os.openpty()
    closed_master, closed = os.openpty()
    os.close(closed_master)  # the terminal window closed
    with open(tmp_path / "log", "w") as log:
        with pytest.raises(OSError):
            os.write(closed, b"stopped by SIGHUP")
        _leave_closed_terminal((alive, kept, closed, log.fileno()))
        assert os.write(closed, b"stopped by SIGHUP") == 17  # to the null device now
        os.write(kept, b"still here")
        assert os.read(alive, 100) == b"still here"
        os.write(log.fileno(), b"in the log")
    assert (tmp_path / "log").read_bytes() == b"in the log"
    for fd in (alive, kept, closed):
        os.close(fd)


def test_a_sigterm_the_caller_ignores_stays_ignored():
    import os
    import signal

    from sparsecoder.cli import stop_signal_as_interrupt

    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)  # e.g. a launcher that handles it itself
    try:
        with stop_signal_as_interrupt():
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGTERM)  # nothing happens
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_no_rows_are_refused_in_memory_as_in_a_file(tmp_path, capsys):
    # audit 2026-11-29: `encode` refused an empty .npy ("n >= 1", as the README says of empty arrays) but
    # encode_run/decode_run took the same (0, d) array given in memory
    from sparsecoder.train import decode_run, encode_run

    run = tmp_path / "run"
    train(LinearAutoencoderConfig(epochs=1, batch_size=60), run, data=synthetic_splits(), progress=False)
    np.save(tmp_path / "none.npy", np.zeros((0, 16), np.float32))
    assert main(["encode", str(run), str(tmp_path / "none.npy"), "--out", str(tmp_path / "c.npy")]) == 2
    assert "with n >= 1, got shape (0, 16)" in capsys.readouterr().err
    for call, width in ((encode_run, 16), (decode_run, 4)):
        with pytest.raises(ValueError, match=rf"with n >= 1, got shape \(0, {width}\)"):
            call(run, np.zeros((0, width), np.float32))
        with pytest.raises(ValueError, match=rf"with n >= 1, got shape \(0, {width}\)"):
            call(run, torch.zeros(0, width))


def test_a_stopped_runs_message_gives_the_resume_command_or_the_way_to_start_over(tmp_path):
    """`train` and the demo say the same about a stopped run: before the first epoch nothing to resume
    (start over with --overwrite once the folder holds a run), after it the quoted `--resume` command; the
    demo adds its own way to start over."""
    from sparsecoder.train.commands import stopped_message

    out = tmp_path / "my run"
    out.mkdir()
    demo = "start the demo again with --overwrite"
    assert stopped_message("interrupted", "vdl-mnist", out) == \
        "interrupted before the first epoch completed; nothing to resume"
    (out / "config.yaml").write_text("model: x\n")
    assert stopped_message("interrupted", "vdl-mnist", out) == \
        "interrupted before the first epoch completed; nothing to resume (train again with --overwrite)"
    assert stopped_message("stopped by SIGTERM", "vdl-mnist", out, demo) == \
        f"stopped by SIGTERM before the first epoch completed; {demo}"
    (out / "checkpoint.pt").write_bytes(b"")
    resume = (f"interrupted; the last completed epoch is saved in {out / 'checkpoint.pt'}. Continue with: "
              f"sparsecoder train vdl-mnist --out '{out}' --resume")
    assert stopped_message("interrupted", "vdl-mnist", out) == resume
    assert stopped_message("interrupted", "vdl-mnist", out, demo) == f"{resume}, or {demo}"
