"""Aggregate a sweep's run folders: ``results.csv`` (one row per trial), ``results.md`` (mean ± std over
seeds per grid point) and plots (``psnr_sparsity.png`` for sparse-coding presets, ``vae_metrics.png``
for VAE presets: MSE, active units and ELBO per grid point)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from sparsecoder.io import atomic_write_bytes
from sparsecoder.sweep.executor import METRICS_FILE, RECORDED, read_status, trial_state
from sparsecoder.sweep.spec import SweepSpec, format_value
from sparsecoder.train.integrity import read_json_object

__all__ = ["collect_rows", "write_results", "csv_text", "write_png", "RESULTS_CSV", "RESULTS_MD", "PSNR_PLOT",
           "VAE_PLOT"]

RESULTS_CSV = "results.csv"
RESULTS_MD = "results.md"
PSNR_PLOT = "psnr_sparsity.png"
VAE_PLOT = "vae_metrics.png"
# Columns of results.md per family (results.csv has every scalar); the first ones found are shown.
_HEADLINE = ["psnr", "sparsity", "psnr_fista", "sparsity_fista", "dead_atoms",
             "mse", "active_units", "active_units_max", "elbo", "kl", "best_epoch", "seconds"]


def _scalar(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def collect_rows(spec: SweepSpec, directory: Path, foreign: dict | None = None) -> list[dict[str, Any]]:
    """One dict per trial: preset, grid keys, seed, status, run folder, message, every scalar metric.
    A trial of ``foreign`` (``{trial: why}``, see :func:`~sparsecoder.sweep.executor.foreign_finished_trials`)
    is ``failed`` with that message: its folder holds another run, whose metrics are left out."""
    rows = []
    for trial in spec.trials():
        trial_dir = directory / trial.folder
        if foreign and trial in foreign:
            rows.append({"preset": trial.preset, **dict(trial.point), "seed": trial.seed, "status": "failed",
                         "run_folder": str(trial.folder), "message": foreign[trial]})
            continue
        state = trial_state(trial_dir)
        row: dict[str, Any] = {"preset": trial.preset, **dict(trial.point), "seed": trial.seed,
                               "status": {"new": "pending", "interrupted": "interrupted"}.get(state, state),
                               "run_folder": str(trial.folder)}
        status = read_status(trial_dir)
        row["message"] = (status or {}).get("message", "") if state in RECORDED else ""
        if state == "done":
            try:
                metrics = read_json_object(trial_dir / METRICS_FILE)
            except (OSError, ValueError) as err:
                row.update(status="failed", message=f"cannot read {METRICS_FILE}: {err}")
                metrics = {}
            for key, value in metrics.items():
                if _scalar(value) and key not in row:
                    row[key] = value
        rows.append(row)
    return rows


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    return columns


def csv_text(rows: list[dict[str, Any]]) -> str:
    """CSV of ``rows``: columns in first-seen order, missing and ``None`` values empty."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_columns(rows), restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buffer.getvalue()


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and value is not None else math.nan


