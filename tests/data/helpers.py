"""Writers of small data files in the real formats (IDX, PNG), used by the data tests."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """IDX encoding written by hand from the format description (magic 0 0 dtype ndim, big-endian sizes);
    ``type_code`` 0x08 unsigned byte (MNIST's), 0x09 signed byte, 0x0B int16, 0x0C int32, 0x0D float32,
    0x0E float64."""
    array = np.ascontiguousarray(array, dtype=IDX_TYPES[type_code])
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(struct.pack(">i", n) for n in array.shape)
    return header + array.tobytes()


def write_mnist_dir(directory: Path, n_train: int = 120, n_test: int = 20, gz: bool = True, seed: int = 0):
    """Four small MNIST IDX files; image k's first pixel holds k % 256 and its second k // 256 (identity)."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        images[:, 0, 0] = np.arange(n) % 256
        images[:, 0, 1] = np.arange(n) // 256
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{prefix}-{kind}-ubyte"
            raw = idx_bytes(array)
            if gz:
                (directory / f"{name}.gz").write_bytes(gzip.compress(raw))
            else:
                (directory / name).write_bytes(raw)
        out[prefix] = (images, labels)
    return out


def write_png_folder(directory: Path, shapes=((120, 150), (130, 110), (100, 140)), seed: int = 0):
    """Grayscale PNGs (textured noise) in nested folders; returns {relative path: uint8 array}."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = {}
    for k, (h, w) in enumerate(shapes):
        array = (rng.random((h, w)) * 255).astype(np.uint8)
        relative = Path(f"class{k % 2}") / f"img{k}.png"
        (directory / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array, mode="L").save(directory / relative)
        images[str(relative)] = array
    return images
