"""Run folders: their file names, and using a trained run without its training data.

A run folder is self-contained: besides the weights and the resolved config it holds
``preprocessing.json``, written by the trainer before the first epoch::

    {"format": 1, "n_features": 784, "image_shape": [28, 28], "data": "mnist (embedded 5k subset)",
     "normalization": "(x/255 - 0.1307) / 0.3081",
     "preprocessing": {"name": "standardize", "mean": 0.1307, "std": 0.3081, "raw_divisor": 255.0,
                       "raw_range": [0.0, 255.0]}}

``n_features`` and ``image_shape`` size the model, so :func:`load_run` builds it without reading any data;
``preprocessing`` (:mod:`sparsecoder.data.preprocessing`, ``null`` for in-memory data given to ``train``
without one) maps raw rows — the source's own units, e.g. MNIST pixel values 0–255 as in the IDX files,
``arrays`` values as in the file — to model rows and back, so :func:`encode_run` and :func:`decode_run`
take and give either. :func:`evaluate_run` loads the test split only. Run folders written before this
file existed still load (their data is read again, as before); ``sparsecoder evaluate RUN`` adds the file.
Its SHA-256 is recorded in ``digests.json`` like the weights' (an edited mean or std would silently change
every code ``encode`` gives) and its values are validated whenever it is read (:func:`read_run_data`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sparsecoder.config import absolute_data_path, load_config, to_dict
from sparsecoder.data.base import DataSplits, Split
from sparsecoder.data.preprocessing import NotRowWise, Preprocessing, preprocessing_from_dict
from sparsecoder.io import atomic_write_json
from sparsecoder.train.checkpoint import (
    load_checkpoint,
    load_weights,
    read_weights,
    seed_everything,
    weights_config,
)
from sparsecoder.train.integrity import (
    DIGESTS_FILE,
    changed_splits,
    check_config_unchanged,
    check_resume_config,
    check_run_files,
    data_fingerprint,
    locked_run,
    no_run_folder,
    read_json_object,
    verify_digest,
    write_digested,
)
from sparsecoder.train.logging import jsonable
from sparsecoder.util import check_dense, native_array, torch_threads

__all__ = [
    "RunData",
    "load_run",
    "evaluate_run",
    "encode_run",
    "decode_run",
    "load_test_split",
    "read_run_data",
    "save_run_data",
]

CONFIG_FILE = "config.yaml"
CHECKPOINT_FILE = "checkpoint.pt"
WEIGHTS_FILE = "model.safetensors"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
HISTORY_PLOT = "history.png"
PREPROCESSING_FILE = "preprocessing.json"
RUN_FILES = (CONFIG_FILE, CHECKPOINT_FILE, WEIGHTS_FILE, HISTORY_FILE, METRICS_FILE, HISTORY_PLOT,
             PREPROCESSING_FILE, DIGESTS_FILE)
# the pictures a run of this package's families draws (viz.sae_pictures / viz.vae_pictures) and its history
# plot, in the order the demo lists them: --overwrite removes these by name, never another PNG a user keeps
RUN_PICTURES = ("atoms.png", "encoder.png", "samples.png", "reconstructions.png", "latent_scatter.png",
                "latent_grid.png", HISTORY_PLOT)
# the files `load_run` (encode, decode) reads, and those `evaluate` reads or writes
READ_FILES = (CONFIG_FILE, WEIGHTS_FILE, PREPROCESSING_FILE, DIGESTS_FILE)
EVALUATE_FILES = (*READ_FILES, CHECKPOINT_FILE, METRICS_FILE)
# config.yaml keys that `evaluate` lets differ from the checkpoint's: where to run, and where the data now are
EVALUATE_CHANGES = frozenset({"epochs", "device", "num_threads", "data_dir"})
# Keys of metrics.json that describe the training, not the test set; `evaluate` keeps them.
TRAINING_KEYS = ("epochs", "seconds", "best_epoch", "best_val_loss", "n_train", "data", "version", "git_hash",
                 "git_dirty", "world_size")
# metrics.json key `evaluate` adds when the test split is not the one the run was trained with
TEST_DATA_CHANGED = "test_data_changed"
SPACES = ("model", "raw")
RUN_DATA_FORMAT = 1


@dataclass(frozen=True)
class RunData:
    """What ``preprocessing.json`` records about a run's data (see the module docstring)."""

    n_features: int
    image_shape: tuple[int, ...] | None
    preprocessing: Preprocessing | None
    data: str
    normalization: str

    def splits(self) -> DataSplits:
        """Empty splits of the run's row width: what :func:`load_run` returns instead of the data."""
        def empty() -> Split:
            return Split(x=torch.zeros(0, self.n_features))

        return DataSplits(name=self.data, train=empty(), val=empty(), test=empty(),
                          image_shape=self.image_shape, normalization=self.normalization,
                          preprocessing=self.preprocessing)


