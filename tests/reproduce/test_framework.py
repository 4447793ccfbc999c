"""The ``sparsecoder reproduce`` framework: the command line (--list, bad input with exit 2), the folder
checks (another experiment or other settings, a foreign non-empty folder), resuming (a rerun trains
nothing), :func:`aggregate` against numpy, and the trials it trains through the sweep executor — serial in
this process, and on a local Ray (same numbers)."""

import csv
import json
import re

import numpy as np
import pytest
import ray
import yaml

from sparsecoder import train
from sparsecoder.cli import main
from sparsecoder.reproduce import EXPERIMENTS, reproduce
from sparsecoder.reproduce.base import SETTINGS_FILE, TrialResult, aggregate, finished, fmt
from tests.data.helpers import write_mnist_dir

# evtimova-fig6 quick, cut to one trial: SDL at λ = 1e-3, one seed, one epoch, 300 training samples.
ONE_TRIAL = {"variants": ["sdl"], "lams": [0.001]}
TRIAL = "trials/sdl-mnist/sdl-mnist/lam=0.001/seed=0"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One finished quick call (serial executor); the tests below only read it or call it again."""
    out = tmp_path_factory.mktemp("reproduce") / "fig6"
    result = reproduce("evtimova-fig6", out, quick=True, overrides=ONE_TRIAL, executor="serial",
                       progress=False)
    return out, result


def _csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_list_names_every_experiment_with_its_times(capsys):
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    for name, info in EXPERIMENTS.items():
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert info["figure"] in line and "quick ~" in line and "on 2 CPU cores" in line
        assert info["measures"] in out


@pytest.mark.parametrize("argv, message", [
    (["reproduce", "evtimova-fig99", "--quick"], "unknown experiment 'evtimova-fig99'; did you mean "
                                                 "'evtimova-fig9'? the experiments are evtimova-fig6, "),
    (["reproduce", "evtimova-fig6", "--quick", "--set", "epoch=3"],
     "experiment evtimova-fig6 has no setting 'epoch'; did you mean 'epochs'? its settings are data, "
     "epochs, "),
    (["reproduce", "evtimova-fig6", "--quick", "--set", "epochs"], "expected KEY=VALUE"),
    (["reproduce", "evtimova-fig6", "--quick", "--set", "epochs=1", "epochs=2"],
     "--set key 'epochs' is given twice ('epochs=1' and 'epochs=2')"),
    (["reproduce", "evtimova-fig6", "--quick", "--set", "data={a: 1, a: 2}"], "found the key 'a' twice"),
    (["reproduce", "evtimova-fig6", "--quick", "--set", "data=imagenet"], "data='imagenet': expected one of"),
    (["reproduce", "evtimova-fig6"], None),  # no --out
])
def test_bad_input_is_one_clear_line_and_exit_2(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    if message is not None:
        argv = [*argv, "--out", str(out)]
    assert main([*argv, "--serial", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert (message or "give an experiment NAME and --out DIR") in err
    if message is not None:
        assert not out.exists()  # refused before anything was written


def test_a_foreign_non_empty_folder_is_refused_and_left_alone(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("a user's file")
    assert main(["reproduce", "evtimova-fig6", "--quick", "--serial", "--out", str(out)]) == 2
    assert f"{out} is not empty and holds no {SETTINGS_FILE}" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert (out / "notes.txt").read_text() == "a user's file"


def test_a_folder_of_another_experiment_or_other_settings_is_refused(quick_run):
    out, _ = quick_run
    before = (out / SETTINGS_FILE).read_text()
    with pytest.raises(ValueError, match="holds `reproduce evtimova-fig6` with profile quick .* Repeat the "
                                         "same flags to resume it, or choose a new --out"):
        reproduce("evtimova-fig6", out, quick=True, overrides={**ONE_TRIAL, "epochs": 2}, executor="serial")
    with pytest.raises(ValueError, match="this call asks for evtimova-collapse"):
        reproduce("evtimova-collapse", out, quick=True, executor="serial")
    with pytest.raises(ValueError, match=r"this call asks for evtimova-fig6 \(full\)"):
        reproduce("evtimova-fig6", out, overrides=ONE_TRIAL, executor="serial")
    assert (out / SETTINGS_FILE).read_text() == before


def test_the_serial_trial_is_an_ordinary_run_folder_with_the_asked_config(quick_run, tmp_path):
    out, result = quick_run
    record = yaml.safe_load((out / SETTINGS_FILE).read_text())
    assert record["experiment"] == "evtimova-fig6" and record["profile"] == "quick"
    assert record["settings"]["variants"] == ["sdl"] and record["settings"]["lams"] == [0.001]
    trial = out / TRIAL
    config = yaml.safe_load((trial / "config.yaml").read_text())["config"]
    assert (config["lam"], config["seed"], config["epochs"], config["limit"], config["num_threads"]) == \
        (0.001, 0, 1, 300, 1)
    assert not ray.is_initialized()
    # the same numbers as training the preset directly with the same config values
    direct = train("sdl-mnist", tmp_path / "direct", progress=False,
                   overrides=["lam=0.001", "seed=0", "epochs=1", "limit=300", "num_threads=1", "device=cpu"])
    saved = json.loads((trial / "metrics.json").read_text())
    for key in ("psnr", "sparsity", "energy", "best_val_loss"):
        assert saved[key] == direct[key]
    # ... and the experiment's results come from that run folder
    (row,) = result["rows"]
    assert row["variant"] == "sdl" and row["lam"] == 0.001 and row["n_seeds"] == 1
    assert row["psnr_mean"] == saved["psnr"]
    assert row["sparsity_mean"] == pytest.approx(100 * saved["sparsity"])
    (written,) = _csv(out / "results.csv")
    assert float(written["psnr_mean"]) == pytest.approx(saved["psnr"], rel=1e-12)
    assert [p.name for p in result["files"]] == ["results.md", "results.csv", "fig6_mnist.png"]
    text = (out / "results.md").read_text()
    assert "profile: **quick**" in text and "What differs from the paper:" in text
    # the line under the title is the full profile's protocol: it read as if this call (λ = 1e-3 alone)
    # had measured "over each preset's λ grid"
    assert f"\nThe full profile measures: {EXPERIMENTS['evtimova-fig6']['measures']}.\n" in text


def test_a_rerun_of_the_same_call_trains_nothing(quick_run):
    out, first = quick_run
    metrics = sorted((out / "trials").rglob("metrics.json"))
    assert len(metrics) == 1
    before = {p: p.stat().st_mtime_ns for p in metrics}
    code = main(["reproduce", "evtimova-fig6", "--quick", "--serial", "--quiet", "--out", str(out),
                 "--set", "variants=[sdl]", "lams=[0.001]"])
    assert code == 0
    assert {p: p.stat().st_mtime_ns for p in metrics} == before
    assert _csv(out / "results.csv")[0]["psnr_mean"] == str(first["rows"][0]["psnr_mean"])


def test_a_trial_holding_another_configs_run_names_the_fix_that_works(quick_run, tmp_path, capsys):
    """A finished trial whose config.yaml is not the trial's is refused (as `sweep` refuses it), but the
    summary said 'Rerun with --retry-failed', which leaves a finished run as it is: it names the fix that
    works, as the trial's line and `sweep` do."""
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(quick_run[0], out)
    config = out / TRIAL / "config.yaml"
    config.write_text(config.read_text().replace("batch_size: 250", "batch_size: 100"))
    code = main(["reproduce", "evtimova-fig6", "--quick", "--serial", "--quiet", "--out", str(out),
                 "--set", "variants=[sdl]", "lams=[0.001]"])
    err = capsys.readouterr().err
    assert code == 1 and "holds a run of another config (batch_size: folder has 100, trial 250)" in err
    assert "--retry-failed to train" not in err
    assert err.rstrip().endswith("1 trial folder(s) hold a finished run that is not the trial's; the results "
                                 "leave them out, and --retry-failed leaves them as they are: the sweep "
                                 "replaces only the files of its own trials; move that folder out of the "
                                 "sweep (or delete it) and rerun")


