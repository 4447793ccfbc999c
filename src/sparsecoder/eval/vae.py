"""Validation and test metrics of the VAEs (SPEC §4): negative ELBO, MSE over posterior samples,
active units, per-latent KL and decoder-column norms split by activity.

Registered with the ``vae`` family (:mod:`sparsecoder.models`): the trainer calls
:func:`validation_metrics` after every epoch and :func:`evaluate` on the best weights for
``metrics.json``. Both draw posterior samples from torch's global generator (the trainer seeds it).
"""

from __future__ import annotations

import torch

from sparsecoder.data.base import DataSplits, Split
from sparsecoder.eval.metrics import active_units, active_units_max
from sparsecoder.models.vae import check_likelihood_data

__all__ = ["validation_metrics", "evaluate", "check_test_split", "kl_sum"]


@torch.no_grad()
def validation_metrics(model, split: Split) -> dict[str, float]:
    """``val_loss`` = negative ELBO per sample (β = 1, one posterior sample), plus its two terms.

    ``val_loss = (1/n) Σ_i [−log p(x_i|z_i) + KL(q(z|x_i) ‖ p(z))]`` with ``z_i ~ q(z|x_i)``.

    Leaves the model in eval mode (the trainer sets train mode at each epoch).
    """
    if len(split) == 0:
        raise ValueError("the validation split is empty; check the data source / limit")
    model.eval()
    nll_sum = kl_sum = 0.0
    kl_samples = model.config.kl_samples if model.config.kl == "monte_carlo" else 1
    for x in model.chunks(model._check_rows(split.x), kl_samples):
        nll, kl = model.loss_terms(x)
        nll_sum += float(nll.sum())
        kl_sum += float(kl.sum())
    n = len(split)
    return {"val_loss": (nll_sum + kl_sum) / n, "val_reconstruction": nll_sum / n, "val_kl": kl_sum / n}


_KL_SAMPLE_CHUNK = 64


def check_test_split(split: Split) -> None:
    """Refuse a test split :func:`evaluate` cannot measure, before any work: an empty one, or a single row
    (``active_units`` is the std of the posterior means over the test rows, undefined for one row)."""
    if len(split) == 0:
        raise ValueError("the test split is empty; nothing to evaluate (check the data source and limit)")
    if len(split) == 1:
        raise ValueError(
            "the test split has 1 row, but the VAE's active units are the std of the posterior means over "
            "the test rows (active_threshold), which needs at least 2; evaluate on more test rows (a larger "
            "limit, or a data file with more rows)")


def kl_sum(model, q, n_samples: int) -> torch.Tensor:
    """Per-latent KL summed over the rows of ``q``, Monte-Carlo samples drawn 64 at a time (bounded memory:
    a ``(S, rows, l)`` tensor per chunk, not per ``kl_samples``); analytic KL in one call."""
    if model.config.kl == "analytic":
        return model.kl(q).double().sum(dim=0).cpu()
    total = torch.zeros(q.loc.shape[-1], dtype=torch.float64)
    done = 0
    while done < n_samples:
        size = min(_KL_SAMPLE_CHUNK, n_samples - done)
        total += model.kl(q, n_samples=size).double().sum(dim=0).cpu() * size
        done += size
    return total / n_samples


