"""Filter localisation (Jiang & de la Iglesia Fig. 5) on filters of odd shapes and extreme scales."""

from __future__ import annotations

import numpy as np
import pytest

from sparsecoder.eval.filters import gabor_fit, localization


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


def _hand_gabor(h, w, row0, col0, degrees, frequency, phase, sigma_along, sigma_across, amplitude=1.0):
    """A Gabor written out by hand in the documented convention: x to the right, y upwards as displayed."""
    r, c = np.mgrid[0:h, 0:w].astype(float)
    x, y = c - col0, row0 - r
    theta = np.deg2rad(degrees)
    u, v = x * np.cos(theta) + y * np.sin(theta), -x * np.sin(theta) + y * np.cos(theta)
    envelope = np.exp(-u ** 2 / (2 * sigma_along ** 2) - v ** 2 / (2 * sigma_across ** 2))
    return (amplitude * envelope * np.cos(2 * np.pi * frequency * u + phase)).ravel()


def test_gabor_fit_recovers_known_filters_and_tells_noise_apart():
    # (row0, col0, θ°, f, φ, σ∥, σ⊥, amplitude): an even and an odd filter, one near the θ = 0/180° seam, one
    # off-centre near a corner, on a non-square patch
    truth = [(7.3, 9.1, 30, 0.15, 0.7, 2.0, 3.0, 1.0), (3.0, 14.0, 100, 0.25, -1.4, 1.5, 2.5, 2.5),
             (8.0, 9.0, 175, 0.10, np.pi / 2, 3.0, 2.0, 0.3), (11.0, 4.0, 2, 0.20, 3.0, 2.0, 4.0, 1.0)]
    rng = np.random.default_rng(0)
    columns = np.stack([_hand_gabor(15, 18, *t) for t in truth], axis=1)
    columns += 0.01 * np.array([t[-1] for t in truth]) * rng.standard_normal(columns.shape)  # 1 % noise
    columns = np.c_[columns, rng.standard_normal(15 * 18), np.zeros(15 * 18)]  # white noise, an empty filter
    fit = gabor_fit(columns * 1e-150, (15, 18))  # the fit does not depend on the filters' scale
    for j, (row0, col0, degrees, frequency, phase, along, across, amplitude) in enumerate(truth):
        assert fit["r2"][j] > 0.95
        assert np.rad2deg(fit["orientation"][j]) == pytest.approx(degrees, abs=1.0)
        assert fit["frequency"][j] == pytest.approx(frequency, abs=0.003)
        assert abs(np.angle(np.exp(1j * (fit["phase"][j] - phase)))) < 0.05
        assert (fit["center_row"][j], fit["center_col"][j]) == pytest.approx((row0, col0), abs=0.1)
        assert (fit["sigma_along"][j], fit["sigma_across"][j]) == pytest.approx((along, across), rel=0.05)
        assert fit["amplitude"][j] == pytest.approx(amplitude * 1e-150, rel=0.05)
    assert fit["r2"][4] < 0.3  # white noise is not a Gabor
    assert fit["r2"][5] == 0 and np.isnan(fit["orientation"][5])
    assert set(np.round(np.rad2deg(gabor_fit(np.c_[_hand_gabor(16, 16, 8, 8, 0, 0.2, 0, 3, 3),
                                                   _hand_gabor(16, 16, 8, 8, 90, 0.2, 0, 3, 3)],
                                             (16, 16))["orientation"]))) <= {0.0, 90.0, 180.0}
    with pytest.raises(ValueError, match="shape .* has 256 pixels but the columns have 270"):
        gabor_fit(columns, (16, 16))
