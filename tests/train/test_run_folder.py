"""Self-contained run folders: a run alone (training data deleted or moved) loads, encodes and decodes,
in model space and in the data source's raw units; evaluation reads the test split only; memory-mapped
training data trains exactly like the same data in memory."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from sparsecoder.cli import main
from sparsecoder.data import MemmapRows, load
from sparsecoder.data.preprocessing import NotRowWise
from sparsecoder.train import decode_run, encode_run, evaluate_run, load_run, train
from tests.data.helpers import write_mnist_dir
from tests.train.linear_autoencoder import LinearAutoencoderConfig, synthetic_splits

torch.set_num_threads(1)

TINY_SAE = ["epochs=1", "n_components=16", "fista_max_iter=20", "batch_size=50", "num_threads=1",
            "device=cpu"]
TINY_SAE_8 = [s if s != "n_components=16" else "n_components=8" for s in TINY_SAE]  # a key given once
STANDARD_MNIST = {"name": "standardize", "mean": 0.1307, "std": 0.3081, "raw_divisor": 255.0,
                  "raw_range": [0.0, 255.0]}


def by_hand_mnist(pixels: np.ndarray) -> np.ndarray:
    """SPEC §2.8 written out: (x/255 − 0.1307)/0.3081."""
    return ((pixels.astype(np.float64) / 255.0 - 0.1307) / 0.3081).astype(np.float32)


def test_mnist_idx_run_works_after_its_data_is_deleted(tmp_path, capsys):
    folder = tmp_path / "mnist"
    files = write_mnist_dir(folder, n_train=120, n_test=20)
    run = tmp_path / "run"
    assert main(["train", "sdl-mnist", "--out", str(run), "--quiet", "--set", f"data_dir={folder}",
                 *TINY_SAE]) == 0
    capsys.readouterr()
    stored = json.loads((run / "preprocessing.json").read_text())
    assert stored["n_features"] == 784 and stored["image_shape"] == [28, 28]
    assert stored["preprocessing"] == STANDARD_MNIST
    before = json.loads((run / "metrics.json").read_text())

    # evaluate needs the test files only: delete the training files
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (folder / name).unlink()
    assert evaluate_run(run) == before

    # nothing of the data left: load, encode and decode from the run folder alone
    shutil.rmtree(folder)
    config, model, data = load_run(run)
    assert data.dim == 784 and data.image_shape == (28, 28) and len(data.test) == 0
    pixels = files["t10k"][0].reshape(20, 784)
    np.save(tmp_path / "pixels.npy", pixels)
    assert main(["encode", str(run), str(tmp_path / "pixels.npy"), "--input", "raw",
                 "--out", str(tmp_path / "codes.npy")]) == 0
    codes = np.load(tmp_path / "codes.npy")
    expected = model.encode(torch.from_numpy(by_hand_mnist(pixels))).numpy()
    np.testing.assert_array_equal(codes, expected)
    np.testing.assert_array_equal(encode_run(run, by_hand_mnist(pixels), input_space="model"), expected)

    assert main(["decode", str(run), str(tmp_path / "codes.npy"), "--output", "raw",
                 "--out", str(tmp_path / "back.npy")]) == 0
    assert main(["decode", str(run), str(tmp_path / "codes.npy"), "--out", str(tmp_path / "model.npy")]) == 0
    model_rows = np.load(tmp_path / "model.npy")
    with torch.no_grad():
        reconstruction = model.decoder(torch.from_numpy(codes)).numpy()
    np.testing.assert_allclose(model_rows, reconstruction, rtol=1e-6, atol=1e-6)
    by_hand_pixels = (model_rows.astype(np.float64) * 0.3081 + 0.1307) * 255.0
    np.testing.assert_allclose(np.load(tmp_path / "back.npy"), by_hand_pixels, rtol=1e-12, atol=1e-9)

    capsys.readouterr()
    np.save(tmp_path / "narrow.npy", pixels[:, :100])
    assert main(["encode", str(run), str(tmp_path / "narrow.npy"), "--input", "raw",
                 "--out", str(tmp_path / "c2.npy")]) == 2
    err = capsys.readouterr().err
    assert "100 features per row, expected 784" in err
    np.save(tmp_path / "wide_codes.npy", np.zeros((2, 5), dtype=np.float32))
    assert main(["decode", str(run), str(tmp_path / "wide_codes.npy"), "--out", str(tmp_path / "x.npy")]) == 2
    assert "16 values per row" in capsys.readouterr().err
    with pytest.raises(ValueError, match="'raw'.*'model'"):
        encode_run(run, pixels, input_space="pixels")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluate_run(run)  # the test files are gone too: a clear error, not a traceback


def test_embedded_mnist_run_encodes_raw_pixels_and_decodes_to_pixel_values(tmp_path):
    from sparsecoder.data.mnist import read_embedded_mnist

    run = tmp_path / "run"
    train("sdl-mnist", run, overrides=[*TINY_SAE, "limit=100"], progress=False)
    pixels = read_embedded_mnist()[0][:30]
    _, model, data = load_run(run)
    assert len(data.train) == 0  # sized from preprocessing.json, no data read
    codes = encode_run(run, pixels, input_space="raw")
    np.testing.assert_array_equal(codes, model.encode(torch.from_numpy(by_hand_mnist(pixels))).numpy())
    raw = decode_run(run, codes, output_space="raw")
    model_rows = decode_run(run, codes)
    assert raw.dtype == np.float64 and model_rows.dtype == np.float32
    np.testing.assert_allclose(raw, (model_rows * 0.3081 + 0.1307) * 255.0, rtol=1e-6, atol=1e-4)
    with torch.no_grad():  # decode ∘ encode is the model's own reconstruction D(E(x))
        np.testing.assert_allclose(model_rows, model(torch.from_numpy(by_hand_mnist(pixels))).numpy(),
                                   rtol=1e-5, atol=1e-5)
    # the raw round trip through the stored preprocessing is exact up to float32 rounding of the model row
    np.testing.assert_allclose(data.preprocessing.inverse(by_hand_mnist(pixels)), pixels, atol=1e-4)
    # audit 2026-11-29: raw rows are checked in one pass before the first block (then converted without a
    # second scan); a NaN in rows given in memory is named with its row, as in a file
    bad = pixels.astype(np.float32)
    bad[7, 3] = np.nan
    with pytest.raises(ValueError, match=r"^inputs: 1 NaN/inf value\(s\) in 1 row\(s\) \(first rows \[7\]\)"):
        encode_run(run, bad, input_space="raw")
    bad[7, 3], bad[-1, 0] = 0, 300
    with pytest.raises(ValueError, match="raw rows hold values from 0 to 300, outside the pixel values "):
        encode_run(run, bad, input_space="raw")
    # a copy-on-write memory map edited in memory is encoded as edited: the check's page release used to be
    # able to drop the edits of such a mapping (MADV_DONTNEED), now it only releases read-only ones
    np.save(tmp_path / "pixels.npy", pixels.astype(np.float32))
    edited = np.load(tmp_path / "pixels.npy", mmap_mode="c")
    edited[0] = 255 - edited[0]
    expected = encode_run(run, np.array(edited), input_space="raw")
    np.testing.assert_array_equal(encode_run(run, edited, input_space="raw"), expected)
    assert edited[0, 0] == 255 - pixels[0, 0]


def write_arrays(path, n=300, d=16, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, d)) * np.linspace(0.5, 4.0, d) + np.linspace(-10, 10, d)).astype(np.float32)
    np.save(path, x)
    return x


def test_arrays_run_works_after_the_file_is_moved(tmp_path, capsys):
    path = tmp_path / "acts.npy"
    x = write_arrays(path)
    options = ["data=arrays", f"data_dir={path}", "data_options={standardize: feature, image_shape: [4, 4]}"]
    run = tmp_path / "run"
    assert main(["train", "sdl-mnist", "--out", str(run), "--quiet", "--set", *options, *TINY_SAE_8]) == 0
    capsys.readouterr()
    data = load("arrays", data_dir=str(path), standardize="feature")
    train_rows = x[data.train.x.file_rows].astype(np.float64)
    mean, std = train_rows.mean(axis=0), train_rows.std(axis=0)  # the training split's statistics
    shutil.move(path, tmp_path / "elsewhere.npy")

    _, model, _ = load_run(run)
    rows = x[:40]
    by_hand = ((rows.astype(np.float64) - mean) / std).astype(np.float32)
    codes = encode_run(run, rows, input_space="raw")
    np.testing.assert_allclose(codes, model.encode(torch.from_numpy(by_hand)).numpy(), rtol=1e-5, atol=1e-6)
    raw = decode_run(run, codes, output_space="raw")
    np.testing.assert_allclose(raw, decode_run(run, codes).astype(np.float64) * std + mean, rtol=1e-10)
    # evaluation needs the test rows, which lived in the moved file
    assert main(["evaluate", str(run)]) == 2
    assert "acts.npy does not exist" in capsys.readouterr().err


def test_memory_mapped_training_equals_in_memory_training(tmp_path):
    path = tmp_path / "acts.npy"
    write_arrays(path, n=400, d=16)
    mapped = load("arrays", path=str(path), standardize="global", image_shape=[4, 4])
    in_memory = load("arrays", path=str(path), standardize="global", image_shape=[4, 4], memory_map=False)
    assert isinstance(mapped.train.x, MemmapRows) and isinstance(mapped.train.x.array, np.memmap)
    assert isinstance(in_memory.train.x, torch.Tensor)
    assert torch.equal(mapped.train.x.materialize(), in_memory.train.x)
    assert torch.equal(mapped.test.x, in_memory.test.x)
    batch = torch.tensor([17, 3, 250, 3])
    assert torch.equal(mapped.train.x[batch], in_memory.train.x[batch])  # order and repeats kept
    assert torch.equal(mapped.train.x[5:9], in_memory.train.x[5:9])

    config = LinearAutoencoderConfig(epochs=3, batch_size=64, seed=1, device="cpu")
    a = train(config, tmp_path / "mapped", data=mapped, progress=False)
    b = train(config, tmp_path / "in_memory", data=in_memory, progress=False)
    assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}
    wa = load_run(tmp_path / "mapped")[1].state_dict()
    wb = load_run(tmp_path / "in_memory")[1].state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_old_run_without_preprocessing_explains_how_to_fix_raw_input(tmp_path, capsys):
    folder = tmp_path / "mnist"
    files = write_mnist_dir(folder, n_train=120, n_test=20)
    run = tmp_path / "run"
    train("sdl-mnist", run, overrides=[*TINY_SAE, f"data_dir={folder}"], progress=False)
    (run / "preprocessing.json").unlink()  # as written by an older sparsecoder
    pixels = files["t10k"][0].reshape(20, 784)
    with pytest.raises(ValueError, match="no preprocessing.json.*sparsecoder evaluate.*--input model"):
        encode_run(run, pixels, input_space="raw")
    codes = encode_run(run, by_hand_mnist(pixels))  # model space works as before (the data is read again)
    assert main(["evaluate", str(run)]) == 0  # writes preprocessing.json
    capsys.readouterr()
    np.testing.assert_array_equal(encode_run(run, pixels, input_space="raw"), codes)


def test_in_memory_data_and_non_row_wise_sources_refuse_raw_rows(tmp_path):
    data = synthetic_splits()
    run = tmp_path / "run"
    train(LinearAutoencoderConfig(epochs=1, batch_size=60, device="cpu"), run, data=data, progress=False)
    assert json.loads((run / "preprocessing.json").read_text())["preprocessing"] is None
    rows = data.test.x.numpy()
    with pytest.raises(ValueError, match="in-memory data without a preprocessing.*--input model"):
        encode_run(run, rows, input_space="raw")
    assert encode_run(run, rows).shape == (len(rows), 4)
    with pytest.raises(ValueError, match="trained on 'synthetic-lowrank'.*evaluate_run\\(run, data=...\\)"):
        evaluate_run(run)  # its config names the default source, not the in-memory data
    assert evaluate_run(run, data=data)["mse"] >= 0

    lcn = NotRowWise("patches", "local contrast normalisation needs the surrounding image")
    run2 = tmp_path / "run2"
    train(LinearAutoencoderConfig(epochs=1, batch_size=60, device="cpu"), run2,
          data=dataclasses.replace(synthetic_splits(), preprocessing=lcn), progress=False)
    with pytest.raises(ValueError, match="patches source cannot map bare rows.*surrounding image"):
        encode_run(run2, rows, input_space="raw")
    # raw rows of any width: the reason said first, not "expected 16 features (...: train 0, val 0, test 0)"
    with pytest.raises(ValueError, match="patches source cannot map bare rows.*surrounding image"):
        encode_run(run2, np.zeros((2, 100), np.float32), input_space="raw")
    with pytest.raises(ValueError, match=r"expected 16 \(model rows of the run's data: [^:]*: its rows "
                                         r"not loaded"):
        encode_run(run2, np.zeros((2, 100), np.float32))
    codes = encode_run(run2, rows)
    with pytest.raises(ValueError, match="--output model"):
        decode_run(run2, codes, output_space="raw")
    assert decode_run(run2, codes).shape == rows.shape


def test_overwrite_replaces_preprocessing_json(tmp_path):
    run = tmp_path / "run"
    config = LinearAutoencoderConfig(epochs=1, batch_size=60, device="cpu")
    train(config, run, data=synthetic_splits(), progress=False)
    (run / "preprocessing.json").write_text("{broken")
    with pytest.raises(ValueError, match="preprocessing.json is damaged or was replaced"):
        load_run(run)
    train(config, run, data=synthetic_splits(), overwrite=True, progress=False)
    assert load_run(run)[2].dim == 16


def test_resume_refuses_a_replaced_data_file_and_evaluate_notes_a_changed_test_split(tmp_path, capsys):
    path = tmp_path / "acts.npy"
    write_arrays(path)
    original = path.read_bytes()
    options = ["data=arrays", f"data_dir={path}", "data_options={standardize: feature}"]
    run = tmp_path / "run"
    assert main(["train", "sdl-mnist", "--out", str(run), "--quiet", "--set", *options, *TINY_SAE_8]) == 0
    capsys.readouterr()
    history = (run / "history.csv").read_bytes()

    write_arrays(path, seed=1)  # another data set under the same name
    assert main(["train", "sdl-mnist", "--out", str(run), "--quiet", "--resume", "--set", "epochs=2"]) == 2
    err = capsys.readouterr().err
    assert f"cannot resume {run}: its data changed since the checkpoint was written at epoch 1" in err
    assert "train: 240 × 16, SHA-256" in err and "two data sets" in err and "--overwrite" in err
    assert (run / "history.csv").read_bytes() == history  # nothing was trained or written

    # evaluate measures the test data present now, and says they are not the training-time ones
    assert main(["evaluate", str(run)]) == 0
    captured = capsys.readouterr()
    metrics = json.loads((run / "metrics.json").read_text())
    assert "test split differs from the one at training (test: 30 × 16" in metrics["test_data_changed"]
    assert captured.err.startswith("note: the test split differs")

    path.write_bytes(original)  # the run's own data again: evaluate and resume as usual
    assert "test_data_changed" not in evaluate_run(run)
    assert main(["train", "sdl-mnist", "--out", str(run), "--quiet", "--resume", "--set", "epochs=2"]) == 0
    assert len((run / "history.csv").read_text().splitlines()) == 3


def test_run_folder_functions_are_reachable_from_the_package():
    """The README calls `sparsecoder.evaluate_run(...)` and `encode_run`/`decode_run`: `sparsecoder.train` is
    the function train (it hides the subpackage from attribute access), so they are exported at the top."""
    import sparsecoder

    assert sparsecoder.evaluate_run is evaluate_run
    assert sparsecoder.encode_run is encode_run
    assert sparsecoder.decode_run is decode_run
    assert {"evaluate_run", "encode_run", "decode_run"} <= set(sparsecoder.__all__)
