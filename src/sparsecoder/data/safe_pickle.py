"""A restricted unpickler for user data files (CIFAR-10 python batches).

:func:`pickle.load` on a file someone else made runs any code the file names: a pickle is a small program
whose ``GLOBAL``/``STACK_GLOBAL`` opcodes import any callable (``os.system``, ``subprocess.Popen``, …)
and whose ``REDUCE`` opcode calls it (Python docs, "pickle — Restricting Globals"). The only safe way to
read such a file is to refuse every global except the few that the expected contents need.

A CIFAR-10 batch is a dict of ``bytes`` keys, ``bytes``/``str`` values, lists of ints and bytes, and
NumPy arrays. Builtin containers and scalars need no global at all; NumPy arrays need exactly these
(measured with NumPy 1.x and 2.x pickles, protocols 2 to 5):

===========================================  =========================================================
``numpy.core.multiarray._reconstruct``        ``ndarray.__reduce__`` (protocols ≤ 4), NumPy 1.x name
``numpy._core.multiarray._reconstruct``       the same, NumPy ≥ 2 name
``numpy.ndarray``, ``numpy.dtype``            the array's class and its dtype
``numpy.core.numeric._frombuffer``            protocol-5 arrays (NumPy 1.x and ≥ 2 names)
``_codecs.encode``                            ``bytes`` written by Python 3 with protocol 2
===========================================  =========================================================

Everything else raises :class:`UnsafePickleError` naming the file and the refused global, before the
global is imported (so no module named in the file is ever imported either). ``numpy.ndarray`` and
``_reconstruct`` are admitted only as ``ndarray.__reduce__`` uses them (an empty array, then its state):
called otherwise they would allocate whatever shape the file names.

The admitted globals are not enough: NumPy's ``dtype.__setstate__`` trusts its state tuple, and a
``BUILD`` of a malformed one (one byte of a genuine batch changed) crashed the process with a
segmentation fault or left a dtype that NumPy cannot use. So the file is read by Python's own
(pure-Python) unpickler, whose ``BUILD`` is replaced here: it sets the state of nothing but a fresh
numeric dtype (a state of the form NumPy writes, applied as NumPy's canonical tuple for that byte order)
and of the empty array of ``_reconstruct`` (shape, numeric dtype and byte count checked). The file is
read into memory first: the C unpickler and a file's ``read(n)`` allocate whatever length a corrupt
length field names (2⁴⁵ bytes: a MemoryError), a ``BytesIO`` returns only what is there.
"""

from __future__ import annotations

import codecs
import importlib
import io
import math
import pickle
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

__all__ = ["UnsafePickleError", "ALLOWED_GLOBALS", "restricted_load", "load_data_pickle"]


class UnsafePickleError(ValueError):
    """A pickle names a global outside :data:`ALLOWED_GLOBALS`; nothing in it was executed."""


def _numpy_core(module: str):
    """``numpy._core.<module>`` (NumPy ≥ 2) or ``numpy.core.<module>`` (NumPy 1.x), whichever exists."""
    try:
        return importlib.import_module(f"numpy._core.{module}")
    except ModuleNotFoundError:
        return importlib.import_module(f"numpy.core.{module}")


_multiarray = _numpy_core("multiarray")
_numeric = _numpy_core("numeric")

class _Refused(Exception):
    """An allowed global called as no genuine array pickle calls it (turned into :class:`UnsafePickleError`
    naming the file by :func:`restricted_load`)."""


class _NdarrayClass:
    """What the name ``numpy.ndarray`` unpickles to: the class handed to ``_reconstruct``, which is the only
    place a genuine pickle puts it. Called itself (a ``REDUCE`` of ``numpy.ndarray``), it would allocate any
    shape a 30-byte file asks for (``ndarray((2**40,))``: terabytes) and is refused."""

    def __call__(self, *args, **kwargs):
        raise _Refused("a call of numpy.ndarray (genuine array pickles go through _reconstruct)")


_NDARRAY = _NdarrayClass()


def _reconstruct(subtype, shape, dtype):
    """``numpy.core.multiarray._reconstruct`` as ``ndarray.__reduce__`` calls it: ``(ndarray, (0,), b'b')``,
    an empty array whose contents the next ``BUILD`` (``ndarray.__setstate__``) sets, checked against its
    shape. Any other class or shape (an allocation of any size) is refused."""
    if subtype is not _NDARRAY or tuple(shape) != (0,):
        what = "numpy.ndarray" if subtype is _NDARRAY else repr(subtype)
        raise _Refused(f"_reconstruct({what}, {shape!r}, …), not the empty array of ndarray.__reduce__")
    return _multiarray._reconstruct(np.ndarray, (0,), dtype)


def _numeric_dtype(dtype) -> np.dtype:
    """``dtype`` if it is a NumPy dtype of plain numbers (bool, integer, float, complex), else refused."""
    if (not isinstance(dtype, np.dtype) or dtype.kind not in "biufc" or dtype.names is not None
            or dtype.subdtype is not None):
        raise _Refused(f"an array of dtype {dtype!r} (data files hold arrays of plain numbers)")
    return dtype


