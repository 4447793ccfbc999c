"""Sweep specifications: parse ``--grid``/``--seeds``, validate every trial's config, name trial folders.

A sweep is the Cartesian product ``presets × grid points × seeds``. Every trial is an ordinary run folder
``DIR/<preset>/<key=value,...>/seed=<s>`` written by :func:`sparsecoder.train.train`. Everything here is
pure (no Ray, no training), so every mistake is found before any work starts.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import re
import reprlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from sparsecoder.config import (
    MAX_INT,
    MAX_SEEDS,
    ConfigError,
    absolute_data_path,
    absolute_data_paths,
    check_seeds,
    find_preset,
    load_yaml_text,
    seed_above_max,
    shown,
    too_many_seeds,
)

__all__ = [
    "SweepSpec",
    "Trial",
    "parse_grid",
    "parse_seeds",
    "build_spec",
    "check_compatible",
    "check_grid",
    "SPEC_FILE",
    "record_yaml",
    "PRESET_GRID",
    "NO_GRID_FOLDER",
    "recorded_relative_paths",
]

SPEC_FILE = "sweep.yaml"
PRESET_GRID = "grid"  # `--grid lam=grid`: each preset's own lam_grid
MAX_TRIALS = MAX_SEEDS  # 10,000; checked before any trial's config is built (a range like 0-1000000000 hung)
MAX_FOLDER_NAME_BYTES = 255  # longest file name of ext4, APFS, NTFS, ...
NO_GRID_FOLDER = "default"  # grid-point folder of a sweep without --grid (seeds only)
# Keys the sweep sets itself; a user setting them through --grid/--set would be silently overridden.
_RESERVED = {
    "seed": "use --seeds instead",
    "num_threads": "the sweep sets it to --cpus-per-trial",
}


@dataclasses.dataclass(frozen=True)
class Trial:
    """One run of the sweep: a preset, one value per grid key, a seed, and its run folder."""

    preset: str
    point: tuple[tuple[str, Any], ...]  # ((key, value), ...) in grid-key order
    seed: int
    folder: Path  # relative to the sweep directory

    @property
    def label(self) -> str:
        return f"{self.preset}/{point_folder(self.point)}/seed={self.seed}"


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A validated sweep (before any trial ran).

    Attributes
    ----------
    presets : list of str
    grid : dict
        The grid as the user wrote it, values parsed (``"grid"`` kept as written for ``lam=grid``).
    resolved_grid : dict
        ``{preset: {key: [values...]}}`` with ``lam=grid`` replaced by the preset's ``lam_grid`` and every
        value coerced to the config field's type.
    seeds : list of int
    overrides : dict
        ``--set`` values applied to every trial.
    cpus_per_trial, gpus_per_trial : float
        Ray resources of one trial; ``num_threads = max(1, int(cpus_per_trial))``.
    """

    presets: list[str]
    grid: dict[str, list[Any]]
    resolved_grid: dict[str, dict[str, list[Any]]]
    seeds: list[int]
    overrides: dict[str, Any]
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0

    @property
    def num_threads(self) -> int:
        return max(1, int(self.cpus_per_trial))

    def trials(self) -> list[Trial]:
        out = []
        for preset in self.presets:
            grid = self.resolved_grid[preset]
            keys = list(grid)
            for values in itertools.product(*(grid[k] for k in keys)):
                point = tuple(zip(keys, values, strict=True))
                for seed in self.seeds:
                    folder = Path(preset_folder(preset)) / point_folder(point) / f"seed={seed}"
                    out.append(Trial(preset, point, seed, folder))
        return out

    def __post_init__(self) -> None:
        object.__setattr__(self, "_preset_cache", {})  # name -> Preset (not a field: no part of the record)
        object.__setattr__(self, "_overrides_cache", {})  # trial folder -> trial_overrides(trial)
        object.__setattr__(self, "_config_cache", {})  # trial folder -> trial_config(trial)

    def _preset(self, name: str):
        if name not in self._preset_cache:
            self._preset_cache[name] = find_preset(name)
        return self._preset_cache[name]

    def trial_overrides(self, trial: Trial) -> dict[str, Any]:
        """The ``overrides`` passed to :func:`sparsecoder.train.train` for ``trial``.

        A ``--set`` key without effect in this trial (``hidden_size`` for a linear-decoder preset or grid
        point) is left out: it is meant for the trials where it counts (:func:`build_spec` refuses one that
        counts in none). Computed once per trial: the checks before the sweep starts, the foreign-run check,
        the trial itself and its status record all use the same dict (a copy of it)."""
        if trial.folder not in self._overrides_cache:
            self._overrides_cache[trial.folder] = self._trial_overrides(trial)
        return dict(self._overrides_cache[trial.folder])

    def trial_config(self, trial: Trial):
        """The config ``trial`` trains with (its preset under :meth:`trial_overrides`; a
        :class:`ConfigError` where they do not fit), built once per trial: :func:`build_spec` checks every
        trial with it and the checks before the sweep writes its record read it (a frozen dataclass)."""
        if trial.folder not in self._config_cache:
            self._config_cache[trial.folder] = self._preset(trial.preset).build(self.trial_overrides(trial))
        return self._config_cache[trial.folder]

    def _trial_overrides(self, trial: Trial) -> dict[str, Any]:
        overrides = {**self.overrides, **dict(trial.point), "seed": trial.seed,
                     "num_threads": self.num_threads}
        if "device" not in self.overrides and "device" not in dict(trial.point) and self.gpus_per_trial == 0:
            overrides["device"] = "cpu"  # no GPU was reserved for this trial; "auto" would take one anyway
        unused = self._preset(trial.preset).unused(overrides) & set(self.overrides)
        return {key: value for key, value in overrides.items() if key not in unused}

    def to_dict(self) -> dict[str, Any]:
        return {
            "presets": list(self.presets),
            "grid": {k: list(v) if isinstance(v, list) else v for k, v in self.grid.items()},
            "resolved_grid": {p: {k: list(v) for k, v in g.items()} for p, g in self.resolved_grid.items()},
            "seeds": list(self.seeds),
            "overrides": dict(self.overrides),
            "cpus_per_trial": self.cpus_per_trial,
            "gpus_per_trial": self.gpus_per_trial,
        }


