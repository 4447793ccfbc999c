"""Run a sweep's trials as Ray tasks: local Ray by default, an existing cluster by address.

Each trial is one Ray task (``num_cpus=cpus_per_trial``, ``num_gpus=gpus_per_trial``) that calls the
ordinary trainer, :func:`sparsecoder.train.train`, on its run folder; inside it torch uses
``num_threads = cpus_per_trial`` threads (a config override). The driver (this process) only schedules,
records each trial's outcome in a small status file and aggregates the results.

Trial states on disk (all in the trial's run folder, which must be on storage every node sees):

* ``metrics.json`` present → **done**; a rerun skips it.
* ``checkpoint.pt`` present, no ``metrics.json`` → **interrupted**; a rerun resumes it (``resume=True``).
* ``sweep_trial.json`` with ``status: failed`` or ``diverged`` → skipped unless ``retry_failed``.
* ``sweep_trial.json`` with ``status: lost`` → its Ray task was lost from outside the trial (its worker
  process died: killed, Ray's out-of-memory killer, its node lost, on each of its :data:`TRIAL_RETRIES` + 1
  attempts; or the task was cancelled by someone else than this command); a rerun resumes it.

A finished trial counts only if its run is the trial's own (:func:`foreign_finished_trials`, once per sweep
command); ``sweep_trial.json`` keeps a digest of the verified pair (trial, ``config.yaml``) so that a later
command only hashes the file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from sparsecoder.io import atomic_write_bytes
from sparsecoder.sweep.spec import SweepSpec, Trial

__all__ = ["STATUS_FILE", "FOREIGN_FIX", "TRIAL_RETRIES", "RUN_AGAIN", "RECORDED", "new_counts",
           "trial_state", "ray_error_outcome", "connect_ray", "run_trials", "check_address",
           "check_trial_fits", "foreign_finished_trials"]

STATUS_FILE = "sweep_trial.json"
METRICS_FILE = "metrics.json"
CHECKPOINT_FILE = "checkpoint.pt"
CONFIG_FILE = "config.yaml"
ADDRESS_TIMEOUT_S = 10.0
# The times a sweep command runs a trial again (resumed from its checkpoint) when its Ray task is lost to a
# dead worker (kill -9, Ray's out-of-memory killer, a node lost). The driver resubmits it: Ray's own
# max_retries > 0 also turns on Ray's retries of tasks killed for memory, unbounded by default (a trial
# that needs more memory than there is was killed and run again for ever), so the task has max_retries=0.
TRIAL_RETRIES = 2
# the states (trial_state) a sweep command runs without retry_failed: new, resumed or lost to its worker
RUN_AGAIN = ("new", "interrupted", "lost")
# the outcomes other than done that a trial's status file records
RECORDED = ("failed", "diverged", "lost")


def new_counts() -> dict[str, int]:
    """The outcome counts of a sweep command: done and each of :data:`RECORDED`, from 0."""
    return dict.fromkeys(("done", *RECORDED), 0)


def read_status(trial_dir: Path) -> dict[str, Any] | None:
    path = trial_dir / STATUS_FILE
    if not path.is_file():
        return None
    try:
        status = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError):  # unreadable, binary or not JSON: as if the trial had no outcome yet
        return None
    return status if isinstance(status, dict) else None


def write_status(trial_dir: Path, outcome: dict[str, Any]) -> None:
    """Record a finished trial: status, message, the worker's start/end wall-clock times (Unix s) and, for
    a trial that is done, the :func:`trial_digest` of its run (``verified``)."""
    trial_dir.mkdir(parents=True, exist_ok=True)
    record = {"status": outcome["status"], "message": outcome.get("message", ""),
              "started": outcome.get("started"), "finished": outcome.get("finished"),
              "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if outcome.get("verified"):
        record["verified"] = outcome["verified"]
    atomic_write_bytes(trial_dir / STATUS_FILE, (json.dumps(record, indent=2) + "\n").encode())


def trial_state(trial_dir: Path) -> str:
    """``done``, ``failed``, ``diverged``, ``lost`` (its Ray worker died), ``interrupted`` (checkpoint, no
    metrics) or ``new``."""
    if (trial_dir / METRICS_FILE).is_file():
        return "done"
    status = read_status(trial_dir)
    if status and status.get("status") in RECORDED:
        return status["status"]
    if (trial_dir / CHECKPOINT_FILE).is_file():
        return "interrupted"
    return "new"


def run_trial(preset: str, trial_dir: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Body of one trial (runs in a Ray worker): train, resume or finish one run folder.

    Resumes from ``checkpoint.pt`` when there is one; otherwise starts afresh, replacing the run files of
    an attempt that stopped before its first epoch (``overwrite=True``; the trainer still refuses a folder
    that is not a run folder). Returns ``{"status", "message", "started", "finished"}``; divergence
    (:class:`~sparsecoder.train.TrainingDiverged`) is ``diverged``, any other exception ``failed``.
    A ``metrics.json`` there is an earlier attempt's of this trial (:func:`run_trials` submits a trial
    whose worker died again, perhaps after its run finished; a finished trial is not run at all): ``done``,
    the run left as it is.
    """
    from sparsecoder.train import TrainingDiverged, train

    started = time.time()
    path = Path(trial_dir)
    if (path / METRICS_FILE).is_file():  # else started over from scratch, its finished run replaced
        try:  # the trial's own run (not one copied there meanwhile), as a sweep command checks one at start
            check_own_trial(preset, path, overrides, finished=True)
        except (FileExistsError, ValueError) as err:  # unreadable config.yaml; another config's run
            return {"status": "failed", "message": f"{type(err).__name__}: {err}", "started": started,
                    "finished": time.time()}
        return {"status": "done", "message": "", "started": started, "finished": time.time()}
    resume = (path / CHECKPOINT_FILE).is_file()  # no metrics.json: returned above
    try:
        if not resume and path.exists():
            check_own_trial(preset, path, overrides)  # overwrite=True replaces this trial's files only
        train(preset, path, overrides=overrides, resume=resume, overwrite=not resume and path.exists(),
              progress=False)
    except TrainingDiverged as err:
        return {"status": "diverged", "message": str(err), "started": started, "finished": time.time()}
    except Exception as err:  # noqa: BLE001 — recorded in the trial's status file; the sweep goes on
        tail = traceback.format_exc(limit=-3)
        return {"status": "failed", "message": f"{type(err).__name__}: {err}", "traceback": tail,
                "started": started, "finished": time.time()}
    return {"status": "done", "message": "", "started": started, "finished": time.time()}


