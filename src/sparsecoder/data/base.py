"""The common shape of every data source: train/val/test splits of row vectors plus their inverse map.

Every loader returns a :class:`DataSplits`. Rows are flattened samples (``n × d`` float32, batch
first), already normalised for the model. ``Split.to_pixels`` maps model-space rows back to pixel space
(``[0, 1]`` for images) with a per-sample affine map ``pixels = x * scale + offset``: a global
normalisation has scalar ``scale``/``offset``; local contrast normalisation has one value per sample
and pixel (SPEC §2.8), so PSNR can always be computed in pixel space (SPEC §3).

``DataSplits.preprocessing`` is the source's row-wise map from its raw rows to model rows
(:mod:`sparsecoder.data.preprocessing`); a run folder stores it. ``Split.x`` of a training split may be
a :class:`MemmapRows` (rows of a memory-mapped file read per batch) instead of a tensor.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sparsecoder.data.preprocessing import Preprocessing


class MemmapRows:
    """Rows of a memory-mapped ``(N, d)`` array, read and preprocessed on demand (a lazy ``Split.x``).

    ``rows[index]`` (an int, a slice, or an integer tensor/array of positions in this split) reads the
    file rows ``file_rows[index]`` (:func:`gather_rows`: in increasing file order, put back in the asked
    order), applies ``preprocessing.forward`` and returns a float32 tensor on ``device``. Only the rows of
    one batch are ever in memory. ``to(device)`` binds another device (what the trainer's
    ``x.to(device, torch.float32)`` calls).

    Parameters
    ----------
    array : numpy.memmap
        The whole file, 2-D ``(N, d)`` (``np.load(path, mmap_mode="r")`` reshaped per sample).
    file_rows : numpy.ndarray of int
        The file rows of this split, in split order.
    preprocessing : Preprocessing
        Raw → model rows, applied per read.
    """

    dtype = torch.float32

    def __init__(self, array: np.ndarray, file_rows: np.ndarray, preprocessing: Preprocessing,
                 device: torch.device | str = "cpu"):
        self.array = array
        self.file_rows = np.asarray(file_rows, dtype=np.int64)
        self.preprocessing = preprocessing
        self.device = torch.device(device)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.file_rows), self.array.shape[1]))

    def __len__(self) -> int:
        return len(self.file_rows)

    def dim(self) -> int:
        return 2

    def to(self, device=None, dtype=None) -> MemmapRows:
        """The same rows bound to ``device``; ``dtype`` must be float32 (or None)."""
        if isinstance(device, torch.dtype):
            device, dtype = None, device
        if dtype is not None and dtype != torch.float32:
            raise ValueError(f"memory-mapped rows are read as float32, not {dtype}")
        return MemmapRows(self.array, self.file_rows, self.preprocessing,
                          self.device if device is None else device)

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        wanted = self.file_rows[index]
        if wanted.ndim == 0:
            return self[np.asarray([index])][0]
        return self.preprocessing.forward(gather_rows(self.array, wanted)).to(self.device)

    def materialize(self) -> torch.Tensor:
        """All rows as one float32 tensor on ``device`` (only for splits that fit in memory)."""
        return self[np.arange(len(self))]


def gather_rows(array: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``array[rows]`` (a copy, in the order of ``rows``) of a 2-D array; for a memory-mapped ``.npy`` by
    positional reads of the file (``os.preadv``, one per run of consecutive rows, in file order).

    Why not index the mapping: touching a few scattered rows of a mapped file maps far more than those
    rows (the kernel maps whole page-cache folios around each fault; measured on Linux 6.18: 2,000 random
    1 KB rows of a 391 MB file made 390 MB resident). Positional reads go through the page cache without
    mapping it into the process, so resident memory stays at the rows asked for.
    """
    rows = np.asarray(rows, dtype=np.int64)
    filename = getattr(array, "filename", None)
    offset = getattr(array, "offset", None)
    whole_file = (isinstance(array, np.memmap) and filename is not None and offset is not None
                  and array.flags.c_contiguous and os.path.isfile(filename)
                  and os.path.getsize(filename) == offset + array.nbytes)
    if not whole_file or not hasattr(os, "preadv"):  # preadv: Linux, BSD, macOS >= 11
        block = np.asarray(array[rows])
        release_pages(array)
        return block
    order = np.argsort(rows, kind="stable")
    ordered = rows[order]
    if len(ordered) and (ordered[0] < 0 or ordered[-1] >= array.shape[0]):
        raise IndexError(f"row index out of range for {array.shape[0]} rows")
    block = np.empty((len(rows), array.shape[1]), dtype=array.dtype)
    row_bytes = array.shape[1] * array.dtype.itemsize
    breaks = np.flatnonzero(np.diff(ordered) != 1) + 1
    starts = np.concatenate([[0], breaks]).tolist()
    ends = np.concatenate([breaks, [len(ordered)]]).tolist()
    descriptor = os.open(filename, os.O_RDONLY)
    try:
        for start, end in zip(starts, ends, strict=True):
            if start == end:
                continue
            target = memoryview(block[start:end]).cast("B")
            position = offset + int(ordered[start]) * row_bytes
            while len(target):
                count = os.preadv(descriptor, [target], position)
                if count <= 0:
                    raise OSError(f"{filename}: unexpected end of file (truncated while reading?)")
                target, position = target[count:], position + count
    finally:
        os.close(descriptor)
    out = np.empty_like(block)
    out[order] = block
    return out


