"""``evtimova-table1``: denoising MNIST with the encoder of a sparse autoencoder (Evtimova & LeCun 2022,
§4.3, Table 1 and Fig. 7; SPEC §3 "Denoising").

Protocol: train each model (preset at its λ, ``seeds``), add ``N(0, σ²)`` noise to the normalised test
rows (σ ∈ {1.0, 1.5}, noise seeded by the trial's seed), encode with the encoder only, decode, and report
the codes' sparsity and the PSNR (pixel space, against the clean image) of the clean reconstruction, of
the noisy input and of the reconstruction of the noisy input (:func:`sparsecoder.eval.denoise.denoise`).

The paper's Table 1 has SDL (λ = 5e-3) and VDL (λ = 2e-2) only; the NL forms are run here at the λ of
their high-sparsity points of Fig. 6 / SPEC §3 (SDL-NL 1e-2: 85.6 %, VDL-NL 2e-2: 92.2 %), the closest
in sparsity to the linear models' 89.7 % / 91.8 %; the paper has no denoising numbers for them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sparsecoder.reproduce import settings as checks
from sparsecoder.reproduce.base import Context, Report, aggregate, finished, fmt, markdown_table, save_png

__all__ = ["QUICK", "FULL", "PAPER", "LAMS", "check_settings", "sweeps", "run"]

# λ per preset (see the module docstring for the NL forms).
LAMS = {"sdl-mnist": 5e-3, "vdl-mnist": 2e-2, "sdl-nl-mnist": 1e-2, "vdl-nl-mnist": 2e-2}
# Paper, Table 1 (MNIST; mean over 5 seeds): sparsity = L0 fraction of zero code entries.
PAPER: dict[tuple[str, float], dict[str, float]] = {
    ("sdl-mnist", 1.0): {"sparsity_clean": 0.897, "psnr_clean": 17.3, "psnr_noisy": 10.2,
                         "sparsity_noisy": 0.873, "psnr_denoised": 16.9},
    ("vdl-mnist", 1.0): {"sparsity_clean": 0.918, "psnr_clean": 17.7, "psnr_noisy": 10.2,
                         "sparsity_noisy": 0.881, "psnr_denoised": 15.4},
    ("sdl-mnist", 1.5): {"sparsity_clean": 0.897, "psnr_clean": 17.3, "psnr_noisy": 6.7,
                         "sparsity_noisy": 0.846, "psnr_denoised": 15.7},
    ("vdl-mnist", 1.5): {"sparsity_clean": 0.918, "psnr_clean": 17.7, "psnr_noisy": 6.7,
                         "sparsity_noisy": 0.845, "psnr_denoised": 12.2},
    # ImageNet patches (l = 256), σ = 1.0 only: SDL λ = 2e-3, VDL λ = 5e-3
    ("sdl-patches", 1.0): {"sparsity_clean": 0.746, "psnr_clean": 26.9, "psnr_noisy": 20.0,
                           "sparsity_noisy": 0.727, "psnr_denoised": 25.6},
    ("vdl-patches", 1.0): {"sparsity_clean": 0.773, "psnr_clean": 27.3, "psnr_noisy": 20.0,
                           "sparsity_noisy": 0.735, "psnr_denoised": 25.2},
}
# What the paper trained on, per data of a preset (for the report's list of differences).
PAPER_DATA = {"mnist": ("55k / 5k / 10k MNIST", 200), "patches": ("200k / 20k / 20k ImageNet patches", 100)}
METRICS = ["sparsity_clean", "psnr_clean", "psnr_noisy", "sparsity_noisy", "psnr_denoised"]
NAMES = {"sdl-mnist": "SDL", "vdl-mnist": "VDL", "sdl-nl-mnist": "SDL-NL", "vdl-nl-mnist": "VDL-NL",
         "sdl-patches": "SDL patches", "vdl-patches": "VDL patches"}

FULL: dict[str, Any] = {
    "models": dict(LAMS),      # preset -> λ
    "sigmas": [1.0, 1.5],
    "seeds": [0, 1, 2, 3, 4],
    "epochs": None,            # None: each preset's epochs (200, the paper's)
    "limit": None,             # cap on the training samples; None: all
    "n_pictures": 8,           # digits per row of the clean / noisy / denoised picture
}
# digits per picture row at most: 100,000 wrote a 42,984-pixel-wide, 4 MB PNG of the 714 test digits
MAX_PICTURES = 64

# QUICK: one linear and one NL model (SDL, VDL-NL), one seed, one epoch on 200 digits.
QUICK: dict[str, Any] = {**FULL, "seeds": [0], "epochs": 1, "limit": 200, "n_pictures": 4,
                         "models": {p: LAMS[p] for p in ("sdl-mnist", "vdl-nl-mnist")}}


def check_settings(settings: dict[str, Any]) -> None:
    """Bad settings are an error naming the setting and the accepted values, before anything trains."""
    from sparsecoder.eval.denoise import MAX_SIGMA

    checks.preset_mapping(
        settings, "models", checks.is_lam, "a λ >= 0", "{sdl-mnist: 0.005}", model="sparse_autoencoder",
        encoder=True)
    checks.number_list(settings, "sigmas", maximum=MAX_SIGMA)
    checks.seed_list(settings)
    checks.epochs(settings, allow_none=True)
    checks.limit(settings)
    checks.positive_int(settings, "n_pictures", maximum=MAX_PICTURES)


def sweeps(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """One sweep per model (its preset at its λ), as :meth:`Context.train`'s arguments."""
    overrides = checks.training_overrides(settings)
    return [{"group": preset, "presets": preset, "grid": {"lam": [lam]}, "seeds": settings["seeds"],
             "overrides": overrides} for preset, lam in settings["models"].items()]