def format_value(value: Any) -> str:
    """Folder-name spelling of a grid value: ``repr`` of numbers (``0.001``, ``1e-05``), else ``str``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)
    return str(value)


def preset_folder(preset: str) -> str:
    """The folder of a preset's trials: its name, or the file name of a preset given as a YAML path (the
    path itself led out of the sweep folder: ``/abs/my.yaml`` or ``../my.yaml``)."""
    return Path(preset).name


def _folder_value(value: Any) -> str:
    """:func:`format_value` with ``%`` and ``/`` percent-encoded: a value such as ``data_dir=../data`` or
    ``/data/a`` stays one folder name (it used to nest folders, or lead out of the sweep folder)."""
    return format_value(value).replace("%", "%25").replace("/", "%2F")


def point_folder(point: tuple[tuple[str, Any], ...]) -> str:
    """``lam=0.001,gamma=5.0`` — the folder of one grid point (``default`` when the grid is empty); a ``/``
    in a value is written ``%2F`` (and ``%`` as ``%25``)."""
    if not point:
        return NO_GRID_FOLDER
    return ",".join(f"{k}={_folder_value(v)}" for k, v in point)


def parse_grid(items: list[str] | None) -> dict[str, Any]:
    """Parse ``["lam=0.001,0.01", "gamma=1,5", "lam=grid"]`` into ``{"lam": [0.001, 0.01], ...}``.

    Values are YAML scalars (as ``--set``); the literal ``grid`` (alone) stands for each preset's
    ``lam_grid``. Raises :class:`ConfigError` for a missing ``=``, an empty key or an empty value list,
    a repeated key, a repeated value, or a value that is not a scalar.
    """
    grid: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--grid {item!r} is not of the form KEY=V1,V2,... "
                              f"(e.g. --grid lam=0.001,0.01)")
        key, raw = (s.strip() for s in item.split("=", 1))
        if not key:
            raise ConfigError(f"--grid {item!r} has an empty key")
        if key in grid:
            raise ConfigError(f"--grid key '{key}' is given twice; list all its values once: {key}=V1,V2,...")
        tokens = [t.strip() for t in raw.split(",")]
        if not raw.strip():
            raise ConfigError(f"--grid {item!r}: empty grid value list; give at least one value, "
                              f"e.g. {key}=0.01")
        if any(not t for t in tokens):  # `lam=0.1, 0.2` arrives as 'lam=0.1,' and '0.2'
            raise ConfigError(f"--grid {item!r}: an empty value between commas; write the values without "
                              f"spaces or quote them, e.g. {key}=0.01,0.1")
        if tokens == [PRESET_GRID]:
            grid[key] = PRESET_GRID  # checked by check_grid
            continue
        values = []
        for token in tokens:
            # as --set reads its values: YAML 1.2 numbers (010 is 10, 1:30 is text), a 5,000-digit integer
            # refused naming the key
            values.append(load_yaml_text(token, f"--grid {key}: value {shown(token)}"))
        grid[key] = values
    return check_grid(grid)


def check_grid(grid: dict[str, Any]) -> dict[str, Any]:
    """The checks every grid gets, parsed from ``--grid`` or given as a mapping to :func:`sweep`.

    Each key maps to a list (or tuple, ...) of distinct scalars, or to ``"grid"`` for ``lam``. Returns the
    grid with its value lists as lists; raises :class:`ConfigError` naming the key otherwise (a lone value
    or a string such as ``"0.1,0.2"`` used to be iterated item by item or character by character).
    """
    out: dict[str, Any] = {}
    for key, values in grid.items():
        if not isinstance(key, str) or not key.strip():
            raise ConfigError(f"--grid key {key!r} is not a config key name")
        if isinstance(values, str) and values.strip() == PRESET_GRID:
            if key != "lam":
                raise ConfigError(f"--grid {key}=grid: only lam has a per-preset grid (lam_grid); "
                                  f"list the values of {key} instead")
            out[key] = PRESET_GRID
            continue
        if isinstance(values, (str, bytes, dict)) or not isinstance(values, Iterable):
            raise ConfigError(f"--grid {key}: {reprlib.repr(values)} is not a list of values; give a list "
                              f"(e.g. {{{key!r}: [0.01, 0.1]}}, on the command line {key}=0.01,0.1)")
        values = list(values)
        if not values:
            raise ConfigError(f"--grid {key}: empty grid value list; give at least one value, "
                              f"e.g. {key}=0.01")
        for value in values:
            if isinstance(value, (dict, list, tuple, set)) or value is None:
                raise ConfigError(f"--grid {key}: value {reprlib.repr(value)} is not a single number, string "
                                  f"or bool")
        if len(set(map(repr, values))) != len(values):
            raise ConfigError(f"--grid {key}: repeated value in {reprlib.repr(values)}")
        out[key] = values
    return out


_SEEDS_FIX = (f"write e.g. --seeds 0,1,2 or 0-4: distinct integers in [0, 2**63 - 1], at most {MAX_SEEDS:,} "
              f"(split a larger sweep into several with their own --out)")
_SEED_PART = re.compile(r"\s*([0-9]+)\s*(?:-\s*([0-9]+)\s*)?")  # ASCII digits only ("³" is not 3)
_SEED_DIGITS = len(str(MAX_INT))


def parse_seeds(text: str | int | list[int] | tuple[int, ...] | None) -> list[int]:
    """``"0,1,2"`` → ``[0, 1, 2]``; ``"0-4"`` → ``[0, 1, 2, 3, 4]``; a list of ints passes through.

    The string syntax is parsed here; the list is then held to :func:`sparsecoder.config.check_seeds`
    (the check ``reproduce --set seeds=`` uses too). Raises :class:`ConfigError` for a descending range
    (``3-1``), non-integer, negative or repeated seeds, seeds above 2**63 - 1, more than
    :data:`~sparsecoder.config.MAX_SEEDS` seeds, or an empty list — before a range is expanded.
    """
    if text is None:
        return [0]
    if not isinstance(text, str):
        # one value is a list of one: a lone integer passes, a float or bool is named as the non-integer it is
        seeds = list(text) if isinstance(text, (list, tuple)) else [text]
        return check_seeds(seeds, f"seeds {reprlib.repr(text)}", _SEEDS_FIX)
    what = f"--seeds {reprlib.repr(text)}"
    seeds: list[int] = []
    for part in text.split(","):
        match = _SEED_PART.fullmatch(part)
        if match is None:
            raise ConfigError(f"{what}: {reprlib.repr(part.strip())} is not a seed or a range FIRST-LAST of "
                              f"non-negative integers; {_SEEDS_FIX}")
        bounds = [b for b in match.groups() if b is not None]
        for bound in bounds:  # int() of thousands of digits is refused by Python itself; say why here
            if len(bound.lstrip("0")) > _SEED_DIGITS:
                shown = bound if len(bound) <= 24 else bound[:20] + "…"
                raise ConfigError(f"{what}: {seed_above_max(shown)}; {_SEEDS_FIX}")
        first, last = int(bounds[0]), int(bounds[-1])
        if last < first:
            raise ConfigError(f"{what}: range {part.strip()!r} goes down; write {last}-{first}")
        count = last - first + 1 + len(seeds)
        if count > MAX_SEEDS:  # before expanding: 0-1000000000 would build a billion seeds
            raise ConfigError(f"{what}: {too_many_seeds(count)}; {_SEEDS_FIX}")
        seeds.extend(range(first, last + 1))
    return check_seeds(seeds, what, _SEEDS_FIX)


def _absolute_data_paths(overrides: dict[str, Any], grid: dict[str, Any],
                         keep: Iterable[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``overrides`` and ``grid`` with their data paths made absolute (:func:`absolute_data_path`)."""
    keep = set(keep)
    overrides = absolute_data_paths(overrides, keep)
    if isinstance(grid.get("data_dir"), list):
        grid = {**grid, "data_dir": [absolute_data_path(v, keep) for v in grid["data_dir"]]}
    return overrides, grid


