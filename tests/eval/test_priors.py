"""Measures of the prior comparison against hand-computed values, numpy / scipy formulas and known
separations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sparsecoder.eval.priors import (
    atom_kurtosis,
    chance_matched_correlation,
    knn_separability,
    latent_spread,
    matched_atom_correlation,
    near_zero_fraction,
)


def test_matched_atom_correlation_equals_numpy_corrcoef_and_ignores_offset_and_scale():
    rng = np.random.default_rng(0)
    true = rng.random((25, 5))
    learned = rng.standard_normal((25, 10))
    learned[:, 7] = -3.0 * true[:, 2] + 4.0  # the same image, sign flipped, scaled and shifted
    best, index = matched_atom_correlation(learned, true)
    reference = np.abs(np.corrcoef(true.T, learned.T)[:5, 5:])  # (true, learned) Pearson correlations
    np.testing.assert_allclose(best, reference.max(axis=1), atol=1e-12)
    np.testing.assert_array_equal(index, reference.argmax(axis=1))
    assert best[2] == pytest.approx(1.0) and index[2] == 7


def test_correlation_and_kurtosis_do_not_depend_on_the_atoms_scale():
    # before: atoms of magnitude below 1e-12 counted as constant (correlation 0, kurtosis NaN), and atoms of
    # 1e200 overflowed the squared norm (correlation 0)
    rng = np.random.default_rng(0)
    true = rng.random((25, 4))
    learned = true[:, :3] + 0.1 * rng.standard_normal((25, 3))
    best, index = matched_atom_correlation(learned, true)
    kurt = atom_kurtosis(learned)
    for scale in (1e-13, 1e-200, 1e200):
        for scaled_best, scaled_index in (matched_atom_correlation(learned * scale, true),
                                          matched_atom_correlation(learned, true * scale)):
            np.testing.assert_allclose(scaled_best, best, rtol=1e-9)
            np.testing.assert_array_equal(scaled_index, index)
        assert atom_kurtosis(learned * scale) == pytest.approx(kurt, rel=1e-9)
    constant = np.column_stack([learned[:, 0] * 1e-13, np.full(25, 1e-13)])  # still skipped / counted 0
    assert atom_kurtosis(constant) == pytest.approx(atom_kurtosis(learned[:, :1]))
    assert matched_atom_correlation(constant[:, 1:], true)[0].tolist() == [0.0] * 4


def test_matched_atom_correlation_by_hand_and_constant_atoms_count_zero():
    true = np.array([[1.0], [0.0], [0.0], [0.0]])  # centred: (0.75, -0.25, -0.25, -0.25)
    # column 0 centred: (.5, .5, -.5, -.5); column 1 constant
    learned = np.array([[1.0, 5.0], [1.0, 5.0], [0.0, 5.0], [0.0, 5.0]])
    best, index = matched_atom_correlation(torch.tensor(learned), true)
    # <(.75,-.25,-.25,-.25), (.5,.5,-.5,-.5)> = 0.5; norms sqrt(0.75) and 1 -> 0.5/sqrt(0.75)
    assert best[0] == pytest.approx(0.5 / np.sqrt(0.75))
    assert index[0] == 0


def test_matched_atom_correlation_rejects_mismatched_dimensions():
    with pytest.raises(ValueError, match="same dimension d"):
        matched_atom_correlation(np.ones((25, 10)), np.ones((24, 5)))


def test_chance_matched_correlation_is_low_for_random_atoms_and_reproducible():
    true = np.random.default_rng(1).random((25, 5))
    chance = chance_matched_correlation(true, 10, n_draws=50, seed=3)
    assert 0.2 < chance < 0.6  # best of 10 random |r| for 25 pixels: ~0.4
    assert chance == chance_matched_correlation(true, 10, n_draws=50, seed=3)
    assert chance_matched_correlation(true, 100, n_draws=50) > chance  # more atoms, more chance matches


def test_near_zero_fraction_by_hand():
    codes = np.array([[0.05, -0.2], [-0.09, 0.1], [3.0, 0.0]])
    assert near_zero_fraction(codes, 0.1) == pytest.approx(3 / 6)  # 0.05, -0.09, 0.0 (0.1 is not < 0.1)
    assert near_zero_fraction(codes, 0.25) == pytest.approx(5 / 6)
    with pytest.raises(ValueError, match="threshold"):
        near_zero_fraction(codes, 0.0)


def test_latent_spread_is_the_population_std_per_latent():
    codes = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]])
    np.testing.assert_allclose(latent_spread(codes), [np.sqrt(8 / 3), 0.0])
    with pytest.raises(ValueError, match="at least 2 samples"):
        latent_spread(codes[:1])


def test_knn_separability_separated_clusters_vs_random_labels():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 50)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]])
    separated = centres[labels] + 0.5 * rng.standard_normal((200, 2))
    assert knn_separability(separated, labels) == pytest.approx(1.0)
    shuffled = rng.permutation(labels)
    assert knn_separability(separated, shuffled) < 0.45  # chance is 0.25
    with pytest.raises(ValueError, match="one entry per code"):
        knn_separability(separated, labels[:10])


def test_atom_kurtosis_matches_scipy_formula_by_hand_and_skips_constant_atoms():
    spike = np.zeros(100)
    spike[0] = 1.0  # one strong pixel: excess kurtosis (n-2)^2/(n-1)... by the moment formula below
    m = spike - spike.mean()
    by_hand = np.mean(m**4) / np.mean(m**2) ** 2 - 3.0
    gaussian = np.random.default_rng(0).standard_normal(100)
    g = gaussian - gaussian.mean()
    g_hand = np.mean(g**4) / np.mean(g**2) ** 2 - 3.0
    atoms = np.stack([spike, gaussian, np.full(100, 2.0)], axis=1)
    assert atom_kurtosis(atoms) == pytest.approx((by_hand + g_hand) / 2)
    assert by_hand > 90 and abs(g_hand) < 1.0
    assert np.isnan(atom_kurtosis(np.ones((10, 3))))


@pytest.mark.parametrize("labels, kwargs, message", [
    (np.zeros(10), {}, "single class"),  # every neighbour agrees: 1.0, separating nothing
    (np.array([0, 1] * 5), {"k": 20}, "k=20 neighbours but a training fold has only 8"),  # returned NaN
    (np.array([0.5, 1.5] * 5), {}, "not integers"),
    (np.array([0, 1] * 4 + [np.nan, np.nan]), {}, "NaN"),
    (np.array([0, 1] * 5), {"k": 0}, "k must be an integer >= 1"),
    (np.array([0, 1] * 5), {"folds": 1}, "folds must be an integer >= 2"),
])
def test_knn_separability_refuses_what_it_cannot_measure(labels, kwargs, message):
    codes = np.random.default_rng(0).random((10, 2))
    with pytest.raises(ValueError, match=message):
        knn_separability(codes, labels, **kwargs)


@pytest.mark.parametrize("call, message", [
    (lambda: near_zero_fraction(np.ones((2, 2)), float("inf")), "finite number > 0"),  # gave 1.0
    (lambda: near_zero_fraction(np.ones((2, 2)), "0.1"), "finite number > 0"),
    (lambda: chance_matched_correlation(np.ones((4, 2)), 2.5), "n_learned must be an integer"),
    (lambda: chance_matched_correlation(np.ones((4, 2)), True), "n_learned must be an integer"),
    (lambda: chance_matched_correlation(np.ones((4, 2)), 2, seed=-1), "seed must be an integer >= 0"),
])
def test_prior_measures_refuse_bad_arguments_by_name(call, message):
    with pytest.raises(ValueError, match=message):
        call()
