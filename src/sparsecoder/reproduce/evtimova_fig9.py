"""``evtimova-fig9``: MNIST classification in the low-data regime with linear probes on frozen sparse codes
(Evtimova & LeCun 2022, §4.5 and Fig. 9; SPEC §3 "Low-data classification").

Protocol: train the autoencoders unsupervised (SDL, SDL-NL, VDL, VDL-NL at each λ of ``lams``, ``seeds``);
for every number ``k`` of labelled samples per class (1, 2, 5, 10, 20, 50, 100, all) and every probe seed
(which draws the ``k`` samples per class from the training split), train a linear classifier on the
frozen encoder codes (Adam 1e-3, 100 epochs) and keep the epoch with the best validation accuracy
(:func:`sparsecoder.eval.probe.train_probe`). As in the paper, for every (model, k) the λ whose probe
has the best validation accuracy is the one reported. Baselines trained from scratch on the same samples:
a linear classifier on the raw (normalised) pixels, and a randomly initialised LISTA encoder (Algorithm 1,
l = 128, L = 3) + linear layer trained end to end. Reported: top-1 and top-3 test error (%), mean ± std
over encoder seeds × probe seeds.

The paper gives Fig. 9 as a plot only (no numbers in the text); its claims are checked instead:
pre-trained features beat the raw-pixel baselines up to 100 samples per class (except DO, DO-NL and SDL
at 1–2), and VDL-NL is best with up to 10 samples per class.
"""

from __future__ import annotations

from typing import Any

from sparsecoder.config import MAX_BATCH_SIZE
from sparsecoder.reproduce import settings as checks
from sparsecoder.reproduce.base import Context, Report, aggregate, finished, fmt, markdown_table, save_png

__all__ = ["QUICK", "FULL", "CLAIMS", "check_settings", "check_data", "sweeps", "run"]

NAMES = {"sdl-mnist": "SDL", "sdl-nl-mnist": "SDL-NL", "vdl-mnist": "VDL", "vdl-nl-mnist": "VDL-NL"}
# Fig. 9 probes the decoder-only models too (their FISTA codes); they may be asked for in lams.
PAPER_MODELS = {**NAMES, "do-mnist": "DO", "do-nl-mnist": "DO-NL"}
RAW, LISTA = "Linear on raw", "LISTA + Linear on raw"
# Paper, Fig. 9 and §4.5 (plot only; these are its claims, not numbers).
CLAIMS = ["VDL-NL features give the lowest top-1 and top-3 error with up to 10 labelled samples per class",
          "linear classifiers on pre-trained LISTA features beat both raw-pixel baselines with up to 100 "
          "samples per class (exceptions: DO, DO-NL and SDL with 1 or 2)"]
METRICS = ["top1_error", "top3_error"]

# Adam's float32 step (lr / (1 - β₁) at the first step) overflows beyond ~3e37: probe_lr=1e300 failed with a
# RuntimeError after every autoencoder had trained; 1e8 is far beyond any rate that trains a probe.
MAX_PROBE_LR = 1e8

FULL: dict[str, Any] = {
    "lams": {p: "grid" for p in NAMES},   # preset -> [λ, ...] or "grid" (the preset's lam_grid without 0)
    "seeds": [0],                         # autoencoder seeds (the data split follows the seed)
    "probe_seeds": [0, 1, 2, 3, 4],       # seeds of the labelled-sample draw and the probe's init
    "samples_per_class": [1, 2, 5, 10, 20, 50, 100, "all"],
    "epochs": None,                       # autoencoder epochs; None: each preset's (200, the paper's)
    "limit": None,                        # cap on the training split; None: all
    "probe_epochs": 100,
    "probe_lr": 0.001,
    "probe_batch_size": 250,
    "baselines": True,
}
QUICK: dict[str, Any] = {**FULL, "lams": {"sdl-mnist": [0.005], "vdl-nl-mnist": [0.02]},
                         "probe_seeds": [0, 1],
                         "samples_per_class": [1, 10, "all"], "epochs": 1, "limit": 300, "probe_epochs": 15}


