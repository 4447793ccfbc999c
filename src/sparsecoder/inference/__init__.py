"""Sparse inference (SPEC §2.1–2.2): batched FISTA for any decoder, its energy terms, and a
scikit-learn-convention ``sparse_encode``."""

from sparsecoder.inference import energy
from sparsecoder.inference.energy import *  # noqa: F403 (the names of energy.__all__)
from sparsecoder.inference.fista import FistaResult, fista, fista_gram, power_iteration_max_eigenvalue
from sparsecoder.inference.lasso import lasso_objective, sparse_encode

__all__ = [
    "FistaResult",
    "fista",
    "fista_gram",
    "sparse_encode",
    "lasso_objective",
    "power_iteration_max_eigenvalue",
    *energy.__all__,  # every energy term, as imported above
]
