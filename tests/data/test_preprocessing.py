"""Row-wise preprocessing of the sources (raw rows ↔ model rows), the memory-mapped arrays split and
loading only the test split."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from sparsecoder.data import MemmapRows, load, load_test_split, source_options
from sparsecoder.data.preprocessing import (
    Identity,
    Luminance,
    NotRowWise,
    Standardize,
    preprocessing_from_dict,
)
from tests.data.helpers import write_mnist_dir


@pytest.mark.parametrize("kind", [
    Standardize(0.1307, 0.3081, raw_divisor=255.0),
    Standardize(0.1307, 0.3081, raw_divisor=255.0, raw_range=(0, 255)),
    Standardize([1.0, -2.0, 3.0], [0.5, 2.0, 4.0]),
    Luminance(),
    Identity(),
    NotRowWise("patches", "LCN needs the surrounding image"),
])
def test_every_kind_survives_to_dict_and_json(kind):
    import json

    again = preprocessing_from_dict(json.loads(json.dumps(kind.to_dict())))
    assert again == kind and type(again) is type(kind)


def test_standardize_is_the_formula_and_its_exact_inverse():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(50, 784)).astype(np.uint8)
    mnist = Standardize(0.1307, 0.3081, raw_divisor=255.0)
    model_rows = mnist.forward(pixels)
    assert model_rows.dtype == torch.float32
    by_hand = ((pixels / 255.0 - 0.1307) / 0.3081).astype(np.float32)
    np.testing.assert_array_equal(model_rows.numpy(), by_hand)
    np.testing.assert_allclose(mnist.inverse(model_rows), pixels, atol=2e-5)  # float32 rounding only
    per_feature = Standardize([1.0, -2.0], [0.5, 4.0])
    np.testing.assert_allclose(per_feature.inverse(per_feature.forward([[2.0, 2.0]])), [[2.0, 2.0]])
    np.testing.assert_allclose(per_feature.forward([[2.0, 2.0]]).numpy(), [[2.0, 1.0]])
    with pytest.raises(ValueError, match="3 features but the per-feature mean has 2"):
        per_feature.forward(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="std must be positive"):
        Standardize(0.0, 0.0)
    with pytest.raises(ValueError, match="NaN or inf"):
        mnist.forward([[np.nan] * 784])
    with pytest.raises(ValueError, match="expected 784"):
        mnist.forward(np.zeros((2, 10)), n_features=784)
    # tensors as a notebook holds them (audit 2026-11-29: bfloat16 was "Got unsupported ScalarType BFloat16")
    half = torch.from_numpy(pixels[:3].astype(np.float32)).bfloat16()
    np.testing.assert_array_equal(mnist.forward(half).numpy(), mnist.forward(half.float()).numpy())
    np.testing.assert_array_equal(mnist.inverse(model_rows[:3].bfloat16()),
                                  mnist.inverse(model_rows[:3].bfloat16().float()))


@pytest.mark.parametrize("rows, found", [
    (np.full((2, 784), -1000.0), "from -1000 to -1000"),
    (np.full((2, 784), 255.5), "from 255.5 to 255.5"),
    (np.concatenate([np.zeros((1, 784)), np.full((1, 784), 70000.0)]), "from 0 to 70000"),
])
def test_raw_rows_outside_the_sources_pixel_range_are_refused(rows, found):
    """MNIST raw rows are pixel values 0–255 (and CIFAR's RGB values): -1000 or 70,000 are other units, and
    were mapped to model rows without a word; the source's range is stored with its preprocessing."""
    from sparsecoder.data.mnist import mnist_preprocessing

    for normalize in ("standard", "unit"):
        mnist = mnist_preprocessing(normalize)
        assert mnist.to_dict()["raw_range"] == [0.0, 255.0]
        with pytest.raises(ValueError, match=rf"raw rows hold values {found}, outside the pixel values 0–255 "
                                             r"of the data source; .*--input model"):
            mnist.forward(rows)
        mnist.forward(np.array([[0.0] * 783 + [255.0]]))  # the range itself passes
    with pytest.raises(ValueError, match=r"outside the RGB values 0–255"):
        Luminance().forward(np.full((1, 12), 256.0))
    # without a range (arrays: values as in the file; a run folder written before ranges were stored)
    old = preprocessing_from_dict({"name": "standardize", "mean": 0.1307, "std": 0.3081,
                                   "raw_divisor": 255.0})
    assert old.raw_range is None and torch.isfinite(old.forward(rows)).all()
    with pytest.raises(ValueError, match="raw_range must be two finite numbers low < high"):
        Standardize(0.0, 1.0, raw_range=(1, 0))


def test_luminance_of_rgb_planes_and_its_grey_right_inverse():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, size=(7, 3, 4)).astype(np.uint8)  # 7 patches of 2×2 pixels, planes R, G, B
    rows = rgb.reshape(7, 12)
    luminance = Luminance()
    by_hand = (0.299 * rgb[:, 0].astype(float) + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]) / 255.0
    np.testing.assert_allclose(luminance.forward(rows).numpy(), by_hand, rtol=1e-6)
    grey = luminance.inverse(by_hand)
    assert grey.shape == (7, 12)
    np.testing.assert_allclose(grey[:, :4], grey[:, 4:8])
    np.testing.assert_allclose(luminance.forward(grey).numpy(), by_hand, rtol=1e-6)
    with pytest.raises(ValueError, match="expected 12"):
        luminance.forward(rows[:, :4], n_features=4)


