"""Any ``.npy``/``.npz`` file of vectors (e.g. network activations) as seeded train/val/test splits.

A ``.npy`` file is memory-mapped (``np.load(path, mmap_mode="r")``) by default: the training split stays
in the file (a :class:`~sparsecoder.data.base.MemmapRows` read per batch), so files larger than memory
train; the validation and test splits are read into memory.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from pathlib import Path
from tokenize import TokenError

import numpy as np

from sparsecoder.data.base import (
    DataSplits,
    MemmapRows,
    Split,
    check_labels,
    check_rows_fit,
    gather_rows,
    release_pages,
)
from sparsecoder.data.preprocessing import Identity, Preprocessing, Standardize
from sparsecoder.util import FLOAT32_MAX

DATA_KEYS = ("x", "X", "data", "activations", "features")
LABEL_KEYS = ("labels", "y")
STANDARDIZE = ("none", "global", "feature")
CHUNK_VALUES = 1 << 22  # values per chunk when scanning a file (32 MB as float64)
# bytes per value read_array_file keeps besides the file's own: a float64 copy and the float32 splits
_SPLIT_VALUE_BYTES = 8 + 4
_MEMORY_FIX = ("save it as one .npy file and keep the data option memory_map: true (the training split is "
               "then read from the file per batch)")
NPY_MAGIC = b"\x93NUMPY"


def read_array_file(path: Path, key: str | None = None
                    ) -> tuple[np.ndarray, np.ndarray | None, tuple[int, ...]]:
    """``(vectors (n, d) float64, labels (n,) int64 or None, sample_shape)`` from a ``.npy`` or ``.npz`` file.

    ``.npz``: the data array is ``key`` if given, else the first of ``x, X, data, activations, features``
    present, else the only array not named ``labels``/``y``; labels are ``labels`` or ``y`` if present,
    class indices 0 … MAX_CLASSES − 1 (:func:`~sparsecoder.data.base.check_labels`; 3.0 passes, 3.5 not).
    Arrays of more than two axes are flattened per sample (:func:`sample_rows`); the third value returned is
    the per-sample shape before flattening (``(d,)`` for 2-D data). Headers are checked against the file size
    before any data is read (:func:`check_npy_file`); dtypes other than bool/integer/float, NaN/inf and
    values beyond float32's range are refused, naming the file.
    """
    path = _array_path(path)
    labels = label_key = None
    if path.suffix.lower() == ".npy":
        if key is not None:
            raise ValueError(f"{path}: option key applies to .npz files only")
        data, sample_shape = read_rows_file(path, value_bytes=_SPLIT_VALUE_BYTES, fix=_MEMORY_FIX)
        return data.astype(np.float64), None, sample_shape
    # only the members used are checked and read: other arrays (names, text, objects) may be anything
    key, label_key = _npz_keys(path, key)
    shape, dtype = _check_npz_members(path, key, label_key)
    if dtype is not None:
        _check_read_fits(path, shape, dtype, _SPLIT_VALUE_BYTES, _MEMORY_FIX)
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                data = loaded[key]
                labels = None if label_key is None else loaded[label_key]
        else:
            data = loaded
    except (OSError, EOFError, ValueError, SyntaxError, TokenError, zipfile.BadZipFile, zlib.error,
            NotImplementedError, RuntimeError, KeyError) as err:
        raise _corrupt(path, err) from None
    if not isinstance(data, np.ndarray):  # a member that is not a .npy array: np.load gives its bytes
        raise ValueError(f"{path}: member '{key}' is not a .npy array; save the vectors with np.savez")
    data, sample_shape = sample_rows(path, data)
    check_values(path, data)
    data = data.astype(np.float64)
    if labels is not None:
        # n_classes becomes max + 1 (the probe's width): -1 as 'unlabelled', 2**40 or 3.5 are refused here
        labels = check_labels(labels, *_labels_what_fix(label_key), path=path, length=len(data))
    return data, labels, sample_shape


def _labels_what_fix(label_key: str) -> tuple[str, str]:
    """How the errors name the labels member ``label_key`` of an ``.npz`` file, and how to mend it."""
    what = "labels" + ("" if label_key == "labels" else f" ('{label_key}')")
    fix = ("renumber the classes from 0 (e.g. np.unique(labels, return_inverse=True)[1]), or leave the "
           "labels array out for unlabelled rows")
    return what, fix


def _array_path(path, any_suffix: bool = False) -> Path:
    """``path`` as a Path to an existing ``.npy``/``.npz`` file (any case; any name if ``any_suffix``), else
    an error naming the problem."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give the .npy or .npz file itself")
    if not path.is_file():
        if path.exists():  # a FIFO, a device (/dev/stdin, /dev/zero), a socket: "does not exist" misled
            raise ValueError(f"{path} is not a regular file (a pipe, device or socket); save the array with "
                             f"np.save and give that file's path")
        if path.is_symlink():
            raise FileNotFoundError(f"array file {path} is a broken symbolic link (to {os.readlink(path)}); "
                                    f"fix the link or give the file's real path")
        raise FileNotFoundError(f"array file {path} does not exist")
    if not any_suffix and path.suffix.lower() not in (".npy", ".npz"):
        raise ValueError(f"{path}: expected a .npy or .npz file (convert a CSV or text file first, e.g. "
                         f"np.save('x.npy', np.loadtxt('x.csv', delimiter=',', skiprows=1)))")
    return path