def _dtype(spec, align=False, copy=True):
    """``numpy.dtype`` as ``dtype.__reduce__`` calls it: ``dtype('u1', False, True)``, a fresh copy (never
    NumPy's shared instance, whose byte order a ``BUILD`` would change for the whole process), of plain
    numbers or objects."""
    if not isinstance(spec, (str, bytes)):
        raise _Refused(f"numpy.dtype({spec!r}) (data files name plain dtypes such as 'u1')")
    try:
        dtype = np.dtype(spec.decode("ascii") if isinstance(spec, bytes) else spec, copy=True)
    except (TypeError, ValueError, UnicodeDecodeError) as err:
        raise _Refused(f"numpy.dtype({spec!r}): {err}") from None
    if dtype.kind == "O":  # harmless alone; an array of it is refused (after the globals its items name)
        return dtype
    return _numeric_dtype(dtype)


def _frombuffer(buffer, dtype, shape, order):
    """``_frombuffer`` (protocol-5 arrays) for plain numeric dtypes only."""
    return _numeric._frombuffer(buffer, _numeric_dtype(dtype), shape, order)


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("_codecs", "encode"): codecs.encode,
}

# the fields of a dtype's state tuple by its length, as NumPy's dtype.__setstate__ reads them (8: NumPy's own)
_DTYPE_STATE_FIELDS = {
    5: ("endian", "subarray", "fields", "elsize", "alignment"),
    6: ("version", "endian", "subarray", "fields", "elsize", "alignment"),
    7: ("version", "endian", "subarray", "names", "fields", "elsize", "alignment"),
    8: ("version", "endian", "subarray", "names", "fields", "elsize", "alignment", "flags"),
    9: ("version", "endian", "subarray", "names", "fields", "elsize", "alignment", "flags", "metadata"),
}


def _set_dtype_state(dtype: np.dtype, state) -> None:
    """``BUILD`` of a dtype from :func:`_dtype`: ``state`` must be one NumPy writes for such a dtype (a byte
    order, no fields, subarray or metadata, the default sizes and flags); NumPy's canonical state for that
    byte order is then applied, never the file's tuple itself."""
    fields = _DTYPE_STATE_FIELDS.get(len(state)) if isinstance(state, tuple) else None
    entries = dict(zip(fields, state, strict=True)) if fields else {}
    plain = (bool(entries) and entries.get("endian") in ("<", ">", "|", "=")
             and all(entries.get(key) is None for key in ("subarray", "names", "fields", "metadata"))
             and entries.get("version", 0) in (0, 1, 2, 3, 4)
             and entries["elsize"] in (-1, dtype.itemsize) and entries["alignment"] in (-1, dtype.alignment)
             and entries.get("flags", dtype.flags) == dtype.flags)
    if not plain:
        raise _Refused(f"a numpy.dtype state {state!r:.200} that NumPy does not write for dtype {dtype}")
    dtype.__setstate__(dtype.newbyteorder(entries["endian"]).__reduce__()[2])


def _set_array_state(array: np.ndarray, state) -> None:
    """``BUILD`` of the empty array of :func:`_reconstruct`: ``([version,] shape, dtype, fortran, bytes)``
    with a numeric dtype and exactly the bytes the shape needs."""
    parts = state[-4:] if isinstance(state, tuple) and len(state) in (4, 5) else None
    if parts is None or (len(state) == 5 and state[0] != 1):
        raise _Refused(f"a numpy array state of {type(state).__name__} {state!r:.200}")
    shape, dtype, _, data = parts
    _numeric_dtype(dtype)
    if (not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape)
            or not isinstance(data, (bytes, bytearray)) or math.prod(shape) * dtype.itemsize != len(data)):
        raise _Refused(f"a numpy array state whose shape {shape!r:.100} and {len(data)!r:.20} bytes of "
                       f"{dtype} do not match")
    array.__setstate__(state)


def _load_build(unpickler: _RestrictedUnpickler) -> None:
    stack = unpickler.stack
    state, target = stack.pop(), stack[-1]
    if type(target) is np.dtype or isinstance(target, np.dtype):
        _set_dtype_state(target, state)
    elif type(target) is np.ndarray and target.size == 0:
        _set_array_state(target, state)
    else:
        raise _Refused(f"setting the state of a {type(target).__name__} (data files set only arrays')")


class _RestrictedUnpickler(pickle._Unpickler):  # the pure-Python unpickler: its BUILD can be replaced
    dispatch = {**pickle._Unpickler.dispatch, pickle.BUILD[0]: _load_build}

    def __init__(self, fh: BinaryIO, source: str, **kwargs):
        super().__init__(fh, **kwargs)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._source}: refused to unpickle the global '{module}.{name}' (only NumPy arrays, "
                f"dicts, lists, str/bytes and numbers are read from data files; a pickle that names "
                f"anything else could run code) — the file is not a plain data file; do not use it"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._source}: refused a persistent id in the pickle (not a data file)")


def restricted_load(fh: BinaryIO, source: str, *, encoding: str = "bytes") -> Any:
    """Unpickle ``fh`` admitting only :data:`ALLOWED_GLOBALS`; ``source`` names the file in errors.

    ``encoding="bytes"`` reads Python 2 ``str`` objects (as in the CIFAR-10 batches) as ``bytes``.

    Raises
    ------
    UnsafePickleError
        The pickle names a refused global (nothing was imported or called).
    """
    try:
        return _RestrictedUnpickler(io.BytesIO(fh.read()), source, encoding=encoding).load()
    except _Refused as err:
        raise UnsafePickleError(f"{source}: refused to unpickle {err} — the file is not a plain data "
                                "file; do not use it") from None


def load_data_pickle(path: Path, *, encoding: str = "bytes") -> Any:
    """:func:`restricted_load` of the file at ``path``."""
    path = Path(path)
    with open(path, "rb") as fh:
        return restricted_load(fh, str(path), encoding=encoding)
