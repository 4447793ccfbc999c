"""Atomic file writes: a temp file in the same folder, then ``os.replace``.

A failed write (disk full, read-only folder, a parent that is a file) removes its temp file, leaves the
previous file untouched and raises an :class:`OSError` of the same type whose message names the path.
``overwrite=False`` (a user's output file written without ``--overwrite``) puts the file in place with
``os.link``, which fails if the path exists by then: a file created there while the command computed (its
``check_output_file`` passed minutes earlier) is kept, and the write is a :class:`FileExistsError`.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any


class OutputExists(FileExistsError):
    """A write with ``overwrite=False`` found a file at its path (made there while the command ran)."""


def _atomic(path: Path, data, overwrite: bool = True) -> None:
    """``data``: the bytes to write, or a function writing them to the open file (no preallocation)."""
    path = Path(path)
    try:
        _atomic_unchecked(path, data, overwrite)
    except OutputExists:
        raise
    except OSError as err:
        if err.errno is None:
            raise
        raise type(err)(err.errno, f"cannot write {path}: {err.strerror}; the previous file (if any) is "
                                   f"unchanged") from None


def _preallocate(fd: int, size: int) -> None:
    """Reserve ``size`` bytes for the file before writing it, where the OS can: a disk that is too full
    fails here, before any byte is written, and the file's blocks are allocated in one go. On ext4 a
    new file written by delayed allocation and renamed over an old one is flushed at the rename:
    12.6 MB took 17 ms that way and 5 ms preallocated."""
    if not hasattr(os, "posix_fallocate"):
        return
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise
        # not supported here (EOPNOTSUPP, EINVAL, ...): write without it


def _atomic_unchecked(path: Path, data, overwrite: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                if data:
                    _preallocate(fh.fileno(), len(data))
                fh.write(data)
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _link_new(tmp: str, path: Path) -> None:
    """Put the written ``tmp`` at ``path`` only if nothing is there (``FileExistsError`` otherwise), then
    remove ``tmp``. A file system without hard links (some FAT or network mounts) gets a check, then
    ``os.replace``."""
    exists = OutputExists(errno.EEXIST, f"{path} exists (it was created while this command ran) and is kept; "
                                        f"choose another --out or pass --overwrite")
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise exists from None
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if path.exists() or path.is_symlink():
            raise exists from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def atomic_write_bytes(path: Path, data: bytes, *, overwrite: bool = True) -> None:
    _atomic(path, data, overwrite)


def atomic_write_npy(path: Path, array, *, overwrite: bool = True) -> None:
    """``np.save`` of ``array`` to ``path``, atomically, written straight to the file (no copy in memory);
    ``overwrite=False``: a :class:`FileExistsError` if ``path`` exists by then (nothing is replaced)."""
    import numpy as np

    _atomic(path, lambda fh: np.save(fh, array, allow_pickle=False), overwrite)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def check_output_file(path, *, overwrite: bool = False, option: str = "--out", inputs=()) -> Path:
    """Refuse, before any work, a path a command could not write its output file to; returns it as a Path.

    The one check for every user-named output file (``encode``/``decode --out``, ``data show --out``):
    ``path`` must not be a folder; an existing file needs ``overwrite``; its nearest existing parent must be
    a folder (not a file: "``parent`` is a file") that can be written to. Missing folders are fine: the
    atomic write creates them. ``path`` must not be one of the command's ``inputs`` files, even with
    ``overwrite`` (the input would be replaced by what was computed from it). Each error names ``option``,
    the problem and the fix.
    """
    path = Path(path)
    for source in inputs:
        if path.exists() and Path(source).exists() and os.path.samefile(path, source):
            raise ValueError(f"{option} {path} is the input file {source}; writing there would replace the "
                             f"input with the output — choose another {option}")
    if path.is_dir():
        raise IsADirectoryError(f"{option} {path} is a folder, not a file; give the path of the file to "
                                f"write inside it (e.g. {path / 'out.npy'})")
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise FileExistsError(f"{path} exists; choose another {option} or pass --overwrite")
        if not path.is_file():
            raise ValueError(f"{option} {path} exists and is not a regular file; choose another {option}")
    parent = path.parent
    while not parent.exists() and not parent.is_symlink() and parent != parent.parent:
        parent = parent.parent
    if parent.is_symlink() and not parent.exists():
        raise NotADirectoryError(f"cannot write {option} {path}: {parent} is a broken symbolic link (to "
                                 f"{os.readlink(parent)}); fix the link or choose another {option}")
    if not parent.is_dir():
        raise NotADirectoryError(f"cannot write {option} {path}: {parent} is a file, not a folder; choose an "
                                 f"{option} path in a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {option} {path}: the folder {parent} is not writable; choose "
                              f"another {option}")
    return path
