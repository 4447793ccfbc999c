"""Paths given to ``sweep`` and ``reproduce``: a relative ``data_dir`` (``--set``, ``--grid``, ``--data-dir``)
is stored as the absolute path it named, so the trial run folders are evaluated and resumed from any folder
and a rerun from another folder cannot take other data for the same trials; a leading ``~`` in ``--out``
is the home folder."""

import json
import os

import numpy as np
import pytest
import yaml

from sparsecoder import sweep
from sparsecoder.cli import main
from sparsecoder.train import evaluate_run

TINY = ["epochs=1", "n_components=8", "data=arrays"]


def _write_rows(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    np.save(path, (0.1 * rng.standard_normal((120, 16))).astype(np.float32))


def _sweep_cli(out, *args):
    return main(["sweep", "vdl-mnist", "--serial", "--quiet", "--out", str(out), *args])


def test_a_relative_set_data_dir_is_stored_absolute(tmp_path, monkeypatch, capsys):
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    _write_rows(here / "data" / "x.npy")
    _write_rows(elsewhere / "data" / "x.npy", seed=1)  # other data under the same relative path
    monkeypatch.chdir(here)
    assert _sweep_cli("sw", "--grid", "lam=0.01,0.02", "--set", *TINY, "data_dir=data/x.npy") == 0
    trial = here / "sw" / "vdl-mnist" / "lam=0.01" / "seed=0"
    stored = yaml.safe_load((trial / "config.yaml").read_text())["config"]["data_dir"]
    assert stored == str(here / "data" / "x.npy")
    record = yaml.safe_load((here / "sw" / "sweep.yaml").read_text())
    assert record["overrides"]["data_dir"] == str(here / "data" / "x.npy")
    # the same command from the same folder trains nothing
    capsys.readouterr()
    assert _sweep_cli("sw", "--grid", "lam=0.01,0.02", "--set", *TINY, "data_dir=data/x.npy") == 0
    assert "0 trained, 2 skipped" in capsys.readouterr().err
    # the trial is evaluated from another folder, on its own data
    monkeypatch.chdir(elsewhere)
    assert np.isfinite(evaluate_run(trial)["psnr"])
    # the same command from another folder names other data: refused, nothing trained or mixed
    metrics = (trial / "metrics.json").read_bytes()
    assert _sweep_cli(here / "sw", "--grid", "lam=0.01,0.02,0.05", "--set", *TINY,
                      "data_dir=data/x.npy") == 2
    err = capsys.readouterr().err
    assert "holds a different sweep" in err and str(elsewhere / "data" / "x.npy") in err
    assert (trial / "metrics.json").read_bytes() == metrics
    assert not (here / "sw" / "vdl-mnist" / "lam=0.05").exists()


def test_a_relative_grid_data_dir_is_stored_absolute(tmp_path, monkeypatch):
    _write_rows(tmp_path / "a.npy")
    _write_rows(tmp_path / "b.npy", seed=1)
    monkeypatch.chdir(tmp_path)
    result = sweep("vdl-mnist", "sw", grid={"data_dir": ["a.npy", "b.npy"]}, overrides=TINY,
                   executor="serial", progress=False)
    assert result["counts"]["done"] == 2
    for row in result["rows"]:
        config = yaml.safe_load((tmp_path / "sw" / row["run_folder"] / "config.yaml").read_text())["config"]
        assert os.path.isabs(config["data_dir"]) and config["data_dir"] == row["data_dir"]
    again = sweep("vdl-mnist", "sw", grid={"data_dir": ["a.npy", "b.npy"]}, overrides=TINY,
                  executor="serial", progress=False)
    assert again["counts"]["skipped"] == 2


def test_a_sweep_recorded_with_a_relative_data_dir_is_still_resumed_from_its_folder(tmp_path, monkeypatch):
    """A sweep written before data paths were stored absolute: its record and trials hold the relative
    text; the same command from the same folder must still recognise its finished trials."""
    _write_rows(tmp_path / "data" / "x.npy")
    monkeypatch.chdir(tmp_path)
    overrides = [*TINY, "data_dir=data/x.npy"]
    first = sweep("vdl-mnist", "sw", grid={"lam": [0.01]}, overrides=overrides, executor="serial",
                  progress=False)
    trial = tmp_path / "sw" / first["rows"][0]["run_folder"]
    absolute = str(tmp_path / "data" / "x.npy")
    for path in (tmp_path / "sw" / "sweep.yaml", trial / "config.yaml"):  # as an older version wrote them
        path.write_text(path.read_text().replace(absolute, "data/x.npy"))
    (trial / "sweep_trial.json").write_text(json.dumps({"status": "done", "message": ""}))
    again = sweep("vdl-mnist", "sw", grid={"lam": [0.01]}, overrides=overrides, executor="serial",
                  progress=False)
    assert again["counts"] == {"done": 0, "failed": 0, "diverged": 0, "lost": 0, "skipped": 1}
    assert again["rows"][0]["status"] == "done"


def test_a_leading_tilde_in_sweep_out_is_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert _sweep_cli("~/sw", "--set", "epochs=1", "n_components=8", "limit=300") == 0
    assert (tmp_path / "home" / "sw" / "results.csv").is_file()
    assert not (tmp_path / "~").exists()


def test_an_empty_sweep_out_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        _sweep_cli("", "--set", "epochs=1")
    assert "empty path" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_relative_out_is_where_the_ray_trials_write_whatever_their_folder(tmp_path, monkeypatch):
    """Workers of a cluster started by `ray start` run in that command's folder, not the driver's: the
    trials of `sweep --out rel --address ...` were written under the `ray start` folder while the sweep
    counted them trained and listed them `pending` (exit status 0). Here the workers' folder is another one
    through Ray's runtime_env working_dir (a Ray initialised by the caller is the sweep's)."""
    import ray

    from sparsecoder.sweep.executor import _worker_pythonpath

    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(here)
    env = {"PYTHONPATH": _worker_pythonpath()} if _worker_pythonpath() else {}
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False,
             runtime_env={"working_dir": str(elsewhere), "env_vars": env})
    try:
        assert ray.get(ray.remote(lambda: os.getcwd()).remote()) != os.getcwd()
        result = sweep("vdl-mnist", "rel", overrides=["epochs=1", "limit=300", "n_components=8"],
                       progress=False)
    finally:
        ray.shutdown()
    assert result["counts"]["done"] == 1 and result["rows"][0]["status"] == "done"
    assert (here / "rel" / "vdl-mnist" / "default" / "seed=0" / "metrics.json").is_file()
