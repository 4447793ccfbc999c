"""Sweep specs (no Ray): parsing, validation, trial folders, growth rules of an existing sweep."""

import os
from pathlib import Path

import pytest
import yaml

from sparsecoder.config import ConfigError, load_preset
from sparsecoder.sweep.spec import build_spec, check_compatible, parse_grid, parse_seeds, record_yaml

TINY = {"limit": 300, "epochs": 1, "n_components": 16}


def test_parse_seeds_lists_and_ranges():
    assert parse_seeds("0,1,2") == [0, 1, 2]
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("7, 0-1") == [7, 0, 1]
    assert parse_seeds("5-5") == [5]


@pytest.mark.parametrize("text, words", [("3-1", "goes down"), ("a", "not a seed"), ("1-2-3", "not a seed"),
                                         ("0,0", "twice"), ("", "not a seed"), ("-1", "not a seed")])
def test_parse_seeds_rejects(text, words):
    with pytest.raises(ConfigError, match=words):
        parse_seeds(text)


def test_parse_grid_values_are_yaml_scalars():
    grid = parse_grid(["lam=0.001,1e-2", "decoder=linear,mlp"])
    assert grid == {"lam": [0.001, "1e-2"], "decoder": ["linear", "mlp"]}
    assert parse_grid(["lam=grid"]) == {"lam": "grid"}
    # read as --set reads its values (YAML 1.2 numbers): 010 is ten, not octal 8; 1:30 is text, not 90
    assert parse_grid(["seed=010,011", "data_dir=1:30"]) == {"seed": [10, 11], "data_dir": ["1:30"]}


def test_parse_grid_names_the_key_of_an_integer_too_long_to_read():
    with pytest.raises(ConfigError, match=r"--grid epochs: .*digits"):
        parse_grid(["epochs=1," + "1" * 5000])


@pytest.mark.parametrize("items, words", [
    (["lam"], "KEY=V1,V2"), (["lam="], "empty grid value list"),
    (["lam=0.1,,0.2"], "an empty value between commas"),
    (["lam=0.1,", "0.2"], "an empty value between commas; write the values without spaces"),
    (["=0.1"], "empty key"), (["lam=0.1", "lam=0.2"], "given twice"),
    (["lam=[1, 2]"], "not valid YAML|not a single"),
    (["lam=0.1,0.1"], "repeated"), (["gamma=grid"], "only lam"),
])
def test_parse_grid_rejects(items, words):
    with pytest.raises(ConfigError, match=words):
        parse_grid(items)


def test_lam_grid_is_each_presets_own():
    spec = build_spec(["vdl-mnist", "sdl-mnist"], ["lam=grid"], "0-1", TINY)
    for name in ("vdl-mnist", "sdl-mnist"):
        preset_yaml = yaml.safe_load((Path(load_preset.__code__.co_filename).parent / "presets" /
                                      f"{name}.yaml").read_text())
        assert spec.resolved_grid[name]["lam"] == [float(v) for v in preset_yaml["config"]["lam_grid"]]
    n_points = len(spec.resolved_grid["vdl-mnist"]["lam"]) + len(spec.resolved_grid["sdl-mnist"]["lam"])
    assert len(spec.trials()) == 2 * n_points


def test_trials_product_folders_and_overrides():
    spec = build_spec(["vdl-mnist"], ["lam=0.001,1e-2", "gamma=1,5"], "0,3", TINY, cpus_per_trial=2)
    trials = spec.trials()
    assert len(trials) == 2 * 2 * 2
    folders = {str(t.folder) for t in trials}
    assert "vdl-mnist/lam=0.001,gamma=1.0/seed=0" in folders
    assert "vdl-mnist/lam=0.01,gamma=5.0/seed=3" in folders  # "1e-2" coerced by the config to 0.01
    last = trials[-1]
    assert spec.trial_overrides(last) == {**TINY, "lam": 0.01, "gamma": 5.0, "seed": 3, "num_threads": 2,
                                          "device": "cpu"}
    assert "device" not in build_spec(["vdl-mnist"], None, "0", TINY, gpus_per_trial=1).trial_overrides(last)
    assert [str(t.folder) for t in build_spec(["vdl-mnist"], None, "0", TINY).trials()] == [
        "vdl-mnist/default/seed=0"]


