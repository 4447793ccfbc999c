"""Run-folder integrity: an exclusive lock, SHA-256 digests of the weights files, the config digest,
required checkpoint entries and the removal of stale temp files.

Lock
    :func:`run_folder_lock` takes an exclusive ``fcntl.flock`` on ``DIR/.sparsecoder.lock`` (the file
    holds the holder's PID and command). The kernel releases a ``flock`` when its process ends in any way
    (exit, exception, SIGKILL), so a killed run never leaves a stale lock; a second writer (``train``,
    ``train --resume``, ``evaluate``) fails at once with :class:`RunFolderBusy` naming the folder and PID.
    A lock taken on a lock file that a leaving holder removed meanwhile (with the folder it had made) is
    dropped and taken again on the folder's file: the lock of a removed file would exclude nobody.
    :func:`locked_run` is the same as a decorator of functions taking the run folder as an argument.
Digests
    ``DIR/digests.json`` maps each weights/checkpoint file and ``preprocessing.json`` (which maps raw
    rows to the model's: an edited mean or std changes every code) to its SHA-256 (FIPS 180-4).
    :func:`write_digested` writes a file atomically and records its digest so that a kill at any instant
    leaves a consistent pair: it first records *both* the old and the new digest as accepted, then
    replaces the file, then keeps only the new one. :func:`verify_digest` recomputes the digest before a
    file is read (``load_run``, ``evaluate``, ``encode``, ``decode``, ``--resume``) and names the file on a
    mismatch (flipped bytes, a truncated copy, a file replaced by hand). Folders without ``digests.json``
    (runs written before digests existed), or files it does not list, are read unverified.
Config digest
    :func:`config_digest` is the SHA-256 of the config as canonical JSON; the checkpoint stores it with
    the config, and :func:`check_resume_config` refuses to resume when the run's ``config.yaml`` (plus
    ``--set``) differs from the checkpoint's config in any key but the documented resumable ones.
Data fingerprint
    :func:`data_fingerprint` is the SHA-256 of each split's model rows (float32, row order, with their
    shape); the checkpoint stores it, and :func:`check_resume_data` refuses to resume a run whose
    training or validation rows changed since (a replaced ``.npy`` file, other files in ``data_dir``):
    one run would otherwise be trained on two data sets. ``evaluate`` compares the test split's and
    notes a change in ``metrics.json`` (it measures the weights on the test data there now).
Stale temp files
    An atomic write goes through ``.NAME.XXXX.tmp`` in the same folder; a kill between its creation and
    the rename leaves it behind. :func:`remove_stale_temp_files` deletes those of the run's own file
    names; :func:`run_folder_lock` calls it once the lock is held (so no live writer owns them).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import inspect
import json
import math
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sparsecoder.io import atomic_write_bytes, atomic_write_json

__all__ = [
    "LOCK_FILE",
    "DIGESTS_FILE",
    "CHECKPOINT_ENTRIES",
    "RunFolderBusy",
    "DigestMismatch",
    "run_folder_lock",
    "locked_run",
    "sha256_file",
    "write_digested",
    "verify_digest",
    "config_digest",
    "check_checkpoint_entries",
    "check_resume_config",
    "check_config_unchanged",
    "data_fingerprint",
    "check_resume_data",
    "changed_splits",
    "remove_stale_temp_files",
    "read_json_object",
    "check_run_files",
]

LOCK_FILE = ".sparsecoder.lock"
DIGESTS_FILE = "digests.json"
# Every entry save_checkpoint writes; a checkpoint missing one cannot be resumed exactly.
CHECKPOINT_ENTRIES = ("format", "model_name", "epoch", "model", "optimizers", "rng", "history",
                      "best_val_loss", "best_epoch", "config")
# Names of the files a run folder holds (their stale `.NAME.XXXX.tmp` files are removed); PNGs by suffix.
RUN_FILE_NAMES = frozenset({"config.yaml", "checkpoint.pt", "model.safetensors", "history.csv",
                            "metrics.json", "preprocessing.json", DIGESTS_FILE})
# what the folder locked for a purpose is called in messages ("run folder" for train, evaluate, ...)
FOLDER_KINDS = {"sweep": "sweep folder", "reproduce": "experiment folder"}


def _kind(purpose: str) -> str:
    return FOLDER_KINDS.get(purpose, "run folder")


# the files a sweep or reproduce folder's own command writes at its top level (sweep.results, sweep.spec,
# reproduce.base), under that folder's lock as a run's files are under the run's
FOLDER_FILE_NAMES = RUN_FILE_NAMES | {"results.csv", "results.md", "sweep.yaml", "reproduce.yaml"}
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]+\.tmp$")


class RunFolderBusy(RuntimeError):
    """Another process holds the run folder's lock (its PID is in the message)."""


