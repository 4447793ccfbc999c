"""Data sources behind one registry: ``load(name, seed=, limit=, data_dir=, **options) -> DataSplits``."""

from sparsecoder.data.base import DataSplits, Split
from sparsecoder.data.download import download_mnist
from sparsecoder.data.registry import list_sources, load, register_source, source_options

__all__ = [
    "DataSplits", "Split", "download_mnist", "list_sources", "load", "register_source", "source_options",
]