def recorded_relative_paths(record: Any) -> set[str]:
    """The relative data paths a sweep record (``sweep.yaml``'s mapping) holds: a sweep written before they
    were stored absolute, whose trials' ``config.yaml`` hold the same text."""
    if not isinstance(record, dict):
        return set()
    overrides = record.get("overrides") if isinstance(record.get("overrides"), dict) else {}
    options = overrides.get("data_options") if isinstance(overrides.get("data_options"), dict) else {}
    values = [overrides.get("data_dir"), options.get("path")]
    for point in (record.get("resolved_grid") or {}).values() if isinstance(record.get("resolved_grid"),
                                                                             dict) else []:
        if isinstance(point, dict) and isinstance(point.get("data_dir"), list):
            values.extend(point["data_dir"])
    return {v for v in values if isinstance(v, str) and absolute_data_path(v) != v}


def build_spec(presets: list[str], grid: dict[str, Any] | list[str] | None = None,
               seeds: str | list[int] | None = None, overrides: dict[str, Any] | list[str] | None = None,
               cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0,
               keep_relative: Iterable[str] = ()) -> SweepSpec:
    """Validate a sweep and resolve its grid; raises :class:`ConfigError` before anything runs.

    Every trial's config is built (preset + ``overrides`` + grid point + seed), so an unknown preset,
    an unknown key or a value of the wrong type is reported here, naming it. A relative ``data_dir``
    (``--set`` or ``--grid``) or ``data_options`` ``path`` becomes the absolute path it names from the
    current folder, but for the texts of ``keep_relative`` (:func:`absolute_data_path`).
    """
    from sparsecoder.config import parse_overrides

    if not presets:
        raise ConfigError("no preset given; name at least one (see `sparsecoder presets`)")
    if len(set(presets)) != len(presets):
        raise ConfigError(f"a preset is named twice: {presets}")
    folders = [preset_folder(p) for p in presets]
    for folder in dict.fromkeys(f for f in folders if folders.count(f) > 1):
        same = [p for p in presets if preset_folder(p) == folder]
        raise ConfigError(f"presets {same} would share the trial folder {folder}; rename one of the files")
    grid = parse_grid(grid) if isinstance(grid, list) else check_grid(dict(grid or {}))
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    overrides, grid = _absolute_data_paths(dict(overrides or {}), grid, keep_relative)
    seed_list = parse_seeds(seeds)
    if not _finite(cpus_per_trial) > 0:  # inf threads was an OverflowError, nan passed
        raise ConfigError(f"--cpus-per-trial must be a finite number > 0, got {cpus_per_trial!r}")
    if not _finite(gpus_per_trial) >= 0:
        raise ConfigError(f"--gpus-per-trial must be a finite number >= 0, got {gpus_per_trial!r}")
    for key, why in _RESERVED.items():
        if key in grid or key in overrides:
            raise ConfigError(f"'{key}' cannot be swept or set in a sweep: {why}")
    for key in grid:
        if key in overrides:
            raise ConfigError(f"'{key}' is both in --grid and --set; keep one")

    _check_trial_count([[v if isinstance(v, list) else [v] for v in grid.values()]] * len(presets),
                       seed_list)  # lam=grid counted as one value until resolved
    resolved: dict[str, dict[str, list[Any]]] = {}
    for name in presets:
        preset = find_preset(name)  # unknown preset: ConfigError
        # a --set key without effect for this preset may count for another or at a grid point (checked
        # for every trial below); a grid value is checked where the other keys are the preset's
        base = preset.build(_without(overrides, preset.unused(overrides)))  # unknown --set key: ConfigError
        fields = {f.name for f in dataclasses.fields(base)}
        point_values: dict[str, list[Any]] = {}
        for key, values in grid.items():
            if key not in fields:
                raise ConfigError(f"unknown grid key '{key}' for preset '{name}'; valid keys: "
                                  f"{', '.join(sorted(fields - set(_RESERVED)))}")
            if values == PRESET_GRID:
                values = list(getattr(base, "lam_grid", None) or [])
                if not values:
                    raise ConfigError(f"--grid lam=grid: preset '{name}' has no lam_grid; list the values")
            coerced = []
            enabling = _enabling_grid_value(preset, key, grid)
            for value in values:
                point = {**overrides, key: value, **enabling}
                try:  # the config class coerces and range-checks the value
                    config = preset.build(_without(point, preset.unused(point) & set(overrides)))
                except ConfigError as err:
                    raise ConfigError(f"--grid {key}={format_value(value)} for preset '{name}': "
                                      f"{err}") from None
                coerced.append(getattr(config, key))
            if len(set(map(repr, coerced))) != len(coerced):
                raise ConfigError(f"--grid {key}: two values are the same number ({coerced})")
            point_values[key] = [list(v) if isinstance(v, tuple) else v for v in coerced]
        resolved[name] = point_values
    _check_trial_count([list(values.values()) for values in resolved.values()], seed_list)
    spec = SweepSpec(list(presets), grid, resolved, seed_list, overrides, float(cpus_per_trial),
                     float(gpus_per_trial))
    used: set[str] = set()  # the --set keys some trial uses
    for trial in spec.trials():  # combinations of values can still be invalid together
        folder = trial.folder.parent.name
        if len(os.fsencode(folder)) > MAX_FOLDER_NAME_BYTES:  # the OS would refuse it once the trial starts
            raise ConfigError(f"--grid: the folder name of grid point {reprlib.repr(folder)} is "
                              f"{len(os.fsencode(folder))} bytes, over the {MAX_FOLDER_NAME_BYTES} a file "
                              f"name may have; sweep fewer keys at once or shorter values")
        trial_overrides = spec.trial_overrides(trial)
        used.update(key for key in overrides if key in trial_overrides)
        try:
            spec.trial_config(trial)
        except ConfigError as err:
            raise ConfigError(f"trial {trial.label}: {err}") from None
    for key in overrides:
        if key not in used:  # without effect in every trial: refused as in the first one, which says why
            first = spec.trials()[0]
            try:
                spec._preset(first.preset).build({**spec.trial_overrides(first), key: overrides[key]})
            except ConfigError as err:
                raise ConfigError(f"--set {key}: no trial of this sweep uses it ({first.label}: {err})") \
                    from None
    return spec