def _picture(examples: dict[str, dict[str, np.ndarray]], sigmas: list[float], path, shape):
    """Fig. 7-style mosaic: per model, rows clean / reconstruction, then noisy / denoised per σ."""
    from sparsecoder.viz import subplots

    keys = [("clean", "clean"), ("reconstruction", "reconstruction")]
    for sigma in sigmas:
        keys += [(f"noisy {sigma:g}", f"noisy σ={sigma:g}"), (f"denoised {sigma:g}", "denoised")]
    height, width = shape
    gap = 2
    rows, ticks, labels = [], [], []
    for name, images in examples.items():
        for key, label in keys:
            tiles = [np.clip(image.reshape(shape), 0, 1) for image in images[key]]
            line = np.concatenate([np.pad(t, ((0, 0), (0, gap)), constant_values=1) for t in tiles], axis=1)
            ticks.append(sum(r.shape[0] for r in rows) + height / 2)
            labels.append(f"{name}: {label}" if key == "clean" else label)
            rows.append(np.pad(line, ((0, gap), (0, 0)), constant_values=1))
        rows.append(np.ones((3 * gap, rows[-1].shape[1])))  # space between models
    mosaic = np.concatenate(rows)
    margin = max(1.8, 0.1 * max(map(len, labels)) + 0.3)  # room for the row labels (inches)
    fig, ax = subplots(figsize=(mosaic.shape[1] / 40 + margin, mosaic.shape[0] / 40), dpi=80)
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks(ticks)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    # the picture said neither what it shows nor at which noise levels
    ax.set_title(f"Evtimova & LeCun 2022, Table 1: denoising test digits at σ = "
                 f"{', '.join(f'{s:g}' for s in sigmas)}", fontsize=9, loc="right")
    fig.tight_layout(pad=0.2)
    return save_png(fig, path)


