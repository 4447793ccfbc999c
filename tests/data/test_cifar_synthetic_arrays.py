"""CIFAR-10 pickle batches, synthetic sources with ground truth, .npy/.npz arrays."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from sparsecoder.data import MemmapRows, load


def _write_cifar(folder, per_batch=20, seed=0, solid=False):
    """Six CIFAR-10 python batches (dicts with b'data' (n, 3072) uint8, channel-major, and b'labels')."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        if solid:
            colours = rng.integers(0, 256, size=(per_batch, 3, 1), dtype=np.uint8)
            data = np.repeat(colours, 1024, axis=2).reshape(per_batch, 3072)
        else:
            data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch).tolist()
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": name.encode()}, fh)
        written[name] = (data, np.array(labels))
    return written


def test_cifar_luminance_patches_of_solid_colours(tmp_path):
    written = _write_cifar(tmp_path, solid=True)
    data = load("cifar_patches", seed=0, data_dir=str(tmp_path), n_val=10)
    assert (len(data.train), len(data.val), len(data.test)) == (90, 10, 20)
    assert data.train.x.shape == (90, 144) and data.train.x.dtype == torch.float32
    assert data.image_shape == (12, 12) and data.n_classes == 10 and data.train.labels.dtype == torch.int64
    data_, labels = written["test_batch"]
    expected = (0.299 * data_[:, 0] + 0.587 * data_[:, 1024] + 0.114 * data_[:, 2048]) / 255
    np.testing.assert_allclose(data.test.x.numpy(), np.repeat(expected[:, None], 144, axis=1), atol=1e-6)
    np.testing.assert_array_equal(data.test.labels.numpy(), labels)


def test_cifar_patches_are_windows_of_the_luminance_image(tmp_path):
    written = _write_cifar(tmp_path, per_batch=6)
    data = load("cifar_patches", seed=1, data_dir=str(tmp_path), n_val=3, patch_size=10)
    raw = written["test_batch"][0].reshape(-1, 3, 32, 32).astype(np.float64)
    luminance = (0.299 * raw[:, 0] + 0.587 * raw[:, 1] + 0.114 * raw[:, 2]) / 255
    for k, row in enumerate(data.test.x.numpy()):
        windows = np.lib.stride_tricks.sliding_window_view(luminance[k], (10, 10)).reshape(-1, 100)
        assert np.abs(windows - row).max(axis=1).min() < 1e-6
    again = load("cifar_patches", seed=1, data_dir=str(tmp_path), n_val=3, patch_size=10)
    assert torch.equal(again.train.x, data.train.x)
    assert not torch.equal(load("cifar_patches", seed=2, data_dir=str(tmp_path), n_val=3).train.labels,
                           load("cifar_patches", seed=3, data_dir=str(tmp_path), n_val=3).train.labels)


def test_cifar_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load("cifar_patches", data_dir=str(tmp_path / "none"))
    _write_cifar(tmp_path / "c")
    (tmp_path / "c" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        load("cifar_patches", data_dir=str(tmp_path / "c"))
    _write_cifar(tmp_path / "d")
    path = tmp_path / "d" / "test_batch"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ValueError, match="test_batch.*corrupt or truncated"):
        load("cifar_patches", data_dir=str(tmp_path / "d"))
    with pytest.raises(ValueError, match="larger than the 32"):
        load("cifar_patches", data_dir=str(tmp_path / "c"), patch_size=40)
    # before: ignored without a word with data_dir (the splits are the files' images)
    _write_cifar(tmp_path / "c")
    for option in ({"n_train": 10}, {"n_test": 10}):
        with pytest.raises(ValueError, match=rf"{next(iter(option))}=10: n_train and n_test size the "
                                             r"substitute only .* cap the training split with limit"):
            load("cifar_patches", data_dir=str(tmp_path / "c"), n_val=10, **option)
    assert len(load("cifar_patches", data_dir=str(tmp_path / "c"), n_val=10, limit=7).train) == 7



def _rewrite_batch(path, **entries):
    with open(path, "rb") as fh:
        batch = pickle.load(fh)
    batch.update({key.encode(): value for key, value in entries.items()})
    with open(path, "wb") as fh:
        pickle.dump(batch, fh)