def release_pages(array: np.ndarray) -> None:
    """Drop the pages of a memory-mapped array from this process (``madvise(MADV_DONTNEED)``).

    Read-only file mappings lose nothing (the pages stay in the page cache and are re-read on access);
    the process's resident set no longer counts them. A no-op for ordinary arrays or where the platform
    lacks ``madvise``.
    """
    base = array
    while base is not None and not isinstance(getattr(base, "_mmap", None), mmap.mmap):
        base = getattr(base, "base", None)
    handle = None if base is None else base._mmap
    if handle is not None and hasattr(handle, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        handle.madvise(mmap.MADV_DONTNEED)


def check_integer_values(path, what: str, values: np.ndarray, low: int, high: int, fix: str) -> None:
    """Refuse ``values`` (of file ``path``) unless each is an integer in ``[low, high]``.

    A cast such as ``astype(np.uint8)`` would wrap 300 to 44 and −1 to 255 and truncate 0.5 to 0 without a
    word; this names the file, what was found (dtype, NaN/inf, a non-integer value or the range) and
    ``fix``. Integral floats (e.g. 3.0) pass.
    """
    values = np.asarray(values)
    expected = f"expected integers {low}–{high}; {fix}"
    if values.dtype.kind not in "biuf":
        raise ValueError(f"{path}: {what} have dtype {values.dtype}; {expected}")
    if values.size == 0:
        return
    if values.dtype.kind == "f":
        finite = np.isfinite(values)
        if not finite.all():
            raise ValueError(f"{path}: {int((~finite).sum())} {what} are NaN or inf; {expected}")
        fractional = values != np.floor(values)
        if fractional.any():
            raise ValueError(f"{path}: {int(fractional.sum())} {what} are not integers (e.g. "
                             f"{values[fractional].flat[0].item()!r}); {expected}")
    lowest, highest = values.min(), values.max()
    if lowest < low or highest > high:
        raise ValueError(f"{path}: {what} range from {lowest} to {highest} ({values.dtype.name}); "
                         f"{expected}")


@dataclass
class Split:
    """One split: ``x`` (n×d float32, normalised), optional integer ``labels`` (n,), inverse map."""

    x: torch.Tensor
    labels: torch.Tensor | None = None
    scale: torch.Tensor | float = 1.0  # scalar, (d,) or (n, d)
    offset: torch.Tensor | float = 0.0  # scalar, (d,) or (n, d)

    def __len__(self) -> int:
        return self.x.shape[0]

    def to_pixels(self, x: torch.Tensor, index: torch.Tensor | slice | None = None) -> torch.Tensor:
        """Map model-space rows ``x`` (rows ``index`` of this split; all rows if None) to pixel space."""
        scale, offset = self.scale, self.offset
        if index is not None:
            if isinstance(scale, torch.Tensor) and scale.dim() == 2:
                scale = scale[index]
            if isinstance(offset, torch.Tensor) and offset.dim() == 2:
                offset = offset[index]
        if isinstance(scale, torch.Tensor):
            scale = scale.to(x.device, x.dtype)
        if isinstance(offset, torch.Tensor):
            offset = offset.to(x.device, x.dtype)
        return x * scale + offset

    def subset(self, index: torch.Tensor | slice) -> Split:
        def pick(v):
            return v[index] if isinstance(v, torch.Tensor) and v.dim() == 2 else v

        return Split(
            x=self.x[index],
            labels=None if self.labels is None else self.labels[index],
            scale=pick(self.scale),
            offset=pick(self.offset),
        )


@dataclass
class DataSplits:
    """What every registered source returns."""

    name: str
    train: Split
    val: Split
    test: Split
    image_shape: tuple[int, ...] | None  # e.g. (28, 28) for plotting rows as images; None for plain vectors
    normalization: str  # human-readable description of what was applied, e.g. "(x/255 - 0.1307) / 0.3081"
    n_classes: int | None = None
    true_dictionary: torch.Tensor | None = None  # synthetic sources: (d, l) ground-truth atoms as columns
    info: dict[str, Any] = field(default_factory=dict)
    preprocessing: Preprocessing | None = None  # raw rows -> model rows (None: unknown, e.g. user data)

    @property
    def dim(self) -> int:
        return self.train.x.shape[1]

    def describe(self) -> str:
        sizes = f"train {len(self.train)}, val {len(self.val)}, test {len(self.test)}"
        shape = "x".join(map(str, self.image_shape)) if self.image_shape else f"d={self.dim}"
        return f"{self.name}: {sizes}; samples {shape}; normalisation: {self.normalization}"
