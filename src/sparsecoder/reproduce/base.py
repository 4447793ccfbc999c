"""What every experiment of ``sparsecoder reproduce`` shares: profiles and ``--set``, the trial runner (the
sweep executor), aggregation over seeds and the ``results.md`` / ``results.csv`` writers.

An experiment is a module of this package with two profiles of settings, ``sweeps`` and ``run``::

    QUICK = {"epochs": 1, "seeds": [0], ...}   # tiny: <= 3 minutes on 2 cores, for tests
    FULL = {"epochs": 200, "seeds": [0, 1, 2, 3, 4], ...}   # the paper's protocol

    def sweeps(settings: dict) -> list[dict]: ...  # every sweep run trains, as Context.train's arguments:
                                                  # check_trials builds each trial before any write
    def run(ctx: Context) -> Report: ...

    def check_settings(settings: dict) -> None: ...   # optional: refuse bad values (ValueError) before
                                                      # the experiment folder is written
    def check_data(settings: dict, data_dir) -> None: ...  # optional: refuse settings the data cannot
                                                      # serve (loads it), also before the folder is written

``ctx.settings`` is the chosen profile updated by ``--set KEY=VALUE`` (only keys of the profile);
``ctx.train(...)`` trains run folders through the sweep executor (finished trials are skipped on a rerun,
interrupted ones resume); the :class:`Report` it returns is written by :func:`write_report`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from sparsecoder.config import ConfigError, load_yaml_text, shown
from sparsecoder.io import atomic_write_bytes, atomic_write_text
from sparsecoder.sweep.results import csv_text, markdown_table, write_png

__all__ = ["Context", "Report", "TrialResult", "aggregate", "check_trials", "finished", "markdown_table",
           "save_png", "parse_settings", "SETTINGS_FILE", "RESULTS_MD", "RESULTS_CSV"]

SETTINGS_FILE = "reproduce.yaml"
RESULTS_MD = "results.md"
RESULTS_CSV = "results.csv"
TRIALS_DIR = "trials"


class Metrics(dict):
    """A finished trial's ``metrics.json``: a metric it lacks is a ``ValueError`` naming the file and the
    fix (an older version's file, or one edited by hand, gave "KeyError: 'psnr' (unexpected ...)")."""

    def __init__(self, data: dict[str, Any], path: Path):
        super().__init__(data)
        self.path = path

    def __missing__(self, key: str):
        raise ValueError(f"{self.path} has no {key!r}, which this experiment reads (written by another "
                         f"version, or edited): move that metrics.json out of the folder and rerun (the "
                         f"trial resumes and is measured again)")


@dataclasses.dataclass
class TrialResult:
    """One finished (or failed) training run of an experiment."""

    preset: str
    point: dict[str, Any]  # the grid values of this trial
    seed: int
    run_dir: Path
    status: str  # done | failed | diverged | lost | pending | interrupted
    metrics: dict[str, Any]  # metrics.json of the run ({} unless done)


def finished(trials: list[TrialResult], missing: list[str]):
    """The trials of ``trials`` that are done, in order; each other one is added to ``missing`` as
    ``"<preset> [λ=<lam>] seed <s>: <status>"`` for the report's list of what did not finish."""
    for trial in trials:
        if trial.status == "done":
            yield trial
        else:
            lam = f" λ={trial.point['lam']:g}" if "lam" in trial.point else ""
            missing.append(f"{trial.preset}{lam} seed {trial.seed}: {trial.status}")


@dataclasses.dataclass
class Report:
    """What an experiment measured; :func:`write_report` turns it into ``results.md`` and ``results.csv``.

    rows : one dict per measured cell (``results.csv``): the cell's keys (variant, λ, σ, ...), then
        ``<metric>_mean``, ``<metric>_std``, ``n_seeds`` (see :func:`aggregate`), and the paper's value
        where there is one (``paper_<metric>``).
    body : markdown of the result tables (ours beside the paper's) and figure links.
    differences : lines on what differs from the paper (data size, epochs, seeds, ...).
    figures : PNG files written into the experiment folder.
    """

    rows: list[dict[str, Any]]
    body: str
    differences: list[str]
    figures: list[Path] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Context:
    """The state an experiment's ``run`` gets: output folder, profile, settings and how to train."""

    name: str
    out: Path
    quick: bool
    settings: dict[str, Any]
    data_dir: str | None = None
    address: str | None = None
    executor: str = "ray"  # "ray" | "serial" (see sparsecoder.sweep)
    max_concurrent: int | None = None
    progress: bool = True
    retry_failed: bool = False  # run trials recorded as failed/diverged again (sweep's retry_failed)
    unfinished: list[str] = dataclasses.field(default_factory=list)  # "run folder: status: message"
    # those of ``unfinished`` whose folder holds a finished run that is not the trial's (another config's,
    # or no readable config.yaml): --retry-failed leaves a finished run as it is
    foreign: list[str] = dataclasses.field(default_factory=list)
    # those of ``unfinished`` that are the trial's own finished run with a damaged metrics.json (truncated,
    # not JSON): --retry-failed leaves them too; moving that file away makes a rerun measure the run again
    damaged: list[str] = dataclasses.field(default_factory=list)
    # those of ``unfinished`` lost to a dead Ray worker (status ``lost``): a rerun resumes them without
    # --retry-failed
    lost: list[str] = dataclasses.field(default_factory=list)

    @property
    def profile(self) -> str:
        return "quick" if self.quick else "full"

    def path(self, *parts: str) -> Path:
        """A path inside the experiment folder (parents created)."""
        path = self.out.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def train(self, group: str, presets: str | list[str], *, grid: dict[str, Any] | None = None,
              seeds: list[int] | None = None, overrides: dict[str, Any] | None = None) -> list[TrialResult]:
        """Train ``presets × grid × seeds`` into ``<out>/trials/<group>/<preset>/<point>/seed=<s>`` through
        the sweep executor (Ray, or in this process with ``executor="serial"``) and return every trial.

        ``overrides`` are config values for every trial; ``data_dir`` of the experiment is added. A rerun
        skips finished trials and resumes interrupted ones. Trials that failed are returned with their
        status (not raised) so the experiment can report what is missing.
        """
        from sparsecoder.sweep import sweep
        from sparsecoder.sweep.executor import trial_state
        from sparsecoder.train.integrity import read_json_object

        overrides = dict(overrides or {})
        if self.data_dir is not None:
            overrides.setdefault("data_dir", self.data_dir)
        directory = self.out / TRIALS_DIR / group
        result = sweep(presets, directory, grid=grid, seeds=list(seeds if seeds is not None else [0]),
                       overrides=overrides, address=self.address, max_concurrent=self.max_concurrent,
                       progress=self.progress, executor=self.executor, retry_failed=self.retry_failed,
                       check_start=False)  # check_trials did, for every sweep of the experiment
        trials = []
        for row in result["rows"]:
            run_dir = directory / row["run_folder"]
            metrics = {}
            if row["status"] == "done":
                metrics = Metrics(read_json_object(run_dir / "metrics.json"), run_dir / "metrics.json")
            if row["status"] != "done":
                line = f"{run_dir}: {row['status']}: {row.get('message', '')}".rstrip(": ")
                self.unfinished.append(line)
                if row["status"] == "lost":
                    self.lost.append(line)
                if row["run_folder"] in result["foreign"]:  # a finished run there, not this trial's
                    self.foreign.append(line)
                elif trial_state(run_dir) == "done":  # the trial's own run, its metrics.json unreadable
                    self.damaged.append(line)
            point = {k: row[k] for k in (grid or {})}
            trials.append(TrialResult(row["preset"], point, int(row["seed"]), run_dir, row["status"],
                                      metrics))
        return trials


def check_trials(sweeps: list[dict[str, Any]], data_dir: str | None, address: str | None) -> None:
    """Refuse, before the experiment folder is written, the trials that would fail as they start.

    ``sweeps`` are :meth:`Context.train`'s arguments (``group``, ``presets``, ``grid``, ``seeds``,
    ``overrides``) of every sweep the experiment will train. Every trial's config is built as the sweep
    builds it (a λ, σ or size beyond the config's bounds), then
    :func:`sparsecoder.sweep.run.check_trials_start` (the check ``sweep`` makes too) loads each data set's
    test split and counts each model against this machine's memory when the trials run here (no
    ``address``). Each of these used to fail the trials only after ``reproduce.yaml`` was written, which
    then refused the corrected command as other settings.
    """
    from sparsecoder.sweep.run import check_trials_start
    from sparsecoder.sweep.spec import build_spec

    specs = []
    for sweep in sweeps:
        overrides = dict(sweep.get("overrides") or {})
        if data_dir is not None:
            overrides.setdefault("data_dir", data_dir)
        presets = [sweep["presets"]] if isinstance(sweep["presets"], str) else list(sweep["presets"])
        try:
            specs.append(build_spec(presets, sweep.get("grid"), list(sweep.get("seeds") or [0]), overrides))
        except ConfigError as err:
            raise ValueError(f"the settings give a trial a config it refuses: {err}; change that setting "
                             f"(nothing was written)") from None
    if data_dir is not None:
        check_one_data_set(specs, data_dir)
    check_trials_start(specs, address)


def check_one_data_set(specs, data_dir: str) -> None:
    """Refuse a ``--data-dir`` given to trials of more than one data set (``pyle-priors``' default
    datasets, ``evtimova-table1`` models of MNIST and patches): every trial gets the same folder, so all
    but one data set were refused by a message of their own source (``the synthetic_pyle source takes no
    data_dir``) that named no fix."""
    sources: dict[str, list[str]] = {}
    for spec in specs:
        for trial in spec.trials():
            presets = sources.setdefault(spec.trial_config(trial).data, [])
            if trial.preset not in presets:
                presets.append(trial.preset)
    if len(sources) > 1:
        listed = "; ".join(f"{data} ({', '.join(presets)})" for data, presets in sources.items())
        raise ValueError(f"--data-dir {data_dir} is the folder of one data set, but these settings train on "
                         f"{len(sources)}: {listed}; with --data-dir, choose settings whose trials all train "
                         f"on one of them, or leave out --data-dir for the embedded data (nothing was "
                         f"written)")


# Exponent notation without a dot (1e-3, 5E+2): a number in YAML 1.2 and Python, a string to PyYAML (1.1).
_EXPONENT_NUMBER = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+")


def _exponent_numbers(value: Any) -> Any:
    """``value`` with every string written in exponent notation (``"1e-3"``) made a float, in lists and
    mapping values too: ``--set lam=1e-3`` or ``lams=[1e-3,5e-3]`` was refused as not a number (the trials'
    configs, ``train --set`` and ``sweep --grid`` read it as 0.001)."""
    if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value.strip()):
        return float(value)
    if isinstance(value, list):
        return [_exponent_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _exponent_numbers(v) for k, v in value.items()}
    return value