def save_run_data(run_dir, data: DataSplits) -> Path:
    """Write ``run_dir/preprocessing.json`` for ``data`` (row width, image shape, preprocessing), its SHA-256
    recorded in ``digests.json`` like the weights' (:func:`~sparsecoder.train.integrity.write_digested`)."""
    path = Path(run_dir) / PREPROCESSING_FILE
    spec = {
        "format": RUN_DATA_FORMAT,
        "n_features": int(data.dim),
        "image_shape": None if data.image_shape is None else [int(s) for s in data.image_shape],
        "data": data.name,
        "normalization": data.normalization,
        "preprocessing": None if data.preprocessing is None else data.preprocessing.to_dict(),
    }
    write_digested(path, (json.dumps(spec, indent=2) + "\n").encode())
    return path


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def read_run_data(run_dir) -> RunData | None:
    """The run's ``preprocessing.json`` as :class:`RunData`; None for a run folder written without it.

    The file is checked against its SHA-256 in ``digests.json`` (:class:`DigestMismatch` naming it; a
    folder or file without a recorded digest, written by an older sparsecoder, is read unverified) and
    its values are validated either way: ``n_features`` a positive integer, ``image_shape`` null or
    positive integers whose product is ``n_features``, ``preprocessing`` null or a known kind with valid
    parameters (``standardize``: finite mean, finite std > 0, per-feature ones of length ``n_features``).
    Anything else is a ``ValueError`` naming the file and the value.
    """
    run_dir = Path(run_dir)
    path = run_dir / PREPROCESSING_FILE
    if not path.is_file():
        return None
    verify_digest(path)
    fix = (f"restore it, or delete it and run `sparsecoder evaluate {run_dir}` with the run's data in place "
           f"to write it again")
    try:
        spec = json.loads(path.read_bytes().decode("utf-8"))
        if not isinstance(spec, dict):
            raise TypeError(f"a JSON {type(spec).__name__}, not an object")
        n_features, shape, preprocessing = spec["n_features"], spec["image_shape"], spec["preprocessing"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a readable {PREPROCESSING_FILE} ({type(err).__name__}: {err}); "
                         f"{fix}") from None

    def bad(what: str) -> ValueError:
        return ValueError(f"{path}: {what}; the file was edited or damaged: {fix}")

    if not _is_count(n_features):
        raise bad(f"n_features must be a positive integer (values per model row), got {n_features!r}")
    if shape is not None:
        if not (isinstance(shape, list) and shape and all(_is_count(s) for s in shape)):
            raise bad(f"image_shape must be null or a list of positive integers, got {shape!r}")
        if math.prod(shape) != n_features:
            raise bad(f"image_shape {shape} holds {math.prod(shape)} values but n_features is {n_features}")
    if preprocessing is not None:
        try:
            preprocessing = preprocessing_from_dict(preprocessing)
            if preprocessing.row_wise:  # e.g. a per-feature mean or std of another length
                preprocessing.inverse(np.zeros((1, n_features)), n_features)
        except (KeyError, TypeError, ValueError) as err:
            raise bad(f"its preprocessing {spec['preprocessing']!r} is not valid ({err})") from None
    return RunData(
        n_features=n_features,
        image_shape=None if shape is None else tuple(shape),
        preprocessing=preprocessing,
        data=str(spec.get("data", "")),
        normalization=str(spec.get("normalization", "")),
    )