def _npz_keys(path: Path, key: str | None) -> tuple[str, str | None]:
    """``(data member, labels member or None)`` of the ``.npz`` file ``path`` by its member names alone (see
    :func:`read_array_file`)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n[:-4] if n.endswith(".npy") else n for n in archive.namelist()]
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError) as err:
        raise _corrupt(path, err) from None
    if key is None:
        present = [k for k in DATA_KEYS if k in names] or [k for k in names if k not in LABEL_KEYS]
        if len(present) != 1 and not any(k in names for k in DATA_KEYS):
            raise ValueError(f"{path}: cannot tell which array holds the vectors among {names}; "
                             "name it x (or pass the option key=NAME)")
        key = present[0]
    if key not in names:
        raise ValueError(f"{path}: no array '{key}'; the file holds {names}")
    return key, next((k for k in LABEL_KEYS if k in names and k != key), None)


def sample_rows(path, data: np.ndarray, min_rows: int = 3) -> tuple[np.ndarray, tuple[int, ...]]:
    """``(rows, sample_shape)``: the array ``data`` of samples ``(n, …)`` as the ``arrays`` source reads
    it — real numbers, at least ``min_rows`` samples of at least one value, each sample flattened in C
    order to one row ``(n, d)`` (a view where it can be) — and the per-sample shape ``data.shape[1:]``.

    The one rule for the rows of a file, shared by the loader (training), ``sparsecoder encode/decode``
    and :func:`sparsecoder.train.run.encode_run`/``decode_run``: ``(n, 4, 5)`` is 20 features per row
    everywhere. ``path`` names the data in the errors.
    """
    check_dtype(path, data.dtype)
    if data.ndim < 2 or len(data) < min_rows:
        raise ValueError(f"{path}: expected samples × features (n×d, or n×H×W… flattened per sample) with "
                         f"n >= {min_rows}, got shape {data.shape}")
    if data.size == 0:
        raise ValueError(f"{path}: the rows have no features (shape {data.shape}); expected n×d with d >= 1")
    return data.reshape(len(data), -1), tuple(data.shape[1:])


def image_shape_of(sample_shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The ``image_shape`` that per-sample arrays of ``sample_shape`` describe: ``(H, W)`` for two axes,
    ``(H, W, C)`` for three with ``C`` 3 or 4 (colour stored pixel by pixel); None otherwise (plain
    vectors, or axes that are no image). Axes of size 1 are left out first (they do not change the
    flattened order): PyTorch's ``(n, 1, H, W)`` grey images and ``(n, H, W, 1)`` are ``(H, W)``."""
    sample_shape = tuple(n for n in sample_shape if n != 1)
    if len(sample_shape) == 2 or (len(sample_shape) == 3 and sample_shape[2] in (3, 4)):
        return tuple(int(n) for n in sample_shape)
    return None