CIFAR_BAD = [  # (entries of data_batch_2, message): a uint8 / int64 cast would wrap or truncate each silently
    ({"data": np.full((20, 3072), 300, np.int64)}, r"b'data' pixel values range from 300 to 300 \(int64\)"),
    ({"data": np.full((20, 3072), -1, np.int16)}, r"b'data' pixel values range from -1 to -1 \(int16\)"),
    ({"labels": [0, 1, 10] + [0] * 17}, r"b'labels' range from 0 to 10"),
    ({"labels": [-1] + [0] * 19}, r"b'labels' range from -1 to 0"),
    ({"labels": [0.5] + [0.0] * 19}, r"1 of the b'labels' is not an integer \(e.g. 0.5\)"),
    ({"data": np.zeros((0, 3072), np.uint8), "labels": []}, "the batch holds 0 images"),
]


@pytest.mark.parametrize("entries, message", CIFAR_BAD, ids=range(len(CIFAR_BAD)))
def test_cifar_values_outside_uint8_pixels_and_classes_0_to_9_are_refused(tmp_path, entries, message):
    _write_cifar(tmp_path)
    _rewrite_batch(tmp_path / "data_batch_2", **entries)
    with pytest.raises(ValueError, match="data_batch_2: " + message):
        load("cifar_patches", data_dir=str(tmp_path), n_val=10)


def test_cifar_substitute_without_data_dir_says_so():
    data = load("cifar_patches", seed=0, n_train=100, n_val=20, n_test=20)
    assert data.info["substitute"] is True and "substitute" in data.normalization.lower()
    assert data.train.x.shape == (100, 144) and 0 <= data.train.x.min() and data.train.x.max() <= 1


def test_synthetic_ground_truth():
    data = load("synthetic", seed=0, dim=16, n_components=24, n_active=3, noise=0.0, n_train=200, n_val=20,
                n_test=30)
    D = data.true_dictionary
    assert D.shape == (16, 24) and data.image_shape == (4, 4)
    torch.testing.assert_close(D.norm(dim=0), torch.ones(24))
    for key in ("train", "val", "test"):
        codes = data.info["true_codes"][key]
        split = getattr(data, key)
        assert ((codes > 0).sum(dim=1) == 3).all() and (codes >= 0).all()
        torch.testing.assert_close(split.x, codes @ D.T, atol=1e-5, rtol=0)
    assert (len(data.train), len(data.val), len(data.test)) == (200, 20, 30)
    noisy = load("synthetic", seed=0, dim=16, n_components=24, n_active=3, noise=0.1, n_train=2000)
    residual = noisy.train.x - noisy.info["true_codes"]["train"] @ noisy.true_dictionary.T
    assert abs(residual.std().item() - 0.1) < 0.005
    first, second = load("synthetic", seed=5, n_train=50), load("synthetic", seed=5, n_train=50)
    assert torch.equal(first.train.x, second.train.x)
    assert not torch.equal(first.train.x, load("synthetic", seed=6, n_train=50).train.x)
    limited = load("synthetic", seed=5, n_train=50, limit=20)
    assert torch.equal(limited.train.x, first.train.x[:20]) and torch.equal(limited.test.x, first.test.x)


def test_synthetic_pyle_patches():
    data = load("synthetic_pyle", seed=0, noise=0.0, n_train=500)
    D = data.true_dictionary
    assert D.shape == (25, 5) and data.image_shape == (5, 5) and data.train.x.shape == (500, 25)
    torch.testing.assert_close(D.norm(dim=0), torch.ones(5))
    # without noise nothing is clipped: x = D c' exactly, entries in [0, 1]
    torch.testing.assert_close(data.train.x, data.info["true_codes"]["train"] @ D.T, atol=1e-5, rtol=0)
    noisy = load("synthetic_pyle", seed=0, n_train=500)
    assert noisy.train.x.min() >= 0 and noisy.train.x.max() <= 1


