"""Resuming a run with another number of processes (real gloo processes, as torchrun starts them): what a
resume cannot change (``batch_size``, the data) is not offered as the fix when the new process count does
not fit them."""

from __future__ import annotations

import pytest

from sparsecoder.train import train
from tests.train import linear_autoencoder as la
from tests.train.test_distributed import _free_port, _run_two_processes, pytestmark  # noqa: F401


def _one_process_run(out, batch_size: int, n_train: int):
    config = la.LinearAutoencoderConfig(epochs=1, batch_size=batch_size, num_threads=1, device="cpu")
    data = la.synthetic_splits(n_train=n_train, n_val=10, n_test=10)
    train(config, out, progress=False, data=data)
    return config, data


def _resume_on_two(tmp_path, out, config, data) -> list[str]:
    kwargs = {"preset_or_config": config, "out_dir": out, "overrides": {"epochs": 2}, "resume": True,
              "progress": False, "data": data}
    _run_two_processes([(_free_port(), kwargs, {})], tmp_path)
    return [(tmp_path / f"rank{rank}-0.txt").read_text() for rank in range(2)]


def test_a_resume_on_processes_that_do_not_divide_its_batch_names_process_counts_not_a_new_batch_size(
        tmp_path):
    out = tmp_path / "run"
    config, data = _one_process_run(out, batch_size=15, n_train=30)
    for message in _resume_on_two(tmp_path, out, config, data):
        assert message.startswith("ConfigError: batch_size=15 is the global batch")
        # batch_size cannot change on resume: `--set batch_size=14` would only be refused next
        assert "--set batch_size" not in message
        assert "cannot change on resume" in message and "--nproc_per_node=1, 3, 5 or 15" in message


def test_a_resume_whose_data_gives_batches_smaller_than_the_processes_says_fewer_processes(tmp_path):
    out = tmp_path / "run"
    config, data = _one_process_run(out, batch_size=2, n_train=3)  # batches of 2 and 1 rows
    for message in _resume_on_two(tmp_path, out, config, data):
        assert message.startswith("ConfigError: the training split (3 rows) gives batches of 1 row")
        assert "set batch_size" not in message and "more data" not in message
        assert "--nproc_per_node=1" in message


@pytest.mark.parametrize("batch_size, n_train", [(15, 30), (2, 3)])
def test_the_same_runs_resume_on_one_process(tmp_path, batch_size, n_train):
    out = tmp_path / "run"
    config, data = _one_process_run(out, batch_size=batch_size, n_train=n_train)
    metrics = train(config, out, overrides={"epochs": 2}, resume=True, progress=False, data=data)
    assert metrics["epochs"] == 2