def read_rows_file(path: Path, *, min_rows: int = 3, memory_map: bool = False, values: bool = True,
                   value_bytes: int = 0, row_bytes: int = 0, fix: str | None = None
                   ) -> tuple[np.ndarray, tuple[int, ...]]:
    """``(rows (n, d), sample_shape)`` of the ``.npy`` file ``path`` as the ``arrays`` source reads it:
    header checked against the file's size before any data is read (:func:`check_npy_file`), samples
    flattened per sample (:func:`sample_rows`), NaN/inf and values beyond float32's range refused
    (:func:`check_values`; ``values=False``: left to the caller, which scans them itself). ``memory_map``:
    the rows stay in the file (read-only, C order needed), else they are read into memory in the file's
    dtype — refused before reading, naming ``fix``, when the file's values plus the caller's
    ``value_bytes`` per value and ``row_bytes`` per row (its copies and outputs) exceed this machine's
    memory (:func:`~sparsecoder.data.base.check_rows_fit`)."""
    path = _array_path(path, any_suffix=True)
    shape, dtype = check_npy_file(path)
    if not memory_map:
        _check_read_fits(path, shape, dtype, value_bytes, fix or "split it into smaller files", row_bytes)
    try:
        data = np.load(path, mmap_mode="r" if memory_map else None, allow_pickle=False)
    except (OSError, EOFError, ValueError) as err:
        raise _corrupt(path, err) from None
    if memory_map and data.ndim > 1 and not data.flags.c_contiguous:
        raise ValueError(f"{path}: a Fortran-ordered .npy cannot be read row by row; save it C-ordered "
                         "(np.save(path, np.ascontiguousarray(x))) or set the data option memory_map: false")
    rows, sample_shape = sample_rows(path, data, min_rows)
    if values:
        check_values(path, rows)
    return rows, sample_shape


def _check_read_fits(path: Path, shape, dtype: np.dtype, value_bytes: int, fix: str, row_bytes: int = 0
                     ) -> None:
    """Refuse, before reading, a file of ``shape``/``dtype`` whose values (plus ``value_bytes`` per value and
    ``row_bytes`` per sample that its reader keeps besides) do not fit this machine's memory."""
    n = shape[0] if shape else 1
    per_row = math.prod(shape[1:]) * (dtype.itemsize + value_bytes) + row_bytes
    check_rows_fit(n, per_row, f"{path}: its {math.prod(shape):,} values read into memory", fix)


def check_dtype(path: Path, dtype: np.dtype) -> None:
    """Refuse a dtype that does not hold real numbers (bool, integers and floats pass), naming it.

    ``np.issubdtype(dtype, np.number)`` is not the test: ``timedelta64`` counts as an integer there and
    would be read as its count of units.
    """
    dtype = np.dtype(dtype)
    if dtype.kind in "biuf":
        return
    if dtype.kind == "c":
        raise ValueError(f"{path}: array of complex dtype {dtype}; the models take real numbers — save "
                         f"np.real(x), np.abs(x) or the real and imaginary parts side by side")
    if dtype.names is not None or dtype.subdtype is not None:
        raise ValueError(f"{path}: array of structured dtype {dtype}; save the vectors as one plain n×d "
                         "numeric array (e.g. np.stack([x[name] for name in x.dtype.names], axis=1))")
    what = {"m": "time spans (timedelta64)", "M": "dates (datetime64)", "O": "Python objects (pickled)",
            "U": "text", "S": "bytes", "V": "raw bytes"}.get(dtype.kind, "no numbers")
    raise ValueError(f"{path}: array of dtype {dtype} holds {what}, not real numbers; save a numeric array "
                     "(bool, integer or float)")


