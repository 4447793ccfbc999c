"""Per-epoch history (``history.csv``), metric averaging and JSON-safe values for ``metrics.json``."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sparsecoder.io import atomic_write_text

__all__ = ["RunningMean", "history_columns", "write_history", "read_history_rows", "jsonable"]


class RunningMean:
    """Sample-weighted means of scalar logs over the mini-batches of an epoch.

    ``update(logs, n)`` adds one batch of ``n`` samples; :meth:`means` returns
    ``Σ_b n_b · log_b / Σ_b n_b`` per key (keys may appear in only some batches).
    """

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}
        self._weights: dict[str, float] = {}

    def update(self, logs: dict[str, Any], n: int) -> None:
        for key, value in logs.items():
            value = float(value)
            self._sums[key] = self._sums.get(key, 0.0) + n * value
            self._weights[key] = self._weights.get(key, 0.0) + n

    def means(self) -> dict[str, float]:
        return {key: self._sums[key] / self._weights[key] for key in self._sums}


def history_columns(rows: Iterable[dict[str, Any]]) -> list[str]:
    """Column names in order of first appearance, ``epoch`` first, then the learning rates (``lr_*``) and
    ``seconds`` last: the validation metrics, first logged at a later epoch when not every epoch is
    validated (``validate_every``), stay before the learning rates, as in a run validating every epoch."""
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    rates = [c for c in columns if c.startswith("lr_")]
    middle = [c for c in columns if c not in ("epoch", "seconds", *rates)]
    return ["epoch", *middle, *rates, *(["seconds"] if "seconds" in columns else [])]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # shortest exact round-trip representation
    return str(value)


def write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write all epochs to ``history.csv`` atomically (rewritten every epoch; empty cell = not logged)."""
    columns = history_columns(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    atomic_write_text(Path(path), buffer.getvalue())


def read_history_rows(path: Path) -> list[dict[str, float]]:
    """Rows of a ``history.csv`` as dicts of floats (``epoch`` as int; empty cells left out)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no history file at {path}")
    with path.open(newline="") as fh:
        rows = []
        for raw in csv.DictReader(fh):
            row: dict[str, float] = {}
            for key, value in raw.items():
                if value not in (None, ""):
                    row[key] = int(value) if key == "epoch" else float(value)
            rows.append(row)
    return rows


def jsonable(value: Any) -> Any:
    """Plain JSON values: tensors/arrays become (nested) lists, numpy scalars Python numbers, NaN/inf
    become ``None`` (strict JSON has no NaN), paths strings."""
    try:
        import numpy as np
        import torch
    except ImportError:  # pragma: no cover
        np = torch = None
    if torch is not None and isinstance(value, torch.Tensor):
        value = value.detach().cpu().tolist()
    if np is not None and isinstance(value, np.ndarray):
        value = value.tolist()
    if np is not None and isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value
