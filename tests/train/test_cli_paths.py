"""Paths on the command line: a run folder's data and the folder itself named relative to the current
folder or with ``~``, then used from another current folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sparsecoder.cli import main
from sparsecoder.config import load_config
from sparsecoder.train import train
from sparsecoder.train.logging import read_history_rows

torch.set_num_threads(1)

TINY = ["data=arrays", "n_components=8", "num_threads=1", "device=cpu", "fista_max_iter=20"]


@pytest.fixture
def arrays_file(tmp_path):
    """``tmp_path/here/data/acts.npy``: 200 random rows of 12 values; returns the folder ``here``."""
    here = tmp_path / "here"
    (here / "data").mkdir(parents=True)
    np.save(here / "data" / "acts.npy", np.random.default_rng(0).normal(size=(200, 12)).astype(np.float32))
    return here


def test_a_relative_data_dir_is_stored_as_the_path_meant_and_found_from_another_folder(
        tmp_path, arrays_file, monkeypatch, capsys):
    monkeypatch.chdir(arrays_file)
    assert main(["train", "sdl-mnist", "--out", "run", "--quiet", "--set", "epochs=1",
                 "data_dir=data/acts.npy", *TINY]) == 0
    _, config = load_config(arrays_file / "run" / "config.yaml")
    assert config.data_dir == str(arrays_file / "data" / "acts.npy")  # where the user's path pointed

    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "data").mkdir(parents=True)  # other rows under the same relative name
    np.save(elsewhere / "data" / "acts.npy", np.ones((200, 12), np.float32))
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    run = str(arrays_file / "run")
    assert main(["evaluate", run]) == 0
    assert "test_data_changed" not in capsys.readouterr().out
    assert main(["train", "sdl-mnist", "--out", run, "--quiet", "--resume", "--set", "epochs=2"]) == 0
    assert [row["epoch"] for row in read_history_rows(arrays_file / "run" / "history.csv")] == [1, 2]
    # the training command repeated with --resume: the same relative data_dir is the run's own
    monkeypatch.chdir(arrays_file)
    assert main(["train", "sdl-mnist", "--out", "run", "--quiet", "--resume", "--set", "epochs=3",
                 "data_dir=data/acts.npy", *TINY]) == 0


def test_a_relative_data_dir_of_an_older_run_is_named_as_relative_from_another_folder(
        tmp_path, arrays_file, monkeypatch, capsys):
    """A run whose config.yaml holds a relative data_dir (Python's train, or an older sparsecoder): from
    another folder the data are missing, and the error says the path is relative to the current folder."""
    monkeypatch.chdir(arrays_file)
    train("sdl-mnist", "run", overrides=[f"{o}" for o in ["epochs=1", "data_dir=data/acts.npy", *TINY]],
          progress=False)
    _, config = load_config(arrays_file / "run" / "config.yaml")
    assert config.data_dir == "data/acts.npy"
    monkeypatch.chdir(tmp_path)
    run = str(arrays_file / "run")
    for command in (["evaluate", run], ["train", "sdl-mnist", "--out", run, "--resume", "--set", "epochs=2"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "data/acts.npy" in err and "relative" in err and str(tmp_path) in err, err
        assert "Traceback" not in err


def test_a_run_folder_given_with_a_tilde_is_in_the_home_folder(tmp_path, arrays_file, monkeypatch, capsys):
    """`--out=~/runs/x` (zsh, or any quoted ~) used to create a folder named '~' in the current folder."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    data = str(arrays_file / "data" / "acts.npy")
    assert main(["train", "sdl-mnist", "--out=~/runs/x", "--quiet", "--set", "epochs=1", f"data_dir={data}",
                 *TINY]) == 0
    assert (home / "runs" / "x" / "model.safetensors").is_file()
    assert not (tmp_path / "~").exists()
    assert main(["evaluate", "~/runs/x"]) == 0
    assert main(["train", "sdl-mnist", "--out", "~/runs/x", "--quiet", "--resume", "--set", "epochs=2"]) == 0
    np.save(tmp_path / "rows.npy", np.zeros((3, 12), np.float32))
    assert main(["encode", "~/runs/x", str(tmp_path / "rows.npy"), "--out", "~/codes.npy"]) == 0
    assert np.load(home / "codes.npy").shape == (3, 8)
    assert main(["decode", "~/runs/x", "~/codes.npy", "--out", "~/rows.npy"]) == 0
    assert np.load(home / "rows.npy").shape == (3, 12)
    capsys.readouterr()


@pytest.mark.parametrize("command", [["train", "sdl-mnist", "--out", "", "--set", "epochs=1", *TINY],
                                     ["train", "sdl-mnist", "--out=", "--set", "epochs=1", *TINY],
                                     ["evaluate", ""], ["encode", "", "rows.npy", "--out", "codes.npy"],
                                     ["decode", "run", "codes.npy", "--out", " "]])
def test_an_empty_path_argument_is_refused(tmp_path, monkeypatch, capsys, command):
    """`--out "$UNSET"` used to be the current folder: a run trained into it (or evaluated from it)."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(command)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "empty path" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("setting", ["data_dir=data/acts.npy", "data_options={path: data/acts.npy}"])
def test_a_run_holding_a_relative_data_path_resumes_with_its_training_command_repeated(
        arrays_file, monkeypatch, setting):
    """The command line makes a relative data path absolute; the same path repeated on --resume of a run
    that stored it relative (Python's train, an older sparsecoder) names the run's own data."""
    monkeypatch.chdir(arrays_file)
    train("sdl-mnist", "run", overrides=["epochs=1", setting, *TINY], progress=False)
    assert main(["train", "sdl-mnist", "--out", "run", "--quiet", "--resume", "--set", "epochs=2", setting,
                 *TINY]) == 0
    assert [row["epoch"] for row in read_history_rows(arrays_file / "run" / "history.csv")] == [1, 2]