def test_synthetic_bad_options():
    with pytest.raises(ValueError, match="n_active=9 exceeds n_components=4"):
        load("synthetic", n_components=4, n_active=9)
    with pytest.raises(ValueError, match="noise must be a finite number"):
        load("synthetic", noise=float("nan"))
    with pytest.raises(ValueError, match=r"active_probability must be in \(0, 1\], got True"):
        load("synthetic_pyle", active_probability=True)  # before: read as 1
    with pytest.raises(ValueError, match="takes no data_dir"):
        load("synthetic_pyle", data_dir="somewhere")
    # the one integer check (nn.sizes.check_size): names the source, takes NumPy integers
    with pytest.raises(ValueError, match=r"synthetic_pyle source: side must be an integer >= 1, got 2\.5"):
        load("synthetic_pyle", side=2.5)
    small = load("synthetic", dim=np.int64(4), n_components=np.int64(6), n_active=np.int64(2), n_train=9)
    assert small.train.x.shape == (9, 4)
    assert load("synthetic_pyle", noise=np.float32(0.0), n_train=9).info["noise"] == 0.0  # inference's check


@pytest.mark.parametrize("noise", [1e300, 1e20])
def test_synthetic_noise_that_overflows_float32_is_refused_naming_noise(noise):
    # before: noise=1e300 loaded as inf rows ("the train split contains NaN or inf" from the trainer, noise
    # not named); 1e20 loaded, then diverged in the first batch blaming the step size
    with pytest.raises(ValueError, match=r"noise must be at most 1e\+15 .* got 1e\+(300|20)"):
        load("synthetic", noise=noise, n_train=9)
    largest = load("synthetic", noise=1e15, n_train=9, dim=4, n_components=6, n_active=2)
    assert largest.train.x.isfinite().all()


@pytest.mark.parametrize("source, options", [
    ("synthetic", {"dim": 10**6, "n_components": 10**5}),          # the dictionary alone: 745 GiB
    ("synthetic", {"n_train": 10**10}),                             # the training split's codes
    ("synthetic_pyle", {"side": 10**4, "n_train": 10**5}),          # 10^8 values per patch
])
def test_synthetic_sizes_beyond_memory_are_refused_before_drawing(source, options):
    with pytest.raises(ValueError, match="GiB, more than this machine's .* GiB of memory; lower"):
        load(source, **options)


def test_arrays_npz_with_labels_and_feature_standardisation(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(200, 6)) * np.arange(1, 7)
    y = rng.integers(0, 4, size=200)
    np.savez(tmp_path / "acts.npz", x=x, labels=y)
    data = load("arrays", seed=0, path=str(tmp_path / "acts.npz"), standardize="feature")
    assert (len(data.train), len(data.val), len(data.test)) == (160, 20, 20)
    assert data.train.x.dtype == torch.float32 and data.n_classes == 4 and data.image_shape is None
    torch.testing.assert_close(data.train.x.mean(dim=0), torch.zeros(6), atol=1e-5, rtol=0)
    torch.testing.assert_close(data.train.x.std(dim=0, unbiased=False), torch.ones(6), atol=1e-5, rtol=0)
    # the inverse recovers the stored rows, with their labels
    found = []
    for split in (data.train, data.val, data.test):
        back = split.to_pixels(split.x).double().numpy()
        distance = np.abs(back[:, None, :] - x[None, :, :]).max(axis=2)
        nearest = distance.argmin(axis=1)
        assert distance.min(axis=1).max() < 1e-4
        np.testing.assert_array_equal(split.labels.numpy(), y[nearest])
        found += nearest.tolist()
    assert sorted(found) == list(range(200))
    same = load("arrays", seed=0, path=str(tmp_path / "acts.npz"), standardize="feature")
    assert torch.equal(same.val.x, data.val.x)


@pytest.mark.parametrize("labels", [np.array([0, 1, -1, 2, 0, 1]),
                                    np.array([0, 1, 2**63 + 5, 2, 0, 1], dtype=np.uint64)])
def test_arrays_labels_that_are_not_class_indices_are_refused(tmp_path, labels):
    """-1 (a common 'unlabelled' mark) made n_classes max+1 and broke the probe; a uint64 label beyond
    int64 wrapped to a negative one."""
    path = tmp_path / "acts.npz"
    np.savez(path, x=np.random.default_rng(0).random((6, 3)), labels=labels)
    with pytest.raises(ValueError, match=r"acts.npz: labels range from .*; expected integers 0–99999; "
                                         r"renumber the classes from 0"):
        load("arrays", path=str(path))


