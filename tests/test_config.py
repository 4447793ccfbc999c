"""Typed configs: coercion, unknown keys, overrides, presets, save/load round trips."""

from __future__ import annotations

import dataclasses
import os
from typing import Literal

import pytest
import yaml

from sparsecoder.config import (
    CommonConfig,
    ConfigError,
    check,
    config_classes,
    from_dict,
    list_presets,
    load_config,
    load_preset,
    parse_overrides,
    read_config_document,
    register_config,
    save_config,
    to_dict,
)


@register_config("test_config_family")
@dataclasses.dataclass(frozen=True)
class ExampleConfig(CommonConfig):
    rate: float = 0.1
    width: int = 3
    step: float | Literal["auto"] = 0.5
    grid: tuple[float, ...] = (0.0, 1.0)
    mode: Literal["a", "b"] = "a"
    flag: bool = False
    note: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.rate > 0, "rate", f"must be > 0, got {self.rate}")


def test_from_dict_coerces_values_to_the_annotated_types():
    config = from_dict(ExampleConfig, {"rate": 1, "width": 4.0, "grid": [1, 2], "step": "auto",
                                       "limit": None, "note": "x"})
    assert config.rate == 1.0 and isinstance(config.rate, float)
    assert config.width == 4 and isinstance(config.width, int)
    assert config.grid == (1.0, 2.0) and config.step == "auto" and config.limit is None


def test_exponent_strings_from_yaml_are_numbers():
    # PyYAML reads `1e-3` (no dot) as a string; `--set rate=1e-3` must still mean 0.001.
    overrides = parse_overrides(["rate=1e-3", "step=5e-1", "grid=[1e-3, 2e-2]", "epochs=1e2"])
    assert overrides["rate"] == "1e-3"
    config = from_dict(ExampleConfig, overrides)
    assert config.rate == 0.001 and config.step == 0.5 and config.grid == (0.001, 0.02)
    assert config.epochs == 100


@pytest.mark.parametrize("key, value, message", [
    ("width", 2.5, "expected an integer"),
    ("width", float("inf"), "expected an integer"),
    ("width", float("nan"), "expected an integer"),
    ("width", True, "expected an integer"),
    ("rate", "fast", "expected a number"),
    ("rate", float("nan"), "expected a number"),
    ("flag", "yes please", "expected true/false"),
    ("mode", "c", r"choose one of \['a', 'b'\]"),
    ("step", "sometimes", "choose one of"),
    ("grid", 0.5, "expected a list"),
    ("note", 3, "expected a string"),
    ("rate", -1.0, "config key 'rate': must be > 0"),
    ("epochs", 0, "config key 'epochs': must be >= 1"),
    ("limit", 1, "config key 'limit'"),
])
def test_bad_values_name_the_key(key, value, message):
    with pytest.raises(ConfigError, match=message) as err:
        from_dict(ExampleConfig, {key: value})
    assert f"'{key}'" in str(err.value)


def test_unknown_keys_list_the_valid_ones():
    expected = r"unknown config key\(s\) \[.lamda.\] for ExampleConfig; valid keys: batch_size, .*width"
    with pytest.raises(ConfigError, match=expected):
        from_dict(ExampleConfig, {"lamda": 0.1})


@pytest.mark.parametrize("key, hint", [
    ("Epochs", "'Epochs': did you mean 'epochs'?"),
    ("num_thread", "'num_thread': did you mean 'num_threads'?"),
    ("data_options.normalize", "'data_options.normalize': keys do not nest; give data_options a mapping, "
                               "e.g. 'data_options={normalize: VALUE}'"),
])
def test_an_unknown_key_names_the_key_it_was_probably_meant_as(key, hint):
    with pytest.raises(ConfigError, match="valid keys: ") as err:
        from_dict(ExampleConfig, parse_overrides([f"{key}=1"]))
    assert hint in str(err.value)


def test_parse_overrides():
    assert parse_overrides(["a=1", "b=x", "c=[1, 2]", "d=null", "e=", "f=a=b"]) == {
        "a": 1, "b": "x", "c": [1, 2], "d": None, "e": "", "f": "a=b"}
    assert parse_overrides(None) == {}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["lam"])
    with pytest.raises(ConfigError, match="empty key"):
        parse_overrides(["=3"])
    with pytest.raises(ConfigError, match="cannot parse"):
        parse_overrides(["a=[1, 2"])


