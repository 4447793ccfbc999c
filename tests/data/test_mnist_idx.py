"""MNIST: IDX reader (gz, raw), full-set splits, embedded subset, normalise → inverse round trip, errors."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from sparsecoder.data import load
from sparsecoder.data.idx import read_idx
from sparsecoder.data.mnist import embedded_mnist_path
from tests.data.helpers import idx_bytes, write_mnist_dir


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_gz_and_raw(tmp_path, gz):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = idx_bytes(array)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    path.write_bytes(gzip.compress(raw) if gz else raw)
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, array)


def test_wrong_magic_number(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x12\x34\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="magic number"):
        read_idx(path)


def test_truncated_idx(tmp_path):
    raw = idx_bytes(np.zeros((5, 28, 28), np.uint8))
    path = tmp_path / "short"
    path.write_bytes(raw[:-10])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(path)


def test_corrupt_gz(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((5, 4), np.uint8)))[:-12])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        read_idx(path)


def test_idx_compression_is_told_by_content_and_bad_headers_are_named(tmp_path):
    # before: a raw IDX file named .gz was "corrupt or truncated" and a gzip one without the suffix "wrong
    # magic number 1f8b…"; a wrong data type code and an empty file were "wrong magic number", and a gzip
    # bomb behind a small header was decompressed whole before its size was compared
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = idx_bytes(array)
    (tmp_path / "raw.gz").write_bytes(raw)
    (tmp_path / "packed").write_bytes(gzip.compress(raw))
    for name in ("raw.gz", "packed"):
        np.testing.assert_array_equal(read_idx(tmp_path / name), array)
    (tmp_path / "code").write_bytes(b"\0\0\x07" + raw[3:])
    with pytest.raises(ValueError, match=r"code: unknown IDX data type code 0x07 .*known: 0x08"):
        read_idx(tmp_path / "code")
    for name, content in (("empty", b""), ("empty.gz", gzip.compress(b""))):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=rf"{name}: the IDX file is empty \(0 bytes"):
            read_idx(tmp_path / name)
    (tmp_path / "bomb.gz").write_bytes(gzip.compress(raw + bytes(20 * 2**20)))
    with pytest.raises(ValueError, match=r"says shape \(2, 3, 4\) \(24 bytes\) but the file holds more"):
        read_idx(tmp_path / "bomb.gz")


@pytest.mark.parametrize("gz", [True, False])
def test_full_mnist_from_idx_dir(tmp_path, gz):
    written = write_mnist_dir(tmp_path, n_train=120, n_test=20, gz=gz)
    data = load("mnist", seed=3, data_dir=str(tmp_path))
    # 55k/5k of 60k → 110/10 of 120; test = the official test file
    assert (len(data.train), len(data.val), len(data.test)) == (110, 10, 20)
    assert data.train.x.dtype == torch.float32 and data.train.x.shape == (110, 784)
    assert data.train.labels.dtype == torch.int64 and data.image_shape == (28, 28) and data.n_classes == 10
    train_images, train_labels = written["train"]
    # every train/val row maps back (to_pixels) to exactly the written image with its label, disjointly
    seen = []
    for split in (data.train, data.val):
        pixels = split.to_pixels(split.x).numpy() * 255
        identity = np.rint(pixels[:, 0]).astype(int) + 256 * np.rint(pixels[:, 1]).astype(int)
        np.testing.assert_allclose(pixels, train_images[identity].reshape(len(split), -1), atol=1e-3)
        np.testing.assert_array_equal(split.labels.numpy(), train_labels[identity])
        # model space is (x/255 − 0.1307)/0.3081 of the written bytes
        expected = (train_images[identity].reshape(len(split), -1) / 255.0 - 0.1307) / 0.3081
        np.testing.assert_allclose(split.x.numpy(), expected, atol=1e-5)
        seen += identity.tolist()
    assert sorted(seen) == list(range(120))
    test_pixels = data.test.to_pixels(data.test.x).numpy() * 255
    np.testing.assert_allclose(test_pixels, written["t10k"][0].reshape(20, -1), atol=1e-3)


def test_full_mnist_seeded(tmp_path):
    write_mnist_dir(tmp_path)
    a, b = load("mnist", seed=1, data_dir=str(tmp_path)), load("mnist", seed=1, data_dir=str(tmp_path))
    c = load("mnist", seed=2, data_dir=str(tmp_path))
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.val.labels, b.val.labels)
    assert not torch.equal(a.train.x, c.train.x)
    limited = load("mnist", seed=1, limit=7, data_dir=str(tmp_path))
    assert len(limited.train) == 7 and torch.equal(limited.train.x, a.train.x[:7])


@pytest.mark.parametrize("files", ["embedded", "idx"])
def test_split_seed_fixes_the_split_whatever_the_run_seed(tmp_path, files):
    """``split_seed`` alone decides the split: runs with seeds 3 and 4 and ``split_seed=0`` get the
    digits that ``seed=0`` gets (embedded subset and IDX files); without it the seed decides."""
    data_dir = None
    if files == "idx":
        write_mnist_dir(tmp_path)
        data_dir = str(tmp_path)
    reference = load("mnist", seed=0, data_dir=data_dir)
    for seed in (3, 4):
        fixed = load("mnist", seed=seed, split_seed=0, data_dir=data_dir)
        for part in ("train", "val", "test"):
            assert torch.equal(getattr(fixed, part).x, getattr(reference, part).x)
        assert not torch.equal(load("mnist", seed=seed, data_dir=data_dir).train.x, reference.train.x)
    for bad in (-1, 1.5, True, "zero"):
        with pytest.raises(ValueError, match="split_seed must be an integer >= 0"):
            load("mnist", split_seed=bad, data_dir=data_dir)
    # numbers written as text (YAML 1.1 reads 0e0 as '0e0') or integral floats are the integer
    for same in ("0", "0e0", 0.0):
        assert torch.equal(load("mnist", seed=3, split_seed=same, data_dir=data_dir).val.x, reference.val.x)


def test_embedded_subset_splits_and_inverse():
    data = load("mnist", seed=0)
    sizes = (len(data.train), len(data.val), len(data.test))
    assert sum(sizes) == 5000 and sizes == (5000 - 357 - 714, 357, 714)  # 55:5:10
    table = np.loadtxt(embedded_mnist_path(), delimiter=",")
    rows = {tuple(r) for r in table[:, :784].astype(np.uint8).tolist()}
    pixels = np.rint(data.test.to_pixels(data.test.x).numpy() * 255).astype(np.uint8)
    assert all(tuple(p) in rows for p in pixels.tolist())
    unit = load("mnist", seed=0, normalize="unit")
    np.testing.assert_allclose(unit.test.x.numpy(), data.test.to_pixels(data.test.x).numpy(), atol=1e-6)
    assert torch.equal(unit.test.labels, data.test.labels)


@pytest.mark.parametrize("gz", [False, True])
def test_a_little_endian_idx_header_is_named_with_the_shape_it_means(tmp_path, gz):
    # struct.pack('<i') sizes (x86 tofile): the header read big-endian is a shape of 1e25 bytes, refused
    # as "corrupt" without a word on why; the message now gives the little-endian reading
    images = np.zeros((3, 28, 28), dtype=np.uint8)
    raw = bytes([0, 0, 8, 3]) + b"".join(struct.pack("<i", n) for n in images.shape) + images.tobytes()
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(ValueError, match=r"read little-endian, the sizes would be \(3, 28, 28\)"):
        read_idx(path)
    big_endian = idx_bytes(images)  # a right header: read, and no such note in other errors
    path.write_bytes(big_endian[:-5])
    with pytest.raises(ValueError, match="truncated") as err:
        read_idx(path)
    assert "little-endian" not in str(err.value)


def test_idx_files_named_with_a_dot_before_idx_as_kaggle_names_them(tmp_path):
    # Kaggle's MNIST (and several mirrors): train-images.idx3-ubyte; "missing" by the canonical names before
    written = write_mnist_dir(tmp_path, n_train=120, n_test=20, gz=False)
    for path in list(tmp_path.iterdir()):
        path.rename(path.with_name(path.name.replace("-idx", ".idx")))
    assert sorted(p.name for p in tmp_path.iterdir())[0] == "t10k-images.idx3-ubyte"
    data = load("mnist", seed=3, data_dir=str(tmp_path))
    assert (len(data.train), len(data.val), len(data.test)) == (110, 10, 20)
    np.testing.assert_allclose(data.test.to_pixels(data.test.x).numpy() * 255,
                               written["t10k"][0].reshape(20, -1), atol=1e-3)


def test_missing_directory_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load("mnist", data_dir=str(tmp_path / "nope"))
    write_mnist_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte.*download mnist"):
        load("mnist", data_dir=str(tmp_path))


def test_wrong_magic_in_mnist_dir(tmp_path):
    write_mnist_dir(tmp_path, gz=False)
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(b"\x08\x00" + path.read_bytes()[2:])
    with pytest.raises(ValueError, match="magic number"):
        load("mnist", data_dir=str(tmp_path))


def _replace_idx(directory, name, array, type_code):
    (directory / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(array, type_code)))


WRAPPED = [  # (file, values written, IDX type, message): a uint8 cast would wrap or truncate each silently
    ("train-images-idx3-ubyte", 300, 0x0B, r"train-images.*pixel values range from 0 to 300 \(int16\)"),
    ("train-images-idx3-ubyte", -1, 0x09, r"train-images.*pixel values range from -1 to .* \(int8\)"),
    ("t10k-images-idx3-ubyte", 0.5, 0x0D,
     r"t10k-images.*1 of the pixel values is not an integer \(e.g. 0.5\)"),
    ("train-images-idx3-ubyte", np.nan, 0x0E, r"train-images.*1 of the pixel values is NaN or inf"),
    ("train-labels-idx1-ubyte", 10, 0x08, r"train-labels.*labels range from 0 to 10 \(uint8\)"),
    ("t10k-labels-idx1-ubyte", -3, 0x09, r"t10k-labels.*labels range from -3 to"),
]


@pytest.mark.parametrize("name, value, type_code, message", WRAPPED,
                         ids=[f"{w[1]}-{w[2]:#x}" for w in WRAPPED])
def test_idx_values_a_uint8_cast_would_wrap_are_refused(tmp_path, name, value, type_code, message):
    written = write_mnist_dir(tmp_path, n_train=24, n_test=6)
    array = written["train" if name.startswith("train") else "t10k"][1 if "labels" in name else 0]
    array = array.astype(np.float64) % 100  # fits every IDX type, int8 too
    array.flat[3] = value
    _replace_idx(tmp_path, name, array, type_code)
    with pytest.raises(ValueError, match=message) as info:
        load("mnist", data_dir=str(tmp_path))
    assert ("0–255" if "images" in name else "digits 0–9") in str(info.value)


def test_idx_of_another_dtype_holding_integers_0_to_255_reads_as_the_uint8_file(tmp_path):
    written = write_mnist_dir(tmp_path / "u8", n_train=24, n_test=6)
    write_mnist_dir(tmp_path / "f4", n_train=24, n_test=6)
    _replace_idx(tmp_path / "f4", "train-images-idx3-ubyte", written["train"][0], 0x0D)
    _replace_idx(tmp_path / "f4", "train-labels-idx1-ubyte", written["train"][1], 0x0B)
    a, b = load("mnist", data_dir=str(tmp_path / "u8")), load("mnist", data_dir=str(tmp_path / "f4"))
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.train.labels, b.train.labels)


def test_idx_files_of_zero_images_and_too_few_for_a_validation_split(tmp_path):
    write_mnist_dir(tmp_path, n_train=24, n_test=6)
    _replace_idx(tmp_path, "t10k-images-idx3-ubyte", np.zeros((0, 28, 28)), 0x08)
    _replace_idx(tmp_path, "t10k-labels-idx1-ubyte", np.zeros(0), 0x08)
    with pytest.raises(ValueError, match="t10k-images.*says 0 images"):
        load("mnist", data_dir=str(tmp_path))
    write_mnist_dir(tmp_path / "six", n_train=6, n_test=6)
    with pytest.raises(ValueError, match="hold 6 images.*needs at least 7"):
        load("mnist", data_dir=str(tmp_path / "six"))
    write_mnist_dir(tmp_path / "seven", n_train=7, n_test=6)
    assert len(load("mnist", data_dir=str(tmp_path / "seven")).val) == 1


def test_idx_files_of_the_wrong_dimensions_or_counts_name_the_file(tmp_path):
    # before: all three were "<folder>: train images (…) and labels (…) do not match", naming neither file
    cases = [("train-images-idx3-ubyte", np.zeros((24, 28, 28, 1)), r"train-images-idx3-ubyte.gz: IDX images "
              r"of shape \(24, 28, 28, 1\) \(4 dimensions\); MNIST image files hold n×28×28"),
             ("train-labels-idx1-ubyte", np.zeros((24, 1)), r"train-labels-idx1-ubyte.gz: IDX labels of "
              r"shape \(24, 1\) \(2 dimensions\)"),
             ("train-labels-idx1-ubyte", np.zeros(23), r"24 train images \(train-images-idx3-ubyte.gz\) "
              r"but 23 labels \(train-labels-idx1-ubyte.gz\); the files belong to different sets")]
    for k, (name, array, message) in enumerate(cases):
        write_mnist_dir(tmp_path / str(k), n_train=24, n_test=6)
        _replace_idx(tmp_path / str(k), name, array, 0x08)
        with pytest.raises(ValueError, match=message):
            load("mnist", data_dir=str(tmp_path / str(k)))


def test_the_embedded_subset_is_parsed_once_and_each_call_gets_its_own_arrays():
    # the gzipped CSV took ~0.9 s to parse on every load (each trial of a serial sweep, each test); it is
    # parsed once per process now, and a caller that edits its arrays must not edit the next caller's
    from sparsecoder.data.mnist import _parse_embedded_mnist, read_embedded_mnist

    first, first_labels = read_embedded_mnist()
    hits = _parse_embedded_mnist.cache_info().hits
    first.fill(7)
    first_labels.fill(3)
    again, again_labels = read_embedded_mnist()
    assert _parse_embedded_mnist.cache_info().hits == hits + 1
    assert again.shape == (5000, 784) and not (again == 7).all()
    assert np.bincount(again_labels).tolist() == [500] * 10