def parse_settings(profile: dict[str, Any], items: list[str] | dict[str, Any] | None, name: str) -> dict:
    """``profile`` updated by ``KEY=VALUE`` items (values parsed as YAML: ``epochs=5``, ``seeds=[0,1]``,
    ``data=patches``); a key the profile does not have is an error naming the keys it has."""
    settings = dict(profile)
    if not items:
        return settings
    if isinstance(items, dict):
        pairs = list(items.items())
    else:
        pairs = []
        given: dict[str, str] = {}
        for item in items:
            key, sep, text = str(item).partition("=")
            if not sep or not key:
                raise ValueError(f"--set {shown(item)}: expected KEY=VALUE")
            key = key.strip()
            if key in given:  # the last value would silently win
                raise ValueError(f"--set key {shown(key)} is given twice ({shown(given[key])} and "
                                 f"{shown(item)}); give each key once")
            given[key] = str(item)
            try:
                value = _exponent_numbers(load_yaml_text(text, "the value"))
            except ConfigError as err:
                raise ValueError(f"--set {shown(item)}: cannot parse the value: {err}") from None
            pairs.append((key, value))
    for key, value in pairs:
        if key not in profile:
            from sparsecoder.reproduce.settings import did_you_mean

            raise ValueError(f"--set {key}: experiment {name} has no setting {shown(key)};"
                             f"{did_you_mean(key, profile)} its settings are {', '.join(sorted(profile))}")
        settings[key] = value
    return settings