def test_cifar_source_exports_luminance_of_its_raw_rgb_patches(tmp_path):
    rng = np.random.default_rng(2)
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, size=(20, 3072)).astype(np.uint8),
                 b"labels": rng.integers(0, 10, size=20).tolist()}
        (tmp_path / name).write_bytes(pickle.dumps(batch))
    data = load("cifar_patches", data_dir=str(tmp_path), patch_size=32, n_val=10)
    assert isinstance(data.preprocessing, Luminance)
    # with 32×32 patches the raw row is the whole stored row of the test batch
    stored = pickle.loads((tmp_path / "test_batch").read_bytes())[b"data"]
    np.testing.assert_array_equal(data.preprocessing.forward(stored).numpy(), data.test.x.numpy())
    substitute = load("cifar_patches", n_train=50, n_val=10, n_test=10)
    assert isinstance(substitute.preprocessing, Identity)


def test_sources_that_need_the_surrounding_image_refuse_bare_rows():
    data = load("patches", n_train=20, n_val=5, n_test=5, patch_size=8, max_images=2)
    assert isinstance(data.preprocessing, NotRowWise) and not data.preprocessing.row_wise
    with pytest.raises(ValueError, match="local contrast normalisation.*--input model"):
        data.preprocessing.forward(np.zeros((1, 64)))
    with pytest.raises(ValueError, match="--output model"):
        data.preprocessing.inverse(data.test.x)
    assert isinstance(load("synthetic").preprocessing, Identity)
    with pytest.raises(ValueError, match="unknown preprocessing 'fourier'"):
        preprocessing_from_dict({"name": "fourier"})


def test_mnist_from_idx_is_the_preprocessing_of_the_raw_pixels_and_test_split_needs_only_t10k(tmp_path):
    files = write_mnist_dir(tmp_path, n_train=60, n_test=12)
    data = load("mnist", data_dir=str(tmp_path))
    raw_test = files["t10k"][0].reshape(12, 784)
    by_hand = ((raw_test / 255.0 - 0.1307) / 0.3081).astype(np.float32)
    np.testing.assert_array_equal(data.test.x.numpy(), by_hand)
    np.testing.assert_array_equal(data.preprocessing.forward(raw_test).numpy(), by_hand)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (tmp_path / name).unlink()
    test_only = load_test_split("mnist", data_dir=str(tmp_path))
    assert len(test_only.train) == len(test_only.val) == 0 and test_only.dim == 784
    assert torch.equal(test_only.test.x, data.test.x) and torch.equal(test_only.test.labels, data.test.labels)
    with pytest.raises(FileNotFoundError, match="train-images"):
        load("mnist", data_dir=str(tmp_path))
    assert "test_only" not in source_options("mnist")