def test_save_and_load_round_trip(tmp_path):
    config = ExampleConfig(rate=0.25, grid=(0.1, 0.2), data="patches", data_options={"patch_size": 8},
                           step="auto")
    save_config(tmp_path / "config.yaml", "test_config_family", config, extra={"preset": "demo"})
    document = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert list(document) == ["model", "preset", "config"]
    assert document["config"]["grid"] == [0.1, 0.2]
    model, loaded = load_config(tmp_path / "config.yaml")
    assert model == "test_config_family" and loaded == config
    assert to_dict(loaded) == to_dict(config)


def test_load_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="no config file"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("just a string\n")
    with pytest.raises(ConfigError, match="needs 'model' and 'config'"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "alien.yaml").write_text("model: no_such_family\nconfig: {}\n")
    with pytest.raises(ConfigError, match="unknown model 'no_such_family'"):
        load_config(tmp_path / "alien.yaml")
    (tmp_path / "list.yaml").write_text("model: test_config_family\nconfig: [1, 2]\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(tmp_path / "list.yaml")


def test_presets_all_build_and_overrides_apply():
    presets = list_presets()
    assert presets, "no presets installed"
    classes = config_classes()
    for preset in presets:
        assert preset.model in classes, preset.name
        assert preset.description, f"{preset.name} has no description"
        config = preset.build()
        assert isinstance(config, CommonConfig)
    name = presets[0].name
    _, config = load_preset(name, {"epochs": 2, "seed": 7})
    assert config.epochs == 2 and config.seed == 7
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        load_preset("nope")
    with pytest.raises(ConfigError, match="valid keys"):
        load_preset(name, {"not_a_key": 1})


def test_a_saved_config_file_is_a_preset(tmp_path):
    config = ExampleConfig(width=9)
    save_config(tmp_path / "run.yaml", "test_config_family", config, extra={"paper": "P", "description": "D"})
    preset, loaded = load_preset(str(tmp_path / "run.yaml"), {"rate": 0.5})
    assert preset.name == "run" and preset.paper == "P" and loaded == dataclasses.replace(config, rate=0.5)


# ----------------------------------------------------------------------------------------------
# seeds: one check (check_seeds) behind `sweep --seeds` (parse_seeds) and `reproduce --set seeds=`
# (settings.seed_list)
# ----------------------------------------------------------------------------------------------
SEED_REFUSALS = [  # (list given, fragment of the problem named)
    ([], "no seed given"),
    ([0, True], r"True \(a bool\) is not an integer"),
    ([1.5], r"1.5 \(float\) is not an integer"),
    ([1.0], r"1.0 \(float\) is not an integer"),
    (["1"], r"'1' \(str\) is not an integer"),
    ([None], r"None \(NoneType\) is not an integer"),
    ([0, -1], "seed -1 is negative"),
    ([2**63], "seed 9223372036854775808 is above 2\\*\\*63 - 1"),
    ([2**64 + 7], "seed 18446744073709551623 is above 2\\*\\*63 - 1"),
    ([3, 1, 3], "seed 3 is listed twice"),
    (list(range(10_001)), "10,001 seeds, more than the 10,000 allowed"),
]


def test_check_seeds_accepts_distinct_integers_in_range_and_returns_python_ints():
    import numpy as np

    from sparsecoder.config import MAX_INT, MAX_SEEDS, check_seeds

    assert check_seeds([3, 0, MAX_INT], "w", "f") == [3, 0, MAX_INT]
    assert check_seeds((1, 2), "w", "f") == [1, 2]
    seeds = check_seeds([np.int64(4), np.uint8(5)], "w", "f")
    assert seeds == [4, 5] and all(type(s) is int for s in seeds)  # YAML-safe in sweep.yaml
    assert len(check_seeds(list(range(MAX_SEEDS)), "w", "f")) == MAX_SEEDS


@pytest.mark.parametrize("seeds, problem", SEED_REFUSALS + [("0,1", "'0,1' is not a list of seeds"),
                                                            (3, "3 is not a list of seeds")])
def test_check_seeds_names_the_problem_and_the_fix(seeds, problem):
    from sparsecoder.config import check_seeds

    with pytest.raises(ConfigError, match=f"^WHAT: {problem}.*; FIX$"):
        check_seeds(seeds, "WHAT", "FIX")


@pytest.mark.parametrize("seeds, problem", SEED_REFUSALS)
def test_sweep_and_reproduce_refuse_the_same_seed_lists(seeds, problem):
    """The twins disagreed: parse_seeds let [2**64] and a list of 20,000 seeds through (refused later, by
    the trial config or the trial count, in other words) and seed_list any number of seeds; now both call
    check_seeds."""
    from sparsecoder.reproduce.settings import seed_list
    from sparsecoder.sweep.spec import parse_seeds

    with pytest.raises(ConfigError, match=f"^seeds .*: {problem}.*own --out"):
        parse_seeds(seeds)
    with pytest.raises(ConfigError, match=f"^--set seeds=.*: {problem}.*; expected a non-empty list"):
        seed_list({"seeds": seeds})


@pytest.mark.parametrize("text, problem", [
    ("²", "'²' is not a seed"),  # str.isdigit() is True, int() failed with a bare ValueError
    ("٣", "'٣' is not a seed"),  # non-ASCII digits were read as 3
    ("0-" + "9" * 5000, r"seed 9{20}… is above 2\*\*63 - 1"),  # int() of > 4300 digits is a bare ValueError
    ("99999999999999999999", "seed 99999999999999999999 is above"),  # passed, the trial config refused it
    ("9223372036854775807-9223372036854775808", "seed 9223372036854775808 is above"),
    ("0-10000", "10,001 seeds, more than the 10,000 allowed"),
    ("0-4,2", "seed 2 is listed twice"),
    ("1.5", "'1.5' is not a seed"),
])
def test_parse_seeds_string_syntax_refusals(text, problem):
    from sparsecoder.sweep.spec import parse_seeds

    with pytest.raises(ConfigError, match=f"^--seeds .*: {problem}.*own --out\\)$"):
        parse_seeds(text)


def test_parse_seeds_and_seed_list_keep_their_own_shorthand():
    import numpy as np

    from sparsecoder.reproduce.settings import seed_list
    from sparsecoder.sweep.spec import parse_seeds

    assert parse_seeds("0-2, 9") == [0, 1, 2, 9] and parse_seeds(None) == [0] and parse_seeds(4) == [4]
    assert parse_seeds([np.int64(2)]) == [2] and parse_seeds("9223372036854775807") == [2**63 - 1]
    settings = {"seeds": np.int64(7)}
    assert seed_list(settings) == [7] and settings["seeds"] == [7]
    with pytest.raises(ConfigError, match=r"^--set seeds='0-4': '0-4' is not a list of seeds; expected"):
        seed_list({"seeds": "0-4"})  # the range syntax is the sweep's; reproduce takes YAML lists


# ----------------------------------------------------------------------------------------------
# the YAML reader and the format of preset / config files
# ----------------------------------------------------------------------------------------------
def test_every_top_level_key_a_writer_produces_reads_back_and_no_other(tmp_path):
    """save_config's `extra=` keys (trainer: preset, paper, description; estimators: estimator) are the
    only top-level keys besides model and config; anything else, e.g. `epochs: 3` one level too high,
    was ignored without a word and is now refused naming it and the allowed ones."""
    config = ExampleConfig()
    extra = {"preset": "p", "paper": "P", "description": "D", "estimator": "SAE"}
    save_config(tmp_path / "config.yaml", "test_config_family", config, extra=extra)
    assert read_config_document(tmp_path / "config.yaml")["estimator"] == "SAE"
    assert load_preset(str(tmp_path / "config.yaml"))[1] == config
    with pytest.raises(ValueError, match="extra keys"):
        save_config(tmp_path / "other.yaml", "test_config_family", config, extra={"epochs": 3})
    (tmp_path / "mine.yaml").write_text("model: test_config_family\nepochs: 3\nconfig:\n  epochs: 1\n")
    for read in (lambda p: load_preset(str(p)), load_config):
        with pytest.raises(ConfigError, match=r"unknown top-level key\(s\) \['epochs'\]; the top level may "
                                              r"only hold model, preset, paper, description, estimator, "
                                              r"config, by_lam"):
            read(tmp_path / "mine.yaml")
    (tmp_path / "paper.yaml").write_text("model: test_config_family\npaper: [1, 2]\nconfig: {}\n")
    with pytest.raises(ConfigError, match="'paper' must be text"):
        load_preset(str(tmp_path / "paper.yaml"))


def test_a_missing_preset_file_is_named_as_missing(tmp_path):
    """`train /path/mine.yaml` of a file that does not exist said "unknown preset '/path/mine.yaml'" and
    listed every preset; an argument with a path separator or a YAML suffix is a file."""
    for name in (str(tmp_path / "mine.yaml"), "mine.yml", "configs/mine"):
        with pytest.raises(ConfigError, match=f"preset file {name} does not exist") as err:
            load_preset(name)
        assert "sdl-mnist" not in str(err.value)
    with pytest.raises(ConfigError, match="is a folder, not a YAML file"):
        load_preset(str(tmp_path))
    with pytest.raises(ConfigError, match="unknown preset 'nope'; run `sparsecoder presets`.*sdl-mnist"):
        load_preset("nope")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_preset_path_that_is_a_pipe_or_a_broken_link_is_named_as_such(tmp_path):
    # both were "does not exist", though `ls` shows them
    os.mkfifo(tmp_path / "pipe.yaml")
    (tmp_path / "link.yaml").symlink_to(tmp_path / "gone.yaml")
    for name, problem in (("pipe.yaml", "is not a regular file"), ("link.yaml", "is a broken link")):
        with pytest.raises(ConfigError, match=f"preset file {tmp_path / name} {problem}"):
            load_preset(str(tmp_path / name))


def test_a_repeated_key_is_refused_in_set_and_in_yaml(tmp_path):
    with pytest.raises(ConfigError, match=r"--set key 'epochs' is given twice \('epochs=1' and 'epochs=2'\)"):
        parse_overrides(["epochs=1", "epochs=2"])
    with pytest.raises(ConfigError, match="found the key 'a' twice"):
        parse_overrides(["data_options={a: 1, a: 2}"])
    (tmp_path / "twice.yaml").write_text("model: test_config_family\nconfig:\n  lam: 1\n  rate: 0.1\n"
                                         "  rate: 0.2\n")
    with pytest.raises(ConfigError, match=r"twice.yaml is not valid YAML: .*found the key 'rate' twice"):
        load_preset(str(tmp_path / "twice.yaml"))
    # a merge key (<<: *base) may be overridden: that is what it is for
    from sparsecoder.config import load_yaml_text

    assert load_yaml_text("base: &b {x: 1, y: 2}\nd: {<<: *b, x: 3}\n", "m")["d"] == {"x": 3, "y": 2}


def _nested_aliases(levels: int) -> str:
    lines = ["  - &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"  - &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines)


def test_alias_bombs_and_recursive_values_are_refused_before_any_walk(tmp_path):
    """safe_load shares aliased values, so a few lines name 9**10 values; repr'ing one in an error message
    took 60 s and ended in MemoryError. Aliases may add at most 100,000 values; a self-containing value
    is refused too."""
    import time

    preset = tmp_path / "bomb.yaml"
    preset.write_text(f"model: test_config_family\nconfig:\n  lam:\n{_nested_aliases(10)}\n")
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"bomb.yaml: its aliases \(\*name\) expand to [\d,]+ more values, "
                                          r"over the 100,000 allowed"):
        load_preset(str(preset))
    assert time.perf_counter() - start < 5
    with pytest.raises(ConfigError, match="cannot parse value .*expand to"):
        parse_overrides(["lam=[" + "&a0 [1, 1, 1, 1, 1, 1, 1, 1, 1], " + ", ".join(
            f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 8)) + "]"])
    preset.write_text("model: test_config_family\nconfig:\n  data_options: &o {x: *o}\n")
    with pytest.raises(ConfigError, match="contains itself"):
        load_preset(str(preset))
    preset.write_text("model: test_config_family\nconfig:\n  lam: " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_preset(str(preset))


def test_config_error_messages_quote_values_briefly(tmp_path):
    """Each value a message quotes is cut to 200 characters: a 1 MB device string, a list of 10**6 numbers
    (the aliases of the audit's file: 9**6 values, a 2.6 MB message) and 10**4 unknown keys."""
    from sparsecoder.config import shown

    huge = [[0.5] * 1000] * 1000
    for data in ({"rate": huge}, {"width": huge}, {"step": huge}, {"grid": [huge]},
                 {"device": "x" * 10**6}, {f"key{i}": 1 for i in range(10**4)}):
        with pytest.raises(ConfigError) as err:
            from_dict(ExampleConfig, data)
        assert len(str(err.value)) < 1500, (list(data), len(str(err.value)))
    assert len(shown("y" * 10**6)) <= 200 and len(shown(huge)) <= 200 and shown(3) == "3"
    assert len(str(ConfigError("z" * 10**6))) < 3100  # any other message is cut too, start and end kept
    preset = tmp_path / "aliases.yaml"
    preset.write_text(f"model: test_config_family\nconfig:\n  rate:\n{_nested_aliases(6)}\n")
    with pytest.raises(ConfigError) as err:  # refused by the alias guard or quoted briefly: short either way
        load_preset(str(preset))
    assert len(str(err.value)) < 1500


def test_yaml_files_over_10_mb_are_refused_naming_the_size(tmp_path):
    """A 200 MB comment-only YAML parsed for over 60 s; the size is checked before it is read."""
    big = tmp_path / "big.yaml"
    with big.open("wb") as stream:
        stream.truncate(11 * 2**20)
    with pytest.raises(ConfigError, match=r"big.yaml is 11,534,336 bytes, more than the 10,485,760"):
        load_preset(str(big))
    with pytest.raises(ConfigError, match="is 11,534,336 bytes"):
        load_config(big)


def test_data_options_may_not_hold_the_loaders_own_keywords():
    for key in ("seed", "limit", "data_dir", "test_only"):
        with pytest.raises(ConfigError, match=f"data_options.{key}'.*has no such option"):
            from_dict(ExampleConfig, {"data": "mnist", "data_options": {key: 1}})


def test_a_config_built_in_python_is_checked_and_converted_like_a_preset_value():
    # Built directly (the Python API: train(VAEConfig(...))), a value of the wrong type was kept as given:
    # "false" switched a bool on, a float size reached the model, a Literal accepted any string.
    from pathlib import Path

    import numpy as np

    for kwargs, key in (({"flag": "false"}, "flag"), ({"width": 2.5}, "width"), ({"mode": "c"}, "mode"),
                        ({"epochs": True}, "epochs"), ({"rate": float("inf")}, "rate")):
        with pytest.raises(ConfigError, match=f"config key '{key}'"):
            ExampleConfig(**kwargs)
    config = ExampleConfig(width=np.int64(4), rate=np.float32(0.5), grid=[1, 2], data_dir=Path("/data"))
    assert config == from_dict(ExampleConfig, {"width": 4, "rate": 0.5, "grid": [1, 2], "data_dir": "/data"})
    assert type(config.width) is int and type(config.rate) is float and config.grid == (1.0, 2.0)
    assert dataclasses.replace(config, width=5.0).width == 5


def test_overrides_that_are_neither_a_mapping_nor_a_list_are_named():
    # train("sdl-mnist", out, overrides="lam=0.1") failed with "dictionary update sequence element #0 has
    # length 1; 2 is required"
    from sparsecoder.train.trainer import resolve_config

    with pytest.raises(ConfigError, match=r"overrides must be a dict .*\(\['lam=0.1'\]\), got str 'lam=0.1'"):
        resolve_config("sdl-mnist", "lam=0.1")
    with pytest.raises(ConfigError, match="overrides must be a dict"):
        resolve_config("sdl-mnist", 3)
    assert resolve_config("sdl-mnist", ("lam=0.1",))[0].lam == 0.1


# ----------------------------------------------------------------------------------------------
# settings without effect under the others (USED_WHEN, layered_config)
# ----------------------------------------------------------------------------------------------
def test_a_config_object_or_yaml_file_with_a_key_without_effect_warns_and_an_override_is_refused(tmp_path):
    from sparsecoder.models.vae import VAEConfig
    from sparsecoder.train.trainer import resolve_config

    # a config object's values may come from dataclasses.replace of a preset's config: warned of, kept
    with pytest.warns(UserWarning, match="'likelihood_sigma' .*in the config object.* no effect with "
                                         "likelihood=mse"):
        config, _ = resolve_config(VAEConfig(likelihood="mse", likelihood_sigma=0.5))
    assert config.likelihood_sigma == 0.5
    with pytest.raises(ConfigError, match="'likelihood_sigma' .* no effect with likelihood=mse"):
        resolve_config(VAEConfig(likelihood="mse"), ["likelihood_sigma=0.5"])
    # a file may be a copy of a preset (sdl-patches lists the -nl hidden_size 2048): warned of, not refused
    path = tmp_path / "my.yaml"
    path.write_text("model: sparse_autoencoder\nconfig:\n  collapse_guard: unit_norm\n  beta: 0\n"
                    "  hidden_size: 2048\n")
    with pytest.warns(UserWarning, match=f"'hidden_size' \\(set to 2048 in {path}\\) has no effect"):
        assert load_preset(str(path))[1].hidden_size == 2048
    with pytest.raises(ConfigError, match="'var_threshold' .* no effect with collapse_guard=unit_norm"):
        load_preset(str(path), {"var_threshold": 0.2})


def test_a_presets_data_options_do_not_block_another_data_source(tmp_path):
    # audit 2026-11-29: vae-gauss-mnist --set data=synthetic was refused as "data_options.normalize: data
    # source 'synthetic' has no such option", the preset's own MNIST option (README: a preset's keys that
    # your setting makes unused never block it)
    _, config = load_preset("vae-gauss-mnist", {"data": "synthetic", "likelihood": "gaussian"})
    assert config.data == "synthetic" and config.data_options == {}
    _, config = load_preset("vae-gauss-mnist", {"data": "mnist"})  # same source: its options stay
    assert config.data_options == {"normalize": "unit"}
    # an option the user gives is still checked against the source
    with pytest.raises(ConfigError, match="'data_options.normalize': data source 'synthetic' has no such"):
        load_preset("vae-gauss-mnist", {"data": "synthetic", "data_options": {"normalize": "unit"}})
    # from a file given by path (a copy of a preset, a run's config.yaml): dropped with a warning
    path = tmp_path / "copy.yaml"
    path.write_text("model: vae\nconfig:\n  data: mnist\n  data_options: {normalize: unit}\n")
    with pytest.warns(UserWarning, match=f"data_options .*normalize.* in {path} are not options of data "
                                         "source 'synthetic'"):
        assert load_preset(str(path), {"data": "synthetic"})[1].data_options == {}


def test_data_options_given_are_merged_into_the_presets_option_by_option():
    # before: --set 'data_options={split_seed: 1}' on vae-gauss-mnist2d replaced {normalize: unit}, so the
    # data were standardised and bce refused them ("rescale the data to [0, 1]")
    _, config = load_preset("vae-gauss-mnist2d", {"data_options": {"split_seed": 1}})
    assert config.data_options == {"normalize": "unit", "split_seed": 1}
    _, config = load_preset("vae-gauss-mnist2d", {"data_options": {"normalize": "standard"},
                                                  "likelihood": "mse"})
    assert config.data_options == {"normalize": "standard"}
    # another source: the preset's options it lacks are dropped, the user's kept (and checked)
    _, config = load_preset("vae-gauss-mnist", {"data": "synthetic_pyle", "likelihood": "gaussian",
                                                "data_options": {"n_train": 100}})
    assert config.data_options == {"n_train": 100}


def test_a_wrong_value_of_the_deciding_key_is_named_as_such_not_as_a_setting_without_effect():
    with pytest.raises(ConfigError, match=r"'decoder': 'conv' is not allowed; choose one of"):
        load_preset("sdl-mnist", {"decoder": "conv", "hidden_size": 64})


@pytest.mark.parametrize("text, held", [("", "is empty"), ("# only a comment\n", "is empty"),
                                        ("- 1\n", "holds a list, not a mapping"),
                                        ("3\n", "holds a number, not a mapping")])
def test_an_empty_or_non_mapping_yaml_file_is_named_with_its_fix(tmp_path, text, held):
    # audit 2026-11-29: an empty config.yaml in a run folder (--resume, evaluate, encode) was "is not a
    # sparsecoder config (needs 'model' and 'config' keys)", no fix; an empty preset file "must be a
    # mapping", no fix; an empty sweep/experiment record "holds a NoneType"
    from sparsecoder.config import find_preset, read_record

    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path} {held}: it is not a sparsecoder config (needs 'model' and "
                                     f"'config' keys); restore it from a copy")
    with pytest.raises(ConfigError) as err:
        find_preset(str(path))
    assert str(err.value).startswith(f"preset file {path} {held}; write a preset there")
    assert str(err.value).endswith("or give a preset name (`sparsecoder presets` lists them)")
    with pytest.raises(ConfigError, match=f"^{path} is damaged: it {held}; restore it$"):
        read_record(path, {}, "restore it")


