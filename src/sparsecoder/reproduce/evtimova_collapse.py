"""``evtimova-collapse``: the ablation of Evtimova & LeCun 2022, §4.4 — sparse coding without any collapse
guard vs the variance hinge (VDL) vs unit-norm decoder columns (SDL).

Without a guard nothing stops the decoder's columns from growing by a factor ``c`` while the codes shrink
by ``1/c``: the reconstruction is unchanged and the λ‖z‖₁ term of the energy falls, so training drives
the code L1 norm towards zero ("collapse in the l1 norms of the codes", paper §1 and §4.4). The paper states
that it observes the collapse for linear and non-linear decoders but gives no numbers; this experiment
measures it. Every epoch the trainer logs, on the validation split (:func:`sparsecoder.eval.sae.
validation_metrics`), the mean L1 norm of the encoder's codes, the decoder column norms (mean, min, max),
the dead atoms (code components never non-zero) and PSNR; they are read back from each run's
``history.csv``, averaged over seeds, plotted over epochs and summarised in a final table.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sparsecoder.reproduce import settings as checks
from sparsecoder.reproduce.base import Context, Report, aggregate, finished, fmt, markdown_table, save_png

__all__ = ["QUICK", "FULL", "VARIANTS", "QUANTITIES", "collapse_verdict", "final_cells", "fall_text",
           "collapsed_text", "read_history", "check_settings", "sweeps", "run"]

# variant -> (preset, what guards against collapse). "none" is VDL's configuration with β = 0.
VARIANTS: dict[str, tuple[str, str]] = {
    "none": ("none-mnist", "no guard (VDL's settings, β = 0)"),
    "vdl": ("vdl-mnist", "variance hinge on the codes"),
    "sdl": ("sdl-mnist", "unit-norm decoder columns"),
    "none-nl": ("none-nl-mnist", "no guard (VDL-NL's settings, β = 0)"),
    "vdl-nl": ("vdl-nl-mnist", "variance hinge on the codes"),
    "sdl-nl": ("sdl-nl-mnist", "unit-norm columns of both decoder layers"),
}
# Per-epoch quantities: history.csv column -> (short name, label).
QUANTITIES: dict[str, tuple[str, str]] = {
    "val_code_l1": ("code_l1", "code L1 norm (mean ‖E(y)‖₁)"),
    "val_decoder_column_norm_mean": ("column_norm_mean", "decoder column L2 norm (mean)"),
    "val_decoder_column_norm_min": ("column_norm_min", "decoder column L2 norm (min)"),
    "val_decoder_column_norm_max": ("column_norm_max", "decoder column L2 norm (max)"),
    "val_dead_atoms": ("dead_atoms", "dead atoms (never non-zero)"),
    "val_psnr": ("psnr", "PSNR (dB)"),
    "val_sparsity": ("sparsity", "sparsity (fraction of zeros)"),
}
# What the paper reports (§4.4, no numbers): collapse without a guard, none with VDL or SDL.
PAPER_COLLAPSE = {"none": "collapses", "none-nl": "collapses", "vdl": "no collapse", "vdl-nl": "no collapse",
                  "sdl": "no collapse", "sdl-nl": "no collapse"}
COLLAPSE_FACTOR = 10.0  # the code L1 norm must fall at least this much below its peak to count as collapse

# The paper's protocol (its MNIST runs: 200 epochs, 5 seeds), each preset's own λ.
FULL: dict[str, Any] = {
    "variants": ["none", "vdl", "sdl"],
    "lam": None,        # None: each preset's λ (none / VDL 0.02, SDL 0.005); a number: that λ for all
    "epochs": 200,
    "seeds": [0, 1, 2, 3, 4],
    "limit": None,      # cap on the training samples; None: all
}
QUICK: dict[str, Any] = {**FULL, "epochs": 3, "seeds": [0], "limit": 300}


def check_settings(settings: dict[str, Any]) -> None:
    """Bad settings are an error naming the setting and the accepted values, before anything trains."""
    checks.names(settings, "variants", VARIANTS)
    checks.number(settings, "lam", allow_none=True)
    checks.seed_list(settings)
    checks.epochs(settings)
    checks.limit(settings)


def sweeps(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """One sweep per variant (its preset, at ``lam`` where set), as :meth:`Context.train`'s arguments."""
    grid = {"lam": [float(settings["lam"])]} if settings["lam"] is not None else None
    return [{"group": VARIANTS[variant][0], "presets": VARIANTS[variant][0], "grid": grid,
             "seeds": settings["seeds"], "overrides": checks.training_overrides(settings)}
            for variant in settings["variants"]]


