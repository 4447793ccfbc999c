"""Data sources behind one registry: ``load(name, seed=, limit=, data_dir=, **options) -> DataSplits``."""

from sparsecoder.data.base import DataSplits, Split
from sparsecoder.data.registry import list_sources, load, register_source

__all__ = ["DataSplits", "Split", "list_sources", "load", "register_source"]
