"""The serial executor: trials one after the other in this process (no Ray), the same run folders, status
files and results as the Ray executor, resumable by either."""

import csv
import json

import pytest
import ray

from sparsecoder import sweep
from sparsecoder.cli import main

TINY = ["limit=300", "epochs=1", "n_components=16", "lam=0.02"]


def _rows(directory):
    with open(directory / "results.csv", newline="") as fh:
        return {row["run_folder"]: row for row in csv.DictReader(fh)}


def test_serial_sweep_trains_records_divergence_and_skips_on_rerun(tmp_path, direct_train):
    out = tmp_path / "sweep"
    good, bad = "vdl-mnist/fista_step=0.5/seed=0", "vdl-mnist/fista_step=1000.0/seed=0"
    code = main(["sweep", "vdl-mnist", "--serial", "--grid", "fista_step=0.5,1000", "--set", *TINY,
                 "--out", str(out), "--quiet"])
    assert code == 1  # one trial diverged
    assert not ray.is_initialized()
    assert "executor: serial" in (out / "sweep.yaml").read_text()
    rows = _rows(out)
    assert rows[good]["status"] == "done" and rows[bad]["status"] == "diverged"
    # the trial is an ordinary run: the same numbers as training it directly with the same overrides
    direct = direct_train("vdl-mnist", [*TINY, "fista_step=0.5", "seed=0", "num_threads=1", "device=cpu"])
    saved = json.loads((out / good / "metrics.json").read_text())
    for key in ("psnr", "sparsity", "energy"):
        assert saved[key] == direct[key]
    # a rerun trains nothing: the finished trial is skipped, the diverged one kept without --retry-failed
    before = (out / good / "metrics.json").stat().st_mtime_ns
    result = sweep("vdl-mnist", out, grid=["fista_step=0.5,1000"], overrides=TINY, executor="serial",
                   progress=False)
    assert result["counts"] == {"done": 0, "failed": 0, "diverged": 0, "lost": 0, "skipped": 2}
    assert (out / good / "metrics.json").stat().st_mtime_ns == before


def test_serial_sweep_resumes_an_interrupted_trial(tmp_path):
    """Also a trial lost to its Ray worker (kill -9, Ray's out-of-memory killer, a node lost): it was
    recorded `failed` and the next sweep skipped it unless --retry-failed, although its folder held a
    checkpoint to resume from; now it is `lost` (Ray's message on its row) and resumed. Its record is
    written here as the Ray executor writes it (the real kill: test_sweep_ray.py, slow)."""
    from ray.exceptions import WorkerCrashedError

    from sparsecoder.sweep.executor import ray_error_outcome, run_trial, trial_state, write_status
    from sparsecoder.sweep.results import collect_rows
    from sparsecoder.sweep.spec import build_spec

    out = tmp_path / "sweep"
    overrides = ["limit=300", "epochs=2", "n_components=16"]
    # grid keys not in alphabetical order: the record was compared through a sorted YAML dump, and the
    # rerun of the very same command was refused as "a different sweep" (grid keys [lam, fista_step] there)
    grid = {"lam": [0.02], "fista_step": [1.0]}
    first = sweep("sdl-mnist", out, grid=grid, overrides=overrides, executor="serial", progress=False)
    trial = out / first["rows"][0]["run_folder"]
    done = json.loads((trial / "metrics.json").read_text())
    # a trial whose worker died after its run finished is run again: that run is kept (it was trained again)
    spec = build_spec(["sdl-mnist"], grid, None, overrides)
    before = (trial / "metrics.json").stat().st_mtime_ns
    assert run_trial("sdl-mnist", str(trial), spec.trial_overrides(spec.trials()[0]))["status"] == "done"
    assert (trial / "metrics.json").stat().st_mtime_ns == before
    # ... unless that finished run is not the trial's (another config's, put there meanwhile): not counted
    other = spec.trial_overrides(spec.trials()[0]) | {"lam": 0.5}
    outcome = run_trial("sdl-mnist", str(trial), other)
    assert outcome["status"] == "failed" and "another config" in outcome["message"]
    assert (trial / "metrics.json").stat().st_mtime_ns == before
    (trial / "metrics.json").unlink()  # as if stopped after its last checkpoint
    write_status(trial, ray_error_outcome(WorkerCrashedError()))  # ... by its worker's death
    assert trial_state(trial) == "lost"
    [row] = collect_rows(spec, out)
    assert row["status"] == "lost" and row["message"].startswith("WorkerCrashedError: The worker died")
    result = sweep("sdl-mnist", out, grid=grid, overrides=overrides, executor="serial", progress=False)
    assert result["counts"]["done"] == 1
    assert json.loads((trial / "metrics.json").read_text())["psnr"] == pytest.approx(done["psnr"], abs=0)