@pytest.mark.parametrize("presets, grid, overrides, words", [
    (["no-such-preset"], [], {}, "unknown preset 'no-such-preset'"),
    (["vdl-mnist"], ["lambda=0.1"], {}, "unknown grid key 'lambda'"),
    (["vdl-mnist"], ["lam=abc"], {}, "expected a number"),
    (["vdl-mnist"], ["n_components=ten"], {}, "expected an integer"),
    (["vae-laplace-mnist"], ["lam=grid"], {}, "unknown grid key 'lam'"),
    (["vdl-mnist"], ["seed=1,2"], {}, "use --seeds"),
    (["vdl-mnist"], [], {"num_threads": 4}, "cpus-per-trial"),
    (["vdl-mnist"], [], {"no_such_key": 1}, "unknown config key"),
    (["vdl-mnist"], ["lam=0.1"], {"lam": 0.2}, "both in --grid and --set"),
    (["vdl-mnist"], ["lam=0.01,1e-2"], {}, "same number"),
    ([], [], {}, "no preset"),
])
def test_build_spec_rejects(presets, grid, overrides, words):
    with pytest.raises(ConfigError, match=words):
        build_spec(presets, grid, "0", overrides)


def test_growth_only_by_grid_values_and_seeds(tmp_path):
    old = yaml.safe_load(record_yaml(build_spec(["vdl-mnist"], ["lam=0.001,0.01"], "0-1", TINY).to_dict()))
    check_compatible(old, build_spec(["vdl-mnist"], ["lam=0.001,0.01"], "0-1", TINY), tmp_path)
    check_compatible(old, build_spec(["vdl-mnist"], ["lam=0.02,0.001,0.01"], "0-2", TINY), tmp_path)
    refused = [
        (build_spec(["vdl-mnist"], ["lam=0.001"], "0-1", TINY), "drops \\[0.01\\]"),
        (build_spec(["vdl-mnist"], ["lam=0.001,0.01"], "1", TINY), "drops \\[0\\]"),
        (build_spec(["vdl-mnist"], ["lam=0.001,0.01"], "0-1", {**TINY, "epochs": 2}), "--set"),
        (build_spec(["sdl-mnist"], ["lam=0.001,0.01"], "0-1", TINY), "presets"),
        (build_spec(["vdl-mnist"], ["gamma=1"], "0-1", TINY), "grid keys"),
        (build_spec(["vdl-mnist"], ["lam=0.001,0.01"], "0-1", TINY, cpus_per_trial=2), "cpus_per_trial"),
    ]
    for spec, words in refused:
        with pytest.raises(ValueError, match=f"holds a different sweep.*{words}"):
            check_compatible(old, spec, tmp_path)


def test_a_sweep_of_more_than_max_trials_is_refused_before_any_config_is_built():
    """`--seeds 0-1000000000` used to hang building a billion configs; grids multiply, lam=grid counts
    each preset's own grid."""
    from sparsecoder.sweep.spec import MAX_TRIALS

    with pytest.raises(ConfigError, match=r"20,001 seeds.*at most 10,000 trials.*own --out"):
        build_spec(["sdl-mnist"], seeds="0-20000")
    values = ",".join(str(v / 1000) for v in range(1, 101))
    with pytest.raises(ConfigError, match=r"the sweep has 20,000 trials"):
        build_spec(["sdl-mnist", "vdl-mnist"], grid=[f"lam={values}"], seeds="0-99")
    n_grid = len(load_preset("vdl-mnist")[1].lam_grid)
    seeds_over = MAX_TRIALS // n_grid + 1
    with pytest.raises(ConfigError, match=f"the sweep has {n_grid * seeds_over:,} trials"):
        build_spec(["vdl-mnist"], grid=["lam=grid"], seeds=f"0-{seeds_over - 1}")