class DigestMismatch(ValueError):
    """A weights, checkpoint or preprocessing file does not match the SHA-256 recorded when it was written."""


# ----------------------------------------------------------------------------------------------
# lock
# ----------------------------------------------------------------------------------------------
def broken_link(path: Path) -> Path | None:
    """The first of ``path`` and its parents that is a symbolic link to nothing (None if none is)."""
    for candidate in [Path(path), *Path(path).parents]:
        if candidate.is_symlink() and not candidate.exists():
            return candidate
    return None


def _link_target(link: Path) -> str:
    try:
        target = os.readlink(link)
    except OSError:
        return "an unreadable target"
    resolved = link.parent / target
    return target if os.path.isabs(target) else f"{target}, i.e. {os.path.normpath(resolved)}"


def no_run_folder(run_dir: Path, *, create: bool = False) -> OSError:
    """The error for a run folder that is not there: a broken symbolic link on the way is named with its
    target (a moved run, a disk not mounted; creating the target would write where the link points), else
    plain "no run folder"."""
    run_dir = Path(run_dir)
    link = broken_link(run_dir)
    if link is None:
        return FileNotFoundError(f"no run folder at {run_dir}")
    what = (f"{link}{'' if link == run_dir else ' (on its path)'} is a broken symbolic link: it points to "
            f"{_link_target(link)}, which does not exist")
    if create:
        return FileNotFoundError(f"cannot create the run folder {run_dir}: {what}; create that folder (e.g. "
                                 f"mount its disk), fix or remove the link, or choose another folder")
    return FileNotFoundError(f"no run folder at {run_dir}: {what} (a moved or deleted run, or a disk not "
                             f"mounted?); fix the link or give the run folder's real path")


# Reads of a busy lock file that is empty or names a process that is not running (the holder locked it
# a moment ago and has not yet written its PID over the previous holder's), 2 ms apart
HOLDER_READS = 50


def _running(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, OverflowError, ProcessLookupError):
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _holder(lock_path: Path) -> str:
    """``"PID 123, `train`"`` of the process holding the lock, as its lock file says."""
    for attempt in range(HOLDER_READS):
        try:
            text = lock_path.read_text().strip()
        except OSError:
            text = ""
        pid, _, command = text.partition(" ")
        if pid and _running(pid):
            return f"PID {pid}" + (f", `{command}`" if command else "")
        if attempt + 1 < HOLDER_READS:
            time.sleep(0.002)
    if not pid:
        return "PID unknown"
    return (f"PID unknown: the lock file names PID {pid}, which is not running on this machine (a process on "
            f"another machine using the same folder?)")


@contextlib.contextmanager
def run_folder_lock(run_dir, purpose: str, *, create: bool = False) -> Iterator[Path]:
    """Hold an exclusive lock on the run folder ``run_dir`` for the duration of the ``with`` block.

    Parameters
    ----------
    run_dir : str or Path
        The run folder.
    purpose : str
        What the holder does (``"train"``, ``"evaluate"``); written into the lock file with the PID.
    create : bool
        Create the folder (and parents) if missing; a folder created here that holds nothing but the
        lock file at the end is removed again (e.g. a ``train`` refused for a bad config).

    Raises
    ------
    RunFolderBusy
        Another process holds the lock: the message names the folder and the holder's PID.
    NotADirectoryError, FileNotFoundError, PermissionError
        ``run_dir`` (or a parent) is a file, does not exist (``create=False``), is a broken symbolic link
        (named with its target, also with ``create=True``: nothing is created where it points) or is not
        writable.
    """
    run_dir = Path(run_dir)
    for _ in range(LOCK_ATTEMPTS):
        created, used_before, fd = _open_and_lock(run_dir, purpose, create)
        if fd is not None:
            break
    else:  # pragma: no cover - a folder whose lock file is removed and made again all the time
        raise RunFolderBusy(f"cannot lock the {_kind(purpose)} {run_dir}: its lock file "
                            f"{run_dir / LOCK_FILE} was removed {LOCK_ATTEMPTS} times while it was being "
                            f"locked; is another program deleting it?")
    lock_path = run_dir / LOCK_FILE
    try:
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {purpose}\n".encode())
        except OSError as err:
            raise type(err)(err.errno, f"cannot write the lock file {lock_path}: {err.strerror}") from None
        if used_before:
            remove_stale_temp_files(run_dir)
        try:
            yield run_dir
        finally:
            if created:
                _remove_if_only_lock(created)
            elif not used_before and not (run_dir / "config.yaml").is_file():
                lock_path.unlink(missing_ok=True)  # refused before it became a run folder: leave no trace
    finally:
        os.close(fd)  # releases the flock