def test_a_presets_by_lam_settings_go_with_the_lam_the_run_trains_at():
    """vdl-nl-patches follows paper Table 3 (SPEC §2.7): γ = 20 up to λ = 5e-3, 40 at 1e-2 and 2e-2, whether λ
    is the preset's or the user's; a γ the user gives wins."""
    assert load_preset("vdl-nl-patches")[1].gamma == 20.0  # its λ, 3e-3
    for lam, gamma in ((0.0, 20.0), (0.005, 20.0), (0.01, 40.0), (0.02, 40.0)):
        config = load_preset("vdl-nl-patches", {"lam": lam})[1]
        assert (config.lam, config.gamma) == (lam, gamma)
    assert load_preset("vdl-nl-patches", {"lam": 0.02, "gamma": 5.0})[1].gamma == 5.0


@pytest.mark.parametrize("by_lam, words", [
    ("[1, 2]", "holds a list, not a mapping"),
    ("{-1: {gamma: 3}}", "not a number >= 0"),
    ("{0.01: {}}", "non-empty mapping"),
    ("{0.01: {lam: 0.1}}", "sets 'lam' itself"),
    ("{0.01: {gama: 40}}", r"by_lam 0.01: unknown config key\(s\) \['gama'\]"),
])
def test_a_bad_by_lam_is_refused_naming_the_file(tmp_path, by_lam, words):
    path = tmp_path / "mine.yaml"
    path.write_text(f"model: sparse_autoencoder\nconfig: {{lam: 0.001}}\nby_lam: {by_lam}\n")
    with pytest.raises(ConfigError, match=words) as info:
        load_preset(str(path))
    assert str(path) in str(info.value)