def _corrupt(path: Path, err: BaseException | str, where: str = "") -> ValueError:
    if isinstance(err, BaseException):  # TokenError's args are (message, position); EOFError() has none
        err = str(err.args[0]) if err.args else type(err).__name__
    reason = where + (err.splitlines()[0] if err else "")
    return ValueError(f"{path}: cannot read array file ({reason}); the file is corrupt or truncated")


def _read_npy_header(path: Path, stream, where: str = "", check: bool = True
                     ) -> tuple[tuple[int, ...], np.dtype, int]:
    """``(shape, dtype, header bytes)`` of the ``.npy`` ``stream`` (at its start), dtype checked
    (:func:`check_dtype`) if ``check``."""
    try:
        version = np.lib.format.read_magic(stream)
        if version not in ((1, 0), (2, 0), (3, 0)):
            raise ValueError(f"unknown .npy format version {version[0]}.{version[1]}")
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read_header(stream)
    except Exception as err:  # noqa: BLE001 - numpy's header parser raises ValueError, TokenError, EOFError…
        raise _corrupt(path, err, f"{where}.npy header: ") from None
    if any(n < 0 for n in shape):
        raise _corrupt(path, f"negative size in shape {shape}", f"{where}.npy header: ")
    if check:
        check_dtype(path, dtype)
    return shape, dtype, stream.tell()


def _check_size(path: Path, shape, dtype: np.dtype, header: int, size: int, where: str = "") -> None:
    expected = header + math.prod(shape) * dtype.itemsize  # Python ints: a forged shape cannot overflow
    if size != expected:
        raise ValueError(
            f"{path}: {where}holds {size - header} bytes of data but its header says shape {shape} of "
            f"{dtype} ({expected - header} bytes); the file is corrupt or truncated — write it again"
        )