def _enabling_grid_value(preset, key: str, grid: dict[str, Any]) -> dict[str, Any]:
    """``{controlling key: a grid value of it under which grid key ``key`` has an effect}`` when ``key``
    counts only under some setting of another key (``USED_WHEN``: ``hidden_size`` only with
    ``decoder=mlp``) that the grid also sweeps; empty otherwise. ``key``'s values are then checked where
    the grid makes them count (``--grid decoder=mlp hidden_size=512,1024`` on a linear preset); a trial
    where they do not is refused by the check of every trial."""
    rule = getattr(preset.config_class(), "USED_WHEN", {}).get(key)
    if rule is None or not isinstance(grid.get(rule.key), list):
        return {}
    return next(({rule.key: v} for v in grid[rule.key] if v in rule.values), {})


def _without(values: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if key not in keys}


def _finite(value: Any) -> float:
    """``value`` as a float when it is a finite number (not a bool), else NaN (which fails every bound)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return math.nan


def _check_trial_count(per_preset: list[list[list[Any]]], seeds: list[int]) -> None:
    """Refuse more than MAX_TRIALS trials: ``per_preset`` holds each preset's list of grid value lists."""
    n_trials = len(seeds) * sum(math.prod(len(values) for values in lists) for lists in per_preset)
    if n_trials > MAX_TRIALS:
        raise ConfigError(f"the sweep has {n_trials:,} trials (presets × grid points × seeds); a sweep runs "
                          f"at most {MAX_TRIALS:,} (each a run folder); split it into several sweeps with "
                          f"their own --out")