def test_serial_refuses_an_address_and_unknown_executors(tmp_path):
    with pytest.raises(ValueError, match="serial"):
        sweep("sdl-mnist", tmp_path / "a", address="auto", executor="serial", progress=False)
    with pytest.raises(ValueError, match="executor"):
        sweep("sdl-mnist", tmp_path / "b", executor="threads", progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize("text, words", [("presets: [", "is not valid YAML"),
                                         ("[1, 2]\n", "holds a list, not a mapping"),
                                         ("presets: 3\n", "'presets' is 3"),
                                         ("presets: [sdl-mnist]\nresolved_grid: {sdl-mnist: [1]}\n"
                                          "seeds: [0]\noverrides: {}\n",
                                          "resolved_grid of sdl-mnist is [1]")])
def test_a_damaged_sweep_record_is_one_error_line_naming_it(tmp_path, capsys, text, words):
    """sweep.yaml edited or truncated: the sweep used to stop on a YAML traceback or an AttributeError."""
    out = tmp_path / "sw"
    out.mkdir()
    (out / "sweep.yaml").write_text(text)
    assert main(["sweep", "sdl-mnist", "--out", str(out), "--serial", "--set", "epochs=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {out / 'sweep.yaml'}") and err.count("\n") == 1
    assert words in err and "restore it" in err and "choose a new --out" in err
    assert (out / "sweep.yaml").read_text() == text and len(list(out.iterdir())) == 1


def test_a_second_sweep_into_a_folder_in_use_is_refused_naming_the_holder(tmp_path, capsys):
    """Two sweep (or reproduce) commands on one folder would overwrite each other's sweep.yaml and record
    each other's running trials as failed: the second is refused while the first holds the lock."""
    from sparsecoder.train.integrity import run_folder_lock

    out = tmp_path / "sw"
    with run_folder_lock(out, "sweep", create=True):
        assert main(["sweep", "sdl-mnist", "--out", str(out), "--serial", "--set", "epochs=1"]) == 2
        assert "in use by another sparsecoder process" in capsys.readouterr().err
        assert main(["reproduce", "evtimova-fig6", "--quick", "--serial", "--out", str(out)]) == 2
        assert "in use by another sparsecoder process" in capsys.readouterr().err
        assert [p.name for p in out.iterdir()] == [".sparsecoder.lock"]
    assert not out.exists()  # made for the lock and left empty: removed


def test_a_trial_folder_holding_another_run_is_not_overwritten(tmp_path):
    # a trial folder without checkpoint.pt was started over with overwrite=True whatever run it held: a
    # run of lam=0.5 put there (its checkpoint deleted) had its weights and config.yaml replaced by lam=0.02
    from sparsecoder.config import save_config
    from sparsecoder.sweep.executor import check_own_trial, run_trial
    from sparsecoder.train.trainer import resolve_config

    trial = {"limit": 300, "epochs": 1, "lam": 0.02, "seed": 0, "num_threads": 1, "device": "cpu"}
    folder = tmp_path / "sdl-mnist" / "seed=0"
    folder.mkdir(parents=True)
    other, meta = resolve_config("sdl-mnist", {**trial, "lam": 0.5})
    save_config(folder / "config.yaml", other.model_name, other, extra={"preset": meta["preset"]})
    (folder / "model.safetensors").write_bytes(b"the user's weights")
    outcome = run_trial("sdl-mnist", str(folder), trial)
    assert outcome["status"] == "failed"
    assert "holds a run of another config (lam: folder has 0.5, trial 0.02), not this sweep's trial" \
        in outcome["message"]
    assert (folder / "model.safetensors").read_bytes() == b"the user's weights"
    assert "lam: 0.5" in (folder / "config.yaml").read_text()
    # another preset's run, and a config.yaml that is not a run config, are refused too
    vdl, _ = resolve_config("vdl-mnist", trial)
    save_config(folder / "config.yaml", vdl.model_name, vdl, extra={"preset": "vdl-mnist"})
    with pytest.raises(ValueError, match="preset: folder has 'vdl-mnist', trial 'sdl-mnist'"):
        check_own_trial("sdl-mnist", folder, trial)
    (folder / "config.yaml").write_text("model: [\n")
    with pytest.raises(FileExistsError, match="not a readable run config"):
        check_own_trial("sdl-mnist", folder, trial)
    # this trial's own folder (an attempt stopped before its first epoch) passes; num_threads may differ
    own, _ = resolve_config("sdl-mnist", {**trial, "num_threads": 2})
    save_config(folder / "config.yaml", own.model_name, own, extra={"preset": "sdl-mnist"})
    check_own_trial("sdl-mnist", folder, trial)


def _finished_trial(folder, preset, overrides, metrics):
    """A trial folder as the trainer leaves it, without training: config.yaml and metrics.json."""
    from sparsecoder.config import save_config
    from sparsecoder.train.trainer import resolve_config

    config, _ = resolve_config(preset, overrides)
    folder.mkdir(parents=True)
    save_config(folder / "config.yaml", config.model_name, config, extra={"preset": preset})
    (folder / "metrics.json").write_text(json.dumps(metrics))


def test_a_finished_run_of_another_config_at_a_trial_path_is_not_that_trials_result(tmp_path, capsys):
    """A finished run (metrics.json) whose config is not the trial's — another grid point's folder copied
    over it, its config.yaml edited, or no config.yaml — used to count as the trial's result: its numbers
    went into results.csv/results.md as 'done'. It is a failed trial naming the difference, left as it was
    (also with --retry-failed); a trial verified once keeps a digest: later commands only hash its config."""
    import shutil

    import yaml

    from sparsecoder.sweep.executor import read_status, trial_digest
    from sparsecoder.sweep.spec import build_spec

    out = tmp_path / "sw"
    spec = build_spec(["sdl-mnist"], {"lam": [0.02, 0.5]}, [0], {"epochs": 1, "limit": 300})
    (out / "sdl-mnist").mkdir(parents=True)
    (out / "sweep.yaml").write_text(yaml.safe_dump({**spec.to_dict(), "executor": "serial"}))
    for trial in spec.trials():
        _finished_trial(out / trial.folder, "sdl-mnist", spec.trial_overrides(trial),
                        {"psnr": 10 + dict(trial.point)["lam"]})  # no sparsity: no plot drawn
    args = dict(grid={"lam": [0.02, 0.5]}, seeds=[0], overrides={"epochs": 1, "limit": 300},
                executor="serial", progress=False)
    result = sweep("sdl-mnist", out, **args)
    assert [r["status"] for r in result["rows"]] == ["done", "done"]
    mine, other = (out / t.folder for t in spec.trials())
    for trial in spec.trials():  # verified once: the digest of (trial, config.yaml) is recorded
        digest = trial_digest(out / trial.folder, trial.preset, spec.trial_overrides(trial),
                              spec.trial_config(trial))
        assert read_status(out / trial.folder)["verified"] == digest

    shutil.rmtree(mine)
    shutil.copytree(other, mine)  # lam=0.5's finished run, its status file and digest too, at lam=0.02's path
    edited = (other / "config.yaml").read_text().replace("batch_size: 250", "batch_size: 100")
    (other / "config.yaml").write_text(edited.replace("epochs: 1", "epochs: 2"))  # epochs count when finished
    before = {p.name: p.read_bytes() for p in mine.iterdir()}
    assert main(["sweep", "sdl-mnist", "--out", str(out), "--serial", "--quiet", "--grid", "lam=0.02,0.5",
                 "--set", "epochs=1", "limit=300", "--retry-failed"]) == 1
    err = capsys.readouterr().err
    assert f"{mine} holds a run of another config (lam: folder has 0.5, trial 0.02)" in err
    assert f"{other} holds a run of another config (batch_size: folder has 100, trial 250; epochs: folder " \
           f"has 2, trial 1)" in err
    rows = _rows(out)
    assert [rows[f]["status"] for f in ("sdl-mnist/lam=0.02/seed=0", "sdl-mnist/lam=0.5/seed=0")] == \
        ["failed", "failed"]
    assert "psnr" not in rows["sdl-mnist/lam=0.02/seed=0"]  # lam=0.5's numbers are not lam=0.02's
    assert "| 0.02 | 0/1 |" in (out / "results.md").read_text()
    assert {p.name: p.read_bytes() for p in mine.iterdir()} == before  # left as it was, not retrained
    (mine / "config.yaml").unlink()
    result = sweep("sdl-mnist", out, **args)
    assert "holds metrics.json but no readable config.yaml" in result["rows"][0]["message"]


@pytest.mark.parametrize("option", [{"grid": {"device": ["cpu", "cuda:99"]}},
                                    {"overrides": {"device": "cuda:99"}}])
def test_a_device_this_machine_lacks_is_refused_before_the_sweep_is_written(tmp_path, option):
    """`--grid device=cpu,cuda:99` (or --set) on a machine without that GPU: every such trial failed after
    sweep.yaml was written, and the corrected command was then refused as a different sweep."""
    with pytest.raises(ValueError, match="'cuda:99'.*nothing was written"):
        sweep("sdl-mnist", tmp_path / "sw", executor="serial", progress=False, **option)
    assert not (tmp_path / "sw").exists()


def test_sigterm_stops_a_serial_sweep_like_ctrl_c_with_status_143(tmp_path, capsys):
    # `sweep` answered a SIGTERM (turned into an interrupt by the command line) with Ctrl-C's
    # "interrupted" and status 130; `train` says "stopped by SIGTERM" and exits 143, as a stop signal should
    import signal

    from sparsecoder.cli import main
    from sparsecoder.config import save_config
    from tests.train.linear_autoencoder import MODEL_NAME, LinearAutoencoderConfig, interrupted_at

    preset = tmp_path / "tiny.yaml"
    save_config(preset, MODEL_NAME, LinearAutoencoderConfig(
        epochs=2, batch_size=50, num_threads=1, device="cpu", data="synthetic",
        data_options={"dim": 16, "n_components": 8, "n_train": 240, "n_val": 60, "n_test": 60}))
    earlier = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # Ray, started by another test, leaves its own
    try:
        with interrupted_at(7, signal.SIGTERM):  # epoch 2 of the only trial
            code = main(["sweep", str(preset), "--out", str(tmp_path / "sweep"), "--serial", "--quiet"])
    finally:
        signal.signal(signal.SIGTERM, earlier)
    err = capsys.readouterr().err
    assert code == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM; running trials were cancelled" in err and "Rerun the same command" in err


def test_each_trials_overrides_are_computed_once_per_command(tmp_path, monkeypatch):
    """The sweep built every trial's overrides (which --set keys count in the trial) when it checked the
    spec, again for its data_dir/device checks, and again to check a finished trial's folder (and to run a
    trial and record it); now once per trial and command, whatever uses them."""
    import yaml

    from sparsecoder.config import Preset
    from sparsecoder.sweep.spec import build_spec

    out = tmp_path / "sw"
    args = dict(grid={"lam": [0.02, 0.5]}, seeds=[0], overrides={"epochs": 1, "limit": 300})
    spec = build_spec(["sdl-mnist"], args["grid"], args["seeds"], args["overrides"])
    (out / "sdl-mnist").mkdir(parents=True)
    (out / "sweep.yaml").write_text(yaml.safe_dump({**spec.to_dict(), "executor": "serial"}))
    for trial in spec.trials():
        _finished_trial(out / trial.folder, "sdl-mnist", spec.trial_overrides(trial), {"psnr": 10.0})
    built = []
    unused = Preset.unused

    def counting(self, overrides):  # the real method, counted where a trial's overrides are built
        if "num_threads" in overrides:
            built.append(overrides["lam"])
        return unused(self, overrides)

    monkeypatch.setattr(Preset, "unused", counting)
    result = sweep("sdl-mnist", out, **args, executor="serial", progress=False)
    assert [r["status"] for r in result["rows"]] == ["done", "done"]  # checked as this sweep's trials
    assert sorted(built) == [0.02, 0.5]


def test_trials_that_would_fail_as_they_start_are_refused_before_the_sweep_is_written(tmp_path):
    """An MNIST data_dir that is a file (or a model too large for this machine): every trial failed as it
    started, after sweep.yaml was written, and the corrected command was then refused as a different
    sweep. The check is the one `reproduce` makes (sweep.run.check_trials_start)."""
    data_file = tmp_path / "mnist.txt"
    data_file.write_text("not a folder")
    with pytest.raises(ValueError, match=r"sdl-mnist/default/seed=0 would fail as it starts: MNIST data_dir "
                                         r".*is a file.*nothing was written"):
        sweep("sdl-mnist", tmp_path / "sw", executor="serial", progress=False,
              overrides={"data_dir": str(data_file), "epochs": 1})
    with pytest.raises(ValueError, match=r"would fail as it starts: .*memory.*nothing was written"):
        sweep("vdl-nl-mnist", tmp_path / "sw", executor="serial", progress=False,
              overrides={"hidden_size": 10**8, "epochs": 1})
    assert not (tmp_path / "sw").exists()


def test_each_trial_config_is_counted_against_the_memory_once_not_once_per_seed(monkeypatch):
    """check_trials_start counted every trial's model against the memory, although a model's size is its
    seeds': `--seeds 0-9999` of one config spent ~20 s on it before the sweep started (and again on each
    rerun). Now once per config (the seed aside); a config that does not fit is still refused."""
    from sparsecoder.models import common
    from sparsecoder.sweep.run import check_trials_start
    from sparsecoder.sweep.spec import build_spec

    spec = build_spec(["sdl-mnist"], {"lam": [0.02, 0.5]}, "0-9", {"epochs": 1, "limit": 300})
    counted = []
    real = common.training_size

    def counting(build):  # the real count (on the meta device), counted
        counted.append(build)
        return real(build)

    monkeypatch.setattr(common, "training_size", counting)
    check_trials_start([spec], None)
    assert len(counted) == 2