# Attempts to lock a run folder whose lock file a leaving holder removed between our open and our flock
LOCK_ATTEMPTS = 20


def _open_and_lock(run_dir: Path, purpose: str, create: bool) -> tuple[list[Path], bool, int | None]:
    """``(folders created, folder used before, fd)`` of :func:`run_folder_lock`: the folder made (``create``)
    and checked, its lock file opened and ``flock``-ed; ``fd`` None when the file locked is no longer the
    folder's lock file (a holder that was leaving removed it, and perhaps the folder it had made, after we
    opened it: the lock of a removed file excludes nobody, so a third process could lock the new file
    beside us), to be tried again."""
    created: list[Path] = []  # folders made here, deepest first (removed again if left empty)
    if broken_link(run_dir) is not None:
        raise no_run_folder(run_dir, create=create)
    kind = _kind(purpose)
    if create and not run_dir.exists():
        for parent in [run_dir, *run_dir.parents]:
            if parent.exists():
                if not parent.is_dir():
                    raise NotADirectoryError(f"cannot create the {kind} {run_dir}: {parent} is a file")
                break
            created.append(parent)
        try:
            run_dir.mkdir(parents=True)
        except FileExistsError:  # made by another process meanwhile: not ours to remove
            created = []
        except OSError as err:
            raise type(err)(err.errno, f"cannot create the {kind} {run_dir}: {err.strerror}") from None
    if run_dir.exists() and not run_dir.is_dir():
        raise NotADirectoryError(f"{run_dir} exists and is not a folder")
    if not run_dir.is_dir():
        raise no_run_folder(run_dir)
    lock_path = run_dir / LOCK_FILE
    # A folder sparsecoder used before (lock file or config.yaml present) is a run folder: its stale temp
    # files are ours to remove. In any other folder nothing but our own lock file is touched.
    used_before = lock_path.exists() or (run_dir / "config.yaml").is_file()
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        if created:
            _remove_if_only_lock(created)
        if err.errno == errno.ENOENT and not create:  # the folder was removed meanwhile
            raise no_run_folder(run_dir) from None
        if err.errno == errno.ENOENT:  # removed by a holder that made it and was leaving: make it again
            return [], False, None
        raise type(err)(err.errno, f"cannot lock the {kind} {run_dir} ({lock_path}): {err.strerror}; "
                                   f"is it writable?") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            # a file system without file locks (ENOLCK: NFS without its lock service; EOPNOTSUPP, ...):
            # named with the folder, which is left as it was found
            if created:
                _remove_if_only_lock(created)
            elif not used_before:
                lock_path.unlink(missing_ok=True)
            raise type(err)(err.errno, f"cannot lock the {kind} {run_dir} ({lock_path}): {err.strerror}; "
                                       f"its file system does not support file locks (a network mount?): "
                                       f"choose a folder on a local disk") from None
        raise RunFolderBusy(
            f"the {kind} {run_dir} is in use by another sparsecoder process ({_holder(lock_path)}); "
            f"wait for it to finish or stop it, or choose another folder"
        ) from None
    try:
        current = os.stat(lock_path)
    except FileNotFoundError:
        current = None
    mine = os.fstat(fd)
    if current is None or (current.st_dev, current.st_ino) != (mine.st_dev, mine.st_ino):
        os.close(fd)
        return [], False, None
    return created, used_before, fd


def _remove_if_only_lock(created: list[Path]) -> None:
    with contextlib.suppress(OSError):
        run_dir = created[0]
        if [p.name for p in run_dir.iterdir()] in ([LOCK_FILE], []):
            (run_dir / LOCK_FILE).unlink(missing_ok=True)
            for folder in created:
                folder.rmdir()