def test_arrays_npy_via_data_dir_and_global_standardisation(tmp_path):
    x = np.random.default_rng(1).normal(5.0, 3.0, size=(50, 4, 4)).astype(np.float32)
    np.save(tmp_path / "v.npy", x)
    data = load("arrays", data_dir=str(tmp_path / "v.npy"), standardize="global", image_shape=[4, 4])
    assert data.train.x.shape == (40, 16) and data.image_shape == (4, 4) and data.train.labels is None
    assert isinstance(data.train.x, MemmapRows)  # a .npy training split stays in the file
    train = data.train.x.materialize()
    assert abs(train.mean().item()) < 1e-5 and abs(train.std(unbiased=False).item() - 1) < 1e-5
    rows = (train, data.val.x, data.test.x)
    splits = (data.train, data.val, data.test)
    pixels = [s.to_pixels(r).numpy().ravel() for s, r in zip(splits, rows, strict=True)]
    back = np.sort(np.concatenate(pixels))
    np.testing.assert_allclose(back, np.sort(x.ravel()), atol=1e-4)


def test_an_array_file_under_the_home_folder_written_with_a_tilde_is_found(tmp_path, monkeypatch):
    """`--set data_options.path=~/x.npz` from sh/zsh or a YAML file reaches the loader with its `~`
    unexpanded (only bash expands it); as for data_dir, the loader expands it."""
    monkeypatch.setenv("HOME", str(tmp_path))
    np.savez(tmp_path / "v.npz", x=np.arange(40, dtype=np.float32).reshape(10, 4))
    np.save(tmp_path / "v.npy", np.arange(40, dtype=np.float32).reshape(10, 4))
    assert len(load("arrays", path="~/v.npz").train.x) + len(load("arrays", data_dir="~/v.npy").train.x) > 0
    assert load("arrays", path="~/v.npy", data_dir=str(tmp_path / "v.npy")).train.x.shape[1] == 4  # one file


@pytest.mark.parametrize("how", ["npy_mapped", "npy_in_memory", "npz"])
def test_arrays_of_per_sample_images_record_their_image_shape(tmp_path, how):
    # audit 2026-11-29: an (n, 4, 5) file trained as 20 features with image_shape null; the per-sample shape
    # is now the image_shape (an explicit image_shape option still wins), for the three ways of reading it
    rng = np.random.default_rng(0)
    options = {"memory_map": how != "npy_in_memory"}

    def loaded(array):
        path = tmp_path / ("x.npz" if how == "npz" else "x.npy")
        (np.savez(path, x=array) if how == "npz" else np.save(path, array))
        return lambda **more: load("arrays", path=str(path), **options, **more)

    data = loaded(rng.normal(size=(30, 4, 5)).astype(np.float32))()
    assert data.image_shape == (4, 5) and data.dim == 20 and data.train.x.shape[1] == 20
    assert isinstance(data.train.x, MemmapRows) is (how == "npy_mapped")
    assert loaded(rng.normal(size=(30, 4, 5)))(image_shape=[2, 10]).image_shape == (2, 10)
    assert loaded(rng.normal(size=(30, 4, 5, 3)))().image_shape == (4, 5, 3)
    assert loaded(rng.normal(size=(30, 4, 5, 2)))().image_shape is None  # not colour: plain vectors
    assert loaded(rng.normal(size=(30, 2, 3, 4, 5)))().image_shape is None
    assert loaded(rng.normal(size=(30, 20)))().image_shape is None
    # singleton axes (PyTorch's (n, 1, H, W) grey images) do not change the rows: they were no image before
    grey = rng.normal(size=(30, 1, 4, 5)).astype(np.float32)
    for array in (grey, grey.reshape(30, 4, 5, 1), grey.reshape(30, 1, 1, 4, 5)):
        data = loaded(array)()
        assert data.image_shape == (4, 5)
        rows, flat = np.asarray(data.train.x[:]), grey.reshape(30, 20)
        # every training row is one sample's pixels in the (H, W) order the image shape describes
        assert np.abs(rows[:, None, :] - flat[None, :, :]).max(axis=2).min(axis=1).max() == 0
    assert loaded(rng.normal(size=(30, 1, 20)))().image_shape is None  # a vector with a singleton axis
    with pytest.raises(ValueError, match="image_shape \\[3, 3\\] holds 9 values but the rows have 20"):
        loaded(rng.normal(size=(30, 4, 5)))(image_shape=3)