def ray_error_outcome(err: Exception) -> dict[str, Any]:
    """The outcome of a trial whose Ray task raised ``err`` at ``ray.get`` instead of returning one.

    ``failed`` for a :class:`ray.exceptions.RayTaskError` (the trial's own code raised what
    :func:`run_trial` does not catch, e.g. ``SystemExit``); ``lost`` for the rest, which stopped the task
    from outside the trial: its worker process died (``kill -9``, Ray's out-of-memory killer, its node lost),
    or someone other than this command cancelled it (``TaskCancelledError``, also a ``RayTaskError`` for
    Ray). A ``lost`` trial is run again (:func:`run_trials`) and resumed by the next sweep command. The
    message is the error's type and the line of its text that says what happened (a traceback's last, a
    Ray system error's first: the rest of an out-of-memory kill's is Ray's memory report)."""
    import ray

    lines = str(err).strip().splitlines() or [""]
    errors = ray.exceptions
    lost = isinstance(err, errors.TaskCancelledError) or not isinstance(err, errors.RayTaskError)
    line = lines[0] if not isinstance(err, errors.RayTaskError) else lines[-1]
    return {"status": "lost" if lost else "failed", "message": f"{type(err).__name__}: {line}"}


# what to do about a trial folder holding a finished run that is not the trial's: --retry-failed leaves a
# finished run as it is (named on the trial's row, and in `reproduce`'s summary)
FOREIGN_FIX = ("the sweep replaces only the files of its own trials; move that folder out of the sweep (or "
               "delete it) and rerun")


