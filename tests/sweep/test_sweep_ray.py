"""Sweeps on a real local Ray: concurrent trials, skip/resume/retry, failure and divergence records,
results files, and the bad-input cases (all refused before Ray starts)."""

import csv
import json
import socket
import time

import pytest
import ray

from sparsecoder import sweep
from sparsecoder.cli import main
from sparsecoder.sweep.executor import STATUS_FILE, check_trial_fits, connect_ray, ray_error_outcome

TINY = ["limit=300", "epochs=1", "n_components=16", "lam=0.02"]


def _rows(directory):
    with open(directory / "results.csv", newline="") as fh:
        return {row["run_folder"]: row for row in csv.DictReader(fh)}


def _status(trial_dir):
    return json.loads((trial_dir / STATUS_FILE).read_text())


@pytest.fixture
def local_ray():
    """One local Ray (2 CPUs) for a whole test: its workers, once they have imported torch and sparsecoder,
    run the later sweeps' trials too (a second Ray for them cost ~40 s under load). That a sweep starts a
    local Ray itself and stops it again is checked by tests/reproduce/test_framework.py::
    test_the_ray_executor_gives_the_serial_numbers (reproduce runs its trials through sweep)."""
    connect_ray(None, num_cpus=2)
    yield
    ray.shutdown()


@pytest.mark.usefixtures("local_ray")
def test_sweep_runs_concurrently_skips_resumes_and_records_failures(tmp_path, direct_train):
    out = tmp_path / "sweep"
    good, bad = "vdl-mnist/fista_step=0.5/seed=0", "vdl-mnist/fista_step=1000.0/seed=0"

    # 1. One good trial and one that diverges, both at once on the 2 CPUs.
    result = sweep("vdl-mnist", out, grid=["fista_step=0.5,1000"], seeds="0", overrides=TINY, progress=False)
    assert ray.is_initialized()  # a Ray the caller started is used and left running
    assert result["counts"] == {"done": 1, "failed": 0, "diverged": 1, "lost": 0, "skipped": 0}
    first, second = _status(out / good), _status(out / bad)
    assert first["started"] < second["finished"] and second["started"] < first["finished"]  # overlapped
    assert second["status"] == "diverged" and "fista_step=1000.0" in second["message"]
    rows = _rows(out)
    assert rows[bad]["status"] == "diverged" and rows[bad]["psnr"] == ""
    # the trial is an ordinary run: same numbers as training it directly with the same overrides
    direct = direct_train("vdl-mnist", [*TINY, "fista_step=0.5", "seed=0", "num_threads=1", "device=cpu"])
    saved = json.loads((out / good / "metrics.json").read_text())
    for key in ("psnr", "sparsity", "energy", "best_val_loss"):
        assert saved[key] == direct[key]
        assert float(rows[good][key]) == pytest.approx(direct[key], rel=1e-12)
    assert (out / "psnr_sparsity.png").stat().st_size > 10_000
    assert "| 0.5 | 1/1 |" in (out / "results.md").read_text()
    spec = (out / "sweep.yaml").read_text()
    assert "executor: ray" in spec and f"ray_version: {ray.__version__}" in spec

    # 2. Interrupt the good trial after its checkpoint (no metrics.json), add a grid value whose folder
    #    holds a user's file (the trainer refuses it: failed). The diverged trial is not retried.
    (out / good / "metrics.json").unlink()
    user_file = out / "vdl-mnist/fista_step=0.25/seed=0/notes.txt"
    user_file.parent.mkdir(parents=True)
    user_file.write_text("mine")
    diverged_record = (out / bad / STATUS_FILE).read_text()
    result = sweep("vdl-mnist", out, grid=["fista_step=0.5,1000,0.25"], seeds="0", overrides=TINY,
                   progress=False)
    assert result["counts"] == {"done": 1, "failed": 1, "diverged": 0, "lost": 0, "skipped": 1}
    resumed = json.loads((out / good / "metrics.json").read_text())
    for key in ("psnr", "sparsity", "energy", "best_val_loss"):
        assert resumed[key] == saved[key]
    assert (out / bad / STATUS_FILE).read_text() == diverged_record
    failed = _status(user_file.parent)
    assert failed["status"] == "failed" and "not a sparsecoder run folder" in failed["message"]
    assert user_file.read_text() == "mine"

    # 3. Rerun: everything finished or failed, nothing runs; --retry-failed runs both again.
    before = (out / good / "metrics.json").stat().st_mtime_ns
    result = sweep("vdl-mnist", out, grid=["fista_step=0.5,1000,0.25"], seeds="0", overrides=TINY,
                   progress=False)
    assert result["counts"]["skipped"] == 3 and (out / good / "metrics.json").stat().st_mtime_ns == before
    user_file.unlink()
    result = sweep("vdl-mnist", out, grid=["fista_step=0.5,1000,0.25"], seeds="0", overrides=TINY,
                   retry_failed=True, progress=False)
    assert result["counts"] == {"done": 1, "failed": 0, "diverged": 1, "lost": 0, "skipped": 1}
    rows = _rows(out)
    assert [rows[k]["status"] for k in sorted(rows)] == ["done", "done", "diverged"]  # 0.25, 0.5, 1000.0
    assert (out / "vdl-mnist/fista_step=0.25/seed=0/metrics.json").is_file()


