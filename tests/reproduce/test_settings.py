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
                                 (True, {}, "k=True"), (2.5, {}, "k=2.5"), (math.inf, {}, "k=inf")]:
        with pytest.raises(ValueError, match=message):
            checks.positive_int({"k": bad}, "k", **kwargs)
    # a whole number written as a float (--set epochs=1e3 reads 1000.0) is that integer, as in train --set
    settings = {"epochs": 1000.0}
    assert checks.positive_int(settings, "epochs") == 1000 and type(settings["epochs"]) is int
    with pytest.raises(ValueError, match="epochs=1000000000: expected an integer >= 1 and <= 1000000"):
        checks.epochs({"epochs": 1e9})


def test_number_bounds():
    assert checks.number({"x": 0}, "x") == 0.0
    assert checks.number({"x": None}, "x", allow_none=True) is None
    with pytest.raises(ValueError, match="x=0: expected a number > 0"):
        checks.number({"x": 0}, "x", strict=True)
    for bad in (-1e-9, math.nan, math.inf, "1", False):
        with pytest.raises(ValueError, match="expected a number >= 0"):
            checks.number({"x": bad}, "x")
    assert checks.number({"x": 5}, "x", maximum=5) == 5.0
    with pytest.raises(ValueError, match=r"x=5.5: expected a number > 0 and <= 5$"):
        checks.number({"x": 5.5}, "x", strict=True, maximum=5)


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


def test_settings_are_held_to_the_trial_config_bounds():
    """epochs above the config's MAX_EPOCHS, a limit of 1 and seeds beyond 64 bits passed these checks and
    were refused by the sweep, after reproduce() had written the experiment folder."""
    from sparsecoder.config import MAX_EPOCHS

    assert checks.epochs({"epochs": MAX_EPOCHS}) == MAX_EPOCHS
    message = f"epochs={MAX_EPOCHS + 1}: expected an integer >= 1 and <= {MAX_EPOCHS}"
    with pytest.raises(ValueError, match=message):
        checks.epochs({"epochs": MAX_EPOCHS + 1})
    assert checks.epochs({"epochs": None}, allow_none=True) is None
    assert checks.limit({"limit": 2}) == 2 and checks.limit({"limit": None}) is None
    with pytest.raises(ValueError, match="limit=1: expected an integer >= 2 or null"):
        checks.limit({"limit": 1})
    message = r"k=9223372036854775808: expected an integer >= 1 and <= 9223372036854775807"
    with pytest.raises(ValueError, match=message):
        checks.positive_int({"k": 2**63}, "k")
    assert checks.seed_list({"seeds": [2**63 - 1]}) == [2**63 - 1]
    for bad in ([2**63], [0, 0], [3, 1, 3]):
        with pytest.raises(ValueError, match="each seed once"):
            checks.seed_list({"seeds": bad})


def test_number_list_refuses_a_repeated_number():
    for bad in ([1, 1.0], [0.5, 2, 0.5]):
        with pytest.raises(ValueError, match="each once"):
            checks.number_list({"x": bad}, "x")


@pytest.mark.parametrize("name, setting", [
    ("evtimova-collapse", "seeds=[0,0]"), ("evtimova-collapse", "limit=1"),
    ("evtimova-fig6", "epochs=1000001"), ("evtimova-fig6", "lams=[0.001,0.001]"),
    ("evtimova-fig9", "probe_seeds=[1,1]"), ("evtimova-fig9", "samples_per_class=[1,all,1]"),
    ("evtimova-fig9", "lams={sdl-mnist: [0.005,0.005]}"), ("evtimova-fig9", "probe_epochs=1000001"),
    ("evtimova-table1", "sigmas=[1,1.0]"), ("jiang-table1", "seeds=[18446744073709551616]"),
    ("jiang-fig5", "epochs=1000001"), ("pyle-priors", "epochs=1000001"), ("pyle-priors", "patches_limit=1"),
    ("jiang-table1", "eval_samples=10001"), ("jiang-fig5", "eval_samples=10001"),
    ("pyle-priors", "eval_samples=10001"),
])
def test_a_value_the_trials_would_refuse_is_refused_before_the_folder_is_written(tmp_path, name, setting):
    from sparsecoder.reproduce import reproduce

    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"^--set " + setting.split("=")[0]):
        reproduce(name, out, quick=True, overrides=[setting], executor="serial", progress=False)
    assert not out.exists()
