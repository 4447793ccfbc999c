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
from typing import TYPE_CHECKING, Any

import numpy as np

from sparsecoder import util
from sparsecoder.data.preprocessing import Preprocessing

if TYPE_CHECKING:
    import torch


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

    @property
    def dtype(self):
        """``torch.float32``, the dtype of the rows as read (a property: torch is imported on first use)."""
        import torch

        return torch.float32

    def __init__(self, array: np.ndarray, file_rows: np.ndarray, preprocessing: Preprocessing,
                 device: torch.device | str = "cpu"):
        import torch

        self.array = array
        self.file_rows = np.asarray(file_rows, dtype=np.int64)
        self.preprocessing = preprocessing
        self.device = torch.device(device)

    @property
    def shape(self) -> torch.Size:
        import torch

        return torch.Size((len(self.file_rows), self.array.shape[1]))

    def __len__(self) -> int:
        return len(self.file_rows)

    def dim(self) -> int:
        return 2

    def to(self, device=None, dtype=None) -> MemmapRows:
        """The same rows bound to ``device``; ``dtype`` must be float32 (or None)."""
        import torch

        if isinstance(device, torch.dtype):
            device, dtype = None, device
        if dtype is not None and dtype != torch.float32:
            raise ValueError(f"memory-mapped rows are read as float32, not {dtype}")
        return MemmapRows(self.array, self.file_rows, self.preprocessing,
                          self.device if device is None else device)

    def __getitem__(self, index) -> torch.Tensor:
        import torch

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
    the process's resident set no longer counts them. A no-op for ordinary arrays, where the platform
    lacks ``madvise``, and for writable mappings: on a copy-on-write one (``np.load(path, mmap_mode="c")``,
    an array a user may hand to ``encode_run``) it would silently undo every change made in memory.
    """
    base = array
    while base is not None and not isinstance(getattr(base, "_mmap", None), mmap.mmap):
        base = getattr(base, "base", None)
    if base is not None and getattr(base, "mode", None) != "r":
        return
    handle = None if base is None else base._mmap
    if handle is not None and hasattr(handle, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        handle.madvise(mmap.MADV_DONTNEED)


def check_rows_fit(n_rows: int, row_bytes: int, what: str, fix: str) -> None:
    """Refuse, before any work, ``n_rows`` samples of ``row_bytes`` bytes each (every array a source builds
    per sample) that exceed this machine's physical memory: ``n_train=2**40`` would otherwise run into a
    ``MemoryError`` (or the kernel's OOM killer) after the images are read. ``what`` names the samples
    (e.g. "24000 patches of 28×28"), ``fix`` the options that size them. Nothing is checked where the
    platform does not report its memory."""
    needed, memory = int(n_rows) * int(row_bytes), util.physical_memory()
    if memory is not None and needed > memory:
        raise ValueError(f"{what} need {needed / 2**30:,.1f} GiB, more than this machine's "
                         f"{memory / 2**30:,.1f} GiB of memory; {fix}")


# Largest number of classes labels may index when no n_classes bounds them (a data file's own labels, the
# draw of samples per class): the probe's linear layer, a one-hot or a bincount is n_classes wide, and a
# label of 10**12 would ask for terabytes. 100,000 covers ImageNet-21k's 21,841 classes.
MAX_CLASSES = 100_000


def _some(count: int, what: str, singular: str, plural: str) -> str:
    """``count`` of the values ``what`` (a plural noun) and what is wrong with them, in agreement:
    ``"1 of the labels is NaN or inf"``, ``"3 labels are NaN or inf"``."""
    return f"1 of the {what} {singular}" if count == 1 else f"{count:,} {what} {plural}"


def check_integer_values(path, what: str, values, low: int, high: int, fix: str) -> None:
    """Refuse ``values`` (of file ``path``; ``None``: ``what`` alone names them) unless each is an integer in
    ``[low, high]`` — the one check of integer data (pixel bytes, class labels) behind :func:`check_labels`.

    A cast such as ``astype(np.uint8)`` would wrap 300 to 44 and −1 to 255 and truncate 0.5 to 0 without a
    word; this names the file, what was found (dtype, NaN/inf, a non-integer value or the range) and
    ``fix``. Integral floats (e.g. 3.0) pass; bools (True is not the integer 1 here), complex numbers,
    strings and Python objects (e.g. ints beyond 64 bits) do not. Comparisons are exact for every integer
    dtype (a uint64 beyond int64 is out of range, not wrapped).
    """
    prefix = "" if path is None else f"{path}: "
    values = np.asarray(values)
    expected = f"expected integers {low}–{high}; {fix}"
    if values.dtype.kind not in "iuf":
        kind = {"b": " (True/False, not integers)",
                "O": " (Python objects: mixed types, or integers beyond 64 bits)"}.get(values.dtype.kind, "")
        raise ValueError(f"{prefix}{what} have dtype {values.dtype}{kind}; {expected}")
    if values.size == 0:
        return
    if values.dtype.kind == "f":
        finite = np.isfinite(values)
        if not finite.all():
            problem = _some(int((~finite).sum()), what, "is NaN or inf", "are NaN or inf")
            raise ValueError(f"{prefix}{problem}; {expected}")
        fractional = values != np.floor(values)
        if fractional.any():
            problem = _some(int(fractional.sum()), what, "is not an integer", "are not integers")
            raise ValueError(f"{prefix}{problem} (e.g. {values[fractional].flat[0].item()!r}); {expected}")
    lowest, highest = values.min(), values.max()
    if lowest < low or highest > high:
        raise ValueError(f"{prefix}{what} range from {lowest} to {highest} ({values.dtype.name}); "
                         f"{expected}")


def check_labels(labels, what: str, fix: str, *, n_classes: int | None = None,
                 length: int | None = None, path=None) -> np.ndarray:
    """``labels`` (array, tensor or list) as a 1-D int64 array of class indices ``0 … n_classes − 1``
    (``0 … MAX_CLASSES − 1`` when ``n_classes`` is None), of ``length`` entries when given.

    The one check of class labels (data files, probes, top-k errors): the shape here, the values by
    :func:`check_integer_values` (integral floats pass; bools, NaN, fractions, negatives, labels beyond the
    classes and Python objects do not). Raises ``ValueError`` ``"[{path}: ]{what} <problem>; <expected>;
    {fix}"``: ``path`` is the file they come from, ``what`` names them (split, argument or array),
    ``fix`` says how to mend them.
    """
    import torch

    prefix = "" if path is None else f"{path}: "
    try:
        if isinstance(labels, torch.Tensor):
            labels = labels.detach().cpu()
            if labels.is_floating_point() and labels.dtype not in (torch.float16, torch.float32,
                                                                   torch.float64):
                labels = labels.double()  # bfloat16 & co. have no NumPy dtype; exact in float64
            values = labels.numpy()
        else:
            values = np.asarray(labels)
    except (ValueError, TypeError) as err:  # ragged lists, unsupported tensor dtypes
        raise ValueError(f"{prefix}{what} are not an array of numbers ({err}); {fix}") from None
    shape = "(n,)" if length is None else f"({length},)"
    if values.ndim != 1 or (length is not None and values.shape[0] != length):
        raise ValueError(f"{prefix}{what} must be 1-D, one class index per sample (shape {shape}), got shape "
                         f"{values.shape}; {fix}")
    high = (MAX_CLASSES if n_classes is None else int(n_classes)) - 1
    check_integer_values(path, what, values, 0, high, fix)
    return values.astype(np.int64)


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
        import torch

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
        import torch

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
        if not (len(self.train) or len(self.val) or len(self.test)):  # a saved run's description, no rows
            sizes = "its rows not loaded"
        shape = "x".join(map(str, self.image_shape)) if self.image_shape else f"d={self.dim}"
        return f"{self.name}: {sizes}; samples {shape}; normalisation: {self.normalization}"