def test_numbers_are_read_as_yaml_1_2_not_octal_or_base_60(tmp_path):
    # YAML 1.1 read `010` as octal 8 (while `0800` was 800) and `1:30` as 90 (base 60)
    overrides = parse_overrides(["seed=010", "width=0800", "epochs=1_000", "grid=[0x10, 0b11]"])
    assert overrides == {"seed": 10, "width": "0800", "epochs": 1000, "grid": [16, 3]}  # 0800: text to YAML
    config = from_dict(ExampleConfig, overrides)
    assert (config.seed, config.width, config.epochs, config.grid) == (10, 800, 1000, (16.0, 3.0))
    with pytest.raises(ConfigError, match=r"config key 'epochs': expected an integer, got '1:30'"):
        from_dict(ExampleConfig, parse_overrides(["epochs=1:30"]))
    assert parse_overrides(["note=12:30"]) == {"note": "12:30"}
    path = tmp_path / "p.yaml"
    path.write_text("model: vae\nconfig: {data: synthetic, seed: 0700, epochs: 1}\n")
    assert load_preset(str(path))[1].seed == 700


def test_an_integer_of_thousands_of_digits_is_named_not_a_python_limit(tmp_path):
    with pytest.raises(ConfigError, match=r"'lam=1111.*an integer of 5,000 digits") as err:
        parse_overrides(["lam=" + "1" * 5000])
    assert "set_int_max_str_digits" not in str(err.value)
    path = tmp_path / "p.yaml"
    path.write_text(f"model: vae\nconfig: {{epochs: {'9' * 5000}}}\n")
    with pytest.raises(ConfigError, match=r"p\.yaml .*an integer of 5,000 digits"):
        load_preset(str(path))