def run(ctx: Context) -> Report:
    """Train the models, denoise their test sets at every σ and write the table beside the paper's."""
    import torch

    from sparsecoder.eval.denoise import denoise
    from sparsecoder.train.run import load_run, load_test_split

    settings = ctx.settings
    check_settings(settings)
    per_seed, missing, examples, epochs_used, data_used, shape = [], [], {}, {}, {}, None
    for (preset, lam), sweep in zip(settings["models"].items(), sweeps(settings), strict=True):
        trials = ctx.train(**sweep)
        for trial in finished(trials, missing):
            config, model, _ = load_run(trial.run_dir)
            epochs_used[preset] = config.epochs
            data_used.setdefault(config.data, trial.metrics.get("data", config.data))
            splits = load_test_split(config)
            test, shape = splits.test, shape or splits.image_shape
            for sigma in settings["sigmas"]:
                with torch.no_grad():
                    result = denoise(model, test, sigma, seed=trial.seed)
                per_seed.append({"model": NAMES.get(preset, preset), "preset": preset, "lam": lam,
                                 "sigma": float(sigma), "seed": trial.seed, **result.metrics})
                if trial.seed == settings["seeds"][0]:
                    keep = slice(0, settings["n_pictures"])
                    images = examples.setdefault(NAMES.get(preset, preset), {})
                    images["clean"] = result.clean[keep].numpy()
                    images["reconstruction"] = result.reconstruction[keep].numpy()
                    images[f"noisy {sigma:g}"] = result.noisy[keep].numpy()
                    images[f"denoised {sigma:g}"] = result.denoised[keep].numpy()
    rows = aggregate(per_seed, ["model", "preset", "lam", "sigma"], METRICS)
    table = []
    for cell in rows:
        paper = PAPER.get((cell["preset"], cell["sigma"]), {})
        for metric in METRICS:
            cell[f"paper_{metric}"] = paper.get(metric)

        def both(metric, scale=1.0, digits=1, cell=cell, paper=paper):
            ours = fmt(cell[f"{metric}_mean"] * scale, cell[f"{metric}_std"] * scale, digits)
            theirs = paper.get(metric)
            return f"{ours} ({theirs * scale:.{digits}f})" if theirs is not None else f"{ours} (–)"

        table.append([cell["model"], f"{cell['lam']:g}", f"{cell['sigma']:g}", both("sparsity_clean", 100),
                      both("psnr_clean"), both("psnr_noisy", digits=2), both("sparsity_noisy", 100),
                      both("psnr_denoised")])
    body = ["## Denoising (Table 1)", "",
            "Ours: mean ± std over seeds (paper's value in brackets; – where the paper has none). Sparsity "
            "in % of zero code entries; PSNR in dB against the clean test image (pixel space).", "",
            markdown_table(["model", "λ", "σ", "sparsity E(y) %", "PSNR ỹ", "PSNR y_σ", "sparsity E(y_σ) %",
                            "PSNR ỹ_σ"], table)]
    if any(not (preset.endswith("-mnist") or (preset, 1.0) in PAPER) for preset in settings["models"]):
        body += ["", "The paper's Table 1 has SDL and VDL on MNIST (σ = 1.0, 1.5) and on ImageNet patches "
                 "(σ = 1.0) only."]
    figures = []
    if examples and shape is not None and len(shape) == 2:
        figures.append(_picture(examples, [float(s) for s in settings["sigmas"]], ctx.path("denoising.png"),
                                shape))
    if missing:
        body += ["", "Trials that did not finish (left out of the table): " + "; ".join(missing)]
    epochs_text = ", ".join(f"{NAMES.get(p, p)} {e}" for p, e in epochs_used.items())
    paper_data = {name: PAPER_DATA.get(name, (name, None)) for name in data_used}
    paper_epochs = ", ".join(f"{e} on {name}" for name, (_, e) in paper_data.items() if e is not None)
    differences = [
        *(f"data: {text}; the paper: {paper_data[name][0]}" for name, text in data_used.items()),
        f"epochs: {epochs_text or '–'} (paper: {paper_epochs or '–'}, early stopping on the validation "
        f"energy)",
        f"seeds: {len(settings['seeds'])} (paper: 5); the noise of a trial is seeded with its seed",
    ]
    if any(p in settings["models"] for p in ("sdl-nl-mnist", "vdl-nl-mnist")):
        differences.append("SDL-NL (λ=1e-2) and VDL-NL (λ=2e-2) rows are ours only: the paper's Table 1 has "
                           "SDL and VDL")
    if settings["limit"] is not None:
        differences.append(f"training split capped at {settings['limit']} samples")
    return Report(rows=rows, body="\n".join(body), differences=differences, figures=figures)