def collapse_verdict(code_l1: list[float], factor: float = COLLAPSE_FACTOR) -> dict[str, float]:
    """Whether a run's codes collapsed: after its peak, the code L1 norm fell at least ``factor`` times.

    Parameters
    ----------
    code_l1 : list of float
        The mean code L1 norm per epoch, in order.
    factor : float
        How far below the peak the norm must fall (10: one order of magnitude).

    Returns
    -------
    dict
        ``collapsed`` (1.0 or 0.0), ``l1_peak``, ``l1_min`` (the smallest value at or after the peak) and
        ``l1_min_epoch`` (1-based), ``l1_fall = l1_peak / l1_min`` (inf when the minimum is 0) and
        ``l1_last``. A norm that is 0 at every epoch (``l1_peak`` 0: the encoder never gave a non-zero
        code) had no scale to fall from: ``collapsed`` and ``l1_fall`` are NaN (not measured), not a
        collapse "→ 0".
    """
    if not code_l1:
        raise ValueError("collapse_verdict needs the code L1 norm of at least one epoch")
    values = np.asarray(code_l1, dtype=float)
    if not values.any():
        return {"collapsed": math.nan, "l1_peak": 0.0, "l1_min": 0.0, "l1_min_epoch": 1.0,
                "l1_fall": math.nan, "l1_last": 0.0}
    peak_at = int(np.argmax(values))
    min_at = peak_at + int(np.argmin(values[peak_at:]))
    peak, low = float(values[peak_at]), float(values[min_at])
    fall = math.inf if low == 0 else peak / low
    return {"collapsed": float(fall >= factor), "l1_peak": peak, "l1_min": low,
            "l1_min_epoch": float(min_at + 1), "l1_fall": fall, "l1_last": float(values[-1])}


FINAL_METRICS = ["collapsed", "l1_peak", "l1_min", "l1_min_epoch", "l1_fall", "l1_last"]


def final_cells(per_seed: list[dict[str, Any]], metrics: list[str]) -> list[dict[str, Any]]:
    """:func:`aggregate` of the per-seed verdicts by variant, with the fall of the code L1 norm over every
    seed: ``l1_zero_seeds`` counts the seeds whose norm fell to exactly 0 (an infinite fall), which make
    ``l1_fall_mean`` inf (std NaN), and ``l1_fall_finite_mean`` is the mean over the other seeds.
    :func:`aggregate` leaves non-finite values out, as the other experiments' averages want: the table said
    "nan×" for one seed, and for several the mean of the others, as if the collapsed seed had not run.
    ``l1_zero_start_seeds`` counts the seeds whose norm was 0 at every epoch (no scale to fall from; their
    ``collapsed`` and fall are NaN, so ``collapsed_mean`` is over the other seeds, NaN if none)."""
    cells = aggregate(per_seed, ["variant"], metrics)
    for cell in cells:
        mine = [r for r in per_seed if r["variant"] == cell["variant"]]
        zero = sum(math.isinf(float(r["l1_fall"])) for r in mine)
        cell["l1_zero_seeds"] = zero
        cell["l1_zero_start_seeds"] = sum(float(r["l1_peak"]) == 0 for r in mine)
        cell["l1_fall_finite_mean"] = cell["l1_fall_mean"]
        if zero:
            cell["l1_fall_mean"], cell["l1_fall_std"] = math.inf, math.nan
    return cells


def fall_text(cell: dict[str, Any]) -> str:
    """The fall column of a :func:`final_cells` cell: ``12.5×``, ``→ 0`` (every seed's norm fell to 0) or
    ``→ 0 in 1 of 3 seeds (the others 12.5×)``; ``0 from the start`` for the seeds whose norm was 0 at
    every epoch (``0 from the start in 1 of 3 seeds; the others 12.5×``)."""
    start, n = cell.get("l1_zero_start_seeds", 0), cell["n_seeds"]
    if start == n:
        return "0 from the start" + (f" (all {n} seeds)" if n > 1 else "")
    if start:
        rest = fall_text({**cell, "l1_zero_start_seeds": 0, "n_seeds": n - start})
        return f"0 from the start in {start} of {n} seeds; the other {n - start}: {rest}"
    zero = cell["l1_zero_seeds"]
    if not zero:
        return f"{cell['l1_fall_mean']:.3g}×"
    if zero == n:
        return "→ 0" + (f" (all {n} seeds)" if n > 1 else "")
    return f"→ 0 in {zero} of {n} seeds (the others {cell['l1_fall_finite_mean']:.3g}×)"


