"""``evtimova-fig6``: PSNR vs sparsity of the sparse autoencoders over the λ grid (Evtimova & LeCun 2022,
Fig. 6, "regret curves"; SPEC §3).

Each variant (SDL, SDL-NL, VDL, VDL-NL, WDL, DO; presets ``<variant>-mnist``, or ``<variant>-patches``
with ``data: patches``) is trained at every λ of its preset's ``lam_grid`` and every seed; the test-set
sparsity (percentage of exactly-zero code entries, encoder codes — FISTA codes for DO) and PSNR (pixel
space) of the best-validation weights come from ``metrics.json`` (:func:`sparsecoder.eval.sae.evaluate`).
The table gives mean ± std over seeds per (variant, λ) beside the points the paper reports in its figure
captions; the figure draws one curve per variant with error bars on both axes and the paper's points as
hollow markers.
"""

from __future__ import annotations

import math
from typing import Any

from sparsecoder.reproduce import settings as checks
from sparsecoder.reproduce.base import Context, Report, aggregate, finished, fmt, markdown_table, save_png

__all__ = ["QUICK", "FULL", "PAPER_POINTS", "VARIANTS", "check_settings", "paper_gamma",
           "training_plan", "sweeps", "run"]

# The variants of Fig. 6 (a): WDL-NL and DO-NL are in the paper's panel too and may be asked for.
VARIANTS = ["sdl", "sdl-nl", "vdl", "vdl-nl", "wdl", "do"]
KNOWN_VARIANTS = [*VARIANTS, "wdl-nl", "do-nl"]
DATA = {"mnist": {"paper_epochs": 200, "paper_split": "55k / 5k / 10k (train / validation / test)"},
        "patches": {"paper_epochs": 100, "paper_split": "200k / 20k / 20k ImageNet patches"}}

# (sparsity %, PSNR dB) the paper reports at single λ values, SPEC §3 "Paper numbers": MNIST from the
# captions of Fig. 2 (SDL, VDL), Fig. 4 (SDL-NL, VDL-NL) and Fig. 12 (WDL, DO); ImageNet patches from
# the captions of Fig. 3 / 13 (SDL, VDL) and Fig. 5 (SDL-NL, VDL-NL). The curves themselves are only
# drawn in Fig. 6, without numbers.
PAPER_POINTS: dict[str, dict[str, dict[float, tuple[float, float]]]] = {
    "mnist": {
        "sdl": {1e-3: (63.0, 21.1), 5e-3: (83.0, 18.6)},
        "vdl": {5e-3: (69.0, 20.7), 2e-2: (91.8, 17.7)},
        "sdl-nl": {3e-3: (69.2, 20.9), 1e-2: (85.6, 18.4)},
        "vdl-nl": {3e-3: (58.8, 22.7), 2e-2: (92.2, 18.3)},
        "wdl": {1e-3: (67.7, 20.8), 5e-3: (86.7, 17.6)},
        "do": {1e-3: (64.9, 21.1), 5e-3: (89.5, 17.6)},
    },
    "patches": {
        "sdl": {2e-3: (74.6, 26.9)},
        "vdl": {5e-3: (77.3, 27.3)},
        "sdl-nl": {3e-3: (69.8, 27.1)},
        "vdl-nl": {3e-3: (67.6, 28.4)},
    },
}

# The paper's protocol: every variant, each preset's λ grid, 5 seeds, the presets' epochs (200 MNIST,
# 100 patches), all the data.
FULL: dict[str, Any] = {
    "data": "mnist",          # mnist | patches (the -mnist or -patches presets)
    "variants": list(VARIANTS),
    "lams": "grid",           # grid (each preset's lam_grid) | paper (the λ with a paper point) | [λ, ...]
    "seeds": [0, 1, 2, 3, 4],
    "epochs": None,           # None: each preset's epochs
    "limit": None,            # cap on the training samples; None: all
}
# The same protocol, tiny: 2 variants at their 2 paper λ, 1 seed, 1 epoch, 300 training samples.
QUICK: dict[str, Any] = {**FULL, "variants": ["sdl", "vdl"], "lams": "paper", "seeds": [0], "epochs": 1,
                         "limit": 300}


def check_settings(settings: dict[str, Any]) -> None:
    """Bad settings are an error naming the setting and the accepted values, before anything trains."""
    checks.one_of(settings, "data", DATA)
    checks.names(settings, "variants", KNOWN_VARIANTS)
    if settings["lams"] not in ("grid", "paper"):
        try:
            checks.number_list(settings, "lams")
        except ValueError:
            raise ValueError(f"--set lams={settings['lams']!r}: expected grid (each preset's lam_grid), "
                             f"paper (the λ the paper reports a point for) or a list of λ >= 0, each once "
                             f"(e.g. "
                             f"lams=[0.001,0.005])") from None
    checks.seed_list(settings)
    checks.epochs(settings, allow_none=True)
    checks.limit(settings)