@torch.no_grad()
def evaluate(model, data: DataSplits) -> dict:
    """Test metrics (SPEC §4): MSE over posterior samples, active units, per-latent KL, norms, ELBO.

    ``mse`` / ``mse_std``: mean and std over ``eval_samples`` posterior samples of the test set's pixelwise
    MSE (model space) of the decoded mean (no ``mse_std`` for ``eval_samples=1``). ``active_units``: latents
    whose posterior mean has a std over the test set above ``active_threshold``; ``active_units_max``: latents
    whose |posterior mean| exceeds it for at least one test input (the std is the population std, ddof=0, as
    in :func:`~sparsecoder.eval.metrics.active_units`). ``kl_active_mean`` / ``decoder_norm_active`` (and
    ``_inactive``) average over those latents; a group without latents has no such keys. ``elbo`` (per sample,
    nats) averages the reconstruction term over the same samples.

    Refused before any work (``ValueError``): an empty or one-row test split, rows of another width than
    the model's, ``bce`` data outside [0, 1]; after the pass, a posterior or reconstructions that are
    NaN/inf on some test rows (no metric is returned NaN).
    """
    split = data.test
    check_test_split(split)
    width = int(split.x.shape[1]) if len(split.x.shape) == 2 else None
    if width != model.n_features:
        raise ValueError(f"the test split has rows of shape {tuple(split.x.shape)[1:]}, but the model takes "
                         f"{model.n_features} features per row; evaluate it on data like those it was "
                         f"trained on")
    model.eval()
    c = model.config
    x_all = model._check_rows(split.x, "the test split")
    # the split's own rows, not x_all (a converted copy on a GPU): building the model checked this tensor,
    # which is then not scanned again
    check_likelihood_data(c, split.x, "test split")
    sq_err = torch.zeros(c.eval_samples, dtype=torch.float64)
    nll_total = 0.0
    kl_latent = torch.zeros(c.n_latents, dtype=torch.float64)
    locs = []
    bad_rows = 0
    for x in model.chunks(x_all):
        q = model.posterior(x)
        bad_rows += int((~torch.isfinite(q.loc).all(dim=1) | ~torch.isfinite(q.log_scale).all(dim=1)).sum())
        locs.append(q.loc)
        kl_latent += kl_sum(model, q, max(c.kl_samples, 64))
        for s in range(c.eval_samples):
            output = model.decoder_output(q.rsample())
            mean = torch.sigmoid(output) if c.decoder == "pyle" else output
            sq_err[s] += float((x - mean).square().double().sum())
            nll_total += float(model.reconstruction_nll(x, output).double().sum())
    n = x_all.shape[0]
    mse_per_sample = sq_err / (n * model.n_features)
    totals = torch.cat([mse_per_sample, kl_latent, torch.tensor([nll_total], dtype=torch.float64)])
    if bad_rows or not bool(torch.isfinite(totals).all()):
        # NaN metrics would be written as null into metrics.json and look like a finished evaluation
        where = (f"the posterior is NaN/inf for {bad_rows} of {n} test rows" if bad_rows
                 else "the reconstructions of the test split are NaN/inf")
        raise ValueError(
            f"cannot evaluate the VAE: {where} (largest |x| in the test split: "
            f"{float(x_all.abs().max()):.4g}); the test data are probably on another scale than the "
            f"training data (check the data and its preprocessing), or the weights overflow")
    codes = torch.cat(locs).cpu()
    # the population std (ddof=0), as active_units counts them: the split below is of those latents
    active_mask = codes.std(dim=0, unbiased=False) > c.active_threshold
    norms = model.decoder_column_norms().cpu()
    kl_per_latent = kl_latent / n
    nll = nll_total / (n * c.eval_samples)

    # means over the active / inactive latents; a group without latents has no mean and no key (not NaN,
    # which metrics.json would hold as null)
    split_means = {}
    for group, mask in (("active", active_mask), ("inactive", ~active_mask)):
        if bool(mask.any()):
            split_means[f"kl_{group}_mean"] = float(kl_per_latent[mask].mean())
            split_means[f"decoder_norm_{group}"] = float(norms[mask].mean())
    # one posterior sample has no spread to measure: no mse_std key (a 0.0 read as an exact MSE, "± 0.0000"
    # in jiang-table1), as a group without latents has no mean
    spread = {"mse_std": float(mse_per_sample.std())} if c.eval_samples > 1 else {}
    return {
        "mse": float(mse_per_sample.mean()),
        **spread,
        "active_units": int(active_units(codes, c.active_threshold)),
        "active_units_max": int(active_units_max(codes, c.active_threshold)),
        "n_latents": c.n_latents,
        "elbo": float(-(nll + kl_per_latent.sum())),
        "kl": float(kl_per_latent.sum()),
        "kl_per_latent": [float(v) for v in kl_per_latent],
        **split_means,
        "decoder_norms": [float(v) for v in norms],
        "n_test": int(n),
    }