def missing_weights(run_dir: Path) -> FileNotFoundError:
    """The error for a run folder without ``model.safetensors``: a run that never finished an epoch, or
    (``checkpoint.pt`` present) weights deleted or moved since, or a run stopped between writing the
    checkpoint of its first epoch and its weights (``--resume`` writes them from the checkpoint)."""
    if (run_dir / CHECKPOINT_FILE).is_file():
        try:
            state = load_checkpoint(run_dir / CHECKPOINT_FILE)
        except (OSError, ValueError):  # named as it is where the checkpoint is read
            state = {}
        if state.get("best_epoch") == 0:  # validate_every > 1: no epoch was validated yet
            every = (state.get("config") or {}).get("validate_every")
            return FileNotFoundError(
                f"no {WEIGHTS_FILE} in {run_dir}: its run stopped after epoch {state.get('epoch')} before "
                f"validating any epoch (validate_every={every} validates epochs {every}, "
                f"{2 * every if isinstance(every, int) else '2k'}, … and the last), so there are no best "
                f"weights yet; continue it with --resume, or end it at that epoch with --resume --set "
                f"epochs={state.get('epoch')} (which validates it)")
        return FileNotFoundError(f"no {WEIGHTS_FILE} in {run_dir}, although its {CHECKPOINT_FILE} shows "
                                 f"that epochs were trained: the best weights were deleted or moved, or the "
                                 f"run stopped while writing them; put them back, continue the run with "
                                 f"--resume (it writes them again where the checkpoint holds them), or train "
                                 f"it again (--overwrite)")
    return FileNotFoundError(f"no {WEIGHTS_FILE} in {run_dir}; the run has not finished an epoch")


def check_data_paths_found(config, run_dir: Path, fix: str) -> None:
    """Refuse, naming it, a relative ``data_dir`` (or ``data_options`` ``path``) of ``run_dir``'s config that
    names nothing from the current folder: it is read from there, so the run's data are found only from the
    folder it was trained in (a run written by Python's ``train`` or an older sparsecoder, which stored
    the path as given). ``fix`` says what to do instead."""
    for key, value in (("data_dir", config.data_dir), ("path", dict(config.data_options).get("path"))):
        if absolute_data_path(value) != value and not os.path.lexists(value):  # relative, naming nothing
            raise FileNotFoundError(f"{key} {value!r} in {run_dir / CONFIG_FILE} is a relative path, read "
                                    f"from the current folder {os.getcwd()}, where it does not exist; {fix}")


def load_test_split(config) -> DataSplits:
    """The test split of the data a config names (train/val empty; MNIST IDX: only the t10k files)."""
    from sparsecoder.data import load_test_split as load_test

    return load_test(config.data, seed=config.seed, limit=config.limit, data_dir=config.data_dir,
                     **dict(config.data_options))


def load_run(run_dir, *, data: DataSplits | None = None, device=None) -> tuple[Any, Any, DataSplits]:
    """``(config, model, data)`` of a saved run, the model holding its best weights (``model.safetensors``).

    Parameters
    ----------
    run_dir : str or Path
        A run folder written by :func:`sparsecoder.train.train`.
    data : DataSplits, optional
        Splits to size the model with and return (e.g. the in-memory data a run was trained on).
        Without it the model is sized from ``preprocessing.json`` and no data is read: the returned
        ``data`` has the run's ``image_shape``, ``preprocessing`` and row width but empty splits (load the
        test split with :func:`load_test_split`). A run folder without ``preprocessing.json`` (written by
        an older version) has its data loaded again from its config, as before.
    device : str or torch.device, optional
        Where to put the model (``"cpu"``, ``"cuda"``, ``"auto"``); default: the run's ``device`` setting.
        A run trained with ``device: cuda`` is used on a machine without CUDA with ``device="cpu"``; the
        weights are the same on any device. A device this machine lacks is a ``ValueError`` naming it.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise no_run_folder(run_dir)
    check_run_files(run_dir, (*READ_FILES, CHECKPOINT_FILE))
    _, config = load_config(run_dir / CONFIG_FILE)
    if not (run_dir / WEIGHTS_FILE).is_file():
        raise missing_weights(run_dir)
    return _load_run(run_dir, config, data, check_config=True, device=device)


def _check_config(run_dir: Path, config, metadata: dict[str, str]) -> None:
    """Refuse a ``config.yaml`` edited since training in a key that builds or runs the model (e.g.
    ``lista_iterations``: the weights still load, but every code changes), as ``evaluate`` refuses it:
    checked against the config stored in the weights' ``metadata`` (the file already read and verified),
    else (weights written by an older sparsecoder) against ``checkpoint.pt``'s, where the run has one."""
    saved = weights_config(run_dir / WEIGHTS_FILE, metadata)
    if saved is not None:
        check_config_unchanged(saved, metadata.get("model", config.model_name), to_dict(config),
                               EVALUATE_CHANGES, run_dir=run_dir, action="use", model_name=config.model_name,
                               written="its weights were written")
    elif (run_dir / CHECKPOINT_FILE).is_file():
        check_resume_config(run_dir / CHECKPOINT_FILE, to_dict(config), EVALUATE_CHANGES, action="use",
                            model_name=config.model_name)