def test_a_grid_value_holding_a_slash_stays_one_folder_inside_the_sweep():
    """data_dir=../x used to name the folder DIR/<preset>/data_dir=../x: the trial ran outside its grid
    point's folder (and, with more ../, outside the sweep folder)."""
    spec = build_spec(["sdl-mnist"], ["data_dir=~/../x,/data/a%b"], "0", TINY)
    folders = [t.folder for t in spec.trials()]
    assert [str(f) for f in folders] == ["sdl-mnist/data_dir=~%2F..%2Fx/seed=0",
                                         "sdl-mnist/data_dir=%2Fdata%2Fa%25b/seed=0"]
    assert all(len(f.parts) == 3 for f in folders)
    assert [dict(t.point)["data_dir"] for t in spec.trials()] == ["~/../x", "/data/a%b"]  # as given
    # a relative path is the absolute path it names from here (test_sweep_paths.py), one folder as well
    [trial] = build_spec(["sdl-mnist"], ["data_dir=../../x"], "0", TINY).trials()
    assert dict(trial.point)["data_dir"] == os.path.abspath("../../x") and len(trial.folder.parts) == 3


def test_a_grid_point_folder_name_over_255_bytes_is_refused_before_anything_runs():
    """The trial used to stop the sweep with `[Errno 36] File name too long` after sweep.yaml was written."""
    with pytest.raises(ConfigError, match=r"folder name of grid point .* 2\d\d bytes, over the 255"):
        build_spec(["sdl-mnist"], ["data_dir=" + "a" * 250], "0", TINY)


def test_a_swept_device_is_the_trials_device():
    """--grid device=cpu,cuda trained both trials on the CPU: the sweep's device=cpu (no GPU reserved)
    replaced the grid value, as it does only for a device that nobody chose."""
    spec = build_spec(["sdl-mnist"], ["device=cpu,cuda"], "0", TINY)
    assert [spec.trial_overrides(t)["device"] for t in spec.trials()] == ["cpu", "cuda"]


@pytest.mark.parametrize("grid, words", [
    ({"lam": 0.1}, "0.1 is not a list of values"),
    ({"lam": "0.1,0.2"}, "'0.1,0.2' is not a list of values"),
    ({"gamma": "grid"}, "only lam"),
    ({"lam": []}, "empty grid value list"),
    ({"lam": [0.1, 0.1]}, "repeated value"),
    ({"lam": [[0.1]]}, "not a single number"),
])
def test_a_grid_mapping_gets_the_checks_of_the_command_line(grid, words):
    """sweep(grid={"lam": 0.1}) was a TypeError, {"lam": "0.1,0.2"} swept the characters ('lam=.'
    refused), {"gamma": "grid"} swept gamma over lam_grid."""
    with pytest.raises(ConfigError, match=words):
        build_spec(["vdl-mnist"], grid, "0", TINY)
    assert build_spec(["vdl-mnist"], {"lam": (0.1, 0.2)}, "0", TINY).resolved_grid["vdl-mnist"] == {
        "lam": [0.1, 0.2]}


@pytest.mark.parametrize("resources, words", [
    ({"cpus_per_trial": float("inf")}, "--cpus-per-trial must be a finite number > 0, got inf"),
    ({"cpus_per_trial": 0}, "--cpus-per-trial must be a finite number > 0"),
    ({"gpus_per_trial": float("nan")}, "--gpus-per-trial must be a finite number >= 0, got nan"),
    ({"gpus_per_trial": -1}, "--gpus-per-trial must be a finite number >= 0"),
])
def test_trial_resources_must_be_finite(resources, words):
    """--cpus-per-trial inf was an OverflowError (int(inf) threads); --gpus-per-trial nan was accepted."""
    with pytest.raises(ConfigError, match=words):
        build_spec(["sdl-mnist"], None, "0", TINY, **resources)


