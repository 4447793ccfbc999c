"""``sparsecoder.sweep(...)``: presets × grid × seeds as one resumable command on Ray."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from pathlib import Path
from typing import Any

from sparsecoder.config import ConfigError, read_record
from sparsecoder.io import atomic_write_bytes
from sparsecoder.sweep.spec import (
    SPEC_FILE,
    build_spec,
    check_compatible,
    record_yaml,
    recorded_relative_paths,
)
from sparsecoder.train.integrity import LOCK_FILE, run_folder_lock

__all__ = ["sweep", "check_executor", "check_data_dirs", "check_devices"]


def check_executor(executor: str, address: str | None, max_concurrent: int | None) -> None:
    """Refuse an unknown ``executor``, a ``max_concurrent`` that is not an integer >= 1, and an ``address``
    or a ``max_concurrent`` > 1 for the serial executor (it was ignored there), and the Ray executor where
    Ray is not installed (a ``pip install --no-deps``; it was an "unexpected" ModuleNotFoundError).
    :func:`sweep` and :func:`sparsecoder.reproduce.reproduce` call it before they write anything."""
    if executor not in ("ray", "serial"):
        raise ValueError(f"executor must be 'ray' or 'serial', got {executor!r}")
    if executor == "ray" and importlib.util.find_spec("ray") is None:
        raise ValueError("the trials run on Ray, which is not installed in this environment: pip install "
                         "'ray[client]==2.60.0' (the version sparsecoder requires), or train them one after "
                         "the other in this process with --serial (executor='serial')")
    if executor == "serial" and address is not None:
        raise ValueError("--address joins a Ray cluster; the serial executor runs trials in this process")
    if max_concurrent is not None and (isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int)
                                       or max_concurrent < 1):
        raise ValueError(f"--max-concurrent must be an integer >= 1, got {max_concurrent!r}")
    if executor == "serial" and max_concurrent is not None and max_concurrent > 1:
        raise ValueError(f"--max-concurrent {max_concurrent}: the serial executor runs one trial at a time; "
                         f"leave out --serial to run {max_concurrent} at once on Ray")


def check_data_dirs(data_dirs, address: str | None) -> None:
    """Refuse a ``data_dir`` that does not exist when the trials run on this machine (no ``address``: on a
    cluster the data may be on the workers only). Every trial used to fail on it after the sweep (or
    experiment) record was written, which then refused the corrected command as a different sweep."""
    if address is not None:
        return
    from sparsecoder.data.registry import expand_data_dir

    for data_dir in dict.fromkeys(d for d in data_dirs if d is not None):
        if not str(data_dir).strip():  # Path("") is the current folder: the trials looked for the data there
            raise ValueError("data_dir is empty; give the folder or file that holds the data, or leave it "
                             "out for the embedded data (nothing was written)")
        if not Path(expand_data_dir(str(data_dir))).exists():
            raise FileNotFoundError(f"data_dir {data_dir} does not exist; give the folder or file that holds "
                                    f"the data (nothing was written)")


def check_devices(devices, address: str | None) -> None:
    """Refuse a trial ``device`` (``--set``/``--grid device=``) that this machine does not have when the
    trials run here (no ``address``), as ``train`` does: every such trial used to fail after the sweep record
    was written, which then refused the corrected command as a different sweep."""
    if address is not None:
        return
    from sparsecoder.models.common import resolve_device

    for device in dict.fromkeys(d for d in devices if d is not None):
        try:
            resolve_device(str(device))
        except ValueError as err:
            raise ValueError(f"{err} (the trials run on this machine; nothing was written)") from None


def check_trials_start(specs, address: str | None) -> None:
    """Refuse, before a sweep's (or experiment's) record is written, the trials of ``specs`` that would
    fail as they start on this machine (no ``address``: on a cluster the data may be on the workers only):
    the test split of each distinct data set is loaded (a ``data_dir`` of the wrong kind, a data option the
    source refuses) and each distinct trial config's model and training state (its seed aside: the sizes
    are the seeds') is counted against this machine's memory. Each used to fail every trial after the
    record was written, which then refused the corrected command as a different sweep."""
    if address is not None:
        return
    from sparsecoder.models import model_class
    from sparsecoder.models.common import check_model_fits
    from sparsecoder.train.run import load_test_split

    widths: dict[str, tuple[int, Any]] = {}  # data set -> (features per row, image shape) of its test split
    counted: set[str] = set()  # the configs (seed aside) whose model was counted against the memory
    for spec in specs:
        for trial in spec.trials():
            config = spec.trial_config(trial)  # built (and checked) by build_spec
            key = repr((config.data, config.data_dir, config.limit,
                        sorted(dict(config.data_options).items())))
            sized = repr((key, type(config).__name__, [(f.name, getattr(config, f.name))
                                                       for f in dataclasses.fields(config)
                                                       if f.name != "seed"]))
            try:
                if key not in widths:  # the first seed's test split: the options and width are the seeds'
                    test = load_test_split(config)  # only its width kept: not every data set's rows at once
                    widths[key] = int(test.test.x.shape[1]), test.image_shape
                n_features, shape = widths[key]
                if sized not in counted:  # once per config, not per seed (10,000 seeds took ~20 s)
                    model = model_class(config.model_name)
                    check_model_fits(model, config, n_features, shape, f"a {model.__name__}")
                    counted.add(sized)
            except (ValueError, OSError) as err:
                raise ValueError(f"trial {trial.label} would fail as it starts: {err} (nothing was "
                                 f"written)") from None


def sweep(presets: str | list[str], out_dir: str | Path, *, grid: dict[str, Any] | list[str] | None = None,
          seeds: str | list[int] | None = None, overrides: dict[str, Any] | list[str] | None = None,
          address: str | None = None, cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0,
          max_concurrent: int | None = None, retry_failed: bool = False, num_cpus: int | None = None,
          progress: bool = True, executor: str = "ray", check_start: bool = True) -> dict[str, Any]:
    """Train every ``preset × grid point × seed`` as a Ray task, each into its own run folder, and
    aggregate the results.

    Trial ``(preset, point, seed)`` is the ordinary run folder ``out_dir/<preset>/<key=value,...>/seed=<s>``
    written by :func:`sparsecoder.train.train` with ``overrides`` + the grid point + ``seed`` +
    ``num_threads=cpus_per_trial``. A rerun of the same sweep skips finished trials (``metrics.json``),
    resumes interrupted ones from ``checkpoint.pt`` (and ``lost`` ones: their Ray worker died, even when
    run again), and retries failed/diverged ones only with ``retry_failed``. The spec of an
    existing ``out_dir`` may only grow by grid values or seeds.

    Parameters
    ----------
    presets : str or list of str
        Preset names (see ``sparsecoder presets``).
    out_dir : str or Path
        Sweep directory; with ``address`` it must be storage that every node of the cluster sees.
    grid : dict or list of "KEY=V1,V2,...", optional
        Values to sweep per config key; ``{"lam": "grid"}`` (``lam=grid``) takes each preset's ``lam_grid``.
    seeds : "0,1,2", "0-4" or list of int, optional
        Default ``[0]``.
    overrides : dict or list of "KEY=VALUE", optional
        Config values for every trial (as ``sparsecoder train --set``).
    address : str, optional
        ``None``: start a local Ray inside this call (``num_cpus`` CPUs, default all cores) and stop it at
        the end. ``"auto"``, ``"HOST:PORT"`` (the head's GCS port, 6379 by default) or
        ``"ray://HOST:PORT"``: join that cluster. An already initialised Ray in this process is reused.
    cpus_per_trial, gpus_per_trial : float
        Ray resources per trial; torch uses ``max(1, int(cpus_per_trial))`` threads in each trial.
    max_concurrent : int, optional
        At most this many trials at a time (``1`` runs them one after the other); default: as many as the
        cluster's resources allow.
    retry_failed : bool
        Run trials recorded as ``failed``/``diverged`` again.
    progress : bool
        tqdm bar over the trials (stderr) with done/running/failed counts.
    executor : {"ray", "serial"}
        ``"serial"`` runs the trials one after the other in this process without starting Ray (same run
        folders and status files, so a sweep can be resumed by either); it takes no ``address``.
    check_start : bool
        Load each data set's test split and count each trial's model against this machine's memory before
        anything is written (:func:`check_trials_start`). ``reproduce`` checks every sweep of an
        experiment at once before it starts, and passes False so that its sweeps do not repeat it.

    Returns
    -------
    dict
        ``{"counts": {"done", "failed", "diverged", "lost", "skipped"}, "rows": [...], "files": [...],
        "directory": Path, "foreign": {...}}``; ``rows`` are the rows of ``results.csv``; ``foreign`` the
        run folders of the trials whose finished run is not the trial's (their rows: ``failed``).

    Raises
    ------
    ConfigError / ValueError
        Bad input (unknown preset or grid key, empty or unparsable grid, bad seeds, a dead address, a
        directory holding a different sweep), before Ray starts or any trial runs.
    KeyboardInterrupt
        After cancelling the running trials; rerun the same call to resume them.
    """
    if isinstance(presets, str):
        presets = [presets]
    check_executor(executor, address, max_concurrent)
    if num_cpus is not None and num_cpus < 1:
        raise ValueError(f"num_cpus must be >= 1, got {num_cpus}")
    if address is not None and num_cpus is not None:
        raise ValueError("num_cpus bounds a local Ray only; leave it out with --address")
    spec = build_spec(list(presets), grid, seeds, overrides, cpus_per_trial, gpus_per_trial,
                      keep_relative=_recorded_relative_paths(Path(out_dir) / SPEC_FILE))
    trial_overrides = [spec.trial_overrides(t) for t in spec.trials()]
    check_data_dirs((o.get("data_dir") for o in trial_overrides), address)
    check_devices((o.get("device") for o in trial_overrides), address)
    if check_start:
        check_trials_start([spec], address)
    directory = Path(out_dir)
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"--out {directory} exists and is not a folder")
    with run_folder_lock(directory, "sweep", create=True):  # one sweep command per folder at a time
        return _sweep_locked(spec, directory, address=address, executor=executor, num_cpus=num_cpus,
                             max_concurrent=max_concurrent, retry_failed=retry_failed, progress=progress)


def _recorded_relative_paths(spec_path: Path) -> set[str]:
    """The relative data paths ``spec_path`` records (a sweep of an older version, which stored them as
    given): its rerun keeps them, its trials' ``config.yaml`` hold the same text. A missing or damaged record
    has none (the locked sweep reads it again and names the damage)."""
    try:
        return recorded_relative_paths(read_record(spec_path, {}, ""))
    except (OSError, ConfigError):
        return set()


def _sweep_locked(spec, directory: Path, *, address, executor, num_cpus, max_concurrent, retry_failed,
                  progress) -> dict[str, Any]:
    """The body of :func:`sweep` once it holds the sweep folder's lock."""
    from sparsecoder.sweep.executor import (
        RUN_AGAIN,
        check_trial_fits,
        connect_ray,
        foreign_finished_trials,
        new_counts,
        run_trials,
        run_trials_serial,
        trial_state,
    )
    from sparsecoder.sweep.results import write_results

    spec_path = directory / SPEC_FILE
    if spec_path.is_file():
        fix = (f"it records the sweep run in {directory}: restore it (same presets, grid, seeds and --set), "
               f"or choose a new --out")
        old = read_record(spec_path, {"presets": list, "overrides": (dict, type(None)), "resolved_grid": dict,
                                      "seeds": list}, fix)
        for preset, point in old["resolved_grid"].items():
            if not isinstance(point, dict) or not all(isinstance(v, list) for v in point.values()):
                raise ConfigError(f"{spec_path} is damaged: resolved_grid of {preset} is {point!r}; {fix}")
        check_compatible(old, spec, directory)
    elif any(p.name != LOCK_FILE for p in directory.iterdir()):
        raise FileExistsError(f"{directory} is not empty and holds no {SPEC_FILE}; choose a new --out "
                              f"for the sweep")
    local_cpus = num_cpus or os.cpu_count() or 1
    if address is None and spec.cpus_per_trial > local_cpus:
        raise ValueError(f"--cpus-per-trial {spec.cpus_per_trial:g} exceeds the {local_cpus} CPU(s) of the "
                         f"local Ray; lower it or join a cluster with --address")

    trials = spec.trials()
    states = {t: trial_state(directory / t.folder) for t in trials}
    # a finished run of another config at a trial's path (copied or moved there, its config.yaml edited)
    # is not that trial's result: checked once per command, not at each results write
    foreign = foreign_finished_trials(spec, directory, [t for t in trials if states[t] == "done"])
    todo = [t for t in trials if states[t] in RUN_AGAIN
            or (retry_failed and states[t] in ("failed", "diverged"))]
    skipped = len(trials) - len(todo)

    def finished(counts: dict[str, int]) -> dict[str, Any]:
        """:func:`sweep`'s result: ``results.csv`` written with this command's ``counts``."""
        results = write_results(spec, directory, foreign)
        return {"counts": {**counts, "skipped": skipped}, "rows": results["rows"], "files": results["files"],
                "directory": directory, "foreign": {str(t.folder) for t in foreign}}

    if not todo:  # everything finished (or failed without --retry-failed): no Ray needed
        return finished(new_counts())

    if executor == "serial":
        directory.mkdir(parents=True, exist_ok=True)
        record = {**spec.to_dict(), "executor": "serial"}
        atomic_write_bytes(spec_path, record_yaml(record).encode())
        try:
            counts = run_trials_serial(spec, directory, todo, progress=progress)
        except BaseException:
            write_results(spec, directory, foreign)  # what finished so far; the rest resumes on a rerun
            raise
        return finished(counts)

    import ray

    started, resolved_address = connect_ray(address, local_cpus if address is None else None)
    try:
        # local, joined or already running in this process: refuse a trial no node can run rather than hang
        check_trial_fits(ray.nodes(), spec.cpus_per_trial, spec.gpus_per_trial,
                         f"the Ray cluster at --address {address}" if address else "the local Ray")
        record = {**spec.to_dict(), "executor": "ray", "ray_version": ray.__version__,
                  "address": address or "local", "ray_gcs_address": resolved_address,
                  "max_concurrent": max_concurrent}
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(spec_path, record_yaml(record).encode())
        try:
            counts = run_trials(spec, directory, todo, max_concurrent=max_concurrent, progress=progress)
        except KeyboardInterrupt:
            write_results(spec, directory, foreign)  # what finished so far; the rest resumes on a rerun
            raise
    finally:
        if started:
            ray.shutdown()
    return finished(counts)
