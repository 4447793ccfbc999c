"""Data sources behind one registry: ``load(name, seed=, limit=, data_dir=, **options) -> DataSplits``."""

from sparsecoder.data.base import DataSplits, MemmapRows, Split
from sparsecoder.data.download import download_mnist
from sparsecoder.data.preprocessing import Preprocessing, preprocessing_from_dict, register_preprocessing
from sparsecoder.data.registry import list_sources, load, load_test_split, register_source, source_options

__all__ = [
    "DataSplits", "MemmapRows", "Preprocessing", "Split", "download_mnist", "list_sources", "load",
    "load_test_split", "preprocessing_from_dict", "register_preprocessing", "register_source",
    "source_options",
]
