"""Checks of an experiment's settings (its profile after ``--set``), shared by every experiment module.

Each check reads ``settings[key]``, normalises it in place where a shorthand is accepted (a single seed for
a list of seeds, one name for a list of names) and raises a one-line ``ValueError`` naming the setting as
the user typed it (``--set key=value``) and what is accepted, so that :func:`sparsecoder.reproduce` can
refuse a bad value before it writes anything.
"""

from __future__ import annotations

import difflib
import math
import numbers
import reprlib
from collections.abc import Callable, Iterable
from typing import Any

# The bounds of the trials' configs: a setting that becomes a config value is held to them here, so that it
# is refused before reproduce() writes the experiment folder, not by the sweep after it (which left a
# reproduce.yaml that then refused the corrected command).
from sparsecoder.config import MAX_EPOCHS, MAX_INT, MAX_SEEDS, check_seeds

__all__ = ["did_you_mean", "is_lam", "names", "one_of", "flag", "seed_list", "positive_int", "epochs",
           "limit", "number", "number_list", "preset_mapping", "training_overrides"]


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` did you mean 'X'?`` for the one name of ``known`` that ``name`` misspells (case, ``_`` for ``-``,
    a close spelling, or the only name holding it: ``fig6``), else ``""``."""
    known = list(known)
    wanted = str(name).strip().lower().replace("_", "-")
    holding = [k for k in known if wanted and wanted in k]
    close = holding if len(holding) == 1 else difflib.get_close_matches(wanted, known, n=1, cutoff=0.75)
    return f" did you mean '{close[0]}'?" if close else ""


def _refuse(key: str, value: Any, expected: str) -> ValueError:
    return ValueError(f"--set {key}={value!r}: expected {expected}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_lam(value: Any) -> bool:
    """Whether ``value`` is a usable λ: a finite number >= 0 (not a bool)."""
    return _is_number(value) and value >= 0


def names(settings: dict[str, Any], key: str, known: Iterable[str]) -> list[str]:
    """A non-empty list of names from ``known`` (one name is a list of one); duplicates dropped."""
    known = list(known)
    value = settings[key]
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or any(not isinstance(v, str) or v not in known
                                                       for v in items):
        raise _refuse(key, value, f"a non-empty list of {', '.join(known)} "
                                  f"(e.g. {key}=[{','.join(known[:2])}])")
    settings[key] = list(dict.fromkeys(items))
    return settings[key]


def one_of(settings: dict[str, Any], key: str, known: Iterable[str]) -> str:
    """One name from ``known``."""
    known = list(known)
    if settings[key] not in known:
        raise _refuse(key, settings[key], f"one of {', '.join(known)}")
    return settings[key]


def seed_list(settings: dict[str, Any], key: str = "seeds") -> list[int]:
    """A non-empty list of distinct integer seeds in ``[0, 2**63 - 1]``, at most
    :data:`~sparsecoder.config.MAX_SEEDS` (one integer is a list of one).

    The list is held to :func:`sparsecoder.config.check_seeds`, the check ``sparsecoder sweep --seeds`` uses
    too. A repeated seed is refused rather than dropped: it would train (or probe) the same trial twice and
    count it twice in the mean ± std over seeds.
    """
    value = settings[key]
    items = [value] if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value
    settings[key] = check_seeds(
        list(items) if isinstance(items, tuple) else items, f"--set {key}={reprlib.repr(value)}",
        f"expected a non-empty list of integers >= 0 (at most 2**63 - 1), each seed once, at most "
        f"{MAX_SEEDS:,} seeds (e.g. {key}=[0,1])")
    return settings[key]


def flag(settings: dict[str, Any], key: str) -> bool:
    """``true`` or ``false`` (a string such as ``none`` or ``no-baselines`` was taken as true)."""
    if not isinstance(settings[key], bool):
        raise _refuse(key, settings[key], "true or false")
    return settings[key]


def positive_int(settings: dict[str, Any], key: str, *, allow_none: bool = False,
                 minimum: int = 1, maximum: int = MAX_INT) -> int | None:
    """An integer in ``[minimum, maximum]`` (or ``None`` where ``allow_none``: "null" on the command line).

    ``maximum`` defaults to the largest integer a config holds (64-bit).
    """
    value = settings[key]
    if value is None and allow_none:
        return None
    if isinstance(value, float) and value.is_integer():  # --set epochs=1e3 (1000.0), as train reads it
        value = settings[key] = int(value)
    if not _is_int(value) or not minimum <= value <= maximum:
        upper = f" and <= {maximum}" if _is_int(value) and value > maximum else ""
        raise _refuse(key, value, f"an integer >= {minimum}{upper}" + (" or null" if allow_none else ""))
    return value


def epochs(settings: dict[str, Any], key: str = "epochs", *, allow_none: bool = False) -> int | None:
    """A number of epochs in ``[1, MAX_EPOCHS]`` (the trials' config bound), or ``None`` where allowed."""
    return positive_int(settings, key, allow_none=allow_none, maximum=MAX_EPOCHS)


def limit(settings: dict[str, Any], key: str = "limit") -> int | None:
    """A cap on the training samples: an integer >= 2 (a batch statistic needs 2, as the trials' config
    requires) or ``None`` (all)."""
    return positive_int(settings, key, allow_none=True, minimum=2)


def number(settings: dict[str, Any], key: str, *, minimum: float = 0.0, strict: bool = False,
           maximum: float = math.inf, allow_none: bool = False) -> float | None:
    """A finite number >= ``minimum`` (> where ``strict``) and <= ``maximum``, or ``None`` where
    ``allow_none``."""
    value = settings[key]
    if value is None and allow_none:
        return None
    if not _is_number(value) or value < minimum or (strict and value == minimum) or value > maximum:
        upper = f" and <= {maximum:g}" if maximum < math.inf else ""
        raise _refuse(key, value, f"a number {'>' if strict else '>='} {minimum:g}{upper}"
                                  + (" or null" if allow_none else ""))
    return float(value)


def number_list(settings: dict[str, Any], key: str, *, minimum: float = 0.0,
                maximum: float = math.inf) -> list[float]:
    """A non-empty list of distinct finite numbers in ``[minimum, maximum]`` (one number is a list of one).

    A repeated number is refused: it would measure the same cell twice (the sweep refuses a repeated grid
    value too, but only after the experiment folder is written).
    """
    value = settings[key]
    items = [value] if _is_number(value) else value
    if (not isinstance(items, list) or not items
            or any(not _is_number(v) or not minimum <= v <= maximum for v in items)
            or len({float(v) for v in items}) != len(items)):
        upper = f" and <= {maximum:g}" if maximum < math.inf else ""
        raise _refuse(key, value, f"a non-empty list of numbers >= {minimum:g}{upper}, each once")
    settings[key] = [float(v) for v in items]
    return settings[key]


def preset_mapping(settings: dict[str, Any], key: str, valid: Callable[[Any], bool], what: str,
                   example: str, *, model: str | None = None, encoder: bool = False) -> dict[str, Any]:
    """A non-empty mapping ``preset name -> value`` whose presets exist and whose values pass ``valid``.

    ``model`` (e.g. ``"sparse_autoencoder"``): every preset must be of that model family — a preset of
    another family was refused by the sweep (no ``lam``) or by the evaluation only after the experiment
    folder was written, whose ``reproduce.yaml`` then refused the corrected command. ``encoder``: every
    preset must have an encoder (not DO / DO-NL).
    """
    from sparsecoder.config import list_presets

    value = settings[key]
    if not isinstance(value, dict) or not value:
        raise _refuse(key, value, f"a non-empty mapping preset -> {what} (e.g. {key}={example})")
    known = {p.name: p for p in list_presets()}
    usable = [name for name, p in known.items() if model is None or p.model == model]
    for preset, item in value.items():
        if preset not in known:
            raise ValueError(f"--set {key}: unknown preset {preset!r} (`sparsecoder presets` lists them)")
        if model is not None and known[preset].model != model:
            examples = ", ".join(n for n in usable if n.endswith("-mnist"))
            raise ValueError(f"--set {key}: preset {preset} is a {known[preset].model} model; this "
                             f"experiment takes {model} presets ({examples}, ...)")
        if encoder and getattr(known[preset].build(), "encoder", None) == "none":
            with_encoder = [n for n in usable if n.endswith("-mnist") and known[n].build().encoder != "none"]
            raise ValueError(f"--set {key}: preset {preset} has no encoder (decoder-only, FISTA codes); this "
                             f"experiment measures an encoder's codes: give one of {', '.join(with_encoder)}")
        if not valid(item):
            raise ValueError(f"--set {key}: {preset} needs {what}, got {item!r}")
    return value


def training_overrides(settings: dict[str, Any], keys: Iterable[str] = ("epochs", "limit")) -> dict[str, Any]:
    """The config overrides of every trial: the ``keys`` whose value is set (``None`` = the preset's)."""
    return {key: settings[key] for key in keys if settings[key] is not None}