def check_settings(settings: dict[str, Any]) -> None:
    """Bad settings are an error naming the setting and the accepted values, before anything trains."""
    checks.preset_mapping(
        settings, "lams",
        lambda v: v == "grid" or (isinstance(v, list) and bool(v) and all(map(checks.is_lam, v))
                                  and len({float(x) for x in v}) == len(v)),
        "'grid' or a non-empty list of λ >= 0, each once", "{sdl-mnist: [0.005]}", model="sparse_autoencoder")
    checks.seed_list(settings)
    checks.seed_list(settings, "probe_seeds")
    counts = settings["samples_per_class"]
    if not isinstance(counts, list) or not counts or any(
            c != "all" and (isinstance(c, bool) or not isinstance(c, int) or c < 1) for c in counts) or (
            len(set(map(repr, counts))) != len(counts)):
        raise ValueError(f"--set samples_per_class={counts!r}: expected a list of integers >= 1 and/or all, "
                         f"each once (e.g. samples_per_class=[1,10,all])")
    checks.epochs(settings, allow_none=True)
    checks.limit(settings)
    checks.epochs(settings, "probe_epochs")
    checks.positive_int(settings, "probe_batch_size", maximum=MAX_BATCH_SIZE)
    checks.number(settings, "probe_lr", strict=True, maximum=MAX_PROBE_LR)
    checks.flag(settings, "baselines")


def check_data(settings: dict[str, Any], data_dir: str | None) -> None:
    """Refuse ``samples_per_class`` above the smallest class of a training split the probes draw from.

    The class sizes are the data's (each seed's split, ``limit``, ``data_dir``), so this loads the training
    data of every seed — once per distinct data source of the presets and the baselines — and is called by
    :func:`sparsecoder.reproduce.reproduce` right after :func:`check_settings`: before the experiment
    folder is written and before any autoencoder trains (the draw used to fail after all of them had).
    A preset whose data has no labels is refused here too.
    """
    import numpy as np

    from sparsecoder.config import load_preset
    from sparsecoder.data import load
    from sparsecoder.eval.probe import class_indices

    counts = settings["samples_per_class"]
    # "all" needs one sample of every class too: a class missing from the split is never learnt
    asked = max((c for c in counts if c != "all"), default=1)
    overrides = checks.training_overrides(settings)
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    # (data, limit, options) -> who trains or probes on it (the presets' configs hold their own limit)
    sources: dict[str, tuple[str, int | None, dict, list[str]]] = {}
    for preset in settings["lams"]:
        _, config = load_preset(preset, overrides)
        key = repr((config.data, config.limit, sorted(dict(config.data_options).items())))
        sources.setdefault(key, (config.data, config.limit, dict(config.data_options), []))[3].append(preset)
    if settings["baselines"]:
        key = repr(("mnist", settings["limit"], []))
        sources.setdefault(key, ("mnist", settings["limit"], {}, []))[3].append("the baselines")
    smallest = None  # (size, class, seed, limit, who)
    for name, limit, options, users in sources.values():
        for seed in settings["seeds"]:
            loaded = load(name, seed=seed, limit=limit, data_dir=data_dir, **options)
            labels = loaded.train.labels
            if labels is None:
                raise ValueError(f"--set lams: {', '.join(users)} train on '{name}', which has no labels to "
                                 f"probe; give presets of labelled data (e.g. {', '.join(NAMES)})")
            # every class of the data counts, one absent from this split too (size 0)
            sizes = np.bincount(class_indices(labels, f"{name} training labels"),
                                minlength=int(loaded.n_classes or 0))
            if smallest is None or sizes.min() < smallest[0]:
                smallest = (int(sizes.min()), int(sizes.argmin()), seed, limit, users)
    if smallest is not None and asked > smallest[0]:
        size, cls, seed, limit, users = smallest
        capped = "" if limit is None else f", limit={limit}"
        if size == 0:
            where = f"--set limit={limit}: " if limit is not None else ""
            raise ValueError(f"{where}class {cls} has no sample in the training split of seed {seed} (data "
                             f"of {', '.join(users)}), so no probe could learn it (samples_per_class="
                             f"{counts!r}); raise limit, or give data with every class")
        raise ValueError(f"--set samples_per_class={counts!r}: {asked} samples per class asked for, but "
                         f"class {cls} has only {size} in the training split of seed {seed}{capped} (data of "
                         f"{', '.join(users)}); lower samples_per_class to at most {size}, or use all "
                         f"(the whole split)")


