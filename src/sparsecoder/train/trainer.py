"""The shared trainer: epochs over seeded mini-batches, best-checkpoint selection, resume, run folders.

One trainer drives every model family through :class:`sparsecoder.train.protocol.TrainableModel`
(SPEC §2.6: "Early stopping: keep the checkpoint with the lowest validation energy"). A run folder holds

===================  ==========================================================================
``config.yaml``      the fully resolved config (plus the preset's name, paper and description)
``history.csv``      one row per epoch: epoch, the averaged training logs, the validation metrics
                     (empty cells in an epoch not validated: ``validate_every``),
                     ``lr_<optimiser>`` (the learning rate used in that epoch), seconds
``model.safetensors`` the weights of the validated epoch with the lowest ``val_loss`` (the "best" weights)
``checkpoint.pt``    the state after the last completed epoch, for ``resume=True``
``preprocessing.json`` row width, image shape and the data's row-wise preprocessing (``train/run.py``)
``metrics.json``     test metrics of the best weights (the family's ``evaluate``) plus ``epochs``,
                     ``seconds``, ``best_epoch``, ``best_val_loss``, library ``version``, ``git_hash``,
                     ``world_size`` (number of training processes)
``*.png``            the family's pictures (its registered ``pictures`` function) and ``history.png``
===================  ==========================================================================
"""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from sparsecoder.config import (
    UNSURE,
    USER,
    CommonConfig,
    ConfigError,
    Layer,
    layered_config,
    load_config,
    load_preset,
    parse_overrides,
    read_config_document,
    read_yaml,
    save_config,
    shown,
    to_dict,
)
from sparsecoder.data.base import DataSplits
from sparsecoder.io import atomic_write_json
from sparsecoder.models.common import check_row_values
from sparsecoder.train.checkpoint import (
    load_checkpoint,
    load_weights,
    restore_training_state,
    rng_state,
    save_checkpoint,
    save_weights,
    seed_everything,
    set_rng_state,
)
from sparsecoder.train.distributed import (
    LOCAL_STATISTICS_ENV,
    RankFailed,
    World,
    current_world,
    shard,
    under_torchrun_agent,
)
from sparsecoder.train.integrity import (
    LOCK_FILE,
    check_resume_config,
    check_resume_data,
    check_run_files,
    data_fingerprint,
    locked_run,
    sha256_file,
)
from sparsecoder.train.logging import RunningMean, jsonable, write_history
from sparsecoder.train.optimization import Optimization
from sparsecoder.train.run import (  # run folders live in run.py; load/evaluate/encode re-exported here
    CHECKPOINT_FILE,
    CONFIG_FILE,
    HISTORY_FILE,
    HISTORY_PLOT,
    METRICS_FILE,
    RUN_FILES,
    RUN_PICTURES,
    WEIGHTS_FILE,
    check_data_paths_found,
    decode_run,
    encode_run,
    evaluate_run,
    load_run,
    missing_weights,
    read_run_data,
    save_run_data,
)
from sparsecoder.util import autograd_on, torch_threads

__all__ = [
    "TrainingDiverged",
    "RUN_FILES",
    "train",
    "load_run",
    "evaluate_run",
    "encode_run",
    "decode_run",
    "resolve_config",
    "load_data",
    "batch_indices",
]

# Config keys that may differ between a run and its resumption (they do not change the numbers).
RESUMABLE_CHANGES = frozenset({"epochs", "device", "num_threads"})


class TrainingDiverged(RuntimeError):
    """A training loss, ``val_loss`` or a parameter became NaN/inf; the message names the epoch and knob."""


# ----------------------------------------------------------------------------------------------
# configuration and data
# ----------------------------------------------------------------------------------------------
def resolve_config(preset_or_config, overrides=None) -> tuple[Any, dict[str, str]]:
    """The validated config and its preset description from a preset name/path or a config object.

    Parameters
    ----------
    preset_or_config : str, Path or CommonConfig
        A preset name (``sparsecoder presets``), a YAML file of the preset format (e.g. a run's
        ``config.yaml``), or a config instance.
    overrides : dict or list of "KEY=VALUE" str, optional
        Values replacing the preset's; unknown keys raise :class:`ConfigError` listing the valid ones.

    Returns
    -------
    config, meta
        ``meta`` holds ``preset``, ``paper`` and ``description`` (empty for a config object).
    """
    if isinstance(overrides, (list, tuple)):
        overrides = parse_overrides(list(overrides))
    elif overrides is not None and not isinstance(overrides, Mapping):
        example = f"[{shown(overrides)}]" if isinstance(overrides, str) else "['lam=0.01']"
        raise ConfigError(f"overrides must be a dict ({{'lam': 0.01}}) or a list of 'KEY=VALUE' strings "
                          f"({example}), got {type(overrides).__name__} {shown(overrides)}")
    overrides = dict(overrides or {})
    if isinstance(preset_or_config, CommonConfig):
        config = preset_or_config
        # its own values may be the user's or a preset's (dataclasses.replace of a preset's config): a
        # value without effect is warned of; an override without effect is refused (layered_config)
        config = layered_config(type(config), [Layer(to_dict(config), UNSURE, "in the config object"),
                                               Layer(overrides, USER)])
        return config, {"preset": "", "paper": "", "description": ""}
    if isinstance(preset_or_config, (str, Path)):
        preset, config = load_preset(str(preset_or_config), overrides)
        name = preset.name
        if Path(preset_or_config).is_file():  # e.g. another run's config.yaml: keep the preset it names
            name = read_yaml(Path(preset_or_config)).get("preset") or name  # checked by load_preset
        return config, {"preset": name, "paper": preset.paper, "description": preset.description}
    raise ValueError(
        f"preset_or_config must be a preset name, a YAML path or a config object, "
        f"got {type(preset_or_config).__name__}"
    )


def load_data(config) -> DataSplits:
    """The data a config names: ``sparsecoder.data.load(config.data, seed=…, limit=…, data_dir=…, **…)``."""
    from sparsecoder.data import load

    return load(config.data, seed=config.seed, limit=config.limit, data_dir=config.data_dir,
                **dict(config.data_options))