def test_a_trial_with_a_damaged_metrics_file_is_not_called_another_run(quick_run, tmp_path, capsys):
    """A truncated metrics.json of the trial's own run: its line said to move the file, but the summary
    called it 'a finished run that is not the trial's' with the fix for that (move the whole folder)."""
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(quick_run[0], out)
    metrics = out / TRIAL / "metrics.json"
    metrics.write_text(metrics.read_text()[:40])
    assert main(["reproduce", "evtimova-fig6", "--quick", "--serial", "--quiet", "--out", str(out),
                 "--set", "variants=[sdl]", "lams=[0.001]"]) == 1
    err = capsys.readouterr().err
    assert "metrics.json is not valid JSON" in err
    assert "not the trial's" not in err and "--retry-failed to train" not in err
    assert err.rstrip().endswith("1 trial folder(s) hold a finished run whose metrics.json is damaged "
                                 "(unreadable); the results leave them out, and --retry-failed leaves them "
                                 "as they are: move that metrics.json out of the folder and rerun (the trial "
                                 "resumes and is measured again)")


def test_a_metrics_file_without_the_metrics_read_names_the_file_and_the_fix(quick_run, tmp_path, capsys):
    """A metrics.json of another version (or edited) without the metrics the experiment reads: 'KeyError:
    'psnr' (unexpected; ... report it)'."""
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(quick_run[0], out)
    (out / TRIAL / "metrics.json").write_text('{"epochs": 1}')
    assert main(["reproduce", "evtimova-fig6", "--quick", "--serial", "--quiet", "--out", str(out),
                 "--set", "variants=[sdl]", "lams=[0.001]"]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {out / TRIAL / 'metrics.json'} has no 'sparsity', which this experiment reads "
                   f"(written by another version, or edited): move that metrics.json out of the folder and "
                   f"rerun (the trial resumes and is measured again)\n")


