"""Data sources behind one registry: ``load(name, seed=, limit=, data_dir=, **options) -> DataSplits``.

The names are imported on first use (:func:`sparsecoder.util.lazy_names`): ``sparsecoder data --help``
needs no torch."""

from sparsecoder.util import lazy_names

__all__ = [
    "DataSplits", "MemmapRows", "Preprocessing", "Split", "download_mnist", "list_sources", "load",
    "load_test_split", "preprocessing_from_dict", "register_preprocessing", "register_source",
    "source_options",
]

__getattr__, __dir__ = lazy_names(__name__, {
    **{name: f"sparsecoder.data.base:{name}" for name in ("DataSplits", "MemmapRows", "Split")},
    "download_mnist": "sparsecoder.data.download:download_mnist",
    **{name: f"sparsecoder.data.preprocessing:{name}"
       for name in ("Preprocessing", "preprocessing_from_dict", "register_preprocessing")},
    **{name: f"sparsecoder.data.registry:{name}"
       for name in ("list_sources", "load", "load_test_split", "register_source", "source_options")},
})
