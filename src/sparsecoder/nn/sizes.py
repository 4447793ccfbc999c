"""The one check of an integer argument: a layer or model size (features, components, hidden units,
iterations), a count or a seed (:func:`check_seed`: one that torch takes); and of a non-negative number
argument (:func:`check_nonnegative_number`)."""

from __future__ import annotations

import math
import numbers

__all__ = ["check_size", "check_seed", "check_nonnegative_number"]


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_size(owner: str, name: str, value, low: int = 1, *, note: str = "") -> int:
    """``value`` as a Python ``int`` when it is an integer (Python or NumPy, not a bool) ``>= low``; else a
    ``ValueError`` naming ``owner`` and ``name`` (a float such as 2.7 is refused, never truncated to 2).
    ``note`` follows the bound in the message, e.g. ``" (or None: about sqrt(n))"``."""
    if not _is_integer(value) or value < low:
        raise ValueError(f"{owner}: {name} must be an integer >= {low}{note}, got {value!r}")
    return int(value)


def check_seed(owner: str, value) -> int:
    """``value`` as a Python ``int`` when it is an integer seed that torch takes, in ``[0, 2**63 - 1]`` (not a
    bool); else a ``ValueError`` naming ``owner`` (torch's own error is a RuntimeError about overflow)."""
    if not _is_integer(value) or not 0 <= value < 2**63:
        raise ValueError(f"{owner}: seed must be an integer in [0, 2**63 - 1], got {value!r}")
    return int(value)


def check_nonnegative_number(name: str, value, *, strictly_positive: bool = False) -> float:
    """``value`` (a real number, or a 0-d numpy array / tensor holding one; not a bool) as a finite float
    ``>= 0`` (``> 0`` when ``strictly_positive``), or a ``ValueError`` naming ``name``. The check of every
    non-negative number argument of inference, dictionary learning and the synthetic data sources."""
    shape = getattr(value, "shape", None)
    if shape is not None and len(shape) > 0:
        raise ValueError(f"{name} must be a single number (one for every sample), got an array of shape "
                         f"{tuple(shape)}")
    if shape is not None and hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (strictly_positive and value == 0):
        bound = "> 0" if strictly_positive else ">= 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return value
