"""Typed configs: coercion, unknown keys, overrides, presets, save/load round trips."""

from __future__ import annotations

import dataclasses
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