def check_own_trial(preset: str, trial_dir: Path, overrides: dict[str, Any], finished: bool = False) -> None:
    """Refuse to start the trial over ``trial_dir`` (its run files replaced) unless the run there is this
    trial's: its ``config.yaml`` names ``preset`` and holds the trial's config (``epochs``, ``device`` and
    ``num_threads`` aside, as on resume; ``finished``: a finished run's ``epochs`` too, since its metrics
    are those of its epochs). A folder without ``config.yaml`` is left to the trainer, which refuses one
    that is not empty. Resuming is checked by the trainer itself."""
    from sparsecoder.config import ConfigError, load_config, read_config_document
    from sparsecoder.train.trainer import changed_keys, resolve_config

    path = trial_dir / CONFIG_FILE
    if not path.is_file():
        return
    fix = FOREIGN_FIX
    try:
        _, saved = load_config(path)
        saved_preset = read_config_document(path).get("preset")
    except (OSError, ValueError) as err:  # ConfigError is a ValueError
        raise FileExistsError(f"{trial_dir} holds a config.yaml that is not a readable run config ({err}), "
                              f"so it is not verifiably this trial's folder; {fix}") from None
    wanted, meta = resolve_config(preset, overrides)
    name = meta["preset"]  # the name train records: a preset file's stem ('my' for my.yaml)
    differences = [] if saved_preset == name else [f"preset: folder has {saved_preset!r}, trial {name!r}"]
    if type(saved) is not type(wanted):
        differences.append(f"model: folder has {saved.model_name!r}, trial {wanted.model_name!r}")
    else:
        keys = changed_keys(saved, wanted)
        if finished and saved.epochs != wanted.epochs:
            keys.append("epochs")
        differences += [f"{key}: folder has {getattr(saved, key)!r}, trial {getattr(wanted, key)!r}"
                        for key in keys]
    if differences:
        raise ConfigError(f"{trial_dir} holds a run of another config ({'; '.join(differences[:5])}), not "
                          f"this sweep's trial; {fix}")


def trial_digest(trial_dir: Path, preset: str, overrides: dict[str, Any], config: Any) -> str | None:
    """SHA-256 of the trial (``preset``, its ``overrides`` and the ``config`` they resolve to: a preset
    given as a YAML file can change under the same name) together with the bytes of the ``config.yaml`` in
    ``trial_dir``; ``None`` when there is no readable ``config.yaml``. Recorded as ``verified`` in the
    trial's status file once the run there is known to be the trial's own."""
    from sparsecoder.config import to_dict

    try:
        text = (trial_dir / CONFIG_FILE).read_bytes()
    except OSError:
        return None
    digest = hashlib.sha256(json.dumps([preset, overrides, to_dict(config)], sort_keys=True,
                                       default=str).encode())
    digest.update(b"\0" + text)
    return digest.hexdigest()


def foreign_finished_trials(spec: SweepSpec, directory: Path, trials: list[Trial]) -> dict[Trial, str]:
    """``{trial: why}`` for each finished trial (``metrics.json``) of ``trials`` whose run folder does not
    hold the trial's own run: a run of another config or preset copied or moved there, a ``config.yaml``
    edited by hand, or none at all. Their metrics are another run's, so the sweep reports them as
    ``failed`` and leaves their folders as they are.

    A sweep command calls this once, when it starts. A trial found to be its own gets the
    :func:`trial_digest` recorded in its status file (the sweep records it too when a trial finishes), so
    the next command only hashes its ``config.yaml`` instead of reading and comparing the config."""
    foreign = {}
    for trial in trials:
        trial_dir = directory / trial.folder
        overrides = spec.trial_overrides(trial)
        digest = trial_digest(trial_dir, trial.preset, overrides, spec.trial_config(trial))
        status = read_status(trial_dir) or {}
        if digest is not None and status.get("verified") == digest:
            continue
        try:
            if digest is None:
                raise FileNotFoundError(f"{trial_dir} holds {METRICS_FILE} but no readable {CONFIG_FILE}, "
                                        f"so it is not verifiably this trial's run; {FOREIGN_FIX}")
            check_own_trial(trial.preset, trial_dir, overrides, finished=True)
        except (OSError, ValueError) as err:  # ConfigError is a ValueError
            foreign[trial] = str(err)
            continue
        write_status(trial_dir, {"status": "done", "message": "", "started": status.get("started"),
                                 "finished": status.get("finished"), "verified": digest})
    return foreign


