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
global is imported (so no module named in the file is ever imported either).
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

ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
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
    return _RestrictedUnpickler(fh, source, encoding=encoding).load()


def load_data_pickle(path: Path, *, encoding: str = "bytes") -> Any:
    """:func:`restricted_load` of the file at ``path``."""
    path = Path(path)
    with open(path, "rb") as fh:
        return restricted_load(fh, str(path), encoding=encoding)
