"""Training: the shared trainer, run folders (config, weights, checkpoint, history, metrics) and their CLI.

The package is callable: ``sparsecoder.train(...)`` is :func:`sparsecoder.train.trainer.train`."""

from sparsecoder.train.run import decode_run, encode_run, evaluate_run, load_run, load_test_split
from sparsecoder.train.trainer import TrainingDiverged, train
from sparsecoder.util import callable_package

__all__ = [
    "train", "load_run", "evaluate_run", "encode_run", "decode_run", "load_test_split", "TrainingDiverged",
]


callable_package(__name__)  # sparsecoder.train(...) calls train; sparsecoder.train stays this package