def test_arrays_errors(tmp_path):
    x = np.ones((10, 3))
    x[4, 1] = np.nan
    np.save(tmp_path / "nan.npy", x)
    with pytest.raises(ValueError, match="NaN/inf value.*rows \\[4\\]"):
        load("arrays", path=str(tmp_path / "nan.npy"))
    np.save(tmp_path / "ok.npy", np.ones((100, 8)))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "ok.npy").read_bytes()[:300])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load("arrays", path=str(tmp_path / "cut.npy"))
    np.savez(tmp_path / "ok.npz", x=np.ones((100, 8)))
    (tmp_path / "cut.npz").write_bytes((tmp_path / "ok.npz").read_bytes()[:200])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load("arrays", path=str(tmp_path / "cut.npz"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load("arrays", path=str(tmp_path / "missing.npy"))
    # audit 2026-11-29: a FIFO or device (`encode RUN /dev/stdin`) and a broken link "did not exist"
    os.mkfifo(tmp_path / "pipe.npy")
    with pytest.raises(ValueError, match=r"pipe.npy is not a regular file \(a pipe, device or socket\)"):
        load("arrays", path=str(tmp_path / "pipe.npy"))
    (tmp_path / "link.npy").symlink_to(tmp_path / "gone.npy")
    with pytest.raises(FileNotFoundError, match=r"link.npy is a broken symbolic link \(to .*gone.npy\)"):
        load("arrays", path=str(tmp_path / "link.npy"))
    with pytest.raises(ValueError, match="needs a file"):
        load("arrays")
    np.savez(tmp_path / "two.npz", a=np.ones((10, 2)), b=np.ones((10, 2)))
    with pytest.raises(ValueError, match="cannot tell which array"):
        load("arrays", path=str(tmp_path / "two.npz"))
    with pytest.raises(ValueError, match="standardize='zscore' is not allowed"):
        load("arrays", path=str(tmp_path / "ok.npy"), standardize="zscore")


NOT_REAL = {  # dtype class → (array, fragment of the message)
    "timedelta": (np.ones((10, 3), dtype="timedelta64[s]"), "timedelta64.*time spans"),
    "datetime": (np.ones((10, 3), dtype="datetime64[s]"), "datetime64.*dates"),
    "bytes": (np.array([[b"a", b"b"]] * 10), "holds bytes"),
    "structured": (np.zeros(10, dtype=[("a", "f4", (3,))]), "structured dtype.*np.stack"),
    "complex": (np.ones((10, 3), dtype=np.complex64), "complex dtype complex64.*np.real"),
    "object": (np.array([[1, "a"]] * 10, dtype=object), "dtype object holds Python objects"),
}


@pytest.mark.parametrize("kind", NOT_REAL)
@pytest.mark.parametrize("how", ["npy_mapped", "npy_in_memory", "npz"])
def test_arrays_of_dtypes_that_are_not_real_numbers_are_refused_naming_the_dtype(tmp_path, kind, how):
    array, message = NOT_REAL[kind]
    path = tmp_path / ("x.npz" if how == "npz" else "x.npy")
    if how == "npz":
        np.savez(path, x=array)
    else:
        np.save(path, array, allow_pickle=kind == "object")
    with pytest.raises(ValueError, match=f"{path}: array of .*{message}"):
        load("arrays", path=str(path), memory_map=how == "npy_mapped")


@pytest.mark.parametrize("memory_map", [True, False])
def test_arrays_beyond_float32s_range_are_not_called_nan_or_inf(tmp_path, memory_map):
    x = np.ones((20, 4))
    x[[3, 7], 1] = [1e39, -3e300]  # finite in float64, inf once the models' float32 holds them
    np.save(tmp_path / "big.npy", x)
    for standardize in ("none", "global"):
        with pytest.raises(ValueError, match=r"2 value\(s\) in 2 row\(s\) \(first rows \[3, 7\]\) exceed "
                                             r"float32's range ±3.4e38 .*3e\+300.*rescale"):
            load("arrays", path=str(tmp_path / "big.npy"), memory_map=memory_map, standardize=standardize)
    x[[3, 7], 1] = [3e38, -3e38]  # the edge of the range is fine
    np.save(tmp_path / "edge.npy", x)
    data = load("arrays", path=str(tmp_path / "edge.npy"), memory_map=memory_map)
    assert torch.isfinite(data.val.x).all() and torch.isfinite(data.test.x).all()


@pytest.mark.parametrize("memory_map", [True, False])
def test_an_npy_header_claiming_more_data_than_the_file_holds_is_refused_before_reading(tmp_path, memory_map):
    path = tmp_path / "huge.npy"
    with open(path, "wb") as fh:  # a 36 TiB float32 array by its header, 16 bytes of data
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (10**10, 1000)})
        fh.write(b"\0" * 16)
    with pytest.raises(ValueError, match=r"huge.npy: holds 16 bytes of data but its header says shape "
                                         r"\(10000000000, 1000\) of float32 \(40000000000000 bytes\)"):
        load("arrays", path=str(path), memory_map=memory_map)