def _draw_seed(seed: int, probe_seed: int) -> int:
    """The seed of the labelled-sample draw (and the LISTA baseline's init) of autoencoder seed ``seed`` and
    ``probe_seed``: ``1000·seed + probe_seed``, modulo 2**63 so that every seed the settings accept (up to
    2**63 − 1) gives a seed :func:`~sparsecoder.eval.probe.sample_per_class` takes — a large seed used to
    fail there after every autoencoder had trained."""
    return (1000 * int(seed) + int(probe_seed)) % 2**63


def _lams(preset: str, values) -> list[float]:
    if values != "grid":
        return [float(v) for v in values]
    from sparsecoder.config import load_preset

    _, config = load_preset(preset)
    return [float(v) for v in config.lam_grid if v > 0]


def sweeps(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """One sweep per autoencoder preset over its λ of ``lams``, as :meth:`Context.train`'s arguments."""
    overrides = checks.training_overrides(settings)
    return [{"group": preset, "presets": preset, "grid": {"lam": _lams(preset, values)},
             "seeds": settings["seeds"], "overrides": overrides}
            for preset, values in settings["lams"].items()]


def _plot(rows: list[dict[str, Any]], counts: list, path):
    from sparsecoder.viz import subplots

    positions = {c: (c if c != "all" else None) for c in counts}
    numeric = [c for c in counts if c != "all"]
    all_x = (max(numeric) * 4) if numeric else 1
    fig, axes = subplots(1, 2, figsize=(10, 4), dpi=80)
    titles = ["top-1 test error (%)", "top-3 test error (%)"]
    for ax, metric, title in zip(axes, METRICS, titles, strict=True):
        for method in dict.fromkeys(r["method"] for r in rows):
            cells = [r for r in rows if r["method"] == method]
            x = [positions[r["samples_per_class"]] or all_x for r in cells]
            y = [100 * r[f"{metric}_mean"] for r in cells]
            e = [100 * r[f"{metric}_std"] for r in cells]
            style = "--" if method in (RAW, LISTA) else "-"
            ax.errorbar(x, y, yerr=e, fmt=style + "o", ms=3, capsize=2, label=method)
        ax.set_xscale("log")
        ticks = numeric + (["all"] if "all" in counts else [])
        ax.set_xticks([c if c != "all" else all_x for c in ticks])
        ax.set_xticklabels([str(c) for c in ticks])
        ax.set_xlabel("labelled samples per class")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Evtimova & LeCun 2022, Fig. 9: linear probe on frozen codes, MNIST test error "
                 "(mean ± std over seeds)", fontsize=10)  # the picture said neither what nor of which data
    fig.tight_layout()
    return save_png(fig, path)