def collapsed_text(cell: dict[str, Any]) -> str:
    """The collapsed column of a :func:`final_cells` cell: ``yes``, ``no`` or ``50% of seeds`` over the
    seeds whose codes had a scale; the seeds whose norm was 0 from the start are named, not counted."""
    start, n = cell.get("l1_zero_start_seeds", 0), cell["n_seeds"]
    if start == n:
        return "not measured: code L1 norm 0 from the start"
    collapsed = cell["collapsed_mean"]
    text = "yes" if collapsed == 1 else "no" if collapsed == 0 else f"{collapsed:.0%} of seeds"
    return text + (f" ({start} of {n} seeds 0 from the start, not counted)" if start else "")


def read_history(run_dir) -> list[dict[str, float]]:
    """The per-epoch rows of a finished trial's ``history.csv``; one that is empty, not numbers, lacks a
    column of :data:`QUANTITIES` in a row, or skips an epoch is a ``ValueError`` naming the file and the fix
    (an empty or truncated file gave "IndexError: list index out of range (unexpected ...)")."""
    from sparsecoder.train.logging import read_history_rows

    path = run_dir / "history.csv"
    fix = (f"the experiment reads every epoch from it: move the trial's folder {run_dir} out of the "
           f"experiment and rerun (the trial trains again)")
    try:
        history = read_history_rows(path)
    except ValueError as err:
        raise ValueError(f"{path} is damaged ({err}); {fix}") from None
    if not history:
        raise ValueError(f"{path} holds no epoch; {fix}")
    for index, row in enumerate(history, 1):
        absent = [c for c in ("epoch", *QUANTITIES) if c not in row]
        if absent:
            raise ValueError(f"{path} has no {', '.join(absent)} in row {index} (written by an older "
                             f"version, or damaged); {fix}")
        if row["epoch"] != index:
            raise ValueError(f"{path} gives epoch {row['epoch']} in row {index}, not {index}; {fix}")
    return history


def _plot(ctx: Context, epochs_rows: list[dict[str, Any]], variants: list[str]):
    import matplotlib
    from matplotlib.ticker import MaxNLocator

    from sparsecoder.viz import epoch_axis, subplots, value_axis

    panels = [("code_l1", "code L1 norm ‖E(y)‖₁ (mean)", True),
              ("column_norm", "decoder column L2 norm: mean, min–max band", True),
              ("dead_atoms", "dead atoms (of the code components)", False),
              ("psnr", "PSNR (dB)", False)]
    fig, axes = subplots(2, 2, figsize=(10, 7), dpi=90)
    colours = matplotlib.colormaps.get_cmap("tab10")
    for index, variant in enumerate(variants):
        colour = colours(index % 10)
        mine = [r for r in epochs_rows if r["variant"] == variant]
        epochs = [r["epoch"] for r in mine]
        for ax, (key, title, _) in zip(axes.flat, panels, strict=True):
            if key == "column_norm":
                ax.plot(epochs, [r["column_norm_mean_mean"] for r in mine], color=colour,
                        label=variant.upper())
                ax.fill_between(epochs, [r["column_norm_min_mean"] for r in mine],
                                [r["column_norm_max_mean"] for r in mine], color=colour, alpha=0.2)
            else:
                # a zero (collapsed) norm makes the axis linear (value_axis), where it is drawn
                ax.plot(epochs, [r[f"{key}_mean"] for r in mine], color=colour, label=variant.upper())
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
    for ax, (key, _, log) in zip(axes.flat, panels, strict=True):  # over every variant's values
        keys = ("column_norm_min_mean", "column_norm_max_mean") if key == "column_norm" else (f"{key}_mean",)
        value_axis(ax, [r[k] for r in epochs_rows for k in keys], log=log)
        epoch_axis(ax, [r["epoch"] for r in epochs_rows])
    axes.flat[2].yaxis.set_major_locator(MaxNLocator(integer=True))  # dead atoms: a count
    axes.flat[0].legend(fontsize=8)
    fig.suptitle("Evtimova & LeCun 2022, §4.4: collapse without a guard (validation split, mean over seeds)",
                 fontsize=11)
    fig.tight_layout()
    return save_png(fig, ctx.path("collapse.png"))