def locked_run(argument: str, purpose: str, *, create: bool = False):
    """Decorator: call the function under :func:`run_folder_lock` of its argument named ``argument``.

    Under ``torchrun`` only rank 0 (environment variable ``RANK``) takes the lock: the other processes of
    the same run neither write the run folder nor may be refused as a second writer.
    """

    def wrap(function):
        signature = inspect.signature(function)

        @functools.wraps(function)
        def locked(*args, **kwargs):
            from sparsecoder.train.distributed import process_rank

            if process_rank() != 0:
                return function(*args, **kwargs)
            run_dir = signature.bind(*args, **kwargs).arguments[argument]
            with run_folder_lock(run_dir, purpose, create=create):
                return function(*args, **kwargs)

        return locked

    return wrap


# ----------------------------------------------------------------------------------------------
# digests
# ----------------------------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_digests(folder: Path) -> dict[str, list[str]] | None:
    path = folder / DIGESTS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict) or not all(
            isinstance(v, list) and all(isinstance(h, str) for h in v) for v in data.values()):
        raise ValueError(f"{path} is corrupt (not a JSON mapping of file names to SHA-256 lists); delete it "
                         f"to read the run unverified")
    return data


def write_digested(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and record its SHA-256 in the folder's ``digests.json``.

    Both the previous and the new digest are accepted while the file is being replaced, so a kill at any
    instant leaves a file that verifies.
    """
    path = Path(path)
    new = hashlib.sha256(data).hexdigest()
    digests = _read_digests(path.parent) or {}
    old = digests.get(path.name, [])
    digests[path.name] = [new, *[h for h in old if h != new]]
    atomic_write_json(path.parent / DIGESTS_FILE, digests)
    atomic_write_bytes(path, data)
    digests[path.name] = [new]
    atomic_write_json(path.parent / DIGESTS_FILE, digests)


# Checks of a file that a writer keeps replacing meanwhile, before its mismatch is reported anyway
VERIFY_ATTEMPTS = 100


def verify_digest(path: Path) -> None:
    """Raise :class:`DigestMismatch` naming ``path`` unless its SHA-256 is one recorded in ``digests.json``.

    A folder without ``digests.json``, or a file it does not list, is not checked.
    """
    path = Path(path)
    # A reader (encode, decode: they take no lock) can meet a writer (write_digested) between its steps:
    # digests.json read before the writer accepts the new digest, the file hashed after it was replaced (21
    # of 15,404 checks against a busy writer called a sound file damaged). A mismatch is therefore a
    # damaged file only when digests.json still holds what was read after the hash (every write changes
    # it); if it changed, a writer was at work and the check starts again.
    for _ in range(VERIFY_ATTEMPTS):
        digests = _read_digests(path.parent)
        if digests is None or path.name not in digests:
            return
        actual = sha256_file(path)
        if actual in digests[path.name]:
            return
        if _read_digests(path.parent) == digests:
            break
        time.sleep(0.001)
    raise DigestMismatch(
        f"{path} is damaged or was replaced: its SHA-256 is {actual[:16]}…, but {DIGESTS_FILE} recorded "
        f"{digests[path.name][0][:16]}… when it was written; restore the file (or retrain)"
    )


def config_digest(config: dict[str, Any]) -> str:
    """SHA-256 of a config dict as canonical JSON (sorted keys, tuples as lists, floats by ``repr``)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=list).encode()).hexdigest()


def check_checkpoint_entries(state: dict[str, Any], path: Path) -> None:
    """Raise ``ValueError`` naming ``path`` and the missing entries of a loaded checkpoint."""
    missing = [key for key in CHECKPOINT_ENTRIES if key not in state]
    if missing:
        raise ValueError(f"{path} lacks the entr{'y' if len(missing) == 1 else 'ies'} {missing}; it cannot "
                         f"be resumed exactly (damaged or written by another program)")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def check_resume_config(checkpoint_path: Path, config: dict[str, Any], changeable,
                        action: str = "resume", model_name: str | None = None) -> dict[str, Any]:
    """Refuse to ``action`` (resume, evaluate) when ``config`` differs from the checkpoint's config in a key
    not in ``changeable``.

    ``config`` is the run's ``config.yaml`` (with the ``--set`` values applied on resume). The checkpoint's
    config is first checked against its stored digest; then :func:`check_config_unchanged`. Returns the
    loaded checkpoint.
    """
    from sparsecoder.train.checkpoint import load_checkpoint

    state = load_checkpoint(checkpoint_path)
    saved = state["config"]
    stored = state.get("config_digest")
    if stored is not None and stored != config_digest(saved):
        raise ValueError(f"{checkpoint_path}: its config does not match its config digest (damaged file)")
    check_config_unchanged(saved, state["model_name"], config, changeable, run_dir=checkpoint_path.parent,
                           action=action, model_name=model_name, written="the checkpoint was written")
    return state