def test_every_corruption_of_an_array_file_is_one_error_naming_the_file(tmp_path):
    """A byte flipped anywhere in a compressed or plain .npz / a .npy, or a .npy cut anywhere: the file
    loads (a flip numpy cannot see, e.g. in a zip timestamp or in the data) or fails with a ValueError that
    names it — never a TokenError, zlib.error, MemoryError … from inside numpy."""
    x = np.random.default_rng(0).random((12, 3))
    np.savez_compressed(tmp_path / "c.npz", x=x, labels=np.arange(12))
    np.savez(tmp_path / "p.npz", x=x)
    np.save(tmp_path / "a.npy", x)
    outcomes = set()
    for name in ("c.npz", "p.npz", "a.npy"):
        good = (tmp_path / name).read_bytes()
        variants = [good[:k] + bytes([good[k] ^ 0xFF]) + good[k + 1:] for k in range(len(good))]
        if name == "a.npy":
            variants += [good[:k] for k in range(len(good))]
        path = tmp_path / f"bad_{name}"
        for variant in variants:
            path.write_bytes(variant)
            for memory_map in (True, False):
                try:
                    load("arrays", path=str(path), memory_map=memory_map)
                    outcomes.add("loaded")
                except ValueError as err:
                    assert str(err).startswith(f"{path}: "), err
                    outcomes.add("refused")
    assert outcomes == {"loaded", "refused"}


def test_an_npz_is_judged_by_the_arrays_it_uses_and_paths_are_named_for_what_they_are(tmp_path):
    # audit 2026-11-29: an .npz holding x plus a text or object array it does not use ('names', a config) was
    # refused ("array of dtype <U3 holds text") without naming the member; text labels got the vectors'
    # message; a folder named x.npy "did not exist"; X.NPY was "not a .npy file"; a CSV got no way out
    x = np.random.default_rng(0).standard_normal((20, 5))
    np.savez(tmp_path / "meta.npz", x=x, names=np.array([f"row{i}" for i in range(20)]),
             config=np.array({"layer": 3}, dtype=object))
    data = load("arrays", path=str(tmp_path / "meta.npz"))
    assert data.dim == 5 and len(data.train) + len(data.val) + len(data.test) == 20
    np.savez(tmp_path / "text.npz", x=x, labels=np.array(["cat", "dog"] * 10))
    with pytest.raises(ValueError, match=r"text.npz: labels have dtype <U3; expected integers 0–99999"):
        load("arrays", path=str(tmp_path / "text.npz"))
    (tmp_path / "dir.npy").mkdir()
    with pytest.raises(ValueError, match=r"dir.npy is a folder; give the .npy or .npz file itself"):
        load("arrays", path=str(tmp_path / "dir.npy"))
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "x.npy").rename(tmp_path / "X.NPY")
    for memory_map in (True, False):
        assert load("arrays", path=str(tmp_path / "X.NPY"), memory_map=memory_map).dim == 5
    np.savetxt(tmp_path / "x.csv", x, delimiter=",")
    with pytest.raises(ValueError, match=r"x.csv: expected a .npy or .npz file \(convert a CSV .*np.loadtxt"):
        load("arrays", path=str(tmp_path / "x.csv"))


