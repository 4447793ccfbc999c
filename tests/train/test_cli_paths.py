"""Paths on the command line: run folders and files named with ``~``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sparsecoder.cli import main

torch.set_num_threads(1)

TINY = ["data=arrays", "n_components=8", "num_threads=1", "device=cpu", "fista_max_iter=20"]


@pytest.fixture
def arrays_file(tmp_path):
    """``tmp_path/here/data/acts.npy``: 200 random rows of 12 values; returns the folder ``here``."""
    here = tmp_path / "here"
    (here / "data").mkdir(parents=True)
    np.save(here / "data" / "acts.npy", np.random.default_rng(0).normal(size=(200, 12)).astype(np.float32))
    return here


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