def batch_indices(n: int, batch_size: int, seed: int, epoch: int) -> list[torch.Tensor]:
    """Shuffled mini-batch indices of epoch ``epoch``: a permutation of ``range(n)`` cut into
    ``ceil(n / batch_size)`` batches whose sizes differ by at most one (no tiny last batch, which
    would make per-batch statistics such as the variance hinge meaningless).

    The permutation depends only on ``(seed, epoch)`` (its own NumPy generator), so a resumed run draws
    the same batches as an uninterrupted one.
    """
    if n < 1:
        raise ValueError("the training split is empty; nothing to train on (check the data source and limit)")
    order = np.random.default_rng([int(seed), int(epoch)]).permutation(n)
    n_batches = math.ceil(n / batch_size)
    return [torch.from_numpy(chunk) for chunk in np.array_split(order, n_batches)]


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def _is_loss(key: str) -> bool:
    return key in ("loss", "energy") or key.endswith("_loss")


def _knobs(config) -> str:
    """Step sizes and learning rates of the config with their values, e.g. "fista_step=1.0, lr=0.1"."""
    found = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        name = field.name
        is_rate = name.startswith("lr") or "learning_rate" in name
        if "step" in name or (is_rate and isinstance(value, float)):
            found.append(f"{name}={value}")
    return ", ".join(found) if found else "the learning rate"


def _git_state(source: Path | None = None) -> tuple[str | None, bool | None]:
    """Commit hash of the library's git checkout and whether it has uncommitted changes (None if not one).

    ``source`` is the package folder (default: this package's). An installed copy inside another git
    repository (a virtual environment in a user's project) is not a checkout of the library: its files are
    not tracked there, and that repository's commit is not recorded as the library's.
    """
    source = source or Path(__file__).resolve().parents[1]
    try:
        tracked = subprocess.run(["git", "-C", str(source), "ls-files", "--error-unmatch", "__init__.py"],
                                 capture_output=True, text=True, timeout=10)
        if tracked.returncode != 0:
            return None, None
        commit = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10)
        if commit.returncode != 0:
            return None, None
        status = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no",
                                 "--", str(source)], capture_output=True, text=True, timeout=10)
        return commit.stdout.strip(), bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None, None


def _is_run_config(path: Path) -> bool:
    """Whether ``path`` is a ``config.yaml`` in the format this package writes (its values unchecked)."""
    try:
        read_config_document(path)
    except (OSError, ConfigError):
        return False
    return True