@pytest.mark.parametrize("item", ["data_dir=", "data_dir=' '", "device=''", "note="])
def test_an_empty_text_value_is_refused_naming_the_key(item):
    # `--set data_dir=` was the current folder: "error: .: missing train-images-idx3-ubyte(.gz)"
    key = item.split("=")[0]
    with pytest.raises(ConfigError, match=f"config key '{key}': empty text"):
        from_dict(ExampleConfig, parse_overrides([item]))


def test_a_file_naming_a_preset_but_leaving_out_its_keys_is_refused_not_trained_at_the_defaults(tmp_path):
    # `preset: svae-mnist` + a few keys trained at VAEConfig's defaults (MNIST unnormalised, sigma e^-1.0)
    path = tmp_path / "mine.yaml"
    path.write_text("model: vae\npreset: svae-mnist\nconfig: {epochs: 1, n_latents: 8}\n")
    with pytest.raises(ConfigError, match=r"mine\.yaml names preset 'svae-mnist' but leaves out keys that "
                       r"preset sets \(data_options: \{'normalize': 'standard'\}, likelihood_sigma: 0\.36"
                       r".*Add them under 'config:'.*sparsecoder train svae-mnist --set"):
        load_preset(str(path))
    # a run's config.yaml lists every key; one whose settings make a preset key unused need not list it
    _, config = load_preset("svae-mnist", {"likelihood": "mse"})
    save_config(path, "vae", config, {"preset": "svae-mnist"})
    assert load_preset(str(path))[1] == config
    path.write_text("model: vae\npreset: my-own-name\nconfig: {epochs: 1}\n")  # a name, not a built-in
    assert load_preset(str(path))[1].epochs == 1