def best_probe(candidates, index, labels, *, n_classes: int, probe_seed: int, draw_seed: int,
               lista: bool, probe: dict[str, Any]) -> tuple[tuple[Any, Any] | None, list[str]]:
    """The probe of the best validation accuracy over ``candidates`` (``(λ, train, val, test)`` features)
    on the training rows ``index``, as ``(λ, ProbeResult)``, and one line per candidate left out — codes
    holding NaN/inf, or a probe that diverged — so one bad λ does not stop the experiment; ``None`` when
    every candidate was left out. ``lista``: a 3-layer LISTA encoder trained with the probe (its initial
    weights seeded by ``draw_seed``)."""
    import torch

    from sparsecoder.eval.probe import ProbeDiverged, train_probe
    from sparsecoder.nn.encoders import LISTAEncoder

    y_train, y_val, y_test = labels
    best, failures = None, []
    for lam, train_x, val_x, test_x in candidates:
        which = "" if lam is None else f"λ={lam:g}: "
        bad = [name for name, x in (("train", train_x[index]), ("val", val_x), ("test", test_x))
               if not bool(torch.isfinite(x).all())]
        if bad:  # a model whose codes overflow on some rows: its probe would train on NaN losses
            failures.append(f"{which}the {'/'.join(bad)} codes hold NaN/inf")
            continue
        extra = {}
        if lista:
            torch.manual_seed(draw_seed)
            extra = {"features": LISTAEncoder(train_x.shape[1], 128, 3), "n_features_out": 128}
        try:
            result = train_probe(train_x[index], y_train, val_x, y_val, test_x, y_test,
                                 n_classes=n_classes, seed=probe_seed, **probe, **extra)
        except ProbeDiverged as err:
            failures.append(f"{which}{err}")
            continue
        if best is None or result.val_accuracy > best[1].val_accuracy:
            best = (lam, result)
    return best, failures


