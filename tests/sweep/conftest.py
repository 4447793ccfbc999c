"""Fixtures shared by the sweep tests."""

import pytest

from sparsecoder import train


@pytest.fixture(scope="session")
def direct_train(tmp_path_factory):
    """``direct_train(preset, overrides)``: the metrics of ``train(preset, overrides=overrides)`` run directly
    (no sweep), trained once per session for each distinct call; the serial and the Ray sweep tests compare
    their trial of the same point against it."""
    trained = {}

    def run(preset, overrides):
        key = (preset, tuple(overrides))
        if key not in trained:
            out = tmp_path_factory.mktemp("direct") / "run"
            trained[key] = train(preset, out, overrides=list(overrides), progress=False)
        return trained[key]

    return run