def _prepare_out_dir(out_dir: Path, overwrite: bool) -> list[Path]:
    """Refuse a non-empty folder unless ``overwrite`` and it is a run folder; return the run files that the
    new run replaces (removed by :func:`_remove_run_files` once the data have loaded, so that a run whose
    data fail to load leaves the old run as it was)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"--out {out_dir} exists and is not a folder")
    if not out_dir.exists() or not any(p.name != LOCK_FILE for p in out_dir.iterdir()):
        out_dir.mkdir(parents=True, exist_ok=True)
        return []
    config = out_dir / CONFIG_FILE
    if not _is_run_config(config):  # with or without --overwrite: --resume and --overwrite both refuse it
        raise FileExistsError(
            f"{out_dir} is not empty and is not a sparsecoder run folder (no {CONFIG_FILE} written by "
            f"sparsecoder); nothing in it is replaced: choose a new or empty folder for the run"
        )
    if not overwrite:
        stopped_early = config.is_file() and not (out_dir / CHECKPOINT_FILE).is_file()
        hint = (" (its run stopped before the first epoch completed, so there is nothing to resume: "
                "--overwrite starts it again)" if stopped_early else "")
        raise FileExistsError(
            f"{out_dir} is not empty{hint}; choose a new folder, continue that run with --resume "
            f"(resume=True), or replace it with --overwrite (overwrite=True)"
        )
    names = (*RUN_FILES, *RUN_PICTURES)
    check_run_files(out_dir, names)  # a folder of a run file's name would fail the first write, after epoch 1
    return [out_dir / name for name in names if (out_dir / name).is_file()]


def _remove_run_files(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _saved_extra(path: Path) -> dict[str, Any]:
    data = read_config_document(path)
    return {k: v for k, v in data.items() if k not in ("model", "config")}


def _resume_config(out_dir: Path, preset_or_config, overrides) -> tuple[Any, dict[str, Any]]:
    """The config to continue a run with: the run's saved config with ``overrides`` applied.

    A preset name must be the run's preset (its ``--set`` values need not be repeated); a config object
    must equal the saved config. Only :data:`RESUMABLE_CHANGES` may differ from the saved config.
    """
    path = out_dir / CONFIG_FILE
    if not (out_dir / CHECKPOINT_FILE).is_file():
        raise FileNotFoundError(
            f"no {CHECKPOINT_FILE} in {out_dir}; nothing to resume (train without --resume to start a run)"
        )
    _, saved = load_config(path)
    extra = _saved_extra(path)
    if isinstance(preset_or_config, CommonConfig):
        config = resolve_config(preset_or_config, overrides)[0]
        if type(config) is not type(saved):
            raise ValueError(f"{out_dir} is a run of a '{saved.model_name}' model, not '{config.model_name}'")
    else:
        given = None if preset_or_config is None else Path(str(preset_or_config))
        own = given is not None and given.is_file() and path.is_file() and os.path.samefile(given, path)
        if given is not None and not own:
            asked = given.stem if str(preset_or_config).endswith(".yaml") else str(preset_or_config)
            if given.is_file():  # another run's config.yaml (or a copy) stands for the preset it names
                document = read_yaml(given)
                recorded = document.get("preset") if isinstance(document, dict) else None
                asked = recorded if isinstance(recorded, str) and recorded else asked
            if asked != extra.get("preset"):
                if not extra.get("preset"):  # nothing to check the name against: it would be ignored
                    raise ConfigError(f"{out_dir} was trained from a config object, not a preset, so it is "
                                      f"not '{asked}'; resume it with preset_or_config=None (its own "
                                      f"{CONFIG_FILE}), that config object, or the path {path}")
                raise ConfigError(f"{out_dir} is a run of preset '{extra['preset']}', not '{asked}'; "
                                  f"resume it with its own preset")
        config = resolve_config(saved, _saved_data_paths(saved, overrides))[0]
    changed = changed_keys(saved, config)
    if changed:
        details = ", ".join(f"{k}: run has {getattr(saved, k)!r}, asked {getattr(config, k)!r}"
                            for k in changed)
        raise ConfigError(f"cannot resume {out_dir} with a different config ({details}); only "
                          f"{', '.join(sorted(RESUMABLE_CHANGES))} may change on resume")
    return config, extra


def _saved_data_paths(saved, overrides):
    """``overrides`` with a ``data_dir`` (or ``data_options`` ``path``) that names the same file as the saved
    config's given as the saved text: the command line makes a relative path absolute, and a run that
    stored it relative (Python's ``train``, an older sparsecoder) is resumed with its command repeated."""
    def same(given, stored) -> bool:
        return (isinstance(given, str) and isinstance(stored, str)
                and os.path.abspath(os.path.expanduser(given)) == os.path.abspath(os.path.expanduser(stored)))

    if isinstance(overrides, (list, tuple)):
        overrides = parse_overrides(list(overrides))
    if not isinstance(overrides, Mapping):  # None, or a wrong type that resolve_config names
        return overrides
    out = dict(overrides)
    if same(out.get("data_dir"), saved.data_dir):
        out["data_dir"] = saved.data_dir
    options, stored = out.get("data_options"), dict(saved.data_options).get("path")
    if isinstance(options, Mapping) and same(options.get("path"), stored):
        out["data_options"] = {**options, "path": stored}
    return out


def changed_keys(saved, config) -> list[str]:
    """The config keys in which ``config`` differs from a run's ``saved`` config (of the same class), other
    than :data:`RESUMABLE_CHANGES`: what makes it another run rather than the same one continued."""
    return [f.name for f in dataclasses.fields(saved)
            if f.name not in RESUMABLE_CHANGES and getattr(saved, f.name) != getattr(config, f.name)]


def _check_data(data: DataSplits) -> None:
    if not isinstance(data, DataSplits):
        raise ValueError(f"data must be a DataSplits, got {type(data).__name__}")
    train_x = data.train.x  # its width is the data's (data.dim): every split must have it
    if isinstance(train_x, torch.Tensor) and train_x.dim() != 2:
        raise ValueError(f"the train split must be a 2-D tensor (n, d), got {tuple(train_x.shape)}")
    if data.image_shape is not None and math.prod(data.image_shape) != data.dim:
        raise ValueError(f"the data's image shape {tuple(data.image_shape)} does not hold its {data.dim} "
                         f"features per row ({data.describe()})")
    # the test split too: the run ends by evaluating on it, which every family refuses when it is empty —
    # after all the epochs had trained, if not checked here
    for name, role in (("train", "train"), ("val", "validate"), ("test", "evaluate the trained model")):
        if len(getattr(data, name)) == 0:
            raise ValueError(f"the {name} split is empty; nothing to {role} on "
                             f"(check the data source and limit)")
    # rows given in memory, checked as the model checks a batch (a NaN test row used to fail after the last
    # epoch, a NaN training row as a "divergence"); rows a source reads lazily (MemmapRows) it checks itself
    for name in ("train", "val", "test"):
        x = getattr(data, name).x
        if isinstance(x, torch.Tensor):
            check_row_values(x, data.dim, f"the {name} split")


# ----------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------
@locked_run("out_dir", "train", create=True)  # one writer per run folder (integrity.py)
def train(preset_or_config, out_dir, *, overrides=None, resume: bool = False, overwrite: bool = False,
          progress: bool = True, data: DataSplits | None = None) -> dict[str, Any]:
    """Train a model from a preset or config into the run folder ``out_dir`` and return its metrics.

    The model is built on the CPU and moved to the configured device; the trainer builds its Adam
    optimisers from ``model.optimizer_specs()`` (:class:`~sparsecoder.train.optimization.Optimization`).
    Per epoch ``e = 1 … epochs`` (SPEC §2.6): shuffled mini-batches (:func:`batch_indices`), each one
    ``model.training_losses`` then the optimiser steps in the declared order and the model's projections;
    the sample-weighted means of the logs; the learning-rate schedules; the family's
    ``validate(model, data.val)`` (of every ``validate_every``-th epoch and the last: :func:`validates`;
    default every epoch, the paper's protocol); a row of ``history.csv`` (validation cells empty in an epoch
    not validated); the weights to ``model.safetensors`` whenever ``val_loss`` is the lowest so far
    (early-stopping selection, among the validated epochs); and ``checkpoint.pt``. A run resumed to end
    (``epochs``) at an epoch it had not validated validates it before it ends. At the end the
    best weights are reloaded, the family's ``evaluate(model, data)`` is written to ``metrics.json`` with
    the run's bookkeeping, and its ``pictures`` are drawn.

    Data-parallel (launched by ``torchrun``, :mod:`sparsecoder.train.distributed`): ``batch_size`` is the
    global batch; every process trains on its shard of each batch, gradients are averaged weighted by
    shard size (= the single-process mean loss), the variance hinge uses the global batch's std, logs
    are averaged over all processes, and rank 0 alone validates, evaluates and writes the run folder.

    Divergence guard: a non-finite training loss (a log named ``loss``, ``energy`` or ``*_loss``), a
    non-finite ``val_loss`` (of a validated epoch), a non-finite parameter (checked after every epoch), or
    a training step or validation that raised while the model's parameters or its codes of those rows were
    NaN/inf (e.g. LISTA codes that overflowed with finite weights, refused by a metric or as FISTA's start)
    stops the run at once with
    :class:`TrainingDiverged`, naming the epoch and the config's step sizes and learning rates; the files
    of the last good epoch (checkpoint, best weights, history) are kept.

    Parameters
    ----------
    preset_or_config : str, Path, CommonConfig or None
        Preset name, preset-format YAML path, or config object. With ``resume=True`` the run's own
        ``config.yaml`` is used: a preset name must be the run's preset (its overrides need not be
        repeated), a config object must equal the saved one, and ``None`` is allowed.
    out_dir : str or Path
        The run folder. It must be new or empty, unless ``resume`` or ``overwrite``.
    overrides : dict or list of "KEY=VALUE", optional
        Config values replacing the preset's (validated before any work; unknown keys are errors).
    resume : bool
        Continue from ``out_dir/checkpoint.pt``; the resumed history equals an uninterrupted run's
        (same machine). Only ``epochs``, ``device`` and ``num_threads`` may differ from the saved config,
        and the training and validation rows must be those the checkpoint records the SHA-256 of
        (:func:`~sparsecoder.train.integrity.check_resume_data`).
    overwrite : bool
        Replace the run files of an existing run folder (never other files).
    progress : bool
        Show tqdm progress bars (stderr).
    data : DataSplits, optional
        Use these splits instead of loading ``config.data`` (for data that no registered source provides;
        :func:`load_run` sizes the model from ``preprocessing.json`` without it).

    Returns
    -------
    dict
        The contents of ``metrics.json`` (NaN/inf written as ``None``).

    Raises
    ------
    ConfigError
        Unknown preset, unknown key or bad value (before anything is written).
    FileExistsError
        ``out_dir`` is not empty and neither ``resume`` nor ``overwrite`` was given.
    RunFolderBusy
        Another process is training or evaluating in ``out_dir`` (its PID is named).
    TrainingDiverged
        See above.
    """
    out_dir = Path(out_dir)
    resume, overwrite, progress = _flags(resume=resume, overwrite=overwrite, progress=progress)
    if resume and overwrite:
        raise ValueError("resume and overwrite contradict each other (continue the run, or replace it?); "
                         "choose one")
    if resume:
        if out_dir.is_dir():
            check_run_files(out_dir, (*RUN_FILES, *RUN_PICTURES))
        config, meta = _resume_config(out_dir, preset_or_config, overrides)
        state = check_resume_config(out_dir / CHECKPOINT_FILE, to_dict(config), RESUMABLE_CHANGES,
                                    model_name=config.model_name)
        read_run_data(out_dir)  # a damaged or edited preprocessing.json is named before any work
        if config.epochs < state["epoch"]:  # named before the data load (it was after, and after writes)
            raise ConfigError(f"{out_dir} has already trained {state['epoch']} epochs, more than epochs="
                              f"{config.epochs}; set epochs >= {state['epoch']} (epochs={state['epoch']} "
                              f"ends the run at its last saved epoch)")
        # the end of the run reloads them: named now, not then; unless the run stopped between the
        # checkpoint of its best epoch and the weights, which the checkpoint holds (written again below)
        # (none before the first validated epoch: validate_every > 1)
        if not (out_dir / WEIGHTS_FILE).is_file() and state["best_epoch"] not in (0, state["epoch"]):
            raise missing_weights(out_dir)
    else:
        if preset_or_config is None:
            raise ValueError("preset_or_config is required unless resume=True")
        config, meta = resolve_config(preset_or_config, overrides)
    # the caller's thread count is restored after, and training runs with autograd on even when called
    # inside torch.no_grad() or torch.inference_mode() (a notebook's)
    with torch_threads(config.num_threads or None), autograd_on():
        return _train_in_world(config, meta, out_dir, resume=resume, overwrite=overwrite, progress=progress,
                               data=data)


def _train_in_world(config, meta, out_dir: Path, *, resume: bool, overwrite: bool, progress: bool,
                    data: DataSplits | None) -> dict[str, Any]:
    """:func:`train` once its arguments and config are read: the run in this process's world (one
    process, or one of a ``torchrun`` launch)."""
    from sparsecoder.models import build_model, family
    from sparsecoder.models.common import resolve_device

    world = current_world(resolve_device(config.device))
    posted = False
    try:
        return _train(config, meta, out_dir, world, resume=resume, overwrite=overwrite,
                      progress=progress and world.is_main, data=data, build_model=build_model,
                      family=family(config.model_name))
    except BaseException as err:
        posted = world.report_failure(err)  # before close(): the others' collective fails, they name it
        if posted and isinstance(err, (KeyboardInterrupt, RankFailed)) and under_torchrun_agent():
            # another rank died (kill -9): this one lost contact, or got torchrun's SIGTERM. The agent hosts
            # the store and stops every process, so rank 0 has no store to keep up for the others: it used
            # to wait the full linger for the dead rank (a launch 10 s slower to end)
            posted = False
        if not isinstance(err, RankFailed):
            raise
        if err.kind == TrainingDiverged.__name__:  # another process diverged: so did this run
            raise TrainingDiverged(str(err)) from err
        kept = (f"{out_dir / CHECKPOINT_FILE} keeps the last completed epoch: once the cause is fixed, "
                f"continue with --resume" if (out_dir / CHECKPOINT_FILE).is_file()
                else "no epoch had completed, so there is nothing to resume")
        raise RankFailed(f"{err}; {kept}", rank=err.rank, kind=err.kind) from err
    finally:
        world.close(posted_failure=posted)


def _flags(**flags) -> list[bool]:
    """The values of yes/no arguments as bools; a ``ValueError`` naming one that is not a bool (Python's or
    NumPy's): a string such as ``overwrite="no"`` is truthy and used to replace a run."""
    for name, value in flags.items():
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False, got {shown(value)} ({type(value).__name__})")
    return [bool(value) for value in flags.values()]


def _check_world(config, world: World, n_train: int | None = None, *, resume: bool = False) -> None:
    """A data-parallel run needs a global batch divisible by the number of processes (and, once the data
    is known, batches of at least one row per process). On ``resume`` neither ``batch_size`` nor the data
    can change, so the fix named is a number of processes that fits them."""
    if not world.distributed:
        return
    size = world.world_size
    if n_train is None and config.batch_size % size:
        if resume:
            # its four smallest divisors, from the pairs (k, batch_size // k) up to √batch_size: a loop over
            # every number up to batch_size ran 2·10⁹ times for the largest batch_size a config holds
            n = config.batch_size
            fits = [str(d) for d in sorted({d for k in range(1, math.isqrt(n) + 1) if n % k == 0
                                            for d in (k, n // k)})[:4]]
            counts = f"{', '.join(fits[:-1])} or {fits[-1]}" if len(fits) > 1 else fits[0]
            fix = (f"the run's batch_size cannot change on resume: resume it with a number of processes "
                   f"that divides {config.batch_size} (--nproc_per_node={counts})")
        else:
            suggestion = config.batch_size - config.batch_size % size or size
            fix = (f"set batch_size to a multiple of {size} (e.g. --set batch_size={suggestion}) or change "
                   f"--nproc_per_node")
        raise ConfigError(f"batch_size={config.batch_size} is the global batch and must be divisible by the "
                          f"number of processes ({size}); {fix}")
    smallest = n_train // math.ceil(n_train / config.batch_size) if n_train else 0
    if n_train is not None and smallest < size:
        fix = "use more data or fewer processes"
        if resume:  # its batch_size and data are the run's
            fix = (f"the run's batch_size and data cannot change on resume: resume it with at most "
                   f"{smallest} process{'es' if smallest != 1 else ''} (--nproc_per_node={max(smallest, 1)})")
        elif n_train >= size:  # a larger global batch (a multiple of size) gives every process rows
            fits = next(b for b in range(config.batch_size + size, n_train + 2 * size, size)
                        if _smallest_batch(n_train, b) >= size)
            fix = f"set batch_size >= {fits} (a multiple of {size}), {fix}"
        raise ConfigError(f"the training split ({n_train} rows) gives batches of {smallest} "
                          f"row{'s' if smallest != 1 else ''} at batch_size={config.batch_size}, fewer than "
                          f"the {size} processes (each trains on its share of a batch); {fix}")


# Config keys the processes of one torchrun run may set differently (they do not change the numbers)
PER_PROCESS_KEYS = frozenset({"num_threads"})
_SAME_COMMAND = ("every process of a torchrun run must be given the same command (preset, --set values, "
                 "--out, --resume/--overwrite) and see the same data and run folder")


def _check_same_everywhere(world: World, what: str, mine: dict[str, Any]) -> None:
    """Refuse, on every rank at once, a run whose processes disagree about ``mine`` (rank 0's is the
    reference): e.g. a ``--set lam=`` given on one node only, which would average the gradients of two
    different models into weights saved under rank 0's config."""
    if not world.distributed:
        return
    everyone = world.gather(mine)
    differences = []
    for rank, theirs in enumerate(everyone[1:], start=1):
        for key in sorted(set(everyone[0]) | set(theirs), key=str):
            if everyone[0].get(key) != theirs.get(key):
                differences.append(f"rank {rank} has {key}={shown(theirs.get(key))}, rank 0 "
                                   f"{shown(everyone[0].get(key))}")
    if differences:
        listed = "; ".join(differences[:5]) + (f"; ... {len(differences) - 5} more" if len(differences) > 5
                                               else "")
        raise ConfigError(f"the training processes differ in their {what}: {listed}; {_SAME_COMMAND}")


def _smallest_batch(n_train: int, batch_size: int) -> int:
    """Rows of the smallest of :func:`batch_indices`'s near-equal batches."""
    return n_train // math.ceil(n_train / batch_size)


def check_batches(batch_size: int, model, n_train: int,
                  more_data: str = "a larger limit, or a data file with more rows") -> None:
    """Refuse, before the first epoch, batches smaller than the model needs (``model.batch_requirement()``,
    e.g. 2 rows for VDL's variance guard), naming the cause: too few training rows (no batch_size helps),
    batch_size too small, or a batch_size that leaves a smaller last batch (7 rows at batch_size=2: 2, 2,
    2 and 1 would be 3 batches of 2, 2 and 3)."""
    need, why = model.batch_requirement() if hasattr(model, "batch_requirement") else (1, "")
    if need <= 1 or n_train < 1 or _smallest_batch(n_train, batch_size) >= need:
        return
    needs = f"{why} needs mini-batches of at least {need} rows"
    if n_train < need:
        plural = "s" if n_train != 1 else ""
        raise ConfigError(f"the training split has {n_train} row{plural}, so every mini-batch has {n_train} "
                          f"sample{plural} whatever batch_size is, but {needs}; train on more data "
                          f"({more_data})")
    if batch_size < need:
        raise ConfigError(f"batch_size={batch_size}, but {needs}; set batch_size >= {need}")
    n_batches = math.ceil(n_train / batch_size)
    smallest = _smallest_batch(n_train, batch_size)
    fits = next(b for b in range(batch_size + 1, n_train + 1) if _smallest_batch(n_train, b) >= need)
    raise ConfigError(f"batch_size={batch_size} splits the {n_train} training rows into {n_batches} "
                      f"batches, the smallest of {smallest} row{'s' if smallest != 1 else ''}, but {needs}; "
                      f"set batch_size >= {fits}")


def _reduce_logs(logs: dict[str, float], n_local: int, world: World) -> dict[str, float]:
    """Sample-weighted means of every process's logs (the same dict on every rank)."""
    keys = list(logs)  # the model's order (the same on every rank)
    values = torch.tensor([n_local * float(logs[k]) for k in keys] + [float(n_local)], dtype=torch.float64,
                          device=world.device)
    values = world.reduce(values)
    return {k: float(values[i] / values[-1]) for i, k in enumerate(keys)}


def _train(config, meta, out_dir: Path, world: World, *, resume: bool, overwrite: bool, progress: bool,
           data: DataSplits | None, build_model, family) -> dict[str, Any]:
    model_name = config.model_name
    settings = {k: v for k, v in to_dict(config).items() if k not in PER_PROCESS_KEYS}
    _check_same_everywhere(world, "settings", {**settings, "--out": str(out_dir), "--resume": resume,
                                               "--overwrite": overwrite, "data given": data is not None})
    _check_world(config, world, resume=resume)
    replaced = world.on_main(lambda: _prepare_out_dir(out_dir, overwrite)) if not resume else []
    if data is None and resume:
        check_data_paths_found(config, out_dir, f"resume it from the folder where {out_dir} was trained")
    if data is None:
        data = load_data(config)
    _check_data(data)
    # checked on resume (same data) by rank 0; the training rows, which every process trains on, by all
    fingerprint = data_fingerprint(data) if world.is_main else data_fingerprint(data, ("train",))
    _check_same_everywhere(world, "training data (data_dir, files or data given differ between machines?)",
                           {"train rows": fingerprint["train"]})
    if resume:  # changed data is the problem to name first, before the checks that depend on its size
        state = load_checkpoint(out_dir / CHECKPOINT_FILE, model_name=model_name)
        if world.distributed:  # one process: nothing to compare, and no second read of the checkpoint
            _check_same_everywhere(world, f"{out_dir / CHECKPOINT_FILE} (is --out one shared folder?)",
                                   {"checkpoint SHA-256": sha256_file(out_dir / CHECKPOINT_FILE)})
        world.on_main(lambda: check_resume_data(state, fingerprint, out_dir))
    _check_world(config, world, len(data.train), resume=resume)
    seed_everything(world.rank_seed(config.seed))
    model = build_model(config, data)
    check_batches(config.batch_size, model, len(data.train))
    model.to(world.device)
    optimization = Optimization(model)
    history: list[dict[str, Any]] = []
    start_epoch, best_val_loss, best_epoch = 0, math.inf, 0
    if resume:
        # the best weights, reloaded at the end of the run, checked now (digest, format, family, size): a
        # damaged file used to fail after every epoch had trained, or pass when a later epoch replaced it
        written = world.on_main(lambda: (load_weights(out_dir / WEIGHTS_FILE, model, model_name=model_name)
                                         .get("epoch", str(state["best_epoch"]))
                                         if (out_dir / WEIGHTS_FILE).is_file() else None))
        restore_training_state(model, optimization, state, str(out_dir / CHECKPOINT_FILE))
        history = [dict(row) for row in state["history"]]
        start_epoch, best_val_loss, best_epoch = state["epoch"], state["best_val_loss"], state["best_epoch"]
        if world.is_main and best_epoch == start_epoch and written != str(best_epoch):
            # stopped between the checkpoint of a new best epoch and its weights (write_epoch): the
            # checkpoint's model is that epoch's, so the best weights are written again from it
            save_weights(out_dir / WEIGHTS_FILE, model, model_name=model_name, epoch=best_epoch,
                         config=to_dict(config))
        if world.is_main:
            # history.csv is written after the checkpoint: a stop between the two left it an epoch short
            # (or it was edited, deleted); a resume with no epoch left to train never wrote it again, and
            # history.png and the history beside metrics.json lacked the last epoch. The checkpoint's is
            # the run's history.
            write_history(out_dir / HISTORY_FILE, history)
        ranks = state.get("rng_ranks") or []
        if len(ranks) == world.world_size:
            set_rng_state(ranks[world.rank])
        else:  # saved by another number of processes: rank 0 continues the saved stream
            set_rng_state(state["rng"])
            if not world.is_main:
                seed_everything(world.rank_seed(config.seed + start_epoch))
    # only once the new run's data have loaded and every check before the first epoch has passed
    world.on_main(lambda: _remove_run_files(replaced))
    world.on_main(lambda: save_config(out_dir / CONFIG_FILE, model_name, config,
                                      extra={k: v for k, v in meta.items() if v}))
    world.on_main(lambda: save_run_data(out_dir, data))  # the run folder works without its training data

    def log(message: str) -> None:
        if progress:
            tqdm.write(message, file=sys.stderr)

    processes = f" on {world.world_size} processes" if world.distributed else ""
    log(f"{data.describe()}\nrun folder: {out_dir}{processes}")
    device = world.device
    x_train = data.train.x.to(device, torch.float32)
    statistics_reduce = world.reduce if world.distributed else None
    if world.distributed and os.environ.get(LOCAL_STATISTICS_ENV) == "1":
        statistics_reduce = None
    epochs = tqdm(range(start_epoch + 1, config.epochs + 1), initial=start_epoch, total=config.epochs,
                  desc=f"train {meta.get('preset') or model_name}", unit="epoch", disable=not progress)
    first_epoch = start_epoch + 1
    saved = [start_epoch]  # the epoch checkpoint.pt holds (0: none), for the message of a failed write

    def validate(epoch: int, ending: bool = False) -> dict[str, float]:
        """The family's validation metrics of the model after ``epoch`` (rank 0's, on every rank); a
        NaN/inf ``val_loss`` or a validation that failed on a diverged model stops the run (``ending``:
        see :func:`_diverged`)."""
        def metrics():
            # the random states as they were: a validation that draws samples (the VAEs') leaves training's
            # stream alone, so validate_every changes which epochs are validated, not what is trained
            states = rng_state()
            try:
                return dict(family.validate(model, data.val)), None
            except (ValueError, RuntimeError, FloatingPointError):  # e.g. a metric refusing NaN codes
                cause = _non_finite(model, data.val.x.to(device, torch.float32), "the validation split")
                if cause is None:
                    raise
                return {}, cause
            finally:
                set_rng_state(states)

        validation, cause = world.on_main(metrics)
        if cause is not None:
            _diverged(config, out_dir, epoch, cause, history, best_epoch, ending=ending)
        if "val_loss" not in validation:
            raise ValueError(f"the validation metrics of '{model_name}' must contain 'val_loss' "
                             f"(got {sorted(validation)})")
        val_loss = float(validation["val_loss"])
        if not math.isfinite(val_loss):
            _diverged(config, out_dir, epoch, f"val_loss = {val_loss}", history, best_epoch, ending=ending)
        return validation

    def write_epoch(epoch: int, improved: bool, best_val_loss: float, best_epoch: int) -> None:
        """checkpoint.pt, history.csv and (``improved``) model.safetensors of ``epoch``, by rank 0."""
        rng_ranks = world.gather(rng_state()) if world.distributed else None

        def write() -> None:
            # the checkpoint first: a run stopped before the best weights are written has them in the
            # checkpoint (resume writes them again); written after, a stop between the two left the new
            # epoch's weights beside an older checkpoint, so `--resume --set epochs=N` reported epoch N
            # over the weights of the epoch that was lost
            save_checkpoint(out_dir / CHECKPOINT_FILE, model=model, optimization=optimization,
                            model_name=model_name, epoch=epoch, history=history, best_val_loss=best_val_loss,
                            best_epoch=best_epoch, config=to_dict(config), rng_ranks=rng_ranks,
                            data_fingerprint=fingerprint)
            saved[0] = epoch
            if epoch == first_epoch:
                # a finished run continued (--resume --set epochs=more): its metrics.json describes the
                # checkpoint just replaced (and the weights about to be); a run stopped (Ctrl-C, kill -9,
                # full disk) before it finished kept it, so `evaluate` reported the old epochs and best
                # epoch beside the new weights, and a sweep counted the trial as done. Dropped only once
                # the new checkpoint is written: a failed write leaves the run as it was. Written again
                # at the end.
                (out_dir / METRICS_FILE).unlink(missing_ok=True)
            write_history(out_dir / HISTORY_FILE, history)
            if improved:
                save_weights(out_dir / WEIGHTS_FILE, model, model_name=model_name, epoch=epoch,
                             config=to_dict(config))

        try:
            world.on_main(write)
        except OSError as err:  # a full disk, a folder made read-only: say what is kept and how to go on
            # the checkpoint may be written already (the history or the weights failed): say what it holds
            raise _write_failed(err, out_dir, saved[0], epoch) from None

    for epoch in epochs:
        started = time.perf_counter()
        if isinstance(model, torch.nn.Module):
            model.train()  # validation may have left it in eval mode
        running = RunningMean()
        batches = batch_indices(len(x_train), config.batch_size, config.seed, epoch)
        for number, index in enumerate(tqdm(batches, desc=f"epoch {epoch}", unit="batch", leave=False,
                                            disable=not progress), start=1):
            local = shard(index, world)
            batch = x_train[local.to(device)]
            try:
                logs = optimization.step(batch, reduce=statistics_reduce,
                                         gradient_reduce=world.reduce if world.distributed else None,
                                         batch_fraction=len(local) / len(index))
            except (ValueError, RuntimeError, FloatingPointError):
                # a NaN/inf inside the model's step (e.g. LISTA codes that overflowed, refused as FISTA's
                # start) is a divergence, not an input error; any other error is raised as it was
                cause = _non_finite(model, batch, f"batch {number}/{len(batches)}")
                if cause is None:
                    raise
                _diverged(config, out_dir, epoch, cause, history, best_epoch)
            if world.distributed:
                logs = _reduce_logs(logs, len(local), world)
            for key, value in logs.items():
                if _is_loss(key) and not math.isfinite(float(value)):
                    _diverged(config, out_dir, epoch, f"training log '{key}' = {value} at batch "
                              f"{number}/{len(batches)}", history, best_epoch)
            running.update(logs, len(index))
        train_logs = running.means()
        learning_rates = optimization.learning_rates()
        optimization.end_epoch()
        cause = _non_finite(model)
        if cause is not None:
            _diverged(config, out_dir, epoch, cause, history, best_epoch)
        # the same epochs on every process (a function of the config, which they share)
        validation = validate(epoch) if validates(epoch, config) else {}
        clash = set(train_logs) & (set(validation) | set(learning_rates) | {"epoch", "seconds"})
        if clash:
            raise ValueError(f"training logs and validation metrics share the names {sorted(clash)}; "
                             f"validation metrics should start with 'val_'")
        improved = bool(validation) and float(validation["val_loss"]) < best_val_loss
        if improved:
            best_val_loss, best_epoch = float(validation["val_loss"]), epoch
        history.append({"epoch": epoch, **{k: float(v) for k, v in train_logs.items()},
                        **{k: float(v) for k, v in validation.items()}, **learning_rates,
                        "seconds": time.perf_counter() - started})
        write_epoch(epoch, improved, best_val_loss, best_epoch)
        shown = {k: f"{v:.4g}" for k, v in train_logs.items() if _is_loss(k)}
        if validation:
            shown["val_loss"] = f"{float(validation['val_loss']):.4g}"
        epochs.set_postfix(**shown, best=best_epoch)
    epochs.close()
    if history and "val_loss" not in history[-1]:
        # a run ended at an epoch it had not validated: resumed with --set epochs=N after it stopped (Ctrl-C,
        # a divergence) at an epoch between two validated ones. Its last epoch is validated now, from the
        # checkpoint's model (that epoch's), as an uninterrupted run with epochs=N validates its last.
        epoch = int(history[-1]["epoch"])
        started = time.perf_counter()
        validation = validate(epoch, ending=True)
        row = history[-1]  # history_columns keeps the columns in their usual order
        history[-1] = {**row, **{k: float(v) for k, v in validation.items()},
                       "seconds": row.get("seconds", 0.0) + time.perf_counter() - started}
        improved = float(validation["val_loss"]) < best_val_loss
        if improved:
            best_val_loss, best_epoch = float(validation["val_loss"]), epoch
        write_epoch(epoch, improved, best_val_loss, best_epoch)

    if not history:
        raise ValueError(f"no epoch was trained in {out_dir} (epochs={config.epochs})")
    try:
        return world.on_main(lambda: _finish(out_dir, config, model, family, data, history, best_epoch,
                                             best_val_loss, log, world.world_size))
    except OSError as err:
        raise _write_failed(err, out_dir, int(history[-1]["epoch"]), finishing=True) from None


def validates(epoch: int, config) -> bool:
    """Whether ``epoch`` (1-based) is validated: every ``validate_every``-th epoch, and the last."""
    return epoch % config.validate_every == 0 or epoch == config.epochs


def _write_failed(err: OSError, out_dir: Path, saved: int, epoch: int | None = None, *,
                  finishing: bool = False) -> OSError:
    """``err`` (a run file that could not be written) with what the run folder keeps and how to continue:
    ``saved`` is the epoch of its last complete checkpoint (0: none), ``epoch`` the one whose files were
    being written (the checkpoint written first may hold it: only the history or the weights failed)."""
    if err.errno is None:
        return err
    if finishing:
        kept = (f"training stopped after its last epoch ({saved}), which {out_dir / CHECKPOINT_FILE} holds; "
                f"make room (or make the folder writable) and run the same command with --resume to write "
                f"metrics.json and the pictures")
    elif saved:
        kept = (f"training stopped in epoch {epoch or saved + 1}; {out_dir / CHECKPOINT_FILE} holds epoch "
                f"{saved}: make room (or make the folder writable) and continue with --resume")
    else:
        kept = ("training stopped in epoch 1, before any checkpoint: make room and train again with "
                "--overwrite")
    extra = () if err.filename is None else (err.filename,)
    return type(err)(err.errno, f"{err.strerror}; {kept}", *extra)


def _non_finite(model, x: torch.Tensor | None = None, rows: str = "") -> str | None:
    """What of ``model`` is NaN/inf: its parameters, else (given rows ``x``, described by ``rows``) its
    codes of ``x``; None when neither is. Asked after a training step or a validation metric raised, to
    tell a diverged model (its parameters, or codes that overflowed although the parameters are finite)
    from any other error."""
    bad = [name for name, p in model.state_dict().items()
           if isinstance(p, torch.Tensor) and p.is_floating_point() and not bool(torch.isfinite(p).all())]
    if bad:
        return f"non-finite parameters {bad[:5]}" + (f" (at {rows})" if rows else "")
    if x is None:
        return None
    # explaining an error: finite parameters whose squares overflow their dtype (float32: |p| > 1.8e19) make
    # every product of them inf, which e.g. FISTA refuses as an overflowing Gram matrix WᵀW
    peaks = {name: (float(p.detach().abs().max()), math.sqrt(torch.finfo(p.dtype).max))
             for name, p in model.state_dict().items()
             if isinstance(p, torch.Tensor) and p.is_floating_point() and p.numel()}
    huge = {name: peak for name, (peak, bound) in peaks.items() if peak > bound}
    if huge:
        shown_values = ", ".join(f"{name} up to {value:.3g}" for name, value in list(huge.items())[:5])
        return f"parameters too large for float products ({shown_values})" + (f" (at {rows})" if rows else "")
    try:
        with torch.no_grad():
            codes = model.encode(x)
    except Exception:  # noqa: BLE001 - cannot tell; the caller raises its own error
        return None
    if isinstance(codes, torch.Tensor) and not bool(torch.isfinite(codes).all()):
        return f"the model's codes of {rows} are NaN/inf (finite parameters whose outputs overflowed)"
    return None


def _diverged(config, out_dir: Path, epoch: int, what: str, history: list[dict[str, Any]], best_epoch: int, *,
              ending: bool = False):
    """Raise :class:`TrainingDiverged` for ``epoch``; the epochs of ``history`` are kept, the best of them
    ``best_epoch`` (0: none validated yet); ``ending``: the validation of the last epoch of a run ending
    there (``epoch == len(history)``) failed."""
    completed = len(history)
    validated = bool(history) and "val_loss" in history[-1]
    weights_kept = (f"best weights {out_dir / WEIGHTS_FILE} (epoch {best_epoch})" if best_epoch else
                    f"no best weights (no epoch validated yet: validate_every={config.validate_every})")
    if ending:
        evaluate = (f"; `sparsecoder evaluate {out_dir}` measures the best weights" if best_epoch else "")
        kept = (f"Kept: {out_dir / CHECKPOINT_FILE} (epoch {completed}, whose validation failed, so the run "
                f"cannot end there), {weights_kept} and {out_dir / HISTORY_FILE}{evaluate}")
    elif completed:
        kept = (f"Kept: {out_dir / CHECKPOINT_FILE} (last good epoch {completed}), {weights_kept} and "
                f"{out_dir / HISTORY_FILE}; `--resume --set epochs={completed}` ends the run there "
                f"({'' if validated else f'validating epoch {completed} first, then '}"
                f"metrics.json, pictures), while resuming with the same settings would diverge again")
    else:
        kept = "No epoch had completed, so there is no checkpoint and no weights"
    weights = ", ".join(f"{name}={getattr(config, name)}" for name in getattr(config, "LOSS_SCALES", ())
                        if hasattr(config, name))
    also = (f"; the loss's weights and scales ({weights}) set the size of its gradients too, and data far "
            f"from the scale the preset expects can diverge as well" if weights else "")
    raise TrainingDiverged(
        f"training diverged in epoch {epoch}: {what}. A step size or learning rate is probably too large "
        f"({_knobs(config)}); lower it (e.g. --set KEY=VALUE) and train again, into another --out or over "
        f"this run with --overwrite (resume allows no such change){also}. {kept}."
    )


def _finish(out_dir: Path, config, model, family, data: DataSplits, history, best_epoch: int,
            best_val_loss: float, log, world_size: int = 1) -> dict[str, Any]:
    """Reload the best weights, evaluate on the test split, write metrics.json and the pictures."""
    from sparsecoder import __version__
    from sparsecoder.viz import history_plot, run_label

    load_weights(out_dir / WEIGHTS_FILE, model, model_name=config.model_name)
    seed_everything(config.seed)  # evaluation may sample (VAEs); `evaluate_run` reseeds the same way
    metrics = dict(family.evaluate(model, data))
    git_hash, git_dirty = _git_state()
    metrics.update(
        epochs=int(history[-1]["epoch"]),
        seconds=float(sum(row.get("seconds", 0.0) for row in history)),
        best_epoch=int(best_epoch),
        best_val_loss=float(best_val_loss),
        n_train=len(data.train),
        data=data.describe(),
        version=__version__,
        git_hash=git_hash,
        git_dirty=git_dirty,
        world_size=int(world_size),
    )
    metrics = jsonable(metrics)
    atomic_write_json(out_dir / METRICS_FILE, metrics)
    pictures = list(family.pictures(model, data, out_dir) or []) if family.pictures else []
    pictures.append(history_plot(out_dir / HISTORY_FILE, out_dir / HISTORY_PLOT,
                                 title=f"training history — {run_label(config, data.name)}"))
    log(f"best epoch {best_epoch} (val_loss {best_val_loss:.6g}); wrote {out_dir / METRICS_FILE} and "
        f"{', '.join(Path(p).name for p in pictures)}")
    if family.pictures and data.image_shape is None:  # atoms and reconstructions were left out silently
        log(_no_pictures_note(config, data))
    return metrics


def _no_pictures_note(config, data) -> str:
    """What a run on rows without an image shape says instead of drawing atoms and reconstructions, with
    the option that gives the shape where the data source has one (``arrays``)."""
    from sparsecoder.data.registry import SOURCES, source_options

    source = getattr(config, "data", None)
    hint = ""
    if isinstance(source, str) and source in SOURCES and "image_shape" in source_options(source):
        hint = "; for rows that are images give it: --set 'data_options={image_shape: [H, W]}'"
    return (f"no pictures of atoms or reconstructions: the data ({data.describe()}) have no image "
            f"shape{hint}")