def test_aggregate_matches_numpy():
    rng = np.random.default_rng(0)
    rows = [{"variant": v, "lam": lam, "seed": s, "psnr": float(rng.normal(20, 2)),
             "sparsity": float(rng.uniform(50, 90))}
            for v in ("sdl", "vdl") for lam in (0.001, 0.005) for s in range(5)]
    rows.append({"variant": "do", "lam": 0.001, "seed": 0, "psnr": 18.0, "sparsity": float("nan")})
    cells = aggregate(rows, ["variant", "lam"], ["psnr", "sparsity"])
    assert [(c["variant"], c["lam"]) for c in cells] == [("sdl", 0.001), ("sdl", 0.005), ("vdl", 0.001),
                                                        ("vdl", 0.005), ("do", 0.001)]  # first-seen order
    for cell in cells[:4]:
        members = [r for r in rows if (r["variant"], r["lam"]) == (cell["variant"], cell["lam"])]
        for metric in ("psnr", "sparsity"):
            values = np.array([r[metric] for r in members])
            assert cell[f"{metric}_mean"] == pytest.approx(values.mean(), rel=1e-12)
            assert cell[f"{metric}_std"] == pytest.approx(values.std(ddof=1), rel=1e-12)
        assert cell["n_seeds"] == 5
    single = cells[4]
    assert (single["psnr_mean"], single["n_seeds"]) == (18.0, 1)
    assert np.isnan(single["psnr_std"])  # one seed: no spread measured (0.0 printed as a measured "± 0.00")
    assert fmt(single["psnr_mean"], single["psnr_std"]) == "18.00"
    assert np.isnan(single["sparsity_mean"]) and np.isnan(single["sparsity_std"])  # NaN is not a value


def test_the_ray_executor_gives_the_serial_numbers(quick_run, tmp_path):
    """The same quick call through a local Ray (one CPU): the trial lands in the same run folder layout
    with the same numbers as the serial executor's."""
    serial_out, serial = quick_run
    out = tmp_path / "ray"
    result = reproduce("evtimova-fig6", out, quick=True, overrides=ONE_TRIAL, executor="ray",
                       max_concurrent=1, progress=False)
    assert not ray.is_initialized()  # the local Ray was stopped again
    assert "executor: ray" in (out / "trials/sdl-mnist/sweep.yaml").read_text()
    ours = json.loads((out / TRIAL / "metrics.json").read_text())
    theirs = json.loads((serial_out / TRIAL / "metrics.json").read_text())
    for key in ("psnr", "sparsity", "energy", "best_val_loss"):
        assert ours[key] == theirs[key]
    assert result["rows"][0]["psnr_mean"] == serial["rows"][0]["psnr_mean"]


@pytest.mark.parametrize("text, words", [("experiment: [", "is not valid YAML"),
                                         ("- 1\n- 2\n", "holds a list, not a mapping"),
                                         ("experiment: 3\n", "'experiment' is 3")])