def test_arrays_memory_map_reads_rows_on_demand(tmp_path):
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(60, 5)) * [1, 2, 3, 4, 5] + 7).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    data = load("arrays", path=str(tmp_path / "x.npy"), standardize="feature", limit=30)
    rows = data.train.x
    assert isinstance(rows, MemmapRows) and rows.shape == (30, 5) and len(data.train) == 30
    assert data.dim == 5 and isinstance(rows.array, np.memmap)
    train = x[rows.file_rows].astype(np.float64)
    mean, std = train.mean(axis=0), train.std(axis=0)
    np.testing.assert_allclose(data.preprocessing.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(data.preprocessing.std, std, rtol=1e-12)
    np.testing.assert_allclose(rows.materialize().numpy(), (train - mean) / std, rtol=1e-5, atol=1e-6)
    assert rows[4].shape == (5,) and torch.equal(rows[4], rows.materialize()[4])
    assert isinstance(rows.to("cpu", torch.float32), MemmapRows)
    with pytest.raises(ValueError, match="float32"):
        rows.to(torch.float64)
    with pytest.raises(ValueError, match="memory_map must be true or false"):
        load("arrays", path=str(tmp_path / "x.npy"), memory_map="yes")
    whole = load_test_split("arrays", path=str(tmp_path / "x.npy"), standardize="feature", limit=30)
    assert len(whole.train) == 0 and torch.equal(whole.test.x, data.test.x)


def test_arrays_memory_map_checks_the_file_like_the_in_memory_reader(tmp_path):
    x = np.ones((10, 3), dtype=np.float32)
    x[6, 2] = np.inf
    np.save(tmp_path / "inf.npy", x)
    with pytest.raises(ValueError, match="1 NaN/inf value.*rows \\[6\\]"):
        load("arrays", path=str(tmp_path / "inf.npy"))
    np.save(tmp_path / "fortran.npy", np.asfortranarray(np.ones((10, 3))))
    with pytest.raises(ValueError, match="Fortran-ordered.*memory_map: false"):
        load("arrays", path=str(tmp_path / "fortran.npy"))
    assert load("arrays", path=str(tmp_path / "fortran.npy"), memory_map=False).train.x.shape == (8, 3)
    np.save(tmp_path / "ok.npy", np.ones((100, 8)))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "ok.npy").read_bytes()[:300])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load("arrays", path=str(tmp_path / "cut.npy"))


def resident_mib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) // 1024


def test_gather_rows_reads_the_asked_rows_without_mapping_the_file(tmp_path):
    from sparsecoder.data.arrays import read_rows_file
    from sparsecoder.data.base import gather_rows

    x = np.random.default_rng(4).normal(size=(65536, 256)).astype(np.float32)  # 64 MiB
    np.save(tmp_path / "x.npy", x)
    mapped, _ = read_rows_file(tmp_path / "x.npy", memory_map=True)
    rows = np.array([65535, 0, 7, 8, 9, 7, 30000])  # any order, a run, a repeat
    np.testing.assert_array_equal(gather_rows(mapped, rows), x[rows])
    np.testing.assert_array_equal(gather_rows(x, rows), x[rows])  # ordinary arrays: plain indexing
    with pytest.raises(IndexError):
        gather_rows(mapped, np.array([65536]))
    if not __import__("os").path.exists("/proc/self/status"):
        return
    scattered = np.random.default_rng(5).choice(65536, 500, replace=False)
    before = resident_mib()
    block = gather_rows(mapped, scattered)
    assert resident_mib() - before < 16  # 0.5 MiB asked; indexing the mapping made ~the file resident
    np.testing.assert_array_equal(block, x[scattered])
