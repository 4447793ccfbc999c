"""The shared settings checks of the experiments (``sparsecoder.reproduce.settings``), on hand-made values."""

import math

import pytest

from sparsecoder.reproduce import settings as checks


def test_names_accepts_one_name_and_drops_duplicates():
    s = {"v": "b"}
    assert checks.names(s, "v", ["a", "b"]) == ["b"] and s["v"] == ["b"]
    s = {"v": ["b", "a", "b"]}
    assert checks.names(s, "v", ["a", "b"]) == ["b", "a"]


@pytest.mark.parametrize("value", [[], ["a", "c"], [1], None, {"a": 1}])
def test_names_refuses_what_is_not_a_list_of_known_names(value):
    message = r"--set v=.*: expected a non-empty list of a, b \(e\.g\. v=\[a,b\]\)"
    with pytest.raises(ValueError, match=message):
        checks.names({"v": value}, "v", ["a", "b"])


def test_seed_list():
    s = {"seeds": 3}
    assert checks.seed_list(s) == [3] and s["seeds"] == [3]
    assert checks.seed_list({"seeds": [0, 4]}) == [0, 4]
    for bad in ([], [0, -1], [True], [1.0], "0", None):
        with pytest.raises(ValueError, match="expected a non-empty list of integers >= 0"):
            checks.seed_list({"seeds": bad})


def test_positive_int_and_none():
    assert checks.positive_int({"k": 5}, "k") == 5
    assert checks.positive_int({"k": None}, "k", allow_none=True) is None
    assert checks.positive_int({"k": 2}, "k", minimum=2) == 2
    for bad, kwargs, message in [(None, {}, "k=None: expected an integer >= 1$"),
                                 (0, {"allow_none": True}, "k=0: expected an integer >= 1 or null"),
                                 (1, {"minimum": 2}, "k=1: expected an integer >= 2"),
                                 (True, {}, "k=True"), (2.0, {}, "k=2.0")]:
        with pytest.raises(ValueError, match=message):
            checks.positive_int({"k": bad}, "k", **kwargs)


def test_number_bounds():
    assert checks.number({"x": 0}, "x") == 0.0
    assert checks.number({"x": None}, "x", allow_none=True) is None
    with pytest.raises(ValueError, match="x=0: expected a number > 0"):
        checks.number({"x": 0}, "x", strict=True)
    for bad in (-1e-9, math.nan, math.inf, "1", False):
        with pytest.raises(ValueError, match="expected a number >= 0"):
            checks.number({"x": bad}, "x")


def test_number_list_and_is_lam():
    s = {"x": 1}
    assert checks.number_list(s, "x") == [1.0] and s["x"] == [1.0]
    for bad in ([], [-1.0], [math.nan], ["a"], None):
        with pytest.raises(ValueError, match="expected a non-empty list of numbers >= 0"):
            checks.number_list({"x": bad}, "x")
    assert [checks.is_lam(v) for v in (0, 0.5, -0.1, math.inf, True, "0")] == [True, True] + [False] * 4


def test_preset_mapping():
    mapping = {"sdl-mnist": 0.1}
    assert checks.preset_mapping({"m": mapping}, "m", checks.is_lam, "a λ >= 0", "") is mapping
    with pytest.raises(ValueError, match=r"--set m=\[\]: expected a non-empty mapping preset -> a λ >= 0"):
        checks.preset_mapping({"m": []}, "m", checks.is_lam, "a λ >= 0", "{sdl-mnist: 0.1}")
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        checks.preset_mapping({"m": {"nope": 0.1}}, "m", checks.is_lam, "a λ >= 0", "")
    with pytest.raises(ValueError, match="sdl-mnist needs a λ >= 0, got -1"):
        checks.preset_mapping({"m": {"sdl-mnist": -1}}, "m", checks.is_lam, "a λ >= 0", "")


def test_training_overrides_keeps_only_set_values():
    assert checks.training_overrides({"epochs": 3, "limit": None}) == {"epochs": 3}
    assert checks.training_overrides({"epochs": None, "limit": 10, "x": 1}) == {"limit": 10}