def _load_run(run_dir: Path, config, data: DataSplits | None, *, check_config: bool = False,
              device=None) -> tuple[Any, Any, DataSplits]:
    """:func:`load_run` once its files are checked; ``check_config``: ``config`` is checked against the
    config the weights were trained with (:func:`_check_config`; ``evaluate`` has checked it already);
    ``device``: where to put the model instead of the config's ``device``."""
    from sparsecoder.models import build_model
    from sparsecoder.util import resolve_device

    # before any data or weights are read
    if device is not None:
        device = resolve_device(device, "device")
    else:
        try:
            device = resolve_device(config.device)
        except ValueError as err:
            raise ValueError(f"{run_dir / CONFIG_FILE}: {err} — use the run here with --device cpu "
                             f"(evaluate, encode, decode; device='cpu' in Python), or edit device in that "
                             f"file") from None
    weights = read_weights(run_dir / WEIGHTS_FILE)  # verified against its digest, read once
    if check_config:
        _check_config(run_dir, config, weights[0])
    stored = read_run_data(run_dir)
    if data is None:
        if stored is None:
            from sparsecoder.train.trainer import load_data

            data = load_data(config)
        else:
            data = stored.splits()
    elif stored is not None and data.dim != stored.n_features:
        # named before the model is sized for them (the weights would then not load: "size mismatch")
        raise ValueError(f"the data given have {data.dim} features per row ({data.describe()}), but "
                         f"{run_dir} was trained on {stored.n_features} ('{stored.data}'); give rows of the "
                         f"run's data")
    model = build_model(config, data)
    load_weights(run_dir / WEIGHTS_FILE, model, model_name=config.model_name, weights=weights)
    model.to(device)
    return config, model, data