def _defaults(model_name: str) -> dict[str, Any]:
    """The default values of the config keys of the model family ``model_name`` (none for an unknown one):
    what a run written before a key existed (``validate_every``) was trained with."""
    from sparsecoder.config import config_classes, field_defaults

    cls = config_classes().get(model_name)
    return {} if cls is None else field_defaults(cls)


def check_config_unchanged(saved: dict[str, Any], saved_model_name: str, config: dict[str, Any], changeable,
                           *, run_dir: Path, action: str, model_name: str | None = None,
                           written: str = "the checkpoint was written") -> None:
    """Refuse to ``action`` the run in ``run_dir`` when ``config`` (its ``config.yaml``) differs from the
    config it was trained with (``saved``, of a ``saved_model_name`` model: the checkpoint's, or the one
    stored with the weights) in a key not in ``changeable``. Each changed key is named with both values; a
    ``config.yaml`` of another model family (``model_name``, its registered name) is named as such, not as
    a list of every key. ``written`` says when ``saved`` was stored ("the checkpoint was written")."""
    if model_name is not None and saved_model_name != model_name:
        raise ValueError(
            f"cannot {action} {run_dir}: its config.yaml is for a '{model_name}' model, but its checkpoint "
            f"and weights are of a '{saved_model_name}' model; put the run's own config.yaml back")
    saved = {**_defaults(saved_model_name), **saved}  # keys added since the run was written: their defaults
    keys = sorted((set(saved) | set(config)) - set(changeable))
    changed = [k for k in keys if not _same(saved.get(k), config.get(k))]
    if changed:
        details = "; ".join(f"{k}: trained with {saved.get(k)!r}, config.yaml now says {config.get(k)!r}"
                            for k in changed)
        how = " on resume, through --set" if action == "resume" else ""
        raise ValueError(
            f"cannot {action} {run_dir}: its config.yaml was edited after {written} ({details}); restore "
            f"those values — only {', '.join(sorted(changeable))} may change{how}"
        )


# rows hashed per block: bounds the memory of memory-mapped splits (read and preprocessed block by block)
_FINGERPRINT_BLOCK_BYTES = 1 << 24
FINGERPRINT_SPLITS = ("train", "val", "test")


