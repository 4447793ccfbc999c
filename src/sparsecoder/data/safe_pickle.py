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
"""

from __future__ import annotations

import codecs
import importlib
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


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("_codecs", "encode"): codecs.encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
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
        return _RestrictedUnpickler(fh, source, encoding=encoding).load()
    except _Refused as err:
        raise UnsafePickleError(f"{source}: refused to unpickle {err} — the file is not a plain data "
                                "file; do not use it") from None


def load_data_pickle(path: Path, *, encoding: str = "bytes") -> Any:
    """:func:`restricted_load` of the file at ``path``."""
    path = Path(path)
    with open(path, "rb") as fh:
        return restricted_load(fh, str(path), encoding=encoding)
