"""Sparse inference (SPEC §2.1–2.2): batched FISTA for any decoder, its energy terms, and a
scikit-learn-convention ``sparse_encode``."""

from sparsecoder.inference.energy import (
    encoder_proximity_energy,
    encoder_proximity_grad,
    l1_energy,
    lam_to_lasso_alpha,
    lasso_alpha_to_lam,
    lasso_to_reference_objective,
    reconstruction_energy,
    reference_to_lasso_objective,
    total_energy,
    variance_hinge,
    variance_hinge_grad,
)
from sparsecoder.inference.fista import FistaResult, fista, fista_gram, power_iteration_max_eigenvalue
from sparsecoder.inference.lasso import lasso_objective, sparse_encode

__all__ = [
    "FistaResult",
    "fista",
    "fista_gram",
    "sparse_encode",
    "lasso_objective",
    "power_iteration_max_eigenvalue",
    "reconstruction_energy",
    "l1_energy",
    "variance_hinge",
    "variance_hinge_grad",
    "encoder_proximity_energy",
    "encoder_proximity_grad",
    "total_energy",
    "lam_to_lasso_alpha",
    "lasso_alpha_to_lam",
    "reference_to_lasso_objective",
    "lasso_to_reference_objective",
]