def check_address(address: str) -> None:
    """Fail within :data:`ADDRESS_TIMEOUT_S` seconds, naming ``address``, when nothing answers there.

    ``HOST:PORT`` and ``ray://HOST:PORT`` are probed with a TCP connection (Ray's own client would retry
    for about a minute); ``auto`` is left to Ray, which fails at once when no cluster runs here.
    """
    if address == "auto":
        return
    target = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"--address {address!r} is not auto, HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host, int(port)), timeout=ADDRESS_TIMEOUT_S):
            pass
    except OSError as err:
        raise ValueError(f"no Ray cluster answers at --address {address} ({err}); start one with "
                         f"`ray start --head` there, or leave --address out to run on a local Ray") from None
    if address.startswith("ray://"):
        try:
            import grpc  # noqa: F401
            import ray.util.client  # noqa: F401
        except ImportError:
            raise ValueError(f"--address {address}: ray:// addresses need the Ray client (grpcio, installed "
                             f"with the package: pip install 'ray[client]==2.60.0'); or run the sweep on "
                             f"a node of the cluster with --address auto or HOST:PORT") from None


def _worker_pythonpath() -> str | None:
    """The folder holding this ``sparsecoder`` package when it is not an installed distribution.

    Ray workers started by a separate ``ray start`` do not see the driver's ``PYTHONPATH``; passing it in
    the runtime environment makes them import the same source tree (a no-op for an installed package).
    """
    import sparsecoder

    root = str(Path(sparsecoder.__file__).resolve().parent.parent)
    if "site-packages" in root or "dist-packages" in root:
        return None
    parts = [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]
    return os.pathsep.join(parts)


def _use_auth_token_if_present() -> None:
    """Ray 2.60's ``ray start`` turns on token authentication; a driver joining it must too.

    As Ray's own CLI does: when ``RAY_AUTH_MODE`` is unset and a token exists (``RAY_AUTH_TOKEN``,
    ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``), set ``RAY_AUTH_MODE=token`` for this process.
    """
    if "RAY_AUTH_MODE" in os.environ:
        return
    token_file = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or token_file.is_file():
        os.environ["RAY_AUTH_MODE"] = "token"
        from ray._raylet import Config  # Ray read its config at import: make it see the new mode

        Config.initialize("")


def connect_ray(address: str | None, num_cpus: int | None = None) -> tuple[bool, str]:
    """Start a local Ray (``address=None``) or join a cluster; returns ``(started_here, address)``.

    A Ray already initialised in this process (e.g. by the caller) is used as is and left running.
    The local instance is bounded to ``num_cpus`` (default: this machine's cores), has no dashboard and
    logs only errors.
    """
    import ray

    if ray.is_initialized():
        return False, ray.get_runtime_context().gcs_address
    if address is not None:
        check_address(address)
    env = {}
    pythonpath = _worker_pythonpath()
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    kwargs: dict[str, Any] = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
                                  runtime_env={"env_vars": env} if env else None)
    if address is None:
        kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
    else:
        kwargs["address"] = address
        _use_auth_token_if_present()
    try:
        ray.init(**kwargs)
    except ConnectionError as err:
        raise ValueError(f"cannot join a Ray cluster at --address {address}: {err} (a cluster started by "
                         f"`ray start` uses token authentication: the token of its head must be in "
                         f"~/.ray/auth_token or RAY_AUTH_TOKEN here, with RAY_AUTH_MODE=token)") from None
    return True, address if address is not None and address.startswith("ray://") else \
        ray.get_runtime_context().gcs_address