@locked_run("run_dir", "evaluate")  # it rewrites metrics.json
def evaluate_run(run_dir, *, data: DataSplits | None = None, device=None) -> dict[str, Any]:
    """Recompute the test metrics of a saved run's best weights and rewrite its ``metrics.json``.

    Only the test split is loaded (:func:`load_test_split`) unless ``data`` is given. The training
    bookkeeping of the old ``metrics.json`` (epochs, seconds, best epoch, version, …) is kept; every test
    metric is replaced. A run folder without ``preprocessing.json`` gets one. When the test split's rows
    differ from those at training (their SHA-256 is in ``checkpoint.pt``) the metrics are still computed,
    on the test data present now, and ``metrics.json`` says so under ``test_data_changed``. An old
    ``metrics.json`` that is not a JSON object is a ``ValueError`` naming it (before any work); another
    process in ``run_dir`` is :class:`~sparsecoder.train.integrity.RunFolderBusy`.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise no_run_folder(run_dir)
    check_run_files(run_dir, EVALUATE_FILES)
    path = run_dir / METRICS_FILE
    old = read_json_object(path) if path.is_file() else {}  # a damaged file is named before any work
    _, config = load_config(run_dir / CONFIG_FILE)
    state = {}
    if (run_dir / CHECKPOINT_FILE).is_file():  # metrics of an edited config.yaml would not be the run's
        state = check_resume_config(run_dir / CHECKPOINT_FILE, to_dict(config), EVALUATE_CHANGES,
                                    action="evaluate", model_name=config.model_name)
    stored = read_run_data(run_dir)
    if not (run_dir / WEIGHTS_FILE).is_file():  # before the test split is loaded (a slow or moved source)
        raise missing_weights(run_dir)
    if data is None:
        fix = (f"run the command from the folder where {run_dir} was trained, or set data_dir in its "
               f"{CONFIG_FILE} to the data's absolute path (evaluate accepts data that moved)")
        check_data_paths_found(config, run_dir, fix)
        data = load_test_split(config)
        if stored is not None and (data.name != stored.data or data.dim != stored.n_features):
            raise ValueError(f"{run_dir} was trained on '{stored.data}' ({stored.n_features} features per "
                             f"row) but its config now loads '{data.name}' ({data.dim}); if the run was "
                             f"trained on data given in memory, give them again: evaluate_run(run, data=...)")
    config, model, data = _load_run(run_dir, config, data, device=device)  # config.yaml checked above
    if stored is None and data.preprocessing is not None:
        save_run_data(run_dir, data)
    seed_everything(config.seed)
    from sparsecoder.models import family

    with torch_threads(config.num_threads or None):  # the caller's thread count restored after
        metrics = dict(family(config.model_name).evaluate(model, data))
    if old:
        metrics.update({k: old[k] for k in TRAINING_KEYS if k in old})
    if state:  # the epochs the checkpoint holds: the old metrics.json of a run continued and stopped since
        # (written before a continued run dropped it) named the epochs of the weights it replaced
        metrics.update(epochs=int(state["epoch"]), best_epoch=int(state["best_epoch"]),
                       best_val_loss=float(state["best_val_loss"]),
                       seconds=float(sum(float(row.get("seconds", 0.0)) for row in state["history"])))
    # the test split may legitimately differ (data moved or re-created): measured, but noted
    changed = changed_splits(state.get("data_fingerprint"), data_fingerprint(data, ("test",)), ("test",))
    if changed:
        metrics[TEST_DATA_CHANGED] = (f"the test split differs from the one at training ({changed[0]}); "
                                      f"these metrics measure the test data present at evaluation")
    metrics = jsonable(metrics)
    atomic_write_json(path, metrics)
    return metrics


def _check_space(name: str, value: str) -> None:
    if value not in SPACES:
        raise ValueError(f"{name}={value!r} is not allowed; choose 'raw' (the source's own units) or 'model' "
                         f"(rows as the model sees them)")


def _run_preprocessing(run_dir: Path, given: DataSplits | None) -> Preprocessing:
    """The preprocessing raw rows need: that of the caller's ``given`` data, else the run's stored one;
    or a clear error saying why there is none and what to do."""
    if given is not None and given.preprocessing is not None:
        return _row_wise(given.preprocessing)
    stored = read_run_data(run_dir)
    if stored is None:
        raise ValueError(
            f"{run_dir} has no {PREPROCESSING_FILE} (it was written by an older sparsecoder), so its "
            f"preprocessing is unknown: run `sparsecoder evaluate {run_dir}` once with its data in place (it "
            f"adds the file; in Python: sparsecoder.train.evaluate_run), or give model-space rows "
            f"(--input model / --output model)")
    if stored.preprocessing is None:
        raise ValueError(f"{run_dir} was trained on in-memory data without a preprocessing; give model-space "
                         f"rows (--input model / --output model)")
    return _row_wise(stored.preprocessing)


def _row_wise(preprocessing: Preprocessing) -> Preprocessing:
    """``preprocessing``, or the error saying why bare rows cannot be mapped (LCN, whitening): said before
    the raw rows' width is checked against a width they could not have anyway."""
    if isinstance(preprocessing, NotRowWise):
        preprocessing.refuse()
    return preprocessing


def _rows_of(x, what: str) -> np.ndarray:
    """``x`` (an array or tensor of samples) as rows: samples of more than one axis (``(n, H, W)``, …)
    flattened per sample exactly as the ``arrays`` source flattens a file's, and no samples refused as a
    file of none is (:func:`sparsecoder.data.arrays.sample_rows`); other shapes as given, for the callers'
    checks."""
    from sparsecoder.data.arrays import sample_rows

    array = native_array(x, what)
    if array.ndim >= 2:
        array, _ = sample_rows(what, array, min_rows=1)
    return array


def _samples(x, what: str, row_bytes: int) -> tuple[Any, str | None]:
    """``(samples, path)``: ``x`` as given (array or tensor; path None), or, for a path, its ``.npy`` file
    read as the ``arrays`` source reads it (:func:`~sparsecoder.data.arrays.read_rows_file`; the values are
    scanned once, later, by :func:`_checked_rows`) in its own shape. Refused before reading or computing
    when the samples and their results (``row_bytes`` per sample) need more than this machine's memory."""
    from sparsecoder.data.base import check_rows_fit

    if isinstance(x, (str, os.PathLike)):
        from sparsecoder.data.arrays import read_rows_file

        rows, sample_shape = read_rows_file(
            x, min_rows=1, values=False, row_bytes=row_bytes,
            fix="split the file and process the parts one by one (np.load(path, mmap_mode='r')[start:stop])")
        return rows.reshape(len(rows), *sample_shape), str(x)
    n = len(x) if np.ndim(x) else 0
    check_rows_fit(n, row_bytes, f"the results for {n:,} {what}", "give fewer rows at a time")
    return x, None


