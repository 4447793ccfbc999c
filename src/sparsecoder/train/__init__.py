"""Training: the shared trainer, run folders (config, weights, checkpoint, history, metrics) and their CLI."""

from sparsecoder.train.trainer import (
    TrainingDiverged,
    encode_run,
    evaluate_run,
    load_run,
    train,
)

__all__ = ["train", "load_run", "evaluate_run", "encode_run", "TrainingDiverged"]
