"""Sweeps: presets × grid × seeds as one resumable command, each trial a Ray task writing a run folder.

``sparsecoder.sweep(...)`` / ``sparsecoder sweep ...``; see :func:`sparsecoder.sweep.run.sweep` (the package
is callable as that function). Ray is imported only when a sweep runs; the package's names on first use
(:func:`sparsecoder.util.lazy_names`).
"""

from sparsecoder.util import callable_package, lazy_names

__all__ = ["sweep", "SweepSpec", "Trial", "build_spec", "parse_grid", "parse_seeds"]

__getattr__, __dir__ = lazy_names(__name__, {
    "sweep": "sparsecoder.sweep.run:sweep",
    **{name: f"sparsecoder.sweep.spec:{name}"
       for name in ("SweepSpec", "Trial", "build_spec", "parse_grid", "parse_seeds")},
})

callable_package(__name__)  # sparsecoder.sweep(...) calls sweep; sparsecoder.sweep stays this package