def check_trial_fits(nodes: list[dict[str, Any]], cpus_per_trial: float, gpus_per_trial: float,
                     where: str) -> None:
    """Refuse a trial that no node of ``where`` (the Ray cluster, as a message names it) could ever run:
    Ray would keep it pending and the sweep would wait forever. ``nodes`` is :func:`ray.nodes` (alive nodes
    count; a task runs on one node, so one node's CPUs and GPUs must suffice, not the cluster's sum). Busy
    CPUs are no reason: the trial waits for them."""
    alive = [node.get("Resources", {}) for node in nodes if node.get("Alive", True)]
    if any(r.get("CPU", 0) >= cpus_per_trial and r.get("GPU", 0) >= gpus_per_trial for r in alive):
        return
    largest = max(alive, key=lambda r: (r.get("CPU", 0), r.get("GPU", 0)), default={})
    needs, has = f"{cpus_per_trial:g} CPU(s)", f"{largest.get('CPU', 0):g} CPU(s)"
    if gpus_per_trial:
        needs, has = f"{needs} and {gpus_per_trial:g} GPU(s)", f"{has}, {largest.get('GPU', 0):g} GPU(s)"
    raise ValueError(f"a trial needs {needs} on one node, but no node of {where} has them ({len(alive)} "
                     f"node(s), the largest {has}); the trials would wait forever: lower --cpus-per-trial/"
                     f"--gpus-per-trial or add a larger node")


def _prepare_trial(directory: Path, trial: Trial) -> Path:
    """The trial's folder, its parent created and a stale status file of a retried failure removed."""
    trial_dir = directory / trial.folder
    stale = trial_dir / STATUS_FILE
    if stale.is_file():
        stale.unlink()  # a retried failure: its old record no longer holds
    trial_dir.parent.mkdir(parents=True, exist_ok=True)
    return trial_dir


def _record_outcome(spec: SweepSpec, directory: Path, trial: Trial, outcome: dict[str, Any],
                    counts: dict[str, int], bar, on_finish) -> None:
    """Write the trial's status file (with the :func:`trial_digest` of a trial that is done), count it,
    report a failure on the bar and call ``on_finish``."""
    trial_dir = directory / trial.folder
    if outcome["status"] == "done":
        outcome = {**outcome, "verified": trial_digest(trial_dir, trial.preset, spec.trial_overrides(trial),
                                                       spec.trial_config(trial))}
    write_status(trial_dir, outcome)
    counts[outcome["status"]] += 1
    if outcome["status"] != "done":
        bar.write(f"{trial.label}: {outcome['status']}: {outcome.get('message', '')}", file=sys.stderr)
    if on_finish is not None:
        on_finish(trial, outcome)
    bar.update(1)


