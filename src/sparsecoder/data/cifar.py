"""CIFAR-10 luminance patches for family C (SPEC §5): python-pickle batches in a user folder."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np

from sparsecoder.data.base import DataSplits, Split, check_integer_values
from sparsecoder.data.images import SPLITS, check_patch_size, embedded_unit_patches, split_counts
from sparsecoder.data.preprocessing import Identity, Luminance
from sparsecoder.data.safe_pickle import UnsafePickleError, load_data_pickle

TRAIN_BATCHES = tuple(f"data_batch_{k}" for k in range(1, 6))
TEST_BATCH = "test_batch"


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One python-pickle batch: ``(images (n, 32, 32, 3) uint8, labels (n,) int64)``.

    The file is a pickled dict with ``b"data"`` (n, 3072) uint8 — 1024 red, then green, then blue values
    per row, row-major 32×32 — and ``b"labels"``. It is read with the restricted unpickler of
    :mod:`sparsecoder.data.safe_pickle` (only NumPy arrays and builtin containers; a file naming any
    other global is refused with :class:`~sparsecoder.data.safe_pickle.UnsafePickleError`, nothing run).
    A batch of 0 images, pixel values outside the integers 0–255 or labels outside 0–9 are refused.
    """
    path = Path(path)
    try:
        batch = load_data_pickle(path, encoding="bytes")
    except UnsafePickleError:
        raise
    except Exception as err:  # noqa: BLE001 - a corrupt pickle raises anything: LookupError, MemoryError…
        raise ValueError(f"{path}: cannot read CIFAR batch ({type(err).__name__}: {err}); the file is "
                         "corrupt or truncated — unpack cifar-10-python.tar.gz again") from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError(f"{path}: not a CIFAR-10 python batch (expected a dict with b'data' and b'labels')")
    try:
        data = np.asarray(batch[b"data"])
    except (TypeError, ValueError, OverflowError):  # rows of different lengths, say
        raise ValueError(f"{path}: b'data' is not an (n, 3072) array of uint8 pixels") from None
    if data.dtype.kind not in "uib":
        raise ValueError(f"{path}: b'data' has dtype {data.dtype}; a CIFAR-10 batch holds uint8 pixels")
    try:
        labels = np.asarray(batch[b"labels"])
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{path}: b'labels' is not a list of integer class labels") from None
    if data.ndim != 2 or data.shape[1] != 3072 or labels.ndim != 1 or len(data) != len(labels):
        raise ValueError(f"{path}: data {data.shape} / labels {labels.shape}; expected (n, 3072) and (n,)")
    if len(data) == 0:
        raise ValueError(f"{path}: the batch holds 0 images; the file is empty or corrupt — unpack "
                         "cifar-10-python.tar.gz again")
    # checked before the casts below, which would wrap 300 to 44 and -1 to 255 without a word
    check_integer_values(path, "b'data' pixel values", data, 0, 255,
                         "CIFAR-10 batches hold 8-bit colour values (uint8)")
    check_integer_values(path, "b'labels'", labels, 0, 9, "CIFAR-10 has the 10 classes 0–9")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.uint8), labels.astype(np.int64)


def read_cifar_dir(directory: Path):
    """``((train_images, train_labels), (test_images, test_labels))`` from the six CIFAR-10 batches."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"CIFAR-10 directory {directory} does not exist")
    missing = [name for name in (*TRAIN_BATCHES, TEST_BATCH) if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{directory}: missing CIFAR-10 batch file(s) {missing}; unpack cifar-10-python.tar.gz "
            "(folder cifar-10-batches-py) and give that folder as data_dir"
        )
    parts = [read_cifar_batch(directory / name) for name in TRAIN_BATCHES]
    train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return train, read_cifar_batch(directory / TEST_BATCH)


def _rgb_patches(images: np.ndarray, patch_size: int, rng: np.random.Generator) -> np.ndarray:
    """One seeded ``patch_size²`` RGB patch per image as a raw row of ``3·patch_size²`` values 0–255 in
    the batch files' layout (red plane, green plane, blue plane, each row-major)."""
    n, h, w, _ = images.shape
    tops = rng.integers(0, h - patch_size + 1, size=n)
    lefts = rng.integers(0, w - patch_size + 1, size=n)
    rows = tops[:, None] + np.arange(patch_size)[None, :]
    cols = lefts[:, None] + np.arange(patch_size)[None, :]
    crops = images[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]  # (n, p, p, 3)
    return crops.transpose(0, 3, 1, 2).reshape(n, -1)


