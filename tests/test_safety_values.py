"""Issue 11, class 4: contradictory flags and impossible values end in one line naming the key."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sparsecoder import cli
from sparsecoder.cli import main
from sparsecoder.config import ConfigError, load_preset, parse_overrides
from tests.safety_helpers import fresh_run


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_resume_and_overwrite_together_are_refused_and_nothing_is_touched(tmp_path_factory, tmp_path, capsys):
    run = fresh_run(tmp_path_factory, tmp_path / "run")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    assert main(["train", "sdl-mnist", "--out", str(run), "--resume", "--overwrite"]) == 2
    err = _one_line_error(capsys)
    assert "--resume" in err and "--overwrite" in err
    assert before == {p.name: p.read_bytes() for p in run.iterdir()}
    from sparsecoder.train import train

    with pytest.raises(ValueError, match="resume and overwrite"):
        train("sdl-mnist", run, resume=True, overwrite=True, progress=False)


BAD = [  # (override, key named, what would happen deep inside without the check)
    ("epochs=1000000000000000000000000000000", "epochs", None),
    ("epochs=1e30", "epochs", None),
    ("epochs=-3", "epochs", None),
    ("batch_size=2147483648", "batch_size", None),
    ("limit=-5", "limit", None),
    ("seed=-1", "seed", lambda: np.random.default_rng([-1, 1])),
    ("seed=100000000000000000000", "seed", lambda: torch.manual_seed(10**20)),
    ("num_threads=0", "num_threads", lambda: torch.set_num_threads(0)),
    ("num_threads=100000", "num_threads", None),
    ("lam=.nan", "lam", None),
    ("lam=.inf", "lam", None),
    ("lam=1e400", "lam", None),
    ("fista_max_iter=1e30", "fista_max_iter", None),
    ("device=banana", "device", lambda: torch.device("banana")),
    ("data_options={nope: 1}", "data_options.nope", None),
    ("data_options={normalize: [1, 2]}", "data_options.normalize", None),
]


@pytest.mark.parametrize("override, key, deep", BAD, ids=[b[0][:30] for b in BAD])
def test_impossible_values_are_refused_before_any_work_naming_the_key(tmp_path, capsys, override, key, deep):
    if deep is not None:  # the independent truth: torch/numpy itself fails on this value, with a traceback
        with pytest.raises((RuntimeError, ValueError, OverflowError)):
            deep()
    out = tmp_path / "run"
    assert main(["train", "sdl-mnist", "--out", str(out), "--quiet", "--set", override]) == 2
    err = _one_line_error(capsys)
    assert f"config key '{key}'" in err, err
    assert not out.exists()
    with pytest.raises(ConfigError, match=f"'{key}'"):  # the API refuses it the same way
        load_preset("sdl-mnist", parse_overrides([override]))


def test_data_option_types_follow_the_loader_signature(tmp_path, capsys):
    assert main(["train", "sdl-patches", "--out", str(tmp_path / "r"),
                 "--set", "data_options={patch_size: abc}"]) == 2
    assert "data_options.patch_size" in _one_line_error(capsys)
    _, config = load_preset("sdl-patches", {"data_options": {"patch_size": 28}})
    assert config.data_options == {"patch_size": 28}


def test_an_unexpected_error_is_one_line_with_a_debug_hint(monkeypatch, capsys):
    monkeypatch.setattr(cli, "COMMAND_MODULES", [*cli.COMMAND_MODULES, "tests.safety_boom"])
    assert main(["boom"]) == 1
    err = _one_line_error(capsys)
    assert "RuntimeError" in err and "SPARSECODER_DEBUG=1" in err
    monkeypatch.setenv("SPARSECODER_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["boom"])


def test_data_show_names_a_negative_seed(tmp_path, capsys):
    with pytest.raises(ValueError):  # numpy's own message does not say which flag
        np.random.default_rng(-1)
    assert main(["data", "show", "mnist", "--out", str(tmp_path / "g.png"), "--seed", "-1"]) == 2
    assert "--seed" in _one_line_error(capsys) and not (tmp_path / "g.png").exists()