def check_npy_file(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Read only the header of the ``.npy`` file ``path`` and refuse it, naming the file, if the header is
    corrupt, the dtype is not real numbers (:func:`check_dtype`) or the header's shape × item size is
    not the file's size (a truncated file, or a forged shape that would ask for terabytes); returns
    ``(shape, dtype)``."""
    with open(path, "rb") as stream:
        _check_npy_magic(path, stream.read(len(NPY_MAGIC)))
        stream.seek(0)
        shape, dtype, header = _read_npy_header(path, stream)
    _check_size(path, shape, dtype, header, path.stat().st_size)
    return shape, dtype


def _check_npy_magic(path: Path, start: bytes) -> None:
    """Refuse a file that does not start as a ``.npy`` file does, saying what it seems to be instead (an
    ``.npz`` archive, a MATLAB file, text such as CSV) and how to convert it."""
    if start == NPY_MAGIC:
        return
    if start.startswith(b"PK\x03\x04") or start.startswith(b"PK\x05\x06"):
        what, fix = "an .npz (zip) archive", "save the array as .npy (np.save(path, np.load(npz)[key]))"
    elif start.startswith(b"MATLAB"):
        what, fix = "a MATLAB .mat file", "convert it (np.save(path, scipy.io.loadmat(mat)[name]))"
    elif start and all(32 <= b < 127 or b in b"\t\r\n" for b in start):
        what, fix = ("text (CSV or similar)", "convert it: np.save(path, np.loadtxt(text, delimiter=',', "
                                                "ndmin=2)), with skiprows=1 for a header line")
    else:
        what, fix = "not a .npy file", "write it with np.save"
    what = what if what.startswith("not") else f"not a .npy file but {what}"
    raise ValueError(f"{path}: cannot read array file: it is {what}; {fix}")


def _check_npz_members(path: Path, key: str, label_key: str | None
                       ) -> tuple[tuple[int, ...] | None, np.dtype | None]:
    """The ``.npy`` members ``key`` (the vectors: real numbers, :func:`check_dtype`) and ``label_key`` (class
    indices: :func:`~sparsecoder.data.base.check_labels`'s dtypes) of the archive ``path``: header, dtype
    and uncompressed size checked before either is read (as :func:`check_npy_file` does for a file).
    Returns ``(shape, dtype)`` of ``key``, ``(None, None)`` if it is not a ``.npy`` member."""
    found = None, None
    try:
        with zipfile.ZipFile(path) as archive:
            for name in (key, label_key):
                if name is None or name + ".npy" not in archive.namelist():
                    continue  # no member, or not a .npy member: read_array_file names it
                info = archive.getinfo(name + ".npy")
                where = f"member '{name}': "
                with archive.open(info) as stream:
                    shape, dtype, header = _read_npy_header(path, stream, where, check=False)
                if name == key:
                    check_dtype(path, dtype)
                    found = shape, dtype
                else:  # labels of text, objects… named as labels before numpy refuses to read them
                    check_labels(np.empty(0, dtype), *_labels_what_fix(name), path=path)
                _check_size(path, shape, dtype, header, info.file_size, where)
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError) as err:
        raise _corrupt(path, err) from None
    return found


def check_values(path: Path, data: np.ndarray, *, in_file: bool = True) -> None:
    """Refuse NaN/inf and finite values beyond float32's range (±3.4e38: the models compute in float32,
    where they would become inf), scanning ``(n, d)`` ``data`` in chunks of rows (the pages of a
    memory-mapped file released after each). Integers and booleans pass: even int64 fits that range.
    ``path`` names the data in the messages (a description when ``in_file`` is False: in-memory rows)."""
    if data.dtype.kind != "f":
        return
    wide = data.dtype.itemsize > 4
    bad_rows, bad_values, big_rows, big_values, largest = [], 0, [], 0, 0.0
    step = _chunk_rows(data.shape[1])
    for start in range(0, len(data), step):
        block = np.asarray(data[start:start + step])
        bad = ~np.isfinite(block)
        if bad.any():
            bad_values += int(bad.sum())
            bad_rows += (start + np.flatnonzero(bad.any(axis=1))).tolist()
        if wide:
            magnitude = np.abs(np.where(bad, 0, block))
            big = magnitude > FLOAT32_MAX
            if big.any():
                big_values += int(big.sum())
                big_rows += (start + np.flatnonzero(big.any(axis=1))).tolist()
                largest = max(largest, float(magnitude.max()))
        release_pages(data)
    if bad_values:
        raise ValueError(f"{path}: {bad_values} NaN/inf value(s) in {len(bad_rows)} row(s) "
                         f"(first rows {bad_rows[:5]}); remove or replace them first")
    if big_values:
        raise ValueError(f"{path}: {big_values} value(s) in {len(big_rows)} row(s) (first rows "
                         f"{big_rows[:5]}) exceed float32's range ±3.4e38 (largest magnitude {largest:.3g}); "
                         "the models compute in float32 — rescale the array (e.g. divide it by a constant)"
                         + (" and save it again" if in_file else ""))


def _image_shape(image_shape) -> tuple[int, ...] | None:
    """``image_shape`` as a tuple ``(H, W)`` or ``(H, W, 3|4)`` of positive integers (one integer ``S``:
    ``(S, S)``), checked before the file is read."""
    if image_shape is None:
        return None
    if isinstance(image_shape, int) and not isinstance(image_shape, bool):
        image_shape = [image_shape, image_shape]
    if (not isinstance(image_shape, (list, tuple))
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in image_shape)
            or len(image_shape) not in (2, 3) or min(image_shape) < 1
            or (len(image_shape) == 3 and image_shape[2] not in (3, 4))):
        raise ValueError(f"image_shape must be [height, width] of positive integers, [height, width, 3 or 4] "
                         f"for colour, or one integer for square images; got {image_shape!r}")
    return tuple(image_shape)


def _chunk_rows(n_features: int) -> int:
    return max(1, CHUNK_VALUES // max(1, n_features))


def _read_rows(data: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``data[rows]`` as float64, in the order of ``rows`` (:func:`~sparsecoder.data.base.gather_rows`)."""
    return gather_rows(data, rows).astype(np.float64)


def training_statistics(data: np.ndarray, rows: np.ndarray, standardize: str):
    """``(mean, std)`` of ``data[rows]`` for ``standardize`` ("global": scalars; "feature": per column),
    in float64 over chunks of rows (two passes: mean, then the mean squared deviation), so an in-memory
    array and a memory-mapped file give identical numbers.

    A constant column ("global": constant data) gets its value as the mean and σ = 1, so it standardises
    to exactly 0: its computed mean differs from the value by rounding (1,000 copies of 0.1 average to
    0.1 + 1e-17), and that rounding taken as σ made the column ±1 in every row."""
    rows = np.sort(rows)
    per_feature = standardize == "feature"
    step = _chunk_rows(data.shape[1])
    chunks = [rows[k:k + step] for k in range(0, len(rows), step)]
    total = np.zeros(data.shape[1])
    low, high = np.full(data.shape[1], np.inf), np.full(data.shape[1], -np.inf)
    for chunk in chunks:
        block = _read_rows(data, chunk)
        total += block.sum(axis=0)
        low, high = np.minimum(low, block.min(axis=0)), np.maximum(high, block.max(axis=0))
    count = len(rows) if per_feature else len(rows) * data.shape[1]
    mean = total / len(rows) if per_feature else total.sum() / count
    squares = np.zeros(data.shape[1])
    for chunk in chunks:
        squares += ((_read_rows(data, chunk) - mean) ** 2).sum(axis=0)
    if per_feature:
        constant = low == high
        std = np.sqrt(squares / len(rows))
        return np.where(constant, low, mean), np.where(constant | (std == 0), 1.0, std)
    if low.min() == high.max():
        return float(low.min()), 1.0
    return float(mean), float(np.sqrt(squares.sum() / count)) or 1.0


def load_arrays(*, seed: int = 0, limit: int | None = None, data_dir: str | None = None,
                path: str | None = None, key: str | None = None, val_fraction: float = 0.1,
                test_fraction: float = 0.1, standardize: str = "none",
                image_shape: int | list[int] | None = None, memory_map: bool = True) -> DataSplits:
    """Vectors from a ``.npy``/``.npz`` file (option ``path``, or ``data_dir`` naming the file).

    Rows are shuffled (seeded) and split ``1 − val_fraction − test_fraction`` / ``val_fraction`` /
    ``test_fraction``. ``standardize``: ``"none"``; ``"global"`` ``(x − μ)/σ`` with the scalar mean/std of
    the training split; ``"feature"`` the same per column (σ = 1 where a column is constant). This is the
    row-wise :class:`~sparsecoder.data.preprocessing.Standardize` (``Identity`` for ``"none"``) in
    ``DataSplits.preprocessing``; raw rows are the values as stored in the file. The inverse is also kept
    in ``Split.scale``/``offset``. ``image_shape`` (e.g. ``[28, 28]``; ``[H, W, 3]`` or ``[H, W, 4]`` for
    colour rows stored pixel by pixel; one integer ``S`` for square ``[S, S]``) is only for plotting; its
    sizes must be positive and hold the row's values. Without it, a file of per-sample ``H×W`` arrays
    (``(n, H, W)``, or ``(n, H, W, 3|4)``) gives ``image_shape`` ``(H, W)`` (``(H, W, C)``); the samples
    are flattened to rows of ``H·W(·C)`` values either way (:func:`sample_rows`, as ``encode`` does).
    ``memory_map`` (``.npy`` only): keep the training split in the memory-mapped file and read it per
    batch (:class:`~sparsecoder.data.base.MemmapRows`); ``False`` reads the file into memory.
    """
    import torch

    # ``~`` expanded as for data_dir (registry.expand_data_dir): sh, zsh and YAML files pass it literally
    path, data_dir = (None if p is None else os.path.expanduser(p) for p in (path, data_dir))
    if path is not None and data_dir is not None and Path(path) != Path(data_dir):
        raise ValueError("give the array file either as option path or as data_dir, not both")
    source = path if path is not None else data_dir
    if source is None:
        raise ValueError("the arrays source needs a file: --set path=FILE.npz (or data_dir=FILE.npy)")
    if standardize not in STANDARDIZE:
        raise ValueError(f"standardize={standardize!r} is not allowed; choose one of {list(STANDARDIZE)}")
    if not isinstance(memory_map, bool):
        raise ValueError(f"memory_map must be true or false, got {memory_map!r}")
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not isinstance(value, (int, float)) or not 0 < value < 1:
            raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    if val_fraction + test_fraction >= 1:
        raise ValueError("val_fraction + test_fraction must be < 1")
    shape = _image_shape(image_shape)
    mapped = memory_map and Path(source).suffix.lower() == ".npy"
    if mapped:
        if key is not None:
            raise ValueError(f"{source}: option key applies to .npz files only")
        (data, sample_shape), labels = read_rows_file(Path(source), memory_map=True), None
    else:
        data, labels, sample_shape = read_array_file(Path(source), key)
    if shape is None:  # samples stored as H×W (or H×W×3|4) arrays: plotted as such
        shape = image_shape_of(sample_shape)
    n = len(data)
    n_val, n_test = max(1, round(n * val_fraction)), max(1, round(n * test_fraction))
    if n - n_val - n_test < 1:
        raise ValueError(f"{source}: {n} rows are too few for val_fraction={val_fraction:g} and "
                         f"test_fraction={test_fraction:g}: {n_val} validation and {n_test} test rows leave "
                         f"none to train on; lower the fractions or give more rows")
    if shape is not None and math.prod(shape) != data.shape[1]:
        raise ValueError(f"{source}: image_shape {list(shape)} holds {math.prod(shape)} values but the rows "
                         f"have {data.shape[1]}; give sizes whose product is {data.shape[1]}")
    order = np.random.default_rng(seed).permutation(n)
    index = {"val": order[:n_val], "test": order[n_val:n_val + n_test], "train": order[n_val + n_test:]}
    if limit is not None:
        index["train"] = index["train"][:limit]
    preprocessing: Preprocessing
    if standardize == "none":
        offset, scale, description = 0.0, 1.0, "none (values as stored)"
        preprocessing = Identity()
    else:
        offset, scale = training_statistics(data, index["train"], standardize)
        description = (f"(x − {offset:.4g}) / {scale:.4g} (training-split mean/std)"
                       if standardize == "global" else "(x − μ_j) / σ_j per feature (training split)")
        preprocessing = Standardize(offset, scale)
    splits = {}
    for key_ in ("train", "val", "test"):
        if mapped and key_ == "train":
            x = MemmapRows(data, index[key_], preprocessing)
        else:
            x = preprocessing.forward(_read_rows(data, index[key_]))
        splits[key_] = Split(
            x=x,
            labels=None if labels is None else torch.from_numpy(labels[index[key_]]),
            scale=torch.tensor(scale, dtype=torch.float32) if np.ndim(scale) else float(scale),
            offset=torch.tensor(offset, dtype=torch.float32) if np.ndim(offset) else float(offset),
        )
    return DataSplits(
        name=f"arrays ({source})", **splits, image_shape=shape, normalization=description,
        n_classes=None if labels is None else int(labels.max()) + 1,
        info={"path": str(source), "rows": n, "memory_mapped": mapped}, preprocessing=preprocessing,
    )