def _lams(settings: dict[str, Any], variant: str, preset: str) -> list[float]:
    """The λ values of ``variant``: its preset's grid, the λ of the paper's points, or the given list."""
    from sparsecoder.config import load_preset

    lams = settings["lams"]
    config = load_preset(preset)[1]
    if lams == "grid":
        return [float(v) for v in config.lam_grid]
    if lams == "paper":
        points = PAPER_POINTS[settings["data"]].get(variant)
        return sorted(points) if points else [float(config.lam)]
    return [float(v) for v in lams]


def paper_gamma(data: str, variant: str, lam: float, preset=None) -> float | None:
    """Table 3's γ for ``variant`` at ``lam`` where it differs from the preset's ``gamma`` (SPEC §2.7: the
    ImageNet-patch VDL-NL row uses γ = 40 for λ = 1e-2 and 2e-2), else None. Read from the preset's
    ``by_lam`` settings, which a plain ``train``/``sweep`` at that λ applies too; ``preset``: the preset
    ``<variant>-<data>`` already read (:func:`training_plan` reads it once per variant, not once per λ:
    ``--set lams=[...]`` with 20,000 values spent minutes parsing its file before any check)."""
    from sparsecoder.config import find_preset

    preset = preset or find_preset(f"{variant}-{data}")
    gamma = preset.lam_settings(lam).get("gamma")
    return None if gamma is None or float(gamma) == float(preset.config.get("gamma", gamma)) else float(gamma)


def training_plan(settings: dict[str, Any]) -> list[tuple[str, str, str, list[float], dict[str, Any]]]:
    """``(variant, preset, group, λ values, overrides)`` per sweep to train: one per variant, and one more
    for the λ whose Table-3 γ is not the preset's (:func:`paper_gamma`; group ``<preset>-gamma<γ>``, trained
    with ``gamma`` set)."""
    from sparsecoder.config import find_preset

    data = settings["data"]
    overrides = checks.training_overrides(settings)
    plan = []
    for variant in settings["variants"]:
        preset = f"{variant}-{data}"
        found = find_preset(preset)
        by_gamma: dict[float | None, list[float]] = {}
        for lam in _lams(settings, variant, preset):
            by_gamma.setdefault(paper_gamma(data, variant, lam, found), []).append(lam)
        for gamma, lams in by_gamma.items():
            if gamma is None:
                plan.append((variant, preset, preset, lams, overrides))
            else:
                group = f"{preset}-gamma{gamma:g}"
                plan.append((variant, preset, group, lams, {**overrides, "gamma": gamma}))
    return plan


