"""Validation and test metrics of the sparse autoencoders (SPEC §2.6 early stopping, SPEC §3).

Registered with the ``sparse_autoencoder`` family (:mod:`sparsecoder.models`): the trainer calls
:func:`validation_metrics` after every epoch and :func:`evaluate` on the best weights for
``metrics.json``.
"""

from __future__ import annotations

import math
import warnings

import torch

from sparsecoder.data.base import DataSplits, Split
from sparsecoder.eval.metrics import dead_atoms, psnr, sparsity
from sparsecoder.inference.energy import l1_energy, reconstruction_energy, variance_hinge

__all__ = ["energy_terms", "validation_metrics", "evaluate", "collapse_message"]


def collapse_message(config, where: str) -> str:
    """What to tell a user whose model's codes on ``where`` are all zero: it learned nothing (every atom
    dead, PSNR that of D(0)), and what to change. :func:`evaluate` (``metrics.json``) and ``SAE.fit`` warn
    with it: such a run otherwise finished as if it had trained (the ``do-nl`` presets from zero codes)."""
    cause = (f"λ = {config.lam:g} costs more than any code gains on reconstruction, so inference keeps every "
             f"code at 0 and the decoder has nothing to learn from; lower lam"
             if config.lam > 0 else "check the data and the learning rates")
    if config.encoder == "none" and config.decoder == "mlp" and config.lam > 0:
        cause += (" (DO-NL: the random one-hidden-layer decoder pays for no code at λ >= 5e-3 on MNIST; "
                  "README, 'DO-NL needs a non-zero start')")
    return (f"{where}: every code is zero (sparsity 100 %, all {config.n_components} components dead): the "
            f"model learned nothing; {cause}")


def _check_split(split: Split, what: str) -> None:
    if len(split) == 0:
        raise ValueError(f"the {what} split is empty; nothing to evaluate (check the data source/limit)")


@torch.no_grad()
def energy_terms(model, split: Split, codes: torch.Tensor) -> tuple[dict[str, float], torch.Tensor]:
    r"""Per-sample energy of ``codes`` on ``split`` (SPEC §2.1) and the reconstructions ``D(codes)``.

    .. math:: E = \frac1n\Big[\sum_i \tfrac1d\lVert y_i - D(z_i)\rVert^2 + \lambda\sum_i\lVert z_i\rVert_1
              + \beta\sum_{\text{batches}} \sum_j [(T - \mathrm{std}_j Z)_+]^2\Big]

    with the hinge taken per batch of ``batch_size`` rows, as in training.
    """
    x = split.x.to(model.device, torch.float32)
    c = model.config
    rec = l1 = hinge = 0.0
    recon_chunks = []
    for start in range(0, x.shape[0], c.batch_size):
        Y, Z = x[start:start + c.batch_size], codes[start:start + c.batch_size]
        reconstruction = model.decoder(Z)
        recon_chunks.append(reconstruction)
        rec += float(reconstruction_energy(Y, reconstruction))
        l1 += float(l1_energy(Z, c.lam))
        if model._beta > 0 and Z.shape[0] > 1:
            hinge += float(variance_hinge(Z, model._beta, c.var_threshold))
    n = max(x.shape[0], 1)
    terms = {"energy": (rec + l1 + hinge) / n, "reconstruction": rec / n, "l1": l1 / n, "hinge": hinge / n}
    return terms, (torch.cat(recon_chunks) if recon_chunks else x[:0])


@torch.no_grad()
def _summary(model, split: Split, codes: torch.Tensor) -> dict[str, float]:
    terms, recon = energy_terms(model, split, codes)
    target_pixels = split.to_pixels(split.x.to(model.device, torch.float32))
    recon_pixels = split.to_pixels(recon)
    return {
        **terms,
        "psnr": float(psnr(target_pixels, recon_pixels)),
        "sparsity": float(sparsity(codes)),
        "code_l1": float(codes.abs().sum(dim=1).mean()),
    }


def _column_norms(model, prefix: str = "") -> dict[str, float]:
    """Mean, min and max of the atoms' L2 norms: ``<prefix>decoder_column_norm_mean``, ``_min``, ``_max``."""
    norms = model.atoms().norm(dim=0)
    return {f"{prefix}decoder_column_norm_{stat}": float(getattr(norms, stat)())
            for stat in ("mean", "min", "max")}