def load_cifar_patches(*, seed: int = 0, limit: int | None = None, data_dir: str | None = None,
                       patch_size: int = 12, n_val: int = 5000, n_train: int = 20000,
                       n_test: int = 2000) -> DataSplits:
    """CIFAR-10 luminance patches in [0, 1] (SPEC §5: Pyle's 12×12 patches, 25 latents).

    With ``data_dir`` (the ``cifar-10-batches-py`` folder): one seeded ``patch_size²`` luminance patch
    per image (raw row: the RGB patch, 3·p² values 0–255 in the batch files' plane layout; model row: its
    luminance, :class:`~sparsecoder.data.preprocessing.Luminance`); the 50,000 training images are split
    ``50000 − n_val`` / ``n_val`` (seeded) and the test
    split is the 10,000 ``test_batch`` images; labels are the image classes. ``n_train``/``n_test`` apply
    only to the substitute. Without ``data_dir``: a **substitute** of grayscale patches in [0, 1] from the
    embedded photographs (``n_train``/``n_val``/``n_test``, disjoint image regions per split, no labels).
    ``limit`` caps the training split.
    """
    import torch

    patch_size = check_patch_size(patch_size, "cifar_patches")
    if data_dir is None:
        requested, counts = split_counts(n_train, n_val, n_test, limit, 4 * patch_size**2,
                                         f"patches of {patch_size}×{patch_size}")
        splits, names = embedded_unit_patches(seed=seed, requested=requested, counts=counts,
                                              patch_size=patch_size)
        return DataSplits(
            name="cifar_patches (SUBSTITUTE: embedded photographs, not CIFAR-10)", **splits,
            image_shape=(patch_size, patch_size),
            normalization="substitute for CIFAR-10: grayscale photograph patches in [0, 1] (x/255), "
                          "no labels; give data_dir for CIFAR-10",
            info={"substitute": True, "images": names}, preprocessing=Identity(),
        )
    if patch_size > 32:
        raise ValueError(f"patch_size {patch_size} is larger than the 32×32 CIFAR-10 images")
    defaults = inspect.signature(load_cifar_patches).parameters
    ignored = [f"{key}={value!r}" for key, value in (("n_train", n_train), ("n_test", n_test))
               if value != defaults[key].default]
    if ignored:  # they would be silently ignored: the splits are the files' images
        raise ValueError(f"{', '.join(ignored)}: n_train and n_test size the substitute only (no data_dir); "
                         "with CIFAR-10 files the splits are the 50,000 training images less n_val (one "
                         "patch each) and the 10,000 test images — cap the training split with limit instead")
    (train_images, train_labels), (test_images, test_labels) = read_cifar_dir(Path(data_dir))
    if not isinstance(n_val, int) or not 1 <= n_val < len(train_images):
        raise ValueError(f"n_val must be an integer in [1, {len(train_images) - 1}], got {n_val!r}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train_images))
    index = {"train": order[n_val:], "val": order[:n_val]}
    if limit is not None:
        index["train"] = index["train"][:limit]
    sources = {"train": (train_images, train_labels), "val": (train_images, train_labels),
               "test": (test_images, test_labels)}
    splits = {}
    luminance = Luminance()
    for key in SPLITS:
        images, labels = sources[key]
        pick = index.get(key, np.arange(len(images)))
        x = luminance.forward(_rgb_patches(images[pick], patch_size, rng))
        splits[key] = Split(x=x, labels=torch.from_numpy(labels[pick]))
    return DataSplits(
        name=f"cifar_patches ({data_dir})", **splits, image_shape=(patch_size, patch_size),
        normalization="luminance 0.299R+0.587G+0.114B of x/255, in [0, 1]", n_classes=10,
        info={"substitute": False, "patches_per_image": 1}, preprocessing=luminance,
    )