@pytest.mark.slow
@pytest.mark.usefixtures("local_ray")
def test_a_trial_whose_worker_is_killed_is_run_again_or_else_lost_and_resumed(tmp_path, capsys, monkeypatch):
    """kill -9 of a trial's Ray worker (its PID is in the run folder's lock file) after its first checkpoint:
    it was recorded `failed` and skipped by the next sweep without --retry-failed. Now the command runs it
    again (resumed from its checkpoint), and a trial still lost after TRIAL_RETRIES more attempts is `lost`,
    resumed by the next command. Slow: ~1-2 min (three Ray workers start and import torch)."""
    import os
    import signal
    import threading

    from sparsecoder.sweep import executor
    from sparsecoder.train.integrity import LOCK_FILE

    out = tmp_path / "sweep"
    folder = "vdl-mnist/default/seed=0"
    trial = out / folder
    command = ["sweep", "vdl-mnist", "--out", str(out), "--set", "limit=300", "epochs=150", "n_components=16",
               "--quiet"]

    def run_killing_once(not_pid=None):
        """``main(command)`` in a thread; kill -9 the trial's worker (not ``not_pid``) once it trains from a
        checkpoint; returns (exit status, the PID killed)."""
        codes = []
        thread = threading.Thread(target=lambda: codes.append(main(command)))
        thread.start()
        deadline = time.monotonic() + 180
        while True:
            assert time.monotonic() < deadline and thread.is_alive(), "the trial never started training"
            try:
                pid = int((trial / LOCK_FILE).read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pid = None
            if pid not in (None, not_pid) and (trial / "checkpoint.pt").is_file():
                break
            time.sleep(0.02)
        assert pid != os.getpid()  # a Ray worker's, not this process
        os.kill(pid, signal.SIGKILL)
        thread.join(300)
        return codes[0], pid

    # 1. Not run again (as before): lost, with Ray's message
    monkeypatch.setattr(executor, "TRIAL_RETRIES", 0)
    code, killed = run_killing_once()
    err = capsys.readouterr().err
    assert code == 1, err
    assert "0 failed, 0 diverged, 1 lost (their Ray worker died or was stopped: rerun the same command" in err
    assert f"{folder}: lost: WorkerCrashedError: The worker died unexpectedly" in err
    assert _status(trial)["status"] == "lost" and (trial / "checkpoint.pt").is_file()
    assert _rows(out)[folder]["status"] == "lost" and "| 0/1 |" in (out / "results.md").read_text()

    # 2. The next command resumes it without --retry-failed; its worker killed again, it runs it again
    monkeypatch.undo()
    code, _ = run_killing_once(not_pid=killed)
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"{folder}: WorkerCrashedError: The worker died unexpectedly" in err
    assert "; running it again (1/2)" in err
    assert "1 trained, 0 skipped (finished before, or failed: --retry-failed), 0 failed, 0 diverged\n" in err
    assert _status(trial)["status"] == "done" and _rows(out)[folder]["status"] == "done"
    assert len((trial / "history.csv").read_text().strip().splitlines()) == 1 + 150


@pytest.mark.slow
def test_a_trial_killed_for_memory_on_every_attempt_ends_lost_instead_of_running_for_ever(tmp_path):
    """Ray's own max_retries > 0 turns on its retries of a task that its memory monitor kills, unbounded by
    default: a trial needing more memory than the node has was run again and again (6 times in 45 s and
    on) and the sweep never ended. Every worker here is over a 2 % memory threshold: the trial runs
    1 + TRIAL_RETRIES times and is recorded `lost`, naming the kill. Slow: ~30-60 s (own Ray)."""
    import logging

    out = tmp_path / "sweep"
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
             _system_config={"memory_usage_threshold": 0.02, "memory_monitor_refresh_ms": 100})
    try:
        result = sweep("vdl-mnist", out, overrides=TINY, progress=False)
    finally:
        ray.shutdown()
    assert result["counts"] == {"done": 0, "failed": 0, "diverged": 0, "lost": 1, "skipped": 0}
    message = _status(out / "vdl-mnist/default/seed=0")["message"]
    assert message.startswith("OutOfMemoryError: ") and "low on memory" in message
    assert message.endswith("(on each of its 3 attempts)")


