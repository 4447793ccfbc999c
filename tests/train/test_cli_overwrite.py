"""`train --overwrite` stopped (Ctrl-C, SIGTERM) before the new run replaced the old one."""

from __future__ import annotations

import numpy as np
import torch

from sparsecoder.cli import main
from sparsecoder.config import read_config_document

torch.set_num_threads(1)

TINY = ["n_components=8", "num_threads=1", "device=cpu", "fista_max_iter=20", "epochs=1"]


def test_an_overwrite_stopped_while_its_data_load_says_the_old_run_is_unchanged(tmp_path, monkeypatch,
                                                                                  capsys):
    """It said "the last completed epoch is saved in RUN/checkpoint.pt. Continue with: sparsecoder train
    NEW-PRESET --out RUN --resume": the old run's checkpoint, resumed under the new preset (refused) or
    continued with the old settings the user was replacing."""
    rows = tmp_path / "rows.npy"
    np.save(rows, np.random.default_rng(0).normal(size=(200, 12)).astype(np.float32))
    run = tmp_path / "run"
    assert main(["train", "sdl-mnist", "--out", str(run), "--quiet", "--set", "data=arrays",
                 f"data_dir={rows}", *TINY]) == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    capsys.readouterr()

    real_load = np.load

    def interrupted_load(path, *args, **kwargs):  # Ctrl-C while the new run's data load
        if str(path) == str(rows):
            raise KeyboardInterrupt
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(np, "load", interrupted_load)
    assert main(["train", "wdl-mnist", "--out", str(run), "--quiet", "--overwrite", "--set", "data=arrays",
                 f"data_dir={rows}", *TINY]) == 130
    err = capsys.readouterr().err
    assert "--resume" not in err, err
    assert "unchanged" in err and "--overwrite" in err, err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    assert read_config_document(run / "config.yaml")["preset"] == "sdl-mnist"
