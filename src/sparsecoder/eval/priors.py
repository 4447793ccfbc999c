"""Measures of Pyle's prior comparison (SPEC §5): which prior gives sparse, spread-out, separable latents and
recovers known generating images.

Pure functions of tensors or arrays (rows are samples, atoms are columns), computed in float64 on the CPU;
they return plain Python numbers or numpy arrays. ``sparsecoder reproduce pyle-priors`` applies them to the
posterior locations (``model.encode``) and atoms (``model.atoms()``) of trained VAEs.
"""

from __future__ import annotations

import numpy as np

from sparsecoder.nn.sizes import check_size
from sparsecoder.util import as_array, finite_number, native_array

__all__ = ["matched_atom_correlation", "chance_matched_correlation", "near_zero_fraction", "latent_spread",
           "knn_separability", "atom_kurtosis"]


def _unit_peak(matrix: np.ndarray) -> np.ndarray:
    """``matrix`` divided by its largest |value| (all zeros stay zeros): the scale-free measures below then
    neither overflow (squares of 1e200) nor take a matrix of tiny magnitude (1e-13) for constant columns."""
    peak = float(np.abs(matrix).max()) if matrix.size else 0.0
    return matrix / peak if peak > 0 else matrix


def _centred_unit_columns(matrix: np.ndarray) -> np.ndarray:
    """Columns minus their mean, scaled to unit L2 norm; a constant column (varying by less than 1e-12 of the
    matrix's largest |value|) becomes all zeros."""
    matrix = _unit_peak(matrix)
    centred = matrix - matrix.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(centred, axis=0, keepdims=True)
    return np.divide(centred, norms, out=np.zeros_like(centred), where=norms > 1e-12 * max(1.0, norms.max()))


def matched_atom_correlation(learned, true) -> tuple[np.ndarray, np.ndarray]:
    r"""For each true atom, the best absolute Pearson correlation with a learned atom, and which one.

    .. math::
        r_t = \max_j \lvert \operatorname{corr}(w_j, v_t) \rvert, \qquad
        \operatorname{corr}(w, v) = \frac{\langle w - \bar w, v - \bar v\rangle}
                                         {\lVert w - \bar w\rVert\,\lVert v - \bar v\rVert}

    with the mean taken over pixels. Pyle's generating images are non-negative, so the plain cosine of
    :func:`~sparsecoder.eval.metrics.dictionary_recovery` is high even for unrelated images (two random
    ``U(0, 1)`` images have cosine ≈ 0.75); the correlation removes that offset. A constant learned atom
    (a collapsed latent, whose atom ``D(e_i) − D(0)`` is ~0) correlates 0 with everything. Several true
    atoms may pick the same learned atom.

    Parameters
    ----------
    learned : (d, l) tensor or array
        Learned atoms as columns (decoder columns, or ``D(e_i) − D(0)`` for a non-linear decoder).
    true : (d, k) tensor or array
        Generating images as columns.

    Returns
    -------
    best : (k,) array
        ``r_t`` in ``[0, 1]``.
    index : (k,) int array
        The learned atom that attains it.
    """
    learned = as_array(learned, "learned")
    true = as_array(true, "true")
    if learned.shape[0] != true.shape[0]:
        raise ValueError(f"learned (d, l) and true (d, k) atoms must have the same dimension d, got "
                         f"{learned.shape} and {true.shape}; atoms are columns")
    if learned.shape[0] < 2 or learned.shape[1] == 0 or true.shape[1] == 0:
        raise ValueError(f"need atoms of at least 2 pixels and at least one atom each, got learned "
                         f"{learned.shape} and true {true.shape}")
    corr = np.abs(_centred_unit_columns(true).T @ _centred_unit_columns(learned))  # (k, l)
    return np.clip(corr.max(axis=1), 0.0, 1.0), corr.argmax(axis=1)


def chance_matched_correlation(true, n_learned: int, *, n_draws: int = 200, seed: int = 0) -> float:
    r"""Mean of :func:`matched_atom_correlation` when the ``n_learned`` learned atoms are i.i.d. Gaussian
    noise: the level a model that learned nothing reaches by chance (Monte Carlo over ``n_draws``)."""
    true = as_array(true, "true")
    for name, value, low in (("n_learned", n_learned, 1), ("n_draws", n_draws, 1), ("seed", seed, 0)):
        check_size("chance_matched_correlation", name, value, low)
    rng = np.random.default_rng(seed)
    values = [matched_atom_correlation(rng.standard_normal((true.shape[0], n_learned)), true)[0].mean()
              for _ in range(n_draws)]
    return float(np.mean(values))


