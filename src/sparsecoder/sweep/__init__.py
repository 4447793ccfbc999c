"""Sweeps: presets × grid × seeds as one resumable command, each trial a Ray task writing a run folder.

``sparsecoder.sweep(...)`` / ``sparsecoder sweep ...``; see :func:`sparsecoder.sweep.run.sweep` (the package
is callable as that function). Ray is imported only when a sweep runs.
"""

from sparsecoder.sweep.run import sweep
from sparsecoder.sweep.spec import SweepSpec, Trial, build_spec, parse_grid, parse_seeds
from sparsecoder.util import callable_package

__all__ = ["sweep", "SweepSpec", "Trial", "build_spec", "parse_grid", "parse_seeds"]


callable_package(__name__)  # sparsecoder.sweep(...) calls sweep; sparsecoder.sweep stays this package
