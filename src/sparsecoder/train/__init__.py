"""Training: the shared trainer, run folders (config, weights, checkpoint, history, metrics) and their CLI.

The package is callable: ``sparsecoder.train(...)`` is :func:`sparsecoder.train.trainer.train`. Its names are
imported on first use (:func:`sparsecoder.util.lazy_names`): ``sparsecoder train --help`` needs no torch."""

from sparsecoder.util import callable_package, lazy_names

__all__ = [
    "train", "load_run", "evaluate_run", "encode_run", "decode_run", "load_test_split", "TrainingDiverged",
]

__getattr__, __dir__ = lazy_names(__name__, {
    "train": "sparsecoder.train.trainer:train",
    "TrainingDiverged": "sparsecoder.train.trainer:TrainingDiverged",
    **{name: f"sparsecoder.train.run:{name}"
       for name in ("load_run", "evaluate_run", "encode_run", "decode_run", "load_test_split")},
})

callable_package(__name__)  # sparsecoder.train(...) calls train; sparsecoder.train stays this package
