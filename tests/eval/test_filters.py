"""Filter localisation (Jiang & de la Iglesia Fig. 5) on filters of odd shapes and extreme scales."""

from __future__ import annotations

import numpy as np
import pytest

from sparsecoder.eval.filters import localization


def test_localization_of_filters_one_pixel_high_or_wide_uses_a_window_of_one():
    """The default window min(h, w) // 2 was 0 for them: 'window must be … got 0' though none was given."""
    assert localization(np.ones((1, 2)), (1, 1)) == pytest.approx([1.0, 1.0])
    spike = np.zeros((16, 1))
    spike[5] = 2.0
    assert localization(spike, (1, 16)) == pytest.approx([1.0])
    assert localization(np.ones((16, 1)), (16, 1)) == pytest.approx([1 / 16])


def test_localization_does_not_depend_on_the_filters_scale():
    """Squares of 1e200 overflowed (ρ = NaN) and of 1e-200 underflowed (ρ = 0, an 'all-zero' filter)."""
    columns = np.random.default_rng(0).standard_normal((64, 3))
    expected = localization(columns, (8, 8))
    assert np.all(expected > 0)
    for scale in (1e200, 1e-200, 1e-310):
        np.testing.assert_allclose(localization(columns * scale, (8, 8)), expected, rtol=1e-9)
    assert localization(np.zeros((64, 1)), (8, 8)).tolist() == [0.0]