def _mean_std(values: list[float]) -> tuple[float, float]:
    values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not values:
        return math.nan, math.nan
    # one seed has no spread to measure: NaN (an empty cell, "mean" alone in the tables), not a 0 that reads
    # as a measured ± 0.00
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else math.nan


def aggregate(rows: list[dict[str, Any]], by: list[str], metrics: list[str]) -> list[dict[str, Any]]:
    """Group ``rows`` (one per seed) by the ``by`` keys, in first-seen order, and give each metric's mean
    and sample std (ddof=1; NaN for one seed) as ``<metric>_mean`` / ``<metric>_std`` plus ``n_seeds``."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in by), []).append(row)
    out = []
    for key, members in groups.items():
        cell: dict[str, Any] = dict(zip(by, key, strict=True))
        for metric in metrics:
            cell[f"{metric}_mean"], cell[f"{metric}_std"] = _mean_std([m.get(metric) for m in members])
        cell["n_seeds"] = len(members)
        out.append(cell)
    return out


def fmt(mean: Any, std: Any = None, digits: int = 2) -> str:
    """``mean ± std`` with ``digits`` decimals; ``–`` for a missing value."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def save_png(fig, path: Path) -> Path:
    """Write a matplotlib figure as a PNG (at its own dpi) atomically (:func:`write_png`)."""
    return write_png(fig, path)


def write_report(ctx: Context, info: dict[str, str], report: Report, seconds: float) -> list[Path]:
    """Write ``results.csv`` and ``results.md`` (header: experiment, paper, figure, profile, settings, wall
    time and what differs from the paper; then the experiment's tables) into ``ctx.out``."""
    csv_path = ctx.out / RESULTS_CSV
    md_path = ctx.out / RESULTS_MD
    atomic_write_bytes(csv_path, csv_text(report.rows).encode())
    settings = ", ".join(f"{k}={json.dumps(v)}" for k, v in ctx.settings.items())
    lines = [f"# {ctx.name} — {info['paper']}, {info['figure']}", "",
             # the paper's protocol (`reproduce --list`): a quick or --set call measures less (e.g. 5
             # posterior samples, the λ with a paper point), which the settings and differences below say
             f"The full profile measures: {info['measures']}.", "",
             f"* profile: **{ctx.profile}**; settings: {settings}",
             f"* wall time of this call: {seconds:.0f} s (trials that were already finished were skipped)",
             f"* data: {ctx.data_dir or 'embedded data (see SPEC §6)'}", "",
             "What differs from the paper:", ""]
    lines += [f"* {line}" for line in report.differences] or ["* nothing recorded"]
    lines += ["", report.body.rstrip(), ""]
    for fig in report.figures:
        lines.append(f"![{Path(fig).stem}]({Path(fig).relative_to(ctx.out).as_posix()})")
    atomic_write_text(md_path, "\n".join(lines) + "\n")
    return [md_path, csv_path, *report.figures]