def summarise(spec: SweepSpec, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (preset, grid point): trial counts by status and ``{metric: (mean, std, n)}`` over done seeds
    (std with the n−1 denominator; NaN with one seed)."""
    groups: dict[tuple, dict[str, Any]] = {}
    for trial, row in zip(spec.trials(), rows, strict=True):
        key = (trial.preset, trial.point)
        group = groups.setdefault(key, {"preset": trial.preset, "point": trial.point, "rows": []})
        group["rows"].append(row)
    out = []
    for group in groups.values():
        done = [r for r in group["rows"] if r["status"] == "done"]
        stats = {}
        for metric in _HEADLINE:
            values = np.array([_number(r.get(metric)) for r in done], dtype=float)
            values = values[np.isfinite(values)]
            if values.size:
                std = float(values.std(ddof=1)) if values.size > 1 else math.nan
                stats[metric] = (float(values.mean()), std, int(values.size))
        statuses = [r["status"] for r in group["rows"]]
        out.append({**group, "stats": stats, "n_done": len(done), "n_trials": len(statuses),
                    "not_done": sorted(set(statuses) - {"done"})})
    return out


def _fmt(mean: float, std: float) -> str:
    if float(mean).is_integer() and (math.isnan(std) or std == 0):  # counts, epochs: 0, 5
        return f"{mean:.0f}"
    digits = 4 if abs(mean) < 1 else 2
    if math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    """A GitHub markdown table; a ``|`` or a line break inside a cell (a grid value, a message) is escaped,
    so it cannot split the cell or end the row."""
    def line(cells):
        return "| " + " | ".join(" ".join(str(c).splitlines()).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "|".join("---" for _ in header) + "|", *map(line, rows)]) + "\n"


def _markdown(spec: SweepSpec, summary: list[dict[str, Any]]) -> str:
    lines = ["# Sweep results\n", f"Mean ± std over seeds {spec.seeds} (std with n−1; the `n` column counts "
             f"the seeds that finished; `(n=k)` after a value: only k of them had a finite value). One row "
             f"per preset and grid point.\n"]
    for preset in spec.presets:
        groups = [g for g in summary if g["preset"] == preset]
        metrics = [m for m in _HEADLINE if any(m in g["stats"] for g in groups)]
        keys = list(spec.resolved_grid[preset])
        lines.append(f"\n## {preset}\n")
        header = [*keys, "n", *metrics, "other trials"] if keys else ["n", *metrics, "other trials"]
        rows = []
        for g in groups:
            cells = [format_value(v) for _, v in g["point"]]
            cells.append(f"{g['n_done']}/{g['n_trials']}")
            for m in metrics:
                if m not in g["stats"]:
                    cells.append("–")
                    continue
                mean, std, n = g["stats"][m]
                # a NaN/inf value of a finished seed is left out of the mean: say over how many seeds it is
                cells.append(_fmt(mean, std) + (f" (n={n})" if n < g["n_done"] else ""))
            cells.append(", ".join(g["not_done"]) or "")
            rows.append(cells)
        lines.append(markdown_table(header, rows).rstrip("\n"))
    return "\n".join(lines) + "\n"


def _curve_key(point: tuple[tuple[str, Any], ...]) -> str | None:
    """The grid key a PSNR–sparsity curve runs along: ``lam`` when swept, else the first grid key."""
    keys = [k for k, _ in point]
    return "lam" if "lam" in keys else (keys[0] if keys else None)


def plot_curves(summary: list[dict[str, Any]], x_metric: str, y_metric: str) -> dict[tuple, list[dict]]:
    """``{(preset, other grid values): [grid point summaries sorted by x]}``: the curves :func:`_plot`
    draws, one per preset and value of the grid keys other than the one the curve runs along."""
    curves: dict[tuple, list[dict[str, Any]]] = {}
    for g in summary:
        if x_metric in g["stats"] and y_metric in g["stats"]:
            along = _curve_key(g["point"])
            curves.setdefault((g["preset"], tuple((k, v) for k, v in g["point"] if k != along)), []).append(g)
    for groups in curves.values():
        groups.sort(key=lambda g: g["stats"][x_metric][0])
    return curves


def _plot(summary: list[dict[str, Any]], x_metric: str, y_metric: str, x_label: str, y_label: str,
          title: str, path: Path, x_scale: float = 1.0) -> bool:
    """One curve per preset and value of the other grid keys, through the values of ``lam`` (else of the
    first grid key), its points sorted by x; error bars = std over seeds. (One curve per preset joined the
    points of every ``gamma`` of a ``--grid gamma=1,5 lam=...`` sweep in one zig-zag line.)"""
    from sparsecoder.viz import subplots

    curves = plot_curves(summary, x_metric, y_metric)
    if not curves:
        return False
    drawn = {preset for preset, _ in curves}
    missing = [_point_name(g) for g in summary
               if g["preset"] in drawn and not (x_metric in g["stats"] and y_metric in g["stats"])]
    if missing:  # a failed or NaN grid point vanished from its curve without a word
        title = f"{title}\n{_not_drawn(missing)}"
    fig, ax = subplots(figsize=(7.5, 5.0), dpi=120)
    labelled: dict[tuple[float, float], int] = {}  # labels already at a point: the next goes above them
    for (preset, others), groups in curves.items():
        x = np.array([g["stats"][x_metric][0] for g in groups]) * x_scale
        y = np.array([g["stats"][y_metric][0] for g in groups])
        xerr = np.nan_to_num(np.array([g["stats"][x_metric][1] for g in groups]) * x_scale)
        yerr = np.nan_to_num(np.array([g["stats"][y_metric][1] for g in groups]))
        name = ", ".join([preset, *(f"{k}={format_value(v)}" for k, v in others)])
        line = ax.errorbar(x, y, xerr=xerr, yerr=yerr, marker="o", capsize=3, label=name)
        # grid points at the same (x, y) (e.g. two λ that zero every code) were labelled on top of each
        # other: one label per place and curve ("lam=0.01, 0.02"), another curve's one line higher
        places: dict[tuple[float, float], list[str]] = {}
        along = None
        for g, xi, yi in zip(groups, x, y, strict=True):
            along = _curve_key(g["point"])
            if along is not None:
                places.setdefault((float(xi), float(yi)), []).append(format_value(dict(g["point"])[along]))
        for place, values in places.items():
            stacked = labelled.get(place, 0)
            labelled[place] = stacked + 1
            ax.annotate(f"{along}={', '.join(values)}", place, textcoords="offset points",
                        xytext=(5, 5 + 10 * stacked), fontsize=8, color=line[0].get_color())
    # room for the grid-point labels, stacked ones too
    ax.margins(x=0.12, y=0.08 + 0.04 * (max(labelled.values(), default=1) - 1))
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    write_png(fig, path)
    return True


def _point_name(group: dict[str, Any]) -> str:
    return " ".join([group["preset"], *(f"{k}={format_value(v)}" for k, v in group["point"])])


def _not_drawn(names: list[str], shown: int = 3) -> str:
    """The note on a plot naming the grid points it could not draw (no finished seed with a finite value)."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"not drawn (no finite value): {', '.join(names[:shown])}{more}"


def write_png(fig, path: Path) -> Path:
    """Write ``fig`` as a PNG at its own dpi to ``path`` atomically; return ``path``."""
    from sparsecoder.viz import save_figure

    # bounds of what is drawn: a mosaic's figure left a third of its width blank, long labels were cut
    return save_figure(fig, path, tight=True, dpi="figure")


def _plot_per_point(summary: list[dict[str, Any]], panels: list[tuple[str, str]], title: str,
                    path: Path) -> bool:
    """One panel per ``(metric, label)``: the metric at each grid point (x axis, in grid order), one line
    per preset, error bars = std over seeds. For sweeps whose metrics do not pair up as a curve (VAEs)."""
    from sparsecoder.viz import subplots

    # a grid point lacking one metric (NaN ELBO) lost every panel: each panel draws the points it has
    groups = [g for g in summary if any(m in g["stats"] for m, _ in panels)]
    if not groups:
        return False
    points = list(dict.fromkeys(g["point"] for g in groups))
    names = [", ".join(f"{k}={format_value(v)}" for k, v in p) or "default" for p in points]
    ncols = min(2, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = subplots(nrows, ncols, figsize=(5.2 * ncols, 3.8 * nrows), dpi=120, squeeze=False)
    presets = list(dict.fromkeys(g["preset"] for g in groups))
    for ax, (metric, label) in zip(axes.flat, panels, strict=False):
        for offset, preset in enumerate(presets):
            mine = {g["point"]: g for g in groups if g["preset"] == preset and metric in g["stats"]}
            xs = [i + 0.06 * (offset - (len(presets) - 1) / 2) for i, p in enumerate(points) if p in mine]
            ys = [mine[p]["stats"][metric][0] for p in points if p in mine]
            errs = [np.nan_to_num(mine[p]["stats"][metric][1]) for p in points if p in mine]
            ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=preset)
        ax.set_xticks(range(len(points)), names, rotation=30 if len(points) > 3 else 0, ha="right"
                      if len(points) > 3 else "center", fontsize=8)
        ax.set_xlim(-0.5, len(points) - 0.5)
        missing = [_point_name(g) for g in groups if metric not in g["stats"]]
        ax.set_title(f"{label}\n{_not_drawn(missing)}" if missing else label, fontsize=10)
        ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    write_png(fig, path)
    return True


def write_results(spec: SweepSpec, directory: Path, foreign: dict | None = None) -> dict[str, Any]:
    """Write ``results.csv``, ``results.md`` and the plots; return ``{"rows", "summary", "files"}``.
    ``foreign``: finished trials whose folder holds another run (:func:`collect_rows`)."""
    directory = Path(directory)
    rows = collect_rows(spec, directory, foreign)
    atomic_write_bytes(directory / RESULTS_CSV, csv_text(rows).encode())
    summary = summarise(spec, rows)
    atomic_write_bytes(directory / RESULTS_MD, _markdown(spec, summary).encode())
    files = [directory / RESULTS_CSV, directory / RESULTS_MD]
    # one seed has no spread: its error bars are zero-length, which "mean ± std" would not say
    spread = f"mean ± std over {len(spec.seeds)} seeds" if len(spec.seeds) > 1 else "one seed: no error bars"
    label = ", ".join(sorted({k for g in spec.resolved_grid.values() for k in g})) or "seeds"
    if _plot(summary, "sparsity", "psnr", "sparsity (% zero code entries, encoder codes)", "PSNR (dB)",
             f"PSNR vs sparsity over {label} ({spread})", directory / PSNR_PLOT, 100.0):
        files.append(directory / PSNR_PLOT)
    if _plot_per_point(summary, [("mse", "test MSE per pixel"),
                                 ("active_units", "active units (std of posterior mean > threshold)"),
                                 ("active_units_max", "active units (max activity > threshold)"),
                                 ("elbo", "test ELBO (nats per sample)")],
                       f"VAE sweep: per grid point, {spread}", directory / VAE_PLOT):
        files.append(directory / VAE_PLOT)
    return {"rows": rows, "summary": summary, "files": files}