@torch.no_grad()
def validation_metrics(model, split: Split) -> dict[str, float]:
    """Energy of the amortised codes on ``split`` (``val_loss``, SPEC §2.6), plus PSNR, sparsity, mean code
    L1 norm, dead atoms (components never non-zero on ``split``) and the decoder column norms (mean, min,
    max of the atoms' L2 norms; ``D(e_i) − D(0)`` for a non-linear decoder).

    The energy is ``(1/n)[Σ_i (1/d)||y_i − D(E(y_i))||² + λ Σ_i ||E(y_i)||₁ + β Σ_batches hinge]``: the γ
    term vanishes because the codes *are* the encoder's. Without an encoder (DO) the codes come from FISTA
    started at ``fista_init`` (0; 0.1 in the ``do-nl`` presets). Leaves the model in eval mode (the
    trainer sets train mode at each epoch).
    """
    _check_split(split, "validation")
    model.eval()
    codes = model.encode(split.x)
    summary = _summary(model, split, codes)
    return {
        "val_loss": summary["energy"],
        "val_reconstruction": summary["reconstruction"],
        "val_l1": summary["l1"],
        "val_hinge": summary["hinge"],
        "val_psnr": summary["psnr"],
        "val_sparsity": summary["sparsity"],
        "val_code_l1": summary["code_l1"],
        # the collapse ablation (paper §4.4) follows these over epochs: without a guard the code L1 norm
        # falls while the decoder columns grow
        "val_dead_atoms": int(dead_atoms(codes)),
        **_column_norms(model, "val_"),
    }


@torch.no_grad()
def evaluate(model, data: DataSplits) -> dict:
    """Test-set metrics (SPEC §3) for ``metrics.json``.

    Keys: ``psnr`` (dB, pixel space) and ``sparsity`` (fraction of exactly-zero entries) of the encoder's
    codes (FISTA's for DO); ``psnr_fista`` / ``sparsity_fista`` of FISTA codes inferred as in training
    (from the encoder's prediction); ``code_l1`` / ``code_l1_fista`` (mean ||z||₁); ``energy`` (per sample,
    encoder codes); ``dead_atoms`` (components never non-zero on the test set, encoder codes);
    ``fista_iterations`` (mean per sample); ``min_code_std`` (smallest std over the test set of a code
    component; no key for a one-row test split, where it is undefined — NaN was written as null, like a
    missing value); ``decoder_column_norm_mean``/``_min``/``_max`` (of the atoms).
    """
    split = data.test
    _check_split(split, "test")
    model.eval()
    x = split.x.to(model.device, torch.float32)
    amortised = model.encode(x)
    fista_chunks, iterations = [], []
    for start in range(0, x.shape[0], model.config.batch_size):
        result = model.infer(x[start:start + model.config.batch_size])
        fista_chunks.append(result.codes)
        iterations.append(result.n_iter.float())
    fista_codes = torch.cat(fista_chunks)
    for name, codes in (("encoder", amortised), ("FISTA", fista_codes)):
        bad = int((~torch.isfinite(codes).all(dim=1)).sum())
        if bad:  # NaN metrics would be written as null into metrics.json, looking like a finished evaluation
            raise ValueError(
                f"cannot evaluate: the {name} codes are NaN/inf for {bad} of {x.shape[0]} test rows (largest "
                f"|x| in the test split: {float(x.abs().max()):.3g}); test rows far outside the training "
                f"data's range, or weights that overflow on them — check the test data")
    enc = _summary(model, split, amortised)
    fis = _summary(model, split, fista_codes)
    metrics = {
        "psnr": enc["psnr"],
        "sparsity": enc["sparsity"],
        "psnr_fista": fis["psnr"],
        "sparsity_fista": fis["sparsity"],
        "code_l1": enc["code_l1"],
        "code_l1_fista": fis["code_l1"],
        "energy": enc["energy"],
        "energy_fista": fis["energy"],
        "dead_atoms": int(dead_atoms(amortised)),
        "fista_iterations": float(torch.cat(iterations).mean()) if iterations else float("nan"),
        **_column_norms(model),
        "n_test": int(x.shape[0]),
        **({"min_code_std": float(amortised.std(dim=0).min())} if amortised.shape[0] > 1 else {}),
    }
    if x.shape[0] and not bool(amortised.any()):
        warnings.warn(collapse_message(model.config, "the test split"), UserWarning, stacklevel=3)
    # finite codes whose sums overflow float32 (test rows near its range, which FISTA solves rescaled) gave
    # inf, written as null into metrics.json beside a finished run's other numbers
    bad = [key for key, value in metrics.items() if isinstance(value, float) and not math.isfinite(value)]
    if bad:
        raise ValueError(
            f"cannot evaluate: {', '.join(bad)} are NaN/inf on the test split (largest |x|: "
            f"{float(x.abs().max()):.3g}): test rows far outside the training data's range, whose codes and "
            f"energies overflow float32 — check the test data")
    return metrics