def test_an_array_file_too_large_for_memory_is_refused_unless_memory_mapped(tmp_path):
    # audit 2026-11-29: memory_map: false on a .npy larger than memory ran into a MemoryError (or the OOM
    # killer) part-way; the header's size is now compared with this machine's memory first
    from sparsecoder.util import physical_memory

    path = tmp_path / "big.npy"
    rows = physical_memory() // (8 * 1024) + 1  # float64 rows of 1024 values: more bytes than memory
    with open(path, "wb") as fh:  # a sparse file: its size is the header's, no block is written
        header = {"descr": "<f8", "fortran_order": False, "shape": (rows, 1024)}
        np.lib.format.write_array_header_1_0(fh, header)
        fh.truncate(fh.tell() + rows * 1024 * 8)
    with pytest.raises(ValueError, match=rf"big.npy: its {rows * 1024:,} values read into memory need "
                                         r".* GiB, more than this machine's .* memory; save it as one .npy "
                                         r"file and keep the data option memory_map: true"):
        load("arrays", path=str(path), memory_map=False)


@pytest.mark.parametrize("memory_map", [True, False])
def test_a_file_named_npy_that_is_something_else_is_named_for_what_it_is(tmp_path, memory_map):
    # audit 2026-11-29: a CSV, an .npz or a MATLAB file under a .npy name was "cannot read array file (.npy
    # header: the magic string is not correct ...); the file is corrupt or truncated": wrong cause, no fix
    np.savez(tmp_path / "a.npz", x=np.ones((5, 3)))
    files = {"csv": (b"1.0,2.0,3.0\n4.0,5.0,6.0\n", r"text \(CSV or similar\); convert it: np.save"),
             "npz": ((tmp_path / "a.npz").read_bytes(), r"an .npz \(zip\) archive; save the array as .npy"),
             "mat": (b"MATLAB 5.0 MAT-file" + bytes(120), r"a MATLAB .mat file; convert it"),
             "binary": (bytes(range(200)), r"not a .npy file; write it with np.save")}
    for name, (content, message) in files.items():
        path = tmp_path / f"{name}.npy"
        path.write_bytes(content)
        with pytest.raises(ValueError, match=f"{name}.npy: cannot read array file: it is .*{message}"):
            load("arrays", path=str(path), memory_map=memory_map)


def test_a_npy_file_read_into_memory_is_refused_before_reading_when_too_large(tmp_path, monkeypatch):
    # read_array_file (memory_map: false) and read_rows_file share one reader and one memory check
    import sparsecoder.util as util
    from sparsecoder.data.arrays import read_array_file, read_rows_file

    np.save(tmp_path / "x.npy", np.ones((1000, 10), np.float32))  # 40 kB; read_array_file adds 12 B a value
    monkeypatch.setattr(util, "physical_memory", lambda: 100_000)
    assert read_rows_file(tmp_path / "x.npy")[0].shape == (1000, 10)
    with pytest.raises(ValueError, match=r"x.npy: its 10,000 values read into memory need .*memory_map"):
        read_array_file(tmp_path / "x.npy")
    with pytest.raises(ValueError, match="x.npy: .* more than this machine's .* split it"):
        read_rows_file(tmp_path / "x.npy", row_bytes=100)


def test_splits_that_leave_no_training_row_are_refused_naming_the_fractions(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32))
    with pytest.raises(ValueError, match=r"3 rows are too few for val_fraction=0\.5 and test_fraction=0\.3: "
                                         r"2 validation and 1 test rows leave none.*lower the fractions"):
        load("arrays", path=str(path), val_fraction=0.5, test_fraction=0.3)
    assert len(load("arrays", path=str(path)).train) == 1  # the default fractions leave one row
