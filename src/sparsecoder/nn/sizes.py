"""The one check of an integer argument: a layer or model size (features, components, hidden units,
iterations), a count or a seed (:func:`check_seed`: one that torch takes)."""

from __future__ import annotations

import numbers

__all__ = ["check_size", "check_seed"]


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