def test_a_trial_stopped_from_outside_is_lost_and_its_own_errors_are_failed():
    """A trial whose Ray task raised at ray.get (its worker killed, Ray's out-of-memory killer, its node
    lost) was recorded `failed`, which the next sweep skipped without --retry-failed: it is `lost` now, and
    resumed. What the trial's own code raised past run_trial (SystemExit) stays `failed`; a task cancelled
    by someone else than the command (Ctrl-C's own cancel records nothing) is `lost`."""
    from ray.exceptions import (
        NodeDiedError,
        OutOfMemoryError,
        RayTaskError,
        TaskCancelledError,
        WorkerCrashedError,
    )

    assert ray_error_outcome(WorkerCrashedError()) == {
        "status": "lost", "message": "WorkerCrashedError: The worker died unexpectedly while executing this "
                                     "task. Check python-core-worker-*.log files for more information."}
    # what happened is the first line of a Ray system error (the rest of an out-of-memory kill's is a report)
    assert ray_error_outcome(OutOfMemoryError("1 worker(s) were killed due to the node running low on "
                                              "memory.\nObject store memory usage: [...]")) == {
        "status": "lost", "message": "OutOfMemoryError: 1 worker(s) were killed due to the node running low "
                                     "on memory."}
    assert ray_error_outcome(NodeDiedError("the node running it died"))["status"] == "lost"
    cancelled = RayTaskError("run_trial", "Traceback", TaskCancelledError()).as_instanceof_cause()
    assert isinstance(cancelled, RayTaskError) and ray_error_outcome(cancelled)["status"] == "lost"
    own = ray_error_outcome(RayTaskError("run_trial", "Traceback\nSystemExit: 3", SystemExit(3)))
    assert own["status"] == "failed"


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("args, words", [
    (["no-such-preset"], "unknown preset 'no-such-preset'"),
    (["vdl-mnist", "--grid", "lambda=0.1"], "unknown grid key 'lambda'"),
    (["vdl-mnist", "--grid", "lam="], "empty grid value list"),
    (["vdl-mnist", "--grid", "lam=0.1,abc"], "expected a number"),
    (["vdl-mnist", "--seeds", "3-1"], "goes down"),
    (["vdl-mnist", "--grid", "lam=0.1", "--address", "127.0.0.1:PORT"], "no Ray cluster answers at --address "
                                                                           "127.0.0.1:PORT"),
])
def test_bad_input_is_one_line_before_ray_starts(tmp_path, capsys, args, words):
    port = str(_closed_port())
    args = [a.replace("PORT", port) for a in args]
    start = time.monotonic()
    code = main(["sweep", *args, "--out", str(tmp_path / "s"), "--set", "epochs=1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and time.monotonic() - start < 30
    assert err.startswith("error: ") and words.replace("PORT", port) in err and err.count("\n") == 1
    assert not ray.is_initialized() and not (tmp_path / "s").exists()


def test_directory_of_another_sweep_or_other_files_is_refused(tmp_path, capsys):
    out = tmp_path / "s"
    out.mkdir()
    (out / "sweep.yaml").write_text("presets: [sdl-mnist]\ngrid: {}\nresolved_grid: {sdl-mnist: {}}\n"
                                    "seeds: [0]\noverrides: {}\ncpus_per_trial: 1.0\ngpus_per_trial: 0.0\n")
    assert main(["sweep", "vdl-mnist", "--out", str(out), "--quiet"]) == 2
    assert "holds a different sweep" in capsys.readouterr().err
    other = tmp_path / "other"
    other.mkdir()
    (other / "data.npy").write_bytes(b"x")
    assert main(["sweep", "vdl-mnist", "--out", str(other), "--quiet"]) == 2
    assert "holds no sweep.yaml" in capsys.readouterr().err
    assert not ray.is_initialized() and sorted(p.name for p in out.iterdir()) == ["sweep.yaml"]


def test_a_trial_no_node_can_run_is_refused_instead_of_waiting_forever():
    """With --address of a cluster whose nodes are smaller than --cpus-per-trial (or lack the GPUs), Ray
    kept the trials pending and the sweep waited forever. A task runs on one node: the cluster's total of
    3 CPUs does not run a 3-CPU trial, and a dead node does not count."""
    nodes = [{"Alive": True, "Resources": {"CPU": 1.0}},
             {"Alive": True, "Resources": {"CPU": 2.0, "GPU": 1.0}},
             {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}}]
    check_trial_fits(nodes, 2, 1, "C")  # the second node runs it
    check_trial_fits(nodes, 0.5, 0, "C")
    with pytest.raises(ValueError, match=r"a trial needs 3 CPU\(s\) on one node, but no node of C has them "
                                         r"\(2 node\(s\), the largest 2 CPU\(s\)\); the trials would wait "
                                         r"forever: lower --cpus-per-trial"):
        check_trial_fits(nodes, 3, 0, "C")
    with pytest.raises(ValueError, match=r"needs 1 CPU\(s\) and 2 GPU\(s\) .*the largest 2 CPU\(s\), 1 GPU"):
        check_trial_fits(nodes, 1, 2, "C")
    with pytest.raises(ValueError, match=r"0 node\(s\), the largest 0 CPU\(s\)"):
        check_trial_fits([], 1, 0, "C")