def test_numpy_values_of_a_config_built_in_python_become_plain_values_its_config_file_holds(tmp_path):
    # an element of a NumPy array (np.str_ choice, np.bool_ switch, np.int64 data option) stayed in the config
    # and writing its config.yaml failed (yaml RepresenterError) once training started
    np = pytest.importorskip("numpy")
    options = {"n_train": np.int64(100), "noise": np.float64(0.1)}
    config = ExampleConfig(mode=np.array(["a", "b"])[1], flag=np.True_, note=np.str_("x"), width=np.int64(4),
                           data="synthetic", data_options=options)
    assert [type(v) for v in (config.mode, config.flag, config.note, config.width)] == [str, bool, str, int]
    assert config.data_options == {"n_train": 100, "noise": 0.1}
    assert all(type(v) in (int, float) for v in config.data_options.values())
    save_config(tmp_path / "c.yaml", "test_config_family", config)
    assert load_config(tmp_path / "c.yaml")[1] == config
    with pytest.raises(ConfigError, match=r"'data_options.noise': <object .*\(object\) is no value a config"):
        ExampleConfig(data="synthetic", data_options={"noise": object()})


def test_an_integer_of_hundreds_of_digits_is_named_for_every_number_key():
    # math.isfinite(10**400) and float(10**400) were OverflowErrors: "error: OverflowError: int too large to
    # convert to float (unexpected ...)" for every integer key, and for lam on a preset with by_lam
    huge = "1" * 400
    for key, words in (("width", "is too large"), ("epochs", "is too large"), ("rate", "expected a number")):
        with pytest.raises(ConfigError, match=f"config key '{key}': .*{words}"):
            from_dict(ExampleConfig, parse_overrides([f"{key}=-{huge}"]))
    with pytest.raises(ConfigError, match="config key 'lam': expected a number"):
        load_preset("vdl-nl-patches", parse_overrides([f"lam={huge}"]))