def run_trials(spec: SweepSpec, directory: Path, trials: list[Trial], *, max_concurrent: int | None = None,
               progress: bool = True, on_finish=None) -> dict[str, int]:
    """Run ``trials`` of ``spec`` under ``directory`` as Ray tasks; Ray must be connected.

    Keeps at most ``max_concurrent`` tasks in flight (default: all; Ray then runs as many as the cluster's
    CPUs/GPUs allow). Each outcome is written to the trial's status file as soon as it is known. A trial
    whose task is lost to a dead worker (:func:`ray_error_outcome`) is submitted again, resumed from its
    checkpoint, up to :data:`TRIAL_RETRIES` times, then recorded ``lost``. Ctrl-C cancels every task
    (``ray.cancel``: running trials stop between two batches and keep their last epoch's checkpoint) and
    re-raises :class:`KeyboardInterrupt`; the cancelled trials get no outcome (they stay interrupted, or
    new, and the next command resumes them).
    """
    import ray
    from tqdm.auto import tqdm

    # no retries by Ray (see TRIAL_RETRIES): a lost trial is submitted again below
    remote = ray.remote(run_trial).options(num_cpus=spec.cpus_per_trial, num_gpus=spec.gpus_per_trial,
                                           max_retries=0)
    counts = new_counts()
    retried: dict[Trial, int] = {}  # how many times each trial lost to a dead worker was submitted again
    pending = list(trials)
    running: dict[Any, Trial] = {}
    if max_concurrent is None:  # as many as fit at once, so that "running" counts trials that really run
        resources = ray.cluster_resources()
        fits = [resources.get("CPU", 1) / spec.cpus_per_trial]
        if spec.gpus_per_trial:
            fits.append(resources.get("GPU", 0) / spec.gpus_per_trial)
        max_concurrent = max(1, int(min(fits)))
    limit = max_concurrent
    bar = tqdm(total=len(trials), desc="trials", unit="trial", disable=not progress, file=sys.stderr,
               dynamic_ncols=True)

    def postfix():
        bar.set_postfix(done=counts["done"], running=len(running),
                        failed=counts["failed"] + counts["diverged"], lost=counts["lost"], refresh=True)

    try:
        while pending or running:
            while pending and len(running) < limit:
                trial = pending.pop(0)
                trial_dir = _prepare_trial(directory, trial)
                # absolute: a worker runs in its own folder (that of `ray start` on a cluster), not ours
                ref = remote.remote(trial.preset, str(trial_dir.absolute()), spec.trial_overrides(trial))
                running[ref] = trial
            postfix()
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                trial = running.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as err:  # worker died, out of memory, node lost, …
                    outcome = ray_error_outcome(err)
                    cancelled = isinstance(err, ray.exceptions.TaskCancelledError)  # by someone else
                    again = outcome["status"] == "lost" and not cancelled
                    times = retried.get(trial, 0)
                    if again and times < TRIAL_RETRIES:  # run_trial resumes it from its checkpoint
                        retried[trial] = times + 1
                        bar.write(f"{trial.label}: {outcome['message']}; running it again ({times + 1}/"
                                  f"{TRIAL_RETRIES})", file=sys.stderr)
                        pending.insert(0, trial)
                        continue
                    if again and times:
                        outcome["message"] += f" (on each of its {times + 1} attempts)"
                _record_outcome(spec, directory, trial, outcome, counts, bar, on_finish)
        postfix()
    except KeyboardInterrupt:
        bar.write(f"interrupted: cancelling {len(running)} running trial(s)", file=sys.stderr)
        _cancel(list(running))
        raise
    finally:
        bar.close()
    return counts


def run_trials_serial(spec: SweepSpec, directory: Path, trials: list[Trial], *, progress: bool = True,
                      on_finish=None) -> dict[str, int]:
    """Run ``trials`` one after the other in this process (no Ray): the same :func:`run_trial` body, the
    same status files and run folders as :func:`run_trials`, so a sweep can move between the two."""
    from tqdm.auto import tqdm

    counts = new_counts()  # lost: a Ray executor's count only
    bar = tqdm(total=len(trials), desc="trials", unit="trial", disable=not progress, file=sys.stderr,
               dynamic_ncols=True)
    try:
        for trial in trials:
            trial_dir = _prepare_trial(directory, trial)
            bar.set_postfix_str(trial.label, refresh=True)
            outcome = run_trial(trial.preset, str(trial_dir), spec.trial_overrides(trial))
            _record_outcome(spec, directory, trial, outcome, counts, bar, on_finish)
    finally:
        bar.close()
    return counts


def _cancel(refs: list) -> None:
    """Send KeyboardInterrupt to running tasks, wait for them to stop (their last epoch is checkpointed)."""
    import ray

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not abandon the cleanup
    try:
        for ref in refs:
            ray.cancel(ref, force=False)
        if refs:
            ray.wait(refs, num_returns=len(refs), timeout=30)
    finally:
        signal.signal(signal.SIGINT, previous)
