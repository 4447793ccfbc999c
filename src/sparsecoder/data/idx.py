"""Reader for the IDX files of MNIST (gz-compressed or raw)."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np

from sparsecoder.data.base import check_integer_values, check_rows_fit

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MNIST_IMAGE_SHAPE = (28, 28)
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 24  # bytes read at a time


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file: magic ``00 00 <dtype> <ndim>``, ``ndim`` big-endian int32 sizes, then the data.

    gzip-compressed or raw, told by the file's first bytes (not its name: a raw file named ``.gz`` or a
    compressed one without the suffix reads too). The header is checked first, and only the bytes it
    declares are read (plus one, to detect trailing data): a forged shape or a gzip bomb cannot fill memory.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            compressed = fh.read(2) == GZIP_MAGIC
        with (gzip.open if compressed else open)(path, "rb") as fh:
            magic = fh.read(4)
            if not magic:
                empty = "0 bytes once decompressed" if compressed else "0 bytes"
                raise ValueError(f"{path}: the IDX file is empty ({empty}); download it again")
            if len(magic) < 4 or magic[0] != 0 or magic[1] != 0:
                raise ValueError(f"{path}: wrong magic number {magic.hex()} (an IDX file starts 0000); not "
                                 "an IDX file")
            if magic[2] not in _DTYPES:
                known = ", ".join(f"0x{code:02X}" for code in _DTYPES)
                raise ValueError(f"{path}: unknown IDX data type code 0x{magic[2]:02X} in magic number "
                                 f"{magic.hex()} (known: {known}); the file is corrupt or not an IDX file")
            ndim = magic[3]
            sizes = fh.read(4 * ndim)
            if len(sizes) < 4 * ndim:
                raise ValueError(f"{path}: truncated IDX header")
            shape = tuple(int.from_bytes(sizes[4 * i: 4 * i + 4], "big") for i in range(ndim))
            dtype = np.dtype(_DTYPES[magic[2]])
            expected = math.prod(shape) * dtype.itemsize  # Python ints: a forged header cannot overflow
            hint = _little_endian_hint(sizes, ndim, dtype, expected)
            mismatch = (f"{path}: IDX header says shape {shape} ({expected} bytes) but the file holds {{}}; "
                        f"the file is truncated or corrupt — download it again{hint}")
            if not compressed and path.stat().st_size - 4 - 4 * ndim != expected:
                raise ValueError(mismatch.format(path.stat().st_size - 4 - 4 * ndim))
            check_rows_fit(expected, 1, f"{path}: IDX header says shape {shape}, whose {expected:,} bytes",
                           f"the header is corrupt or the file is not MNIST's — download it again{hint}")
            data = bytearray()
            while len(data) <= expected:
                chunk = fh.read(min(_CHUNK, expected + 1 - len(data)))
                if not chunk:
                    break
                data += chunk
    except (OSError, EOFError) as err:
        raise ValueError(f"{path}: cannot read IDX file ({err}); the file is corrupt or truncated") from None
    if len(data) != expected:
        raise ValueError(mismatch.format(len(data) if len(data) < expected else "more (trailing data)"))
    return np.frombuffer(bytes(data), dtype=dtype).reshape(shape)


def _little_endian_hint(sizes: bytes, ndim: int, dtype: np.dtype, expected: int) -> str:
    """A note for a header whose sizes read little-endian give a smaller, plausible shape: IDX stores them
    big-endian, and a file written with ``struct.pack('<i', ...)`` or ``tofile`` on x86 reads as a huge
    shape."""
    little = tuple(int.from_bytes(sizes[4 * i: 4 * i + 4], "little") for i in range(ndim))
    if math.prod(little) * dtype.itemsize >= expected:
        return ""
    return (f" (read little-endian, the sizes would be {little}: the IDX format stores them big-endian — "
            f"if the file was written little-endian, write its header with '>i' sizes)")


def find_idx_file(directory: Path, stem: str) -> Path:
    """``stem`` or ``stem.gz`` in ``directory``, or the same with a dot before ``idx`` (Kaggle's copy of
    MNIST and several mirrors name them ``train-images.idx3-ubyte``)."""
    dotted = stem.replace("-idx", ".idx")
    for name in dict.fromkeys((stem, f"{stem}.gz", dotted, f"{dotted}.gz")):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(
        f"{directory}: missing {stem}(.gz) (or {dotted}); run `sparsecoder data download mnist --dir "
        f"{directory}` or copy the four MNIST IDX files there"
    )


def read_mnist_idx_split(directory: Path, split: str):
    """``(images (n, 784) uint8, labels (n,) int64)`` of one split (``"train"`` or ``"test"``: the
    ``t10k`` files) from a folder of IDX files; the other split's files are not read. Files of 0 images,
    pixel values outside the integers 0–255 (whatever the IDX dtype) and labels outside 0–9 are refused."""
    directory = Path(directory)
    if directory.is_file():
        raise NotADirectoryError(f"MNIST data_dir {directory} is a file; give the folder of the IDX files")
    if not directory.is_dir():
        raise FileNotFoundError(f"MNIST directory {directory} does not exist")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    images_path = find_idx_file(directory, MNIST_FILES[f"{split}_images"])
    labels_path = find_idx_file(directory, MNIST_FILES[f"{split}_labels"])
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        raise ValueError(f"{images_path}: IDX images of shape {images.shape} ({images.ndim} dimensions); "
                         "MNIST image files hold n×28×28 (3 dimensions) — download them again")
    if labels.ndim != 1:
        raise ValueError(f"{labels_path}: IDX labels of shape {labels.shape} ({labels.ndim} dimensions); "
                         "MNIST label files hold one label per image (1 dimension) — download them again")
    if len(images) != len(labels):
        raise ValueError(f"{directory}: {len(images)} {split} images ({images_path.name}) but {len(labels)} "
                         f"labels ({labels_path.name}); the files belong to different sets or one is "
                         "damaged — download them again")
    if len(images) == 0:
        raise ValueError(f"{images_path}: the IDX header says 0 images; the file is empty or corrupt — "
                         "download it again")
    if images.shape[1:] != MNIST_IMAGE_SHAPE:
        raise ValueError(
            f"{directory}: the {split} IDX images are {images.shape[1]}×{images.shape[2]}, but MNIST "
            f"images (and the mnist presets) are 28×28; for other images save them as an array and use"
            f" the arrays source (data=arrays, data_options={{path: FILE.npy, image_shape: [H, W]}})"
        )
    # checked before the casts below, which would wrap 300 to 44 and -1 to 255 without a word
    check_integer_values(images_path, "pixel values", images, 0, 255,
                         "MNIST IDX images hold 8-bit grey levels: save them as uint8 0–255 (or use the "
                         "arrays source for other values)")
    check_integer_values(labels_path, "labels", labels, 0, 9, "MNIST labels are the digits 0–9")
    return images.reshape(len(images), -1).astype(np.uint8), labels.astype(np.int64)


def read_mnist_idx_dir(directory: Path):
    """((train_images (n,784) uint8, train_labels), (test_images, test_labels)) from a folder of IDX files."""
    return read_mnist_idx_split(directory, "train"), read_mnist_idx_split(directory, "test")
