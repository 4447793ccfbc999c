"""Sweeps: presets × grid × seeds as one resumable command, each trial a Ray task writing a run folder.

``sparsecoder.sweep(...)`` / ``sparsecoder sweep ...``; see :func:`sparsecoder.sweep.run.sweep`. Ray is
imported only when a sweep runs.
"""

from sparsecoder.sweep.run import sweep
from sparsecoder.sweep.spec import SweepSpec, Trial, build_spec, parse_grid, parse_seeds

__all__ = ["sweep", "SweepSpec", "Trial", "build_spec", "parse_grid", "parse_seeds"]