def record_yaml(record: dict[str, Any]) -> str:
    """The text of a sweep record (``sweep.yaml``): keys in their order, not sorted, since the order of the
    grid keys names the trial folders. :func:`sweep` writes it and :func:`check_compatible` compares a
    rerun's spec through the same round trip (a sorted dump refused every rerun of a sweep whose grid keys
    were not in alphabetical order, e.g. ``--grid lam=... fista_step=...``, as "a different sweep")."""
    return yaml.safe_dump(record, sort_keys=False, allow_unicode=True)


def check_compatible(old: dict[str, Any], new: SweepSpec, directory: Path) -> None:
    """Refuse ``new`` for ``directory`` unless it equals the saved sweep ``old`` or only adds grid values
    or seeds (same presets, same grid keys, same ``--set``, same resources per trial)."""
    where = f"{directory} holds a different sweep ({SPEC_FILE})"
    fix = "choose a new --out, or repeat the sweep's own presets/--set and only add grid values or seeds"
    new_d = load_yaml_text(record_yaml(new.to_dict()), SPEC_FILE)  # the saved file's round trip (read_record)
    if old.get("presets") != new_d["presets"]:
        raise ValueError(f"{where}: presets {old.get('presets')} there, {new_d['presets']} now; {fix}")
    if (old.get("overrides") or {}) != new_d["overrides"]:
        raise ValueError(f"{where}: --set {old.get('overrides')} there, {new_d['overrides']} now; {fix}")
    for key in ("cpus_per_trial", "gpus_per_trial"):
        if float(old.get(key, 0)) != float(new_d[key]):
            raise ValueError(f"{where}: {key} {old.get(key)} there, {new_d[key]} now; {fix}")
    old_grid = old.get("resolved_grid") or {}
    for preset in new_d["presets"]:
        before, now = old_grid.get(preset) or {}, new_d["resolved_grid"][preset]
        if list(before) != list(now):
            raise ValueError(f"{where}: grid keys {list(before)} there, {list(now)} now; {fix}")
        for key, values in before.items():
            missing = [v for v in values if v not in now[key]]
            if missing:
                raise ValueError(f"{where}: --grid {key} drops {missing} of preset {preset}; {fix}")
    missing_seeds = [s for s in old.get("seeds") or [] if s not in new_d["seeds"]]
    if missing_seeds:
        raise ValueError(f"{where}: --seeds drops {missing_seeds}; {fix}")