def test_a_preset_file_given_by_path_gets_a_trial_folder_inside_the_sweep(tmp_path):
    """sweep /abs/my.yaml put the trial at /abs/my.yaml/default/seed=0 (a crash: my.yaml is a file) and
    ../my.yaml led out of the sweep folder; two files of one name are refused (one folder)."""
    source = Path(load_preset.__code__.co_filename).parent / "presets" / "sdl-mnist.yaml"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder in ("a", "b"):
        (tmp_path / folder / "my.yaml").write_text(source.read_text())
    spec = build_spec([str(tmp_path / "a" / "my.yaml")], None, "0", TINY)
    assert [str(t.folder) for t in spec.trials()] == ["my.yaml/default/seed=0"]
    with pytest.raises(ConfigError, match="would share the trial folder my.yaml"):
        build_spec([str(tmp_path / "a" / "my.yaml"), str(tmp_path / "b" / "my.yaml")], None, "0", TINY)


def test_a_set_key_without_effect_in_some_trials_is_left_out_there_and_refused_if_in_none():
    # before: --set hidden_size=64 on a linear preset, or --grid var_threshold=... without the variance
    # guard, ran trials that differed in nothing but their folder names
    spec = build_spec(["sdl-mnist", "sdl-nl-mnist"], None, "0", {**TINY, "hidden_size": 64})
    assert [("hidden_size" in spec.trial_overrides(t)) for t in spec.trials()] == [False, True]
    with pytest.raises(ConfigError, match="--set hidden_size: no trial of this sweep uses it .*decoder=lin"):
        build_spec(["sdl-nl-mnist"], ["decoder=linear"], "0", {**TINY, "hidden_size": 64})
    with pytest.raises(ConfigError, match="--grid var_threshold=0.1 .* no effect with collapse_guard=unit"):
        build_spec(["sdl-mnist"], ["var_threshold=0.1,0.2"], "0", TINY)
    # a grid key that counts only under another grid key's value: judged where it counts, then per trial
    spec = build_spec(["sdl-mnist"], ["decoder=mlp", "hidden_size=16,32"], "0", TINY)
    assert [spec.trial_overrides(t)["hidden_size"] for t in spec.trials()] == [16, 32]
    with pytest.raises(ConfigError, match=r"trial .*decoder=linear.*hidden_size.* no effect with "
                                          r"decoder=lin"):
        build_spec(["sdl-mnist"], ["decoder=linear,mlp", "hidden_size=16,32"], "0", TINY)
    with pytest.raises(ConfigError, match="--grid hidden_size=16 .* no effect with decoder=linear"):
        build_spec(["sdl-mnist"], ["decoder=linear", "hidden_size=16"], "0", TINY)


def test_lam_grid_trials_take_the_presets_settings_for_their_lam():
    """``--grid lam=grid`` on vdl-nl-patches trains each λ with its Table-3 γ (SPEC §2.7: 20 up to 5e-3,
    40 at 1e-2 and 2e-2) — the preset's ``by_lam`` — unless γ is set or swept by the user."""
    spec = build_spec(["vdl-nl-patches"], ["lam=grid"], "0", {})
    gammas = {}
    for trial in spec.trials():
        config = load_preset(trial.preset, spec.trial_overrides(trial))[1]
        gammas[config.lam] = config.gamma
    assert gammas == {0.0: 20.0, 0.001: 20.0, 0.002: 20.0, 0.003: 20.0, 0.005: 20.0, 0.01: 40.0, 0.02: 40.0}
    spec = build_spec(["vdl-nl-patches"], ["lam=0.02"], "0", {"gamma": 5.0})
    (trial,) = spec.trials()
    assert load_preset(trial.preset, spec.trial_overrides(trial))[1].gamma == 5.0
