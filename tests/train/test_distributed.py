"""Data-parallel training (issue 10, item 4) on real torch.distributed: 2 gloo processes, as torchrun
starts them (RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT in the environment), each calling ``train``.

The truth is one process training on the whole global batch: VDL (variance hinge) on a tiny MNIST split
whose batches (98, 98, 97, 97 rows) give shards of unequal size (49/48), so both the hinge's global std
and the shard weighting of the gradients are checked. The run is trained 1 epoch, then resumed to 2
epochs by the two processes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from sparsecoder.cli import main
from sparsecoder.config import ConfigError
from sparsecoder.train import train
from sparsecoder.train.checkpoint import load_checkpoint
from sparsecoder.train.distributed import LOCAL_STATISTICS_ENV
from sparsecoder.train.logging import read_history_rows

WORLD_SIZE = 2
OVERRIDES = {"limit": 390, "n_components": 16, "batch_size": 100, "num_threads": 1, "device": "cpu",
             "seed": 5}

pytestmark = [pytest.mark.skipif("fork" not in mp.get_all_start_methods(),
                                 reason="needs the fork start method"),
              # with CUDA present, torch refuses a fork after autograd has run in the parent (its device
              # threads), and the tests train there first: "Unable to handle autograd's threading in
              # combination with fork-based multiprocessing" (seen on an H200)
              pytest.mark.skipif(torch.cuda.is_available(), reason="forks after autograd; CUDA present"),
              pytest.mark.usefixtures("one_torch_thread")]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_torchrun(rank: int, port: int) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD_SIZE),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))


def _worker(rank: int, calls: list[tuple[int, dict, dict]], errors_dir: str) -> None:
    """Run each ``(port, train kwargs, extra environment)`` in turn as process ``rank`` (kwargs a list: one
    per rank); a raised error is written to ``errors_dir/rank<r>-<i>.txt`` (so the test can check the message)
    and ends the worker."""
    torch.set_num_threads(1)
    for number, (port, kwargs, environment) in enumerate(calls):
        kwargs = kwargs[rank] if isinstance(kwargs, list) else kwargs
        _as_torchrun(rank, port)
        os.environ.pop(LOCAL_STATISTICS_ENV, None)
        os.environ.update(environment)
        try:
            train(**kwargs)
        except Exception as err:  # noqa: BLE001 - reported to the test through a file
            with open(f"{errors_dir}/rank{rank}-{number}.txt", "w") as fh:
                fh.write(f"{type(err).__name__}: {err}")
            return


def _run_two_processes(calls, errors_dir) -> None:
    mp.start_processes(_worker, args=(calls, str(errors_dir)), nprocs=WORLD_SIZE, start_method="fork")


def _relative_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).norm() / b[k].norm()) for k in a)




def test_two_processes_with_global_batch_std_equal_one_process_and_local_std_differs(tmp_path):
    single, parallel, local = tmp_path / "single", tmp_path / "parallel", tmp_path / "local"
    train("vdl-mnist", single, overrides={**OVERRIDES, "epochs": 2}, progress=False)
    calls = [
        (_free_port(), {"preset_or_config": "vdl-mnist", "out_dir": parallel,
                        "overrides": {**OVERRIDES, "epochs": 1}, "progress": False}, {}),
        (_free_port(), {"preset_or_config": "vdl-mnist", "out_dir": parallel, "overrides": {"epochs": 2},
                        "resume": True, "progress": False}, {}),
        (_free_port(), {"preset_or_config": "vdl-mnist", "out_dir": local,
                        "overrides": {**OVERRIDES, "epochs": 2}, "progress": False},
         {LOCAL_STATISTICS_ENV: "1"}),
    ]
    _run_two_processes(calls, tmp_path)
    assert not list(tmp_path.glob("rank*.txt")), [p.read_text() for p in tmp_path.glob("rank*.txt")]

    reference = load_checkpoint(single / "checkpoint.pt")["model"]
    resumed = load_checkpoint(parallel / "checkpoint.pt")
    assert resumed["epoch"] == 2 and len(resumed["rng_ranks"]) == WORLD_SIZE
    # Per-process batch std (what per-GPU batch statistics do) changes the model.
    wrong = load_checkpoint(local / "checkpoint.pt")["model"]
    right_error, wrong_error = (_relative_difference(m, reference) for m in (resumed["model"], wrong))
    print(f"relative weight difference to one process: global std {right_error:.2e}, local {wrong_error:.2e}")
    assert right_error <= 1e-4
    assert wrong_error > 1e-2

    # Logs and validation metrics are global: the history matches the single process's.
    rows, expected = read_history_rows(parallel / "history.csv"), read_history_rows(single / "history.csv")
    assert [r["epoch"] for r in rows] == [1, 2] and list(rows[0]) == list(expected[0])
    for row, truth in zip(rows, expected, strict=True):
        for key in ("energy", "hinge", "min_code_std", "decoder_loss", "val_loss", "val_psnr"):
            assert row[key] == pytest.approx(truth[key], rel=1e-3), key
    metrics = json.loads((parallel / "metrics.json").read_text())
    assert metrics["world_size"] == WORLD_SIZE and metrics["n_train"] == 390
    assert json.loads((single / "metrics.json").read_text())["world_size"] == 1


def test_a_batch_not_divisible_by_the_process_count_stops_before_training(tmp_path):
    out = tmp_path / "run"
    overrides = {**OVERRIDES, "batch_size": 99, "epochs": 1}
    calls = [(_free_port(), {"preset_or_config": "vdl-mnist", "out_dir": out, "overrides": overrides,
                             "progress": False}, {})]
    _run_two_processes(calls, tmp_path)
    for rank in range(WORLD_SIZE):
        message = (tmp_path / f"rank{rank}-0.txt").read_text()
        assert message.startswith(ConfigError.__name__)
        assert "batch_size=99 is the global batch and must be divisible by the number of processes (2)" \
            in message
    assert not out.exists()  # nothing was written


@pytest.mark.parametrize("environment, problem", [
    ({"WORLD_SIZE": "2"}, "RANK is not set"),  # was KeyError: 'RANK'
    ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two' is not an integer"),
    ({"WORLD_SIZE": "2", "RANK": "0"}, "MASTER_ADDR is not set"),
    ({"WORLD_SIZE": "2", "RANK": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"},
     "RANK=2 is not below WORLD_SIZE=2"),
])
def test_a_partial_or_malformed_torchrun_environment_is_named_up_front(monkeypatch, environment, problem):
    from sparsecoder.train.distributed import LAUNCH_VARIABLES, current_world

    for name in LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=problem) as caught:
        current_world(torch.device("cpu"))
    assert "torchrun --nproc_per_node=N" in str(caught.value) and "unset WORLD_SIZE" in str(caught.value)


def test_processes_given_different_settings_or_data_stop_before_training(tmp_path):
    # A --set given on one node only (rank 1 with another lam) trained silently: the gradients of two
    # different models were averaged into weights saved under rank 0's config. Different training rows
    # (data_dir contents differing between machines) the same.
    from tests.train.linear_autoencoder import synthetic_splits

    base = {"preset_or_config": "sdl-mnist", "overrides": {**OVERRIDES, "epochs": 1}, "progress": False}
    other = {**base, "overrides": {**base["overrides"], "lam": 0.01}}
    data = [{**base, "out_dir": tmp_path / "data", "data": synthetic_splits(seed=seed)} for seed in (0, 1)]
    different = [{**base, "out_dir": tmp_path / "a"}, {**other, "out_dir": tmp_path / "b"}]
    calls = [(_free_port(), different, {})]
    _run_two_processes(calls, tmp_path)
    for rank in range(WORLD_SIZE):
        message = (tmp_path / f"rank{rank}-0.txt").read_text()
        assert message.startswith(ConfigError.__name__)
        assert "differ in their settings: rank 1 has --out=" in message
        assert "rank 1 has lam=0.01, rank 0 0.005" in message
    _run_two_processes([(_free_port(), data, {})], tmp_path)
    for rank in range(WORLD_SIZE):
        message = (tmp_path / f"rank{rank}-0.txt").read_text()
        assert "differ in their training data" in message and "train rows" in message
    assert not any((tmp_path / name).exists() for name in ("a", "b", "data"))


def test_a_stray_rank_without_world_size_is_a_single_process_run(monkeypatch):
    # RANK=3 alone (left by a job scheduler) made the CLI skip the run-folder lock and print no metrics,
    # though the run trained as one process
    from sparsecoder.train.distributed import LAUNCH_VARIABLES, process_rank

    for name in LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RANK", "3")
    assert process_rank() == 0
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert process_rank() == 0


def test_a_training_split_too_small_for_the_processes_says_which_batch_size_fits():
    # 3 rows at batch_size=2 are batches of 2 and 1 rows: the 1-row batch leaves a process without rows.
    # The message offered only "more data or fewer processes", though batch_size=4 (one batch of 3) works.
    from types import SimpleNamespace

    from sparsecoder.train.distributed import World
    from sparsecoder.train.trainer import _check_world

    world = World(rank=0, world_size=2)
    with pytest.raises(ConfigError, match=r"\(3 rows\) gives batches of 1 row at batch_size=2, fewer than "
                                          r"the 2 processes .*; set batch_size >= 4 \(a multiple of 2\)"):
        _check_world(SimpleNamespace(batch_size=2), world, 3)
    _check_world(SimpleNamespace(batch_size=4), world, 3)
    with pytest.raises(ConfigError, match=r"\(1 rows\) gives batches of 1 row .*; use more data or fewer"):
        _check_world(SimpleNamespace(batch_size=2), world, 1)


def _scenario_worker(rank: int, port: int, out: str, scenario: str, errors_dir: str) -> None:
    """One tiny 2-process run of the test family in a default group whose collectives time out after 1 s:
    ``slow_validation`` (rank 0 validates for 1.5 s, longer than that), ``short_rank0_timeout`` (the same
    with SPARSECODER_RANK0_TIMEOUT=1), ``nan_on_rank1`` / ``nan_on_rank0`` (that rank's parameters become NaN
    in epoch 2), ``rank0_killed`` (rank 0's process ends in epoch 2) or ``validate_every`` (3 epochs,
    validating every second and the last)."""
    import datetime
    import time

    import torch.distributed as dist

    from sparsecoder.models import _FAMILIES
    from tests.train import linear_autoencoder as la

    torch.set_num_threads(1)
    _as_torchrun(rank, port)
    os.environ.pop("SPARSECODER_RANK0_TIMEOUT", None)
    if scenario == "short_rank0_timeout":
        os.environ["SPARSECODER_RANK0_TIMEOUT"] = "1"

    def slow_validation(model, split):
        if rank == 0:
            time.sleep(1.5)
        return la.validation_metrics(model, split)

    original = la.LinearAutoencoder.training_losses

    def nan_in_epoch_2(self, batch, *, reduce=None):  # 2 batches per epoch: step 3 is in epoch 2
        if la.LinearAutoencoder.steps_taken >= 2:
            with torch.no_grad():
                self.encoder.weight.fill_(float("nan"))
            raise ValueError("the codes are NaN")
        return original(self, batch, reduce=reduce)

    def exit_in_epoch_2(self, batch, *, reduce=None):  # rank 0's process ends at once, as kill -9 does
        if la.LinearAutoencoder.steps_taken >= 2:
            os._exit(0)
        return original(self, batch, reduce=reduce)

    if scenario in ("nan_on_rank1", "nan_on_rank0"):
        if rank == int(scenario[-1]):
            la.LinearAutoencoder.training_losses = nan_in_epoch_2
    elif scenario == "rank0_killed":
        if rank == 0:
            la.LinearAutoencoder.training_losses = exit_in_epoch_2
    elif scenario != "validate_every":
        _FAMILIES[la.MODEL_NAME]["validate"] = slow_validation
    la.LinearAutoencoder.steps_taken = 0
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=1))
    epochs = {"validate_every": 3, "nan_on_rank0": 2, "nan_on_rank1": 2, "rank0_killed": 2}.get(scenario, 1)
    config = la.LinearAutoencoderConfig(epochs=epochs, batch_size=20, num_threads=1, device="cpu",
                                        validate_every=2 if scenario == "validate_every" else 1)
    try:
        if scenario == "short_rank0_timeout":  # the command line: its exit status and message
            preset = Path(errors_dir) / "tiny-linear.yaml"
            stderr = io.StringIO()
            with contextlib.redirect_stderr(stderr):
                code = main(["train", str(preset), "--quiet", "--out", out, "--set", "data=arrays",
                             f"data_dir={Path(errors_dir) / 'rows.npy'}"])
            if code:
                Path(f"{errors_dir}/rank{rank}.txt").write_text(f"exit {code}: {stderr.getvalue()}")
        else:
            train(config, out, progress=False, data=la.synthetic_splits(n_train=40, n_val=10, n_test=10))
    except Exception as err:  # noqa: BLE001 - reported to the test through a file
        with open(f"{errors_dir}/rank{rank}.txt", "w") as fh:
            fh.write(f"{type(err).__name__}: {err}")
        if scenario == "nan_on_rank0" and rank == 0:
            os._exit(0)  # as the command line does: the process, and the store it hosts, end with the error
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _run_scenario(tmp_path, scenario: str) -> tuple[list[str | None], object]:
    import torch._dynamo  # noqa: F401 - imported by Adam: once here, not in each forked process (seconds)

    import sparsecoder.data.registry  # noqa: F401 - the data sources (PIL, ...): imported on first use, the same
    import sparsecoder.viz  # noqa: F401 - matplotlib, the same
    from sparsecoder.config import save_config
    from tests.train import linear_autoencoder as la

    out, errors = tmp_path / scenario, tmp_path / f"{scenario}-errors"
    errors.mkdir()
    save_config(errors / "tiny-linear.yaml", la.MODEL_NAME,
                la.LinearAutoencoderConfig(epochs=1, batch_size=20, num_threads=1, device="cpu"))
    np.save(errors / "rows.npy", np.random.default_rng(0).normal(size=(60, 16)).astype(np.float32))
    mp.start_processes(_scenario_worker, args=(_free_port(), str(out), scenario, str(errors)),
                       nprocs=WORLD_SIZE, start_method="fork")
    messages = [(errors / f"rank{r}.txt").read_text() if (errors / f"rank{r}.txt").exists() else None
                for r in range(WORLD_SIZE)]
    return messages, out


def test_rank0_work_longer_than_the_collective_timeout_does_not_stop_the_run(tmp_path):
    # rank 1 waited for rank 0's validation under the process group's timeout (torch's default 30 min on
    # gloo): a validation longer than it killed the run ("Timed out waiting 1000ms for recv operation").
    # Now the wait has a timeout of its own, SPARSECODER_RANK0_TIMEOUT (default 24 h)
    messages, out = _run_scenario(tmp_path, "slow_validation")
    assert messages == [None, None], messages
    assert (out / "metrics.json").is_file()
    # the command line (exit status 1, one line; it said "unexpected ... report it"):
    messages, out = _run_scenario(tmp_path, "short_rank0_timeout")
    assert messages[1].startswith("exit 1: error: rank 1 lost contact") and \
        "took longer than 1 s (set SPARSECODER_RANK0_TIMEOUT" in messages[1]
    # rank 0, which then met rank 1's closed connection, names rank 1 and its reason
    assert messages[0].startswith("exit 1: error: rank 1 stopped the run: RankFailed: rank 1 lost contact"), \
        messages
    assert "nothing to resume" in messages[0] and all(m.count("\n") == 1 for m in messages)


def test_a_divergence_on_one_rank_stops_every_rank_naming_it_and_keeps_the_checkpoint(tmp_path):
    # rank 1 alone met NaN in its shard's step: it stopped with TrainingDiverged while rank 0 failed with
    # gloo's "Connection closed by peer [127.0.0.1]:50304" (a RuntimeError naming no rank)
    messages, out = _run_scenario(tmp_path, "nan_on_rank1")
    assert messages[1].startswith("TrainingDiverged: training diverged in epoch 2"), messages
    assert messages[0].startswith("TrainingDiverged: rank 1 stopped the run: TrainingDiverged: training "
                                  "diverged in epoch 2"), messages
    assert "last good epoch 1" in messages[0]
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1


def test_a_divergence_on_rank0_outside_torchrun_is_named_by_the_other_ranks(tmp_path):
    # Without torchrun's agent the rendezvous store lives in rank 0: rank 0 posted its error there and
    # left, taking the store with it, and rank 1 said only "lost contact". Now rank 0 keeps the store up
    # after leaving the group until the other ranks have read it (or 10 s)
    messages, out = _run_scenario(tmp_path, "nan_on_rank0")
    assert messages[0].startswith("TrainingDiverged: training diverged in epoch 2"), messages
    assert messages[1].startswith("TrainingDiverged: rank 0 stopped the run: TrainingDiverged: training "
                                  "diverged in epoch 2"), messages
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1
    # rank 0's process killed outright: no error to read, and the store went with it, which is said
    messages, out = _run_scenario(tmp_path, "rank0_killed")
    assert messages[0] is None and messages[1].startswith("RankFailed: rank 1 lost contact"), messages
    assert "the rendezvous store is unreachable too, so the process that hosts it (rank 0" in messages[1]


def test_every_process_validates_the_same_epochs_of_validate_every(tmp_path):
    # rank 0 validates (the others wait for its metrics in a collective): every rank must skip the same
    # epochs, or the collectives of rank 0's validation and the next epoch's gradients would cross
    messages, out = _run_scenario(tmp_path, "validate_every")
    assert messages == [None, None], messages
    rows = read_history_rows(out / "history.csv")
    assert [r["epoch"] for r in rows if "val_loss" in r] == [2, 3] and len(rows) == 3
    assert json.loads((out / "metrics.json").read_text())["best_epoch"] in (2, 3)


@pytest.mark.parametrize("value", ["0.5", "-5", "soon", "nan"])
def test_a_malformed_rank0_timeout_is_named_up_front(monkeypatch, value):
    from sparsecoder.train.distributed import rank0_timeout_seconds

    monkeypatch.setenv("SPARSECODER_RANK0_TIMEOUT", value)
    with pytest.raises(ValueError, match=f"SPARSECODER_RANK0_TIMEOUT='{value}' must be a number of seconds"):
        rank0_timeout_seconds()
    monkeypatch.setenv("SPARSECODER_RANK0_TIMEOUT", "7200")
    assert rank0_timeout_seconds() == 7200.0
