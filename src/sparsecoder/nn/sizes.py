"""The one check of an integer argument: a layer or model size (features, components, hidden units,
iterations), a count or a seed."""

from __future__ import annotations

import numbers

__all__ = ["check_size"]


def check_size(owner: str, name: str, value, low: int = 1, *, note: str = "") -> int:
    """``value`` as a Python ``int`` when it is an integer (Python or NumPy, not a bool) ``>= low``; else a
    ``ValueError`` naming ``owner`` and ``name`` (a float such as 2.7 is refused, never truncated to 2).
    ``note`` follows the bound in the message, e.g. ``" (or None: about sqrt(n))"``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{owner}: {name} must be an integer >= {low}{note}, got {value!r}")
    return int(value)