def test_a_damaged_settings_record_is_one_error_line_naming_it(tmp_path, capsys, text, words):
    out = tmp_path / "exp"
    out.mkdir()
    (out / SETTINGS_FILE).write_text(text)
    assert main(["reproduce", "evtimova-fig6", "--quick", "--serial", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {out / SETTINGS_FILE}") and err.count("\n") == 1
    assert words in err and "restore it, or choose a new --out" in err
    assert (out / SETTINGS_FILE).read_text() == text and len(list(out.iterdir())) == 1


@pytest.mark.parametrize("options, message", [
    ({"executor": "threads"}, "executor must be 'ray' or 'serial'"),
    ({"executor": "serial", "address": "auto"}, "the serial executor runs trials in this process"),
    ({"executor": "serial", "max_concurrent": 0}, "--max-concurrent must be an integer >= 1, got 0"),
    ({"executor": "serial", "max_concurrent": 2}, "the serial executor runs one trial at a time"),
])
def test_bad_executor_options_are_refused_before_the_folder_is_written(tmp_path, options, message):
    """They were refused by the trials' sweep, after reproduce.yaml was written; --serial --max-concurrent 2
    ran one trial at a time without a word."""
    with pytest.raises(ValueError, match=message):
        reproduce("evtimova-fig6", tmp_path / "out", quick=True, overrides=ONE_TRIAL, progress=False,
                  **options)
    assert not (tmp_path / "out").exists()


def test_set_reads_exponent_notation_as_numbers():
    """PyYAML reads 1e-3 (no dot) as a string: --set lams=[1e-3] and probe_lr=1e-3 were refused as not
    numbers, though train --set and sweep --grid take them."""
    from sparsecoder.reproduce.base import parse_settings

    profile = {"lams": "paper", "probe_lr": 0.1, "models": {}, "data": "mnist"}
    settings = parse_settings(profile, ["lams=[1e-3, 5E+2]", "probe_lr=-2.5e-4", "models={a: 1e-2}",
                                        "data=e5"], "x")
    assert settings == {"lams": [0.001, 500.0], "probe_lr": -0.00025, "models": {"a": 0.01}, "data": "e5"}


def test_failed_trials_exit_1_and_retry_failed_trains_them_again(tmp_path, capsys):
    """A failed trial was only a line in results.md (exit 0, nothing on stderr), and reproduce had no way
    to train it again (a rerun skips it); a changed --data-dir was refused with two identical settings."""
    empty = tmp_path / "empty"  # MNIST's test files only (those are checked up front): the trial fails
    write_mnist_dir(empty)
    for path in empty.glob("train-*"):
        path.unlink()
    out = tmp_path / "out"
    argv = ["reproduce", "evtimova-collapse", "--quick", "--serial", "--quiet", "--out", str(out),
            "--set", "variants=[sdl]", "epochs=1"]
    status = out / "trials/sdl-mnist/sdl-mnist/default/seed=0/sweep_trial.json"
    assert main([*argv, "--data-dir", str(empty)]) == 1
    err = capsys.readouterr().err
    assert "seed=0: failed: FileNotFoundError" in err and "Rerun with --retry-failed" in err
    first = status.stat().st_mtime_ns
    assert main([*argv, "--data-dir", str(empty)]) == 1 and status.stat().st_mtime_ns == first  # skipped
    assert main([*argv, "--data-dir", str(empty), "--retry-failed"]) == 1
    assert status.stat().st_mtime_ns != first  # trained (and failed) again
    capsys.readouterr()
    assert main(argv) == 2
    assert f"differs in data_dir: '{empty}' there, None now" in capsys.readouterr().err


def test_a_missing_data_dir_is_refused_before_anything_is_written(tmp_path):
    """Every trial failed on it after reproduce.yaml / sweep.yaml was written, and that record then refused
    the corrected command as other settings (a different sweep)."""
    from sparsecoder import sweep

    missing = str(tmp_path / "no-such-data")
    with pytest.raises(FileNotFoundError, match=f"data_dir {missing} does not exist"):
        reproduce("evtimova-collapse", tmp_path / "r", quick=True, data_dir=missing, executor="serial")
    with pytest.raises(FileNotFoundError, match=f"data_dir {missing} does not exist"):
        sweep("sdl-mnist", tmp_path / "s", grid={"data_dir": [str(tmp_path), missing]}, executor="serial")
    with pytest.raises(ValueError, match="'data_dir': empty text"):  # was the current folder
        sweep("sdl-mnist", tmp_path / "s", overrides=["data_dir="], executor="serial")
    assert not (tmp_path / "r").exists() and not (tmp_path / "s").exists()


@pytest.mark.parametrize("name, settings, data_dir, message", [
    ("evtimova-fig6", ["lams=[1e9]"], None, "config key 'lam': must be a finite number >= 0 and <= 1e+08"),
    ("evtimova-collapse", ["variants=[sdl]"], "a file", "is a file; give the folder of the IDX files"),
    ("pyle-priors", ["datasets=[synthetic]", "hidden=100000000"], None,
     "does not fit in this machine's memory: a VAE on 25 features"),
    ("jiang-fig5", ["variance=1e300"], None, "variance must be a positive number at most 1e+30"),
    ("evtimova-table1", ["models={sdl-mnist: 1e9}"], None, "config key 'lam': must be a finite number >= 0"),
    ("evtimova-table1", [], "a file", "is a file; give the folder of the IDX files"),
    ("evtimova-fig9", ["lams={vdl-mnist: [0.01, 1e9]}"], None,
     "config key 'lam': must be a finite number >= 0"),
])
def test_a_setting_the_trials_would_fail_on_is_refused_before_the_folder_is_written(
        tmp_path, capsys, name, settings, data_dir, message):
    """A λ over the config's bound, an MNIST --data-dir that is a file, a model too large for the memory, a
    data option the source refuses: refused by the trials' sweep, or failing every trial, only after
    reproduce.yaml was written, which then refused the corrected command as other settings."""
    out = tmp_path / "out"
    argv = ["reproduce", name, "--quick", "--serial", "--quiet", "--out", str(out)]
    argv += ["--set", *settings] if settings else []
    if data_dir is not None:
        (tmp_path / "data").write_text("not a folder")
        argv += ["--data-dir", str(tmp_path / "data")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert message in err and "(nothing was written)" in err
    assert not out.exists()


@pytest.mark.parametrize("name, settings, sources", [
    ("pyle-priors", {}, "train on 3: synthetic_pyle (vae-gauss-synthetic, "),
    ("evtimova-table1", {"models": {"sdl-mnist": 0.005, "sdl-patches": 0.002}},
     "train on 2: mnist (sdl-mnist); patches (sdl-patches); "),
])
def test_a_data_dir_for_trials_of_several_data_sets_is_refused_naming_them(tmp_path, name, settings, sources):
    """Every trial gets the one --data-dir: pyle-priors' default datasets with any --data-dir were refused
    by 'the synthetic_pyle source takes no data_dir', which named no fix."""
    with pytest.raises(ValueError, match=f"--data-dir {tmp_path} is the folder of one data set, but these "
                                         f"settings train on .*; with --data-dir, choose settings whose "
                                         f"trials all train on one of them, or leave out --data-dir"):
        reproduce(name, tmp_path / "out", quick=True, data_dir=str(tmp_path), overrides=settings,
                  executor="serial", progress=False)
    with pytest.raises(ValueError, match=re.escape(sources)):
        reproduce(name, tmp_path / "out", quick=True, data_dir=str(tmp_path), overrides=settings,
                  executor="serial", progress=False)
    assert not (tmp_path / "out").exists()


def test_every_experiment_gives_its_trials_to_the_up_front_check():
    """The check of every trial before the folder is written is not optional: evtimova-table1 and -fig9 had
    no ``sweeps``, so their bad settings failed the trials after reproduce.yaml was written."""
    from sparsecoder.reproduce import _module
    from sparsecoder.reproduce.base import parse_settings

    for name in EXPERIMENTS:
        module = _module(name)
        for profile in (module.QUICK, module.FULL):
            sweeps = module.sweeps(parse_settings(profile, None, name))
            assert sweeps and all({"group", "presets", "seeds"} <= set(sweep) for sweep in sweeps), name


def test_finished_yields_done_trials_and_lists_the_others_with_their_grid_lambda(tmp_path):
    trials = [TrialResult("sdl-mnist", {"lam": 0.001}, 0, tmp_path, "done", {"psnr": 1.0}),
              TrialResult("sdl-mnist", {"lam": 0.005}, 1, tmp_path, "diverged", {}),
              TrialResult("svae", {}, 2, tmp_path, "failed", {})]
    missing = []
    assert [t.seed for t in finished(trials, missing)] == [0]
    assert missing == ["sdl-mnist λ=0.005 seed 1: diverged", "svae seed 2: failed"]