def _checked_rows(x, path: str | None, what: str, width: int, wrong_width,
                  preprocessing: Preprocessing | None = None) -> np.ndarray:
    """``x`` as rows ``(n, width)`` (:func:`_rows_of`), real numbers (the ``arrays`` source's
    :func:`~sparsecoder.data.arrays.check_dtype`), without NaN/inf or values beyond float32's range (one
    pass in blocks by :func:`~sparsecoder.data.arrays.check_values`, naming the rows; integers need none),
    and, for raw rows, inside ``preprocessing``'s raw range — all before the first block is computed, so
    the blocks are converted without scanning them again (``forward(..., checked=True)``). Errors name the
    file ``path`` (if any) and ``what``; ``wrong_width(shape)`` is the message for another shape."""
    from sparsecoder.data.arrays import check_dtype, check_values

    name = path or what
    array = _rows_of(x, name)
    check_dtype(name, array.dtype)
    if array.ndim == 2 and path is not None:  # a file's values are named before its width, with their rows
        check_values(path, array)
    if array.ndim != 2 or array.shape[1] != width:
        raise ValueError(("" if path is None else f"{path}: ") + wrong_width(array.shape))
    if path is None:
        check_values(what, array, in_file=False)
    if preprocessing is not None:
        try:
            preprocessing.check_raw_range(array)
        except ValueError as err:  # a file's rows are named by the file, as for every other check
            raise ValueError(f"{path}: {err}" if path else str(err)) from None
    return array