def _split_fingerprint(x) -> dict[str, Any]:
    """``{"rows", "features", "sha256"}`` of a split's model rows: SHA-256 of the shape (two little-endian
    int64) followed by the rows as little-endian float32 in row order. A tensor and the memory-mapped
    rows (:class:`~sparsecoder.data.base.MemmapRows`) of the same data give the same digest."""
    import numpy as np
    import torch

    rows, features = (int(n) for n in x.shape)
    digest = hashlib.sha256(np.asarray([rows, features], dtype="<i8").tobytes())
    step = max(1, _FINGERPRINT_BLOCK_BYTES // max(4 * features, 1))
    for start in range(0, rows, step):
        block = x[start:start + step]
        if isinstance(block, torch.Tensor):
            block = block.detach().to("cpu", torch.float32).contiguous().numpy()
        digest.update(np.ascontiguousarray(block, dtype="<f4").data)
    return {"rows": rows, "features": features, "sha256": digest.hexdigest()}


def data_fingerprint(data, splits=FINGERPRINT_SPLITS) -> dict[str, dict[str, Any]]:
    """Per split (``train``, ``val``, ``test``; or those named in ``splits``) of a
    :class:`~sparsecoder.data.base.DataSplits`: its row count, row width and the SHA-256 of its model rows
    (what the model sees, after the source's preprocessing; so every source is covered, embedded,
    generated, file-backed or given in memory).

    Cost: one pass over the rows; for the default MNIST presets (embedded subset: 3,929 + 357 + 714 rows
    of 784 float32, 16 MB) 10 ms on a busy 2-core machine, against 1 s to load the data; memory-mapped
    rows are read and preprocessed in 16 MB blocks (20,000 × 256: 57 ms, the same data in memory 14 ms).
    """
    return {name: _split_fingerprint(getattr(data, name).x) for name in splits}


def changed_splits(saved: dict[str, Any] | None, now: dict[str, Any], names) -> list[str]:
    """The splits among ``names`` whose fingerprint in ``now`` differs from ``saved``'s, each described as
    ``"train: 300 × 16, SHA-256 0123abcd… then, now 300 × 16, SHA-256 4567ef01…"``. Empty when ``saved``
    is None (a checkpoint written before fingerprints existed: nothing to compare with)."""
    if not saved:
        return []

    def show(entry) -> str:
        if not isinstance(entry, dict):
            return "unknown"
        return f"{entry.get('rows')} × {entry.get('features')}, SHA-256 {str(entry.get('sha256'))[:16]}…"

    return [f"{name}: {show(saved.get(name))} then, now {show(now.get(name))}" for name in names
            if saved.get(name) != now.get(name)]


def check_resume_data(state: dict[str, Any], fingerprint: dict[str, Any], run_dir: Path) -> None:
    """Refuse to resume the run in ``run_dir`` when its training or validation rows differ from those its
    checkpoint ``state`` was trained on (``fingerprint`` = :func:`data_fingerprint` of the data now)."""
    changed = changed_splits(state.get("data_fingerprint"), fingerprint, ("train", "val"))
    if changed:
        raise ValueError(
            f"cannot resume {run_dir}: its data changed since the checkpoint was written at epoch "
            f"{state.get('epoch')} ({'; '.join(changed)}); resuming would train one run on two data sets. "
            f"Restore the data the run was trained on (its config.yaml names the source, data_dir and "
            f"data_options), or train the new data as a new run: --overwrite (replaces this run) or "
            f"another --out"
        )


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON file that must hold an object (``metrics.json``); anything else: ``ValueError`` naming it."""
    path = Path(path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a text JSON file (binary content); move it away and rerun") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); move it away and rerun") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a JSON {type(data).__name__}, not an object of metrics; move it away "
                         f"and rerun")
    return data


def check_run_files(run_dir: Path, names) -> None:
    """Refuse, before any work, a run file of ``names`` in ``run_dir`` that is there but not a regular file
    (a folder, a broken symbolic link, a FIFO, ...): read as "missing" it gave wrong advice ("nothing to
    resume", an unverified run when ``digests.json`` is a folder), and written it failed only after the
    first epoch had trained. A symbolic link to a regular file is fine."""
    for name in names:
        path = Path(run_dir) / name
        if path.is_file() or not (path.exists() or path.is_symlink()):
            continue
        if path.is_symlink() and not path.exists():
            what = f"a broken symbolic link (to {_link_target(path)})"
        else:
            what = "a folder" if path.is_dir() else "not a regular file"
        raise ValueError(f"{path} is {what}, not the file sparsecoder keeps under that name in a run folder; "
                         f"move it away, or put the run's own {name} back")


# ----------------------------------------------------------------------------------------------
# stale temp files
# ----------------------------------------------------------------------------------------------
def remove_stale_temp_files(run_dir: Path) -> list[Path]:
    """Delete ``.NAME.XXXX.tmp`` files left by killed atomic writes of the run's own files; return them.

    Only names of run files (``config.yaml``, ``checkpoint.pt``, ``model.safetensors``, ``history.csv``,
    ``metrics.json``, ``digests.json``, ``*.png``) and of a sweep or reproduce folder's own files
    (``results.csv``, ``results.md``, ``sweep.yaml``, ``reproduce.yaml``: :data:`FOLDER_FILE_NAMES`) are
    touched; call it while holding the folder's lock.
    """
    removed = []
    for path in Path(run_dir).iterdir():
        match = _TEMP_NAME.match(path.name)
        if not match or not path.is_file() or path.is_symlink():
            continue
        name = match.group("name")
        if name in FOLDER_FILE_NAMES or name.endswith(".png"):
            path.unlink()
            removed.append(path)
    return removed
