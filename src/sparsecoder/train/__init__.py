"""Training: the shared trainer, run folders (config, weights, checkpoint, history, metrics) and their CLI."""

from sparsecoder.train.run import decode_run, encode_run, evaluate_run, load_run, load_test_split
from sparsecoder.train.trainer import TrainingDiverged, train

__all__ = [
    "train", "load_run", "evaluate_run", "encode_run", "decode_run", "load_test_split", "TrainingDiverged",
]