def test_a_preset_file_of_an_unknown_model_family_names_the_file_and_the_families(tmp_path):
    path = tmp_path / "sub" / "mine.yaml"
    path.parent.mkdir()
    path.write_text("model: sparse_autoencodr\nconfig: {epochs: 1}\n")
    with pytest.raises(ConfigError, match=f"preset file {path}: unknown model 'sparse_autoencodr'; 'model:' "
                       "names a model family, one of: .*sparse_autoencoder, .*vae"):
        load_preset(str(path))


@pytest.mark.parametrize("typo, meant", [("sdl-mnst", "sdl-mnist"), ("vdl_mnist", "vdl-mnist"),
                                         ("VDL-NL-MNIST", "vdl-nl-mnist")])
def test_a_mistyped_preset_name_gets_a_suggestion(typo, meant):
    with pytest.raises(ConfigError, match=f"unknown preset '{typo}'; did you mean '{meant}'\\?"):
        load_preset(typo)


def test_a_set_value_split_by_the_shell_names_the_quoting():
    """`--set data_options={split_seed: 1}` unquoted reaches the command as two words; the error was YAML's
    parser message alone."""
    with pytest.raises(ConfigError, match=r"quote .*--set 'data_options=\{split_seed: 1\}'"):
        parse_overrides(["data_options={split_seed:", "1}"])
    with pytest.raises(ConfigError, match=r"quote .*--set 'lam_grid=\[0.1, 0.2\]'"):
        parse_overrides(["lam_grid=[0.1,", "0.2]"])


def test_a_data_option_without_a_space_after_the_colon_is_named():
    """YAML reads {split_seed:1} as the key 'split_seed:1' (no value): named as a missing space."""
    with pytest.raises(ConfigError, match=r"has no such option.*'split_seed: 1'"):
        load_preset("sdl-mnist", parse_overrides(["data_options={split_seed:1}"]))