def run(ctx: Context) -> Report:
    """Train every variant for ``epochs`` epochs and seeds, then tabulate and plot the per-epoch metrics."""
    from sparsecoder.config import load_config

    settings = ctx.settings
    check_settings(settings)  # also checked by reproduce() before the folder is written

    per_epoch: list[dict[str, Any]] = []
    per_seed_final: list[dict[str, Any]] = []
    missing: list[str] = []
    example: dict[str, Any] = {}
    lams: dict[str, float] = {}
    n_components = 0
    for variant, sweep in zip(settings["variants"], sweeps(settings), strict=True):
        trials = ctx.train(**sweep)
        for trial in finished(trials, missing):
            example = example or trial.metrics
            history = read_history(trial.run_dir)
            for row in history:
                per_epoch.append({"variant": variant, "epoch": int(row["epoch"]), "seed": trial.seed,
                                  **{short: row[column] for column, (short, _) in QUANTITIES.items()}})
            config = load_config(trial.run_dir / "config.yaml")[1]
            lams[variant], n_components = float(config.lam), int(config.n_components)
            first, last = history[0], history[-1]
            per_seed_final.append({
                "variant": variant, "seed": trial.seed,
                **collapse_verdict([r["val_code_l1"] for r in history]),
                **{f"{short}_first": first[column] for column, (short, _) in QUANTITIES.items()},
                **{short: last[column] for column, (short, _) in QUANTITIES.items()},
                "test_psnr": trial.metrics["psnr"], "test_sparsity": trial.metrics["sparsity"],
                "test_code_l1": trial.metrics["code_l1"], "best_epoch": trial.metrics["best_epoch"]})

    shorts = [short for short, _ in QUANTITIES.values()]
    epochs_rows = [{"stage": "epoch", **r} for r in aggregate(per_epoch, ["variant", "epoch"], shorts)]
    finals = final_cells(per_seed_final, [*FINAL_METRICS, *[f"{short}_first" for short in shorts], *shorts,
                                          "test_psnr", "test_sparsity", "test_code_l1", "best_epoch"])
    rows = list(epochs_rows)
    table = []
    for cell in finals:
        variant = cell["variant"]
        rows.append({"stage": "final", "lam": lams.get(variant), **cell, "paper": PAPER_COLLAPSE[variant]})

        def norms(suffix: str, cell=cell) -> str:
            mean, low, high = (cell[f"column_norm_{k}{suffix}_mean"] for k in ("mean", "min", "max"))
            return f"{mean:.2f} ({low:.2f}–{high:.2f})"

        table.append([
            variant.upper(), VARIANTS[variant][1], f"{lams.get(variant, math.nan):g}",
            f"{cell['l1_peak_mean']:.3g} → {cell['l1_min_mean']:.3g} (epoch {cell['l1_min_epoch_mean']:.0f}) "
            f"→ {cell['l1_last_mean']:.3g}",
            fall_text(cell),
            f"{norms('_first')} → {norms('')}",
            f"{cell['dead_atoms_first_mean']:.0f} → {cell['dead_atoms_mean']:.0f}",
            f"{cell['psnr_first_mean']:.2f} → {cell['psnr_mean']:.2f}",
            fmt(100 * cell["test_sparsity_mean"], 100 * cell["test_sparsity_std"], 1),
            collapsed_text(cell),
            PAPER_COLLAPSE[variant]])
    figures = [_plot(ctx, epochs_rows, settings["variants"])] if epochs_rows else []
    n_epochs = settings["epochs"]
    body = ["## Over the epochs", "",
            f"Validation split ({n_epochs} epochs), mean over {len(settings['seeds'])} seed(s). Code L1: the "
            "mean ‖E(y)‖₁ of the encoder's codes at its peak → its minimum after the peak (epoch) → the last "
            "epoch; fall = peak / minimum (→ 0: the minimum is 0, an unbounded fall; 0 from the start: the "
            "norm was 0 at every epoch, no scale to fall from, so not counted as a collapse). Column "
            "norms: the decoder atoms' L2 norms, mean (min–max), epoch 1 → last. Dead atoms: code "
            "components never non-zero on the validation split, of "
            f"{n_components}. Test sparsity: of the "
            "best-validation-energy weights (± std over seeds). Collapsed: the code L1 norm fell at least "
            f"{COLLAPSE_FACTOR:g}× below its peak. The paper (§4.4) reports the collapse without numbers.",
            "",
            markdown_table(["variant", "guard", "λ", "code L1: peak → min → last", "fall",
                            "column norm: epoch 1 → last", "dead atoms", "PSNR dB", "test sparsity %",
                            "collapsed", "paper"], table),
            "Per-epoch values (mean and std over seeds) are in results.csv (rows with stage=epoch)."]
    if missing:
        body += ["", "Trials that did not finish (not in the table):", ""] + [f"* {m}" for m in missing]
    differences = [
        (f"data: {example['data']}; the paper: 55k / 5k / 10k MNIST" if example else "data: MNIST"),
        f"epochs: {n_epochs} (the paper's MNIST runs: 200)",
        f"seeds: {len(settings['seeds'])} (paper: 5 for its figures; §4.4 gives no protocol or numbers)",
        "λ: " + (f"{settings['lam']:g} for every variant" if settings["lam"] is not None else
                 "each preset's λ (" + ", ".join(f"{v.upper()} {lam:g}" for v, lam in lams.items()) + ")"),
    ]
    if settings["limit"] is not None:
        differences.append(f"training samples capped at {settings['limit']} (limit)")
    return Report(rows=rows, body="\n".join(body), differences=differences, figures=figures)