def sweeps(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The sweeps of :func:`training_plan` as :meth:`Context.train`'s arguments."""
    return [{"group": group, "presets": preset, "grid": {"lam": lams}, "seeds": settings["seeds"],
             "overrides": overrides} for _, preset, group, lams, overrides in training_plan(settings)]


def _paper_point(data: str, variant: str, lam: float) -> tuple[float, float] | None:
    for paper_lam, point in PAPER_POINTS[data].get(variant, {}).items():
        if math.isclose(paper_lam, lam, rel_tol=1e-9):
            return point
    return None


def _plot(ctx: Context, cells: list[dict[str, Any]], data: str, variants: list[str]):
    import matplotlib

    from sparsecoder.viz import subplots

    fig, ax = subplots(figsize=(7, 5), dpi=100)
    colours = matplotlib.colormaps.get_cmap("tab10")
    for index, variant in enumerate(variants):
        colour = colours(index % 10)
        mine = sorted((c for c in cells if c["variant"] == variant and math.isfinite(c["sparsity_mean"])),
                      key=lambda c: c["sparsity_mean"])
        style = "-" if variant.endswith("-nl") else "--"  # the paper: dashed linear, solid non-linear
        if mine:
            ax.errorbar([c["sparsity_mean"] for c in mine], [c["psnr_mean"] for c in mine],
                        xerr=[c["sparsity_std"] for c in mine], yerr=[c["psnr_std"] for c in mine],
                        fmt="o" + style, color=colour, markersize=4, capsize=2, label=variant.upper())
        paper = PAPER_POINTS[data].get(variant, {})
        if paper:
            ax.scatter([p[0] for p in paper.values()], [p[1] for p in paper.values()], s=70,
                       facecolors="none", edgecolors=[colour], linewidths=1.5)
    ax.scatter([], [], s=70, facecolors="none", edgecolors="k", label="paper (figure captions)")
    ax.set_xlabel("sparsity: zero code entries (%), test set")
    ax.set_ylabel("PSNR (dB), test set")
    n_seeds = max(c["n_seeds"] for c in cells)
    spread = f"mean ± std over {n_seeds} seeds" if n_seeds > 1 else "one seed: no error bars"
    ax.set_title(f"Evtimova & LeCun 2022, Fig. 6 ({data}): PSNR vs sparsity, {spread}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, ctx.path(f"fig6_{data}.png"))


def run(ctx: Context) -> Report:
    """Train ``variants × λ × seeds`` (one sweep per preset) and tabulate / plot sparsity and PSNR."""
    settings = ctx.settings
    check_settings(settings)  # also checked by reproduce() before the folder is written
    data = settings["data"]
    plan_sweeps = training_plan(settings)  # errors before training
    plan = list(dict.fromkeys((variant, preset) for variant, preset, *_ in plan_sweeps))
    lams = {variant: _lams(settings, variant, preset) for variant, preset in plan}
    gammas = sorted({(v, lam, o["gamma"]) for v, _, _, values, o in plan_sweeps if "gamma" in o
                     for lam in values})

    per_seed: list[dict[str, Any]] = []
    missing: list[str] = []
    example: dict[str, Any] = {}
    for (variant, *_), sweep in zip(plan_sweeps, sweeps(settings), strict=True):
        trials = ctx.train(**sweep)
        for trial in finished(trials, missing):
            example = example or trial.metrics
            per_seed.append({"variant": variant, "lam": float(trial.point["lam"]), "seed": trial.seed,
                             "sparsity": 100.0 * trial.metrics["sparsity"], "psnr": trial.metrics["psnr"],
                             "epochs": trial.metrics.get("epochs")})

    cells = aggregate(per_seed, ["variant", "lam"], ["sparsity", "psnr"])
    rows, table = [], []
    for cell in cells:
        paper = _paper_point(data, cell["variant"], cell["lam"])
        row = {"data": data, **cell, "paper_sparsity": paper[0] if paper else None,
               "paper_psnr": paper[1] if paper else None}
        rows.append(row)
        table.append([cell["variant"].upper(), f"{cell['lam']:g}",
                      fmt(cell["sparsity_mean"], cell["sparsity_std"], 1),
                      f"{paper[0]:.1f}" if paper else "–",
                      fmt(cell["psnr_mean"], cell["psnr_std"], 2),
                      f"{paper[1]:.1f}" if paper else "–", cell["n_seeds"]])
    figures = [_plot(ctx, cells, data, settings["variants"])] if cells else []

    body = ["## PSNR vs sparsity per (variant, λ)", "",
            "Test set, best-validation-energy weights; sparsity = zero entries of the encoder's codes "
            "(FISTA's for DO); mean ± std (ddof=1) over seeds. Paper: the points of SPEC §3 (figure "
            "captions; Fig. 6 itself gives no numbers).", "",
            markdown_table(["variant", "λ", "sparsity % (ours)", "sparsity % (paper)", "PSNR dB (ours)",
                            "PSNR dB (paper)", "seeds"], table)]
    if missing:
        body += ["Trials that did not finish (not in the table):", ""] + [f"* {m}" for m in missing]
    epochs = sorted({r["epochs"] for r in per_seed if r["epochs"] is not None})
    info = DATA[data]
    differences = [
        f"data: {example.get('data', data)}; the paper: {info['paper_split']}" if example else
        f"data: {data} (no trial finished)",
        f"epochs: {', '.join(map(str, epochs)) or '–'} (paper: {info['paper_epochs']})",
        f"seeds: {len(settings['seeds'])} (paper: 5)",
        "λ: " + ("each preset's full lam_grid (as the paper)" if settings["lams"] == "grid" else
                 "; ".join(f"{v.upper()} {', '.join(f'{x:g}' for x in lams[v])}" for v, _ in plan)
                 + " (paper: each preset's lam_grid, SPEC §2.7)"),
        f"variants: {', '.join(v.upper() for v in settings['variants'])} (paper Fig. 6: "
        + ("SDL, SDL-NL, VDL, VDL-NL, WDL, WDL-NL, DO, DO-NL)" if data == "mnist" else
           "SDL, SDL-NL, VDL, VDL-NL)"),
    ]
    if settings["limit"] is not None:
        differences.append(f"training samples capped at {settings['limit']} (limit)")
    if gammas:
        body += ["", "γ as in Table 3 where it depends on λ (not the preset's): " + "; ".join(
            f"{v.upper()} λ={lam:g}: γ={g:g}" for v, lam, g in gammas), ""]
    return Report(rows=rows, body="\n".join(body), differences=differences, figures=figures)