def near_zero_fraction(codes, threshold: float) -> float:
    r"""Fraction of posterior locations with ``|μ_ij| < threshold`` over all samples ``i`` and latents ``j``.

    .. math:: \frac{1}{n\,l}\,\#\{(i, j) : |\mu_{ij}| < \text{threshold}\}

    A sparse code has most of its entries near zero (Pyle §2: the sparse priors should make them so).
    """
    codes = as_array(codes, "codes")
    if codes.size == 0:
        raise ValueError(f"codes is empty (shape {codes.shape})")
    threshold = finite_number(threshold, "threshold", positive=True)  # inf counted every entry near zero
    return float(np.mean(np.abs(codes) < threshold))


def latent_spread(codes) -> np.ndarray:
    """Standard deviation (ddof=0) of each latent's posterior location over the samples, shape (l,)."""
    codes = as_array(codes, "codes")
    if codes.shape[0] < 2:
        raise ValueError(f"latent spread needs at least 2 samples, got shape {codes.shape}")
    return codes.std(axis=0)


def knn_separability(codes, labels, *, k: int = 5, folds: int = 5, seed: int = 0) -> float:
    """Cross-validated accuracy of a ``k``-nearest-neighbour classifier of ``labels`` from ``codes``.

    How well the classes are separated in latent space (Pyle §3 compares the 2-latent "spread" of the
    priors by eye): stratified ``folds``-fold cross-validation of scikit-learn's
    :class:`~sklearn.neighbors.KNeighborsClassifier` (Euclidean), mean accuracy over the folds.
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    from sparsecoder.data.base import check_labels

    codes = as_array(codes, "codes")
    k = check_size("knn_separability", "k", k)
    folds = check_size("knn_separability", "folds", folds, low=2)
    seed = check_size("knn_separability", "seed", seed, low=0)
    labels = native_array(labels).ravel()
    if labels.shape[0] != codes.shape[0]:
        raise ValueError(f"labels must have one entry per code row, got {labels.shape[0]} for "
                         f"{codes.shape[0]} codes")
    labels = check_labels(labels, "labels", "renumber the classes 0, 1, … (np.unique(labels, "
                          "return_inverse=True)[1])")
    _, counts = np.unique(labels, return_counts=True)
    if len(counts) < 2:  # every neighbour has the one label: accuracy 1.0, separating nothing
        raise ValueError(f"labels hold a single class ({labels[0]}); separability needs at least 2")
    if counts.min() < folds:
        raise ValueError(f"every class needs at least folds={folds} samples; the smallest has {counts.min()}")
    n_fit = len(labels) - -(-len(labels) // folds)  # the smallest training fold
    if k > n_fit:  # scikit-learn fails every fold, and cross_val_score returned NaN
        raise ValueError(f"k={k} neighbours but a training fold has only {n_fit} samples; lower k or folds")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_score(KNeighborsClassifier(n_neighbors=k), codes, labels, cv=splitter,
                             error_score="raise")
    return float(scores.mean())


def atom_kurtosis(atoms) -> float:
    r"""Mean over atoms (columns) of the excess kurtosis of the atom's pixel values (Fisher; 0 for a
    Gaussian pattern): large for sparse, localised atoms (a few strong pixels, e.g. Gabor-like edges),
    near 0 or negative for spread-out random patterns. Constant atoms (varying by less than 1e-12 of the
    largest |value|) are skipped (NaN if all are)."""
    from scipy.stats import kurtosis

    atoms = as_array(atoms, "atoms")
    if atoms.shape[0] < 4:
        raise ValueError(f"kurtosis needs atoms of at least 4 pixels, got shape {atoms.shape}")
    atoms = _unit_peak(atoms)  # kurtosis does not depend on the scale; 4th powers of 1e200 overflowed
    varying = atoms.std(axis=0) > 1e-12
    if not varying.any():
        return float("nan")
    return float(np.mean(kurtosis(atoms[:, varying], axis=0, fisher=True, bias=True)))