def _chunk_rows(config, width: int) -> int:
    """Rows per block when encoding/decoding (a few MB of float32 values): a multiple of the run's
    ``batch_size``, so a model that encodes per batch (FISTA's variance hinge) sees the same batches."""
    from sparsecoder.data.arrays import CHUNK_VALUES

    batch = int(getattr(config, "batch_size", None) or 1)
    return max(1, CHUNK_VALUES // max(1, width) // batch) * batch


def _check_sample_shape(x, data: DataSplits, what: str) -> None:
    """Samples given as images (``(n, H, W)``, ``(n, 1, H, W)``, …) must have the run's ``image_shape``
    (singleton axes aside): a ``(n, 5, 4)`` array of a ``[4, 5]`` run holds as many values but flattens to
    other pixels, and its codes would be silently wrong."""
    sample_shape = tuple(int(n) for n in np.shape(x)[1:])
    if len(sample_shape) < 2 or data.image_shape is None:
        return
    expected = tuple(int(n) for n in data.image_shape)
    if tuple(n for n in sample_shape if n != 1) != tuple(n for n in expected if n != 1):
        flat = math.prod(expected)
        raise ValueError(f"{what} are samples of shape {sample_shape}, but the run was trained on images of "
                         f"shape {expected}; give them as (n, {', '.join(map(str, expected))}) or as rows "
                         f"(n, {flat}) flattened in C order")


def encode_run(run_dir, x, *, input_space: str = "model", data: DataSplits | None = None,
               device=None) -> np.ndarray:
    """Codes ``(n, l)`` (float32) of the rows ``x`` from a saved run's ``model.encode``.

    Parameters
    ----------
    run_dir : str or Path
        The run folder (its training data need not exist).
    x : array-like (n, d_raw) or (n, d), or the path of a ``.npy`` file of them
        Rows to encode; samples of more axes (``(n, H, W)``, …) are flattened per sample as the ``arrays``
        source flattens a file's. A file is checked as that source checks it (header, dtype, values),
        and refused before it is read when it and the codes would not fit in memory.
    input_space : {"model", "raw"}
        ``"model"``: ``x`` is already normalised as the run's data source normalises (``d`` values per
        row); nothing is applied. ``"raw"``: ``x`` is in the source's own units (MNIST: pixel values
        0–255; ``arrays``: values as in the file; CIFAR: RGB patches 0–255) and the run's stored
        preprocessing maps it to model rows first.
    data, device : optional
        As for :func:`load_run`.
    """
    from sparsecoder.models.common import check_finite_output

    _check_space("input_space", input_space)
    check_dense(x, "x", "rows of values")
    run_dir = Path(run_dir)
    given = data
    config, model, data = load_run(run_dir, data=data, device=device)
    model.eval()
    n_codes = _code_width(config)
    x, path = _samples(x, "inputs", 4 * n_codes)
    _check_sample_shape(x, data, "inputs" if path is None else f"{path}: inputs")
    preprocessing = _run_preprocessing(run_dir, given) if input_space == "raw" else None
    width = data.dim if preprocessing is None else preprocessing.raw_features(data.dim)
    space = "raw" if preprocessing is not None else "model"
    array = _checked_rows(x, path, "inputs", width, lambda shape: (
        f"inputs must be a 2-D array (samples × features), got shape {shape}" if len(shape) != 2 else
        f"inputs have {shape[1]} features per row, expected {width} ({space} rows of the run's data: "
        f"{data.describe()})"), preprocessing)
    codes = np.empty((len(array), n_codes), np.float32)
    device = next(iter(model.parameters())).device  # as decode_run: a family's encode gets rows on its device
    step = _chunk_rows(config, width)
    for start in range(0, len(array), step):  # the inputs converted block by block: no float32 copy of all
        block = array[start:start + step]
        rows = (torch.as_tensor(np.asarray(block), dtype=torch.float32) if preprocessing is None
                else preprocessing.forward(block, data.dim, checked=True))
        codes[start:start + step] = model.encode(rows.to(device)).detach().cpu().numpy()
    return check_finite_output(codes, "the codes", array,
                               f"the rows are probably far outside the range of the data {run_dir} was "
                               f"trained on (check their units: --input model expects rows normalised as "
                               f"the run's data source normalises them), or the model's weights overflow "
                               f"on them")


def _code_width(config) -> int:
    for name in ("n_components", "n_latents"):
        if hasattr(config, name):
            return int(getattr(config, name))
    raise ValueError(f"cannot tell the code size of a '{config.model_name}' model")


def decode_run(run_dir, codes, *, output_space: str = "model", data: DataSplits | None = None,
               device=None) -> np.ndarray:
    """Rows decoded from ``codes`` ``(n, l)`` by a saved run's decoder.

    ``model.decode(z)`` where the family has it (VAEs: the mean reconstruction), else ``model.decoder(z)``
    (sparse autoencoders: ``D z``). ``decode_run(run, encode_run(run, x))`` is the run's reconstruction of
    ``x`` (encoder codes; FISTA codes for runs without an encoder).

    Parameters
    ----------
    codes : array-like (n, l), or the path of a ``.npy`` file of them
        Checked as :func:`encode_run` checks its rows; a file whose codes and decoded rows would not fit
        in memory is refused before it is read.
    output_space : {"model", "raw"}
        ``"model"``: model rows (float32). ``"raw"``: the stored preprocessing's inverse applied, rows in
        the source's own units (float64; MNIST pixel values, not clipped to 0–255 or rounded).
    data, device : optional
        As for :func:`load_run`.
    """
    from sparsecoder.models.common import check_finite_output

    _check_space("output_space", output_space)
    check_dense(codes, "codes", "rows of values")
    run_dir = Path(run_dir)
    given = data
    config, model, data = load_run(run_dir, data=data, device=device)
    model.eval()
    preprocessing = _run_preprocessing(run_dir, given) if output_space == "raw" else None
    raw_width = 0 if preprocessing is None else preprocessing.raw_features(data.dim)
    codes, path = _samples(codes, "codes", 4 * data.dim + 8 * raw_width)
    width = _code_width(config)
    array = _checked_rows(codes, path, "codes", width, lambda shape: (
        f"codes must be a 2-D array of {width} values per row (the run's code size), got shape {shape}"))
    device = next(iter(model.parameters())).device
    rows = np.empty((len(array), data.dim), np.float32)
    step = _chunk_rows(config, max(width, data.dim))
    with torch.no_grad():
        for start in range(0, len(array), step):
            z = torch.as_tensor(np.asarray(array[start:start + step]), dtype=torch.float32, device=device)
            decoded = model.decode(z) if hasattr(model, "decode") else model.decoder(z)
            rows[start:start + step] = decoded.detach().cpu().numpy()
    check_finite_output(rows, "the decoded rows", array,
                        f"the codes are probably far larger than {run_dir}'s encoder gives (decode codes "
                        f"from `sparsecoder encode` of this run), or its decoder's weights overflow on them")
    if preprocessing is None:
        return rows
    raw = np.empty((len(rows), raw_width))
    for start in range(0, len(rows), step):
        raw[start:start + step] = preprocessing.inverse(rows[start:start + step], data.dim)
    return raw
