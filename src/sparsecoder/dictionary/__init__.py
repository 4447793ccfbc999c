"""Dictionary learning: the online algorithm of Mairal et al. (2010) on the exact active-set lasso."""

from sparsecoder.dictionary.online import (
    OnlineDictionaryLearner,
    dictionary_objective,
    initial_dictionary,
    new_memory,
    run_epoch,
)

__all__ = ["OnlineDictionaryLearner", "dictionary_objective", "initial_dictionary", "new_memory", "run_epoch"]