def run(ctx: Context) -> Report:
    """Train the autoencoders, probe their frozen codes for every k and seed, and the baselines."""
    import torch

    from sparsecoder.eval.probe import sample_per_class
    from sparsecoder.train.run import load_run
    from sparsecoder.train.trainer import load_data

    settings = ctx.settings
    check_settings(settings)
    probe = {"epochs": settings["probe_epochs"], "lr": settings["probe_lr"],
             "batch_size": settings["probe_batch_size"]}
    counts = settings["samples_per_class"]
    # features[(method, seed)] = [(λ, train, val, test codes)], data[seed] = the splits
    features: dict[tuple[str, int], list] = {}
    data: dict[int, Any] = {}
    missing, epochs_used = [], {}
    for preset, sweep in zip(settings["lams"], sweeps(settings), strict=True):
        trials = ctx.train(**sweep)
        for trial in finished(trials, missing):
            config, model, _ = load_run(trial.run_dir)
            epochs_used[preset] = config.epochs
            if trial.seed not in data:
                data[trial.seed] = load_data(config)
            splits = data[trial.seed]
            with torch.no_grad():
                codes = [model.encode(s.x) for s in (splits.train, splits.val, splits.test)]
            features.setdefault((PAPER_MODELS.get(preset, preset), trial.seed), []).append(
                (float(trial.point["lam"]), *codes))
    if settings["baselines"]:
        for seed in settings["seeds"]:
            if seed not in data:
                from sparsecoder.data import load

                data[seed] = load("mnist", seed=seed, limit=settings["limit"], data_dir=ctx.data_dir)
            splits = data[seed]
            features[(RAW, seed)] = [(None, splits.train.x, splits.val.x, splits.test.x)]
            features[(LISTA, seed)] = [(None, splits.train.x, splits.val.x, splits.test.x)]
    per_seed, failed = [], []
    for (method, seed), candidates in features.items():
        splits = data[seed]
        y_train, y_val, y_test = splits.train.labels, splits.val.labels, splits.test.labels
        n_classes = int(splits.n_classes or int(y_train.max()) + 1)
        for count in counts:
            for probe_seed in settings["probe_seeds"]:
                draw_seed = _draw_seed(seed, probe_seed)
                index = torch.from_numpy(sample_per_class(y_train, None if count == "all" else count,
                                                          seed=draw_seed, n_classes=n_classes))
                labels = (y_train[index], y_val, y_test)
                best, failures = best_probe(candidates, index, labels, n_classes=n_classes,
                                            probe_seed=probe_seed, draw_seed=draw_seed,
                                            lista=method == LISTA, probe=probe)
                failed += [f"{method} (seed {seed}) k={count} probe seed {probe_seed}: {failure}"
                           for failure in failures]
                if best is None:  # every λ's probe diverged: the cell is left out, and said so
                    continue
                lam, result = best
                per_seed.append({"method": method, "samples_per_class": count, "seed": seed,
                                 "probe_seed": probe_seed, "lam": lam, "top1_error": result.top1_error,
                                 "top3_error": result.top3_error, "best_epoch": result.best_epoch})
    rows = aggregate(per_seed, ["method", "samples_per_class"], [*METRICS, "best_epoch"])
    for cell in rows:
        chosen = [r["lam"] for r in per_seed if r["method"] == cell["method"]
                  and r["samples_per_class"] == cell["samples_per_class"] and r["lam"] is not None]
        cell["lams_chosen"] = " ".join(f"{v:g}" for v in sorted(set(chosen)))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    body = ["## Low-data linear probe (Fig. 9, MNIST)", "",
            "Test error in % (mean ± std over autoencoder seeds × probe seeds), probe weights of the best "
            "validation epoch; per (model, k) the λ with the best validation accuracy.", ""]
    for metric, title in (("top1_error", "Top-1"), ("top3_error", "Top-3")):
        table = []
        for method in methods:
            line = [method]
            for count in counts:
                cell = next((r for r in rows if r["method"] == method and r["samples_per_class"] == count),
                            None)
                line.append("–" if cell is None else fmt(100 * cell[f"{metric}_mean"],
                                                         100 * cell[f"{metric}_std"], 1))
            table.append(line)
        body += [f"### {title} test error (%) vs labelled samples per class", "",
                 markdown_table(["model", *[str(c) for c in counts]], table)]
    body += ["Paper (Fig. 9 is a plot; its claims): " + "; ".join(CLAIMS) + ".", ""]
    lam_lines = [f"{r['method']} k={r['samples_per_class']}: {r['lams_chosen']}" for r in rows
                 if r["lams_chosen"]]
    if lam_lines:
        body += ["λ chosen by validation accuracy: " + "; ".join(lam_lines), ""]
    if missing:
        body += ["Trials that did not finish (left out): " + "; ".join(missing), ""]
    if failed:
        body += ["Probes that diverged (left out; a cell whose every λ diverged has no row): "
                 + "; ".join(failed), ""]
    figures = [_plot(rows, counts, ctx.path("probe_error.png"))] if rows else []
    epochs_text = ", ".join(f"{PAPER_MODELS.get(p, p)} {e}" for p, e in epochs_used.items())
    differences = [
        "data: the embedded 5,000-digit MNIST subset (train/val/test 3,929 / 357 / 714, split by the "
        "autoencoder seed) instead of 55k / 5k / 10k; 'all' is the whole training split"
        if ctx.data_dir is None else f"data: {ctx.data_dir}",
        f"autoencoder epochs: {epochs_text or '–'} (paper: 200, early stopping on the validation energy)",
        f"autoencoder seeds: {len(settings['seeds'])}, probe seeds: {len(settings['probe_seeds'])} "
        f"(paper: 5 seeds)",
        "λ per model: "
        + "; ".join(f"{PAPER_MODELS.get(p, p)} {_lams(p, v)}" for p, v in settings["lams"].items())
        + " (paper: every λ of Fig. 6 (a), the best by validation accuracy)",
        f"probe: Adam lr {settings['probe_lr']:g}, {settings['probe_epochs']} epochs, batch "
        f"{settings['probe_batch_size']} (paper: Adam 1e-3, 100 epochs); best validation epoch, not the last",
    ]
    absent = [name for preset, name in PAPER_MODELS.items() if preset not in settings["lams"]]
    if absent:
        differences.append(f"not probed here (in the paper's Fig. 9): {', '.join(absent)}")
    if settings["limit"] is not None:
        differences.append(f"training split capped at {settings['limit']} samples")
    return Report(rows=rows, body="\n".join(body), differences=differences, figures=figures)
