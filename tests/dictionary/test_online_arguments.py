"""Bad arguments of the online dictionary learner are refused by name before any work (they were taken
silently: ``n_sweeps=0`` never updated the atoms, ``max_iter=0`` gave all-zero codes, ``positive_code="no"``
meant True, a NaN ``weight_power`` made NaN atoms; a too-short memory or a wrong ``rng`` failed deep inside
with an IndexError / AttributeError)."""

import numpy as np
import pytest

from sparsecoder.dictionary import OnlineDictionaryLearner, initial_dictionary, new_memory, run_epoch


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((24, 6))
    return X, initial_dictionary(X, 4, np.random.default_rng(1))


@pytest.mark.parametrize("name, value, message", [
    ("n_sweeps", 0, "n_sweeps must be an integer >= 1"),
    ("n_sweeps", -1, "n_sweeps must be an integer >= 1"),
    ("n_sweeps", 2.7, "n_sweeps must be an integer >= 1"),
    ("max_iter", 0, "max_iter must be an integer >= 1"),
    ("max_iter", -5, "max_iter must be an integer >= 1"),
    ("weight_power", float("nan"), "weight_power must be a finite number >= 0"),
    ("weight_power", -1.0, "weight_power must be a finite number >= 0"),
    ("weight_power", 100.0, r"weight_power=100.0 is above 16: .* overflow float64"),
    ("positive_code", "no", "positive_code must be True or False"),
    ("positive_dict", None, "positive_dict must be True or False"),
    ("device", "gpu", "device"),
    ("rng", "seed", "rng must be"),
])
def test_learner_refuses_bad_settings_by_name(data, name, value, message):
    X, D = data
    with pytest.raises(ValueError, match=message):
        OnlineDictionaryLearner(D, 0.1, **{name: value})


def test_learner_settings_that_are_valid_still_work(data):
    """Integer seeds are read as numpy's ``default_rng`` reads them (same atoms for the same seed), a
    numpy bool as a flag, ``weight_power=0`` (equal weights) is allowed."""
    X, D = data
    runs = []
    for _ in range(2):
        learner = OnlineDictionaryLearner(D, 0.1, rng=7, positive_code=np.bool_(True), weight_power=0.0)
        run_epoch(learner, X, 8, 3, memory=new_memory(24, 4))
        runs.append(learner.components)
    np.testing.assert_array_equal(runs[0], runs[1])
    assert learner.positive_code is True


def test_step_refuses_seen_without_its_codes_and_weights(data):
    X, D = data
    learner = OnlineDictionaryLearner(D, 0.1, rng=0)
    seen = np.ones(24, dtype=bool)
    with pytest.raises(ValueError, match="seen needs init"):
        learner.step(X, seen=seen, seen_weights=np.ones(24))
    with pytest.raises(ValueError, match="seen needs init"):
        learner.step(X, init=np.zeros((24, 4)), seen=seen)
    with pytest.raises(ValueError, match=r"seen must have shape \(24,\)"):
        learner.step(X, init=np.zeros((24, 4)), seen=seen[:3], seen_weights=np.ones(3))
    with pytest.raises(ValueError, match=r"seen_weights must have shape \(24,\)"):
        learner.step(X, init=np.zeros((24, 4)), seen=seen, seen_weights=np.ones(3))
    assert learner.n_steps == 0 and not learner.A.any()  # nothing was done


def test_run_epoch_refuses_a_memory_of_another_data_set(data):
    X, D = data
    learner = OnlineDictionaryLearner(D, 0.1, rng=0)
    for memory in (new_memory(10, 4), new_memory(24, 3)):
        with pytest.raises(ValueError, match=r"memory\['codes'\] has shape .* but X has 24 rows and the "
                                             r"dictionary 4 atoms: make it with new_memory\(24, 4\)"):
            run_epoch(learner, X, 8, np.random.default_rng(0), memory=memory)
    assert learner.n_steps == 0


@pytest.mark.parametrize("n_components", [0, -1, 2.5, True])
def test_initial_dictionary_refuses_a_bad_atom_count(data, n_components):
    X, _ = data
    with pytest.raises(ValueError, match="n_components must be an integer >= 1"):
        initial_dictionary(X, n_components, np.random.default_rng(0))


def test_initial_dictionary_takes_a_seed(data):
    X, _ = data
    np.testing.assert_array_equal(initial_dictionary(X, 3, 5), initial_dictionary(X, 3, 5))
