"""Issue 11, class 5: data that does not fit the model is refused before any training, in one line."""

from __future__ import annotations

import dataclasses
import gzip
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from sparsecoder.cli import main
from sparsecoder.data import load
from sparsecoder.data.idx import read_idx
from sparsecoder.train import encode_run, train
from tests.data.helpers import idx_bytes
from tests.safety_helpers import fresh_run
from tests.train.linear_autoencoder import LinearAutoencoderConfig, synthetic_splits


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_mnist_idx_files_of_10x10_images_fail_before_training(tmp_path, capsys):
    folder = tmp_path / "idx"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 60), ("t10k", 10)):
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(idx_bytes(rng.integers(0, 256, (n, 10, 10)))))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(
            gzip.compress(idx_bytes(rng.integers(0, 10, n))))
    out = tmp_path / "run"
    assert main(["train", "sdl-mnist", "--out", str(out), "--quiet", "--set", f"data_dir={folder}",
                 "epochs=1", "num_threads=1"]) == 2
    err = _one_line_error(capsys)
    assert "10×10" in err and "28×28" in err and str(folder) in err
    assert not out.exists()  # nothing was trained or written


def test_an_image_shape_that_does_not_hold_the_features_is_refused_before_the_first_epoch(tmp_path):
    data = dataclasses.replace(synthetic_splits(), image_shape=(5, 5))  # 25 pixels for 16 features
    with pytest.raises(ValueError, match=r"image shape \(5, 5\) does not hold its 16 features"):
        train(LinearAutoencoderConfig(epochs=1, device="cpu"), tmp_path / "run", data=data, progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kind", ["complex", "zero_features", "one_dimensional", "zero_rows", "object",
                                  "text"])
def test_degenerate_and_complex_arrays_are_refused_naming_the_file(tmp_path, capsys, kind):
    path = tmp_path / "x.npy"
    arrays = {
        "complex": np.ones((10, 4)) * (1 + 2j),
        "zero_features": np.zeros((10, 0)),
        "one_dimensional": np.arange(10.0),
        "zero_rows": np.zeros((0, 4)),
        "object": np.array([[1, "a"], [2, None], [3, 4.0]], dtype=object),
        "text": np.array([["a", "b"]] * 5),
    }
    np.save(path, arrays[kind], allow_pickle=kind == "object")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no silent ComplexWarning cast
        with pytest.raises(ValueError, match=str(path)):
            load("arrays", path=str(path))
    assert main(["data", "show", "arrays", "--data-dir", str(path), "--out", str(tmp_path / "g.png")]) == 2
    assert str(path) in _one_line_error(capsys) and not (tmp_path / "g.png").exists()


def test_encode_refuses_complex_and_empty_inputs(tmp_path_factory, tmp_path, capsys):
    run = fresh_run(tmp_path_factory, tmp_path / "run")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="real numbers"):
            encode_run(run, np.ones((3, 784), dtype=np.complex64))
    for name, rows in (("complex", np.ones((3, 784), dtype=np.complex128)), ("empty", np.zeros((0, 784))),
                       ("flat", np.zeros(784))):
        np.save(tmp_path / f"{name}.npy", rows)
        codes = tmp_path / f"{name}_codes.npy"
        assert main(["encode", str(run), str(tmp_path / f"{name}.npy"), "--out", str(codes)]) == 2
        err = _one_line_error(capsys)
        assert str(tmp_path / f"{name}.npy") in err and not codes.exists()


def _png_claiming(width: int, height: int) -> bytes:
    """A real 4×4 PNG whose IHDR chunk is rewritten to claim width×height (CRC fixed, data unchanged)."""
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((4, 4), np.uint8), mode="L").save(buffer, format="PNG")
    raw = bytearray(buffer.getvalue())
    start = 8 + 8  # signature, then length + b"IHDR"
    assert raw[12:16] == b"IHDR"
    raw[start:start + 8] = struct.pack(">II", width, height)
    raw[start + 13:start + 17] = struct.pack(">I", zlib.crc32(bytes(raw[12:start + 13])))
    return bytes(raw)


@pytest.mark.parametrize("width, height", [(100_000, 100_000), (20_000, 5_000)])
def test_an_image_header_claiming_an_absurd_size_is_refused(tmp_path, capsys, width, height):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray((np.random.default_rng(0).random((80, 80)) * 255).astype(np.uint8)).save(folder / "a.png")
    (folder / "b.png").write_bytes(_png_claiming(width, height))
    with warnings.catch_warnings():  # the file is a valid PNG up to its size: Pillow sees the forged size
        warnings.simplefilter("ignore")
        if width * height <= 2 * Image.MAX_IMAGE_PIXELS:
            with Image.open(folder / "b.png") as probe:
                assert probe.size == (width, height)
        else:
            with pytest.raises(Image.DecompressionBombError):
                Image.open(folder / "b.png")
    assert main(["data", "show", "patches", "--data-dir", str(folder), "--out", str(tmp_path / "g.png")]) == 2
    err = _one_line_error(capsys)
    assert str(folder / "b.png") in err and (f"{width}×{height}" in err or "decompression bomb" in err)


def test_an_idx_header_claiming_an_absurd_shape_is_refused(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    huge = 2**31 - 1
    path.write_bytes(bytes([0, 0, 0x08, 3]) + struct.pack(">iii", huge, huge, huge) + b"\0" * 10)
    with pytest.raises(ValueError, match="header says shape"):
        read_idx(path)


def test_encode_and_decode_check_the_input_file_as_the_arrays_source_does(tmp_path_factory, tmp_path, capsys):
    """The encode/decode reader had its own checks: timedelta64 (NumPy's "integer") was encoded as its
    count of units, a header claiming terabytes was a MemoryError, finite 1e39s became inf."""
    run = fresh_run(tmp_path_factory, tmp_path / "run")
    forged = tmp_path / "forged.npy"
    np.save(forged, np.zeros((3, 784), np.float32))
    raw = forged.read_bytes().replace(b"(3, 784)", b"(9999999999, 784)".ljust(8))
    forged.write_bytes(raw)
    cases = {"timedelta": (np.ones((3, 784), dtype="m8[s]"), "timedelta64"),
             "huge": (np.full((3, 784), 1e39), "exceed float32's range"),
             "forged": (None, "its header says shape")}
    for name, (rows, words) in cases.items():
        path = tmp_path / f"{name}.npy"
        if rows is not None:
            np.save(path, rows)
        for command in ("encode", "decode"):
            out = tmp_path / f"{name}_{command}.npy"
            assert main([command, str(run), str(path), "--out", str(out)]) == 2
            err = _one_line_error(capsys)
            assert str(path) in err and words in err and not out.exists()
