"""Typed, frozen configurations loaded from YAML presets and ``--set KEY=VALUE`` overrides.

Every model family defines one ``@dataclass(frozen=True)`` config class and registers it with
:func:`register_config`.  A preset is a YAML file in ``sparsecoder/presets/`` of the form::

    model: sparse_autoencoder      # key of the registered config class
    paper: Evtimova & LeCun 2022, Table 3
    description: one line shown by `sparsecoder presets`
    config:                        # fields of the config class; the rest keep their defaults
      lam: 0.005
      ...

Unknown keys (in ``config:`` or at the top level) and values of the wrong type are errors that name the
key and list the valid ones; range checks live in each class's ``__post_init__`` and raise
:class:`ConfigError` too. Files are read by :func:`read_yaml`: at most 10 MB, no repeated key, no alias
expansion bomb; messages quote values through :func:`shown` (at most 200 characters).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import math
import numbers
import os
import re
import reprlib
import shlex
import types
import typing
import warnings
from collections.abc import Iterable
from importlib import resources
from pathlib import Path, PurePath
from typing import Any

import yaml

__all__ = [
    "ConfigError",
    "register_config",
    "config_classes",
    "from_dict",
    "to_dict",
    "parse_overrides",
    "absolute_data_path",
    "absolute_data_paths",
    "Preset",
    "list_presets",
    "load_preset",
    "find_preset",
    "save_config",
    "load_config",
    "read_config_document",
    "read_yaml",
    "load_yaml_text",
    "shown",
    "check",
    "check_seeds",
    "MAX_SEEDS",
    "UsedWhen",
    "Layer",
    "layered_config",
]


class ConfigError(ValueError):
    """A configuration problem a user can fix: unknown key, wrong type, out-of-range value.

    The message is cut to :data:`MAX_MESSAGE` characters (its start and end kept): values are shown through
    :func:`shown`, and this is the guard for any other message quoting what a user wrote.
    """

    def __init__(self, message: Any = "", *args: Any) -> None:
        message = str(message)
        if len(message) > MAX_MESSAGE:
            cut = len(message) - MAX_MESSAGE
            message = f"{message[:MAX_MESSAGE - 500]} ... ({cut:,} characters cut) ... {message[-500:]}"
        super().__init__(message, *args)


# Longest ConfigError message, and longest value a message quotes (see `shown`).
MAX_MESSAGE = 3000
MAX_SHOWN = 200
# Largest preset/config/record YAML file read (a real one is a few KB; a 200 MB one parses for minutes).
MAX_YAML_BYTES = 10 * 2**20
# Most values the aliases (*name) of one YAML document may add once expanded: a few nested aliases
# ("billion laughs") name billions of values that every walk or repr of the value would visit.
MAX_ALIAS_EXPANSION = 100_000

_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother, _SHOWN.maxlong = 3, 80, 80, 60


def shown(value: Any) -> str:
    """A short repr of ``value`` for an error message: nested and long values abbreviated (``...``), at
    most :data:`MAX_SHOWN` characters whatever its size."""
    text = _SHOWN.repr(value)
    return text if len(text) <= MAX_SHOWN else f"{text[:MAX_SHOWN - 3]}..."


# Largest integer any config value may hold: torch and NumPy take 64-bit integers (seeds, sizes), and a
# larger Python int overflows deep inside them.
MAX_INT = 2**63 - 1
MAX_EPOCHS = 1_000_000
MAX_BATCH_SIZE = 2**31 - 1  # torch indexes a batch with 32-bit sizes in places
MAX_THREADS = 1024
# Largest weight or scale of a loss term (λ, β, γ, a hinge threshold, a weight decay, the VAE's β): they
# enter float32 losses, squared in places (T², Adam's second moment), and a 1e30 makes the first step
# inf/NaN, which the trainer would report as a divergence blaming the learning rate.
MAX_LOSS_WEIGHT = 1e8
# Most seeds one list may hold: a sweep runs at most this many trials (sweep.spec.MAX_TRIALS), each a
# run folder.
MAX_SEEDS = 10_000


_CONFIG_CLASSES: dict[str, type] = {}


def register_config(name: str):
    """Class decorator: make a frozen config dataclass loadable by ``model: name`` in presets."""

    def wrap(cls):
        _CONFIG_CLASSES[name] = cls
        cls.model_name = name
        return cls

    return wrap


def config_classes() -> dict[str, type]:
    _import_families()
    return dict(_CONFIG_CLASSES)


def _import_families() -> None:
    # Config classes register themselves on import; import the families' configs lazily so that
    # `sparsecoder.config` itself stays light and free of import cycles. They are defined apart from the
    # models' torch code, so that listing and checking presets imports no torch.
    import sparsecoder.models.configs  # noqa: F401


def check(condition: bool, key: str, message: str) -> None:
    """Raise :class:`ConfigError` naming ``key`` unless ``condition`` holds (for ``__post_init__``)."""
    if not condition:
        raise ConfigError(f"config key '{key}': {message}")


def seed_above_max(shown: str) -> str:
    """The problem of a seed above :data:`MAX_INT` (``shown`` as written), as :func:`check_seeds` words it."""
    return f"seed {shown} is above 2**63 - 1, the largest seed torch and NumPy take here"


def too_many_seeds(count: int) -> str:
    """The problem of ``count`` > :data:`MAX_SEEDS` seeds, as :func:`check_seeds` words it."""
    return (f"{count:,} seeds, more than the {MAX_SEEDS:,} allowed (a sweep runs at most {MAX_SEEDS:,} "
            f"trials, each a run folder)")


def check_seeds(seeds: Any, what: str, fix: str) -> list[int]:
    """The one check of a list of seeds, for ``sparsecoder sweep --seeds`` and ``reproduce --set seeds=``.

    ``seeds`` must be a non-empty list (or tuple) of at most :data:`MAX_SEEDS` distinct integers (Python or
    NumPy, not bools) in ``[0, 2**63 - 1]`` (the config's ``seed`` bound). Returns them as Python ints;
    otherwise raises :class:`ConfigError` ``"{what}: {problem}; {fix}"`` (``what`` names the value as the
    user gave it, ``fix`` says what is accepted). Each caller parses its own shorthand (``"0-4"``, a single
    integer) before calling this. A repeated seed is refused, not dropped: it would run the same trial twice
    and count it twice in a mean over seeds.
    """
    def refuse(problem: str) -> ConfigError:
        return ConfigError(f"{what}: {problem}; {fix}")

    if not isinstance(seeds, (list, tuple)):
        raise refuse(f"{reprlib.repr(seeds)} is not a list of seeds")
    if not seeds:
        raise refuse("no seed given")
    if len(seeds) > MAX_SEEDS:  # before looking at each one: the list may be huge
        raise refuse(too_many_seeds(len(seeds)))
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            kind = "a bool" if isinstance(seed, bool) else type(seed).__name__
            raise refuse(f"{reprlib.repr(seed)} ({kind}) is not an integer")
        if seed < 0:
            raise refuse(f"seed {seed} is negative")
        if seed > MAX_INT:
            raise refuse(seed_above_max(reprlib.repr(int(seed))))
    seen: set[int] = set()
    for seed in seeds:
        if int(seed) in seen:
            raise refuse(f"seed {int(seed)} is listed twice (its trial would run, and count, twice)")
        seen.add(int(seed))
    return [int(s) for s in seeds]


def _number(value: Any) -> int | float | None:
    """``value`` as a number, or None. Strings such as ``"1e-3"`` count: YAML 1.1 (PyYAML) reads
    exponent notation without a dot as a string, so ``--set lam=1e-3`` would otherwise be rejected."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):  # NumPy integers too (e.g. values from np.arange)
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
        try:
            return float(value)
        except ValueError:
            return None
    return None


def coerce(key: str, value: Any, annotation: Any) -> Any:
    """Convert ``value`` to the field's annotated type or raise a ConfigError naming the key."""
    if isinstance(annotation, str):
        raise TypeError("config classes must not use string annotations in coerce")
    value = _python_scalar(value)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(key, value, arg)
            except ConfigError as err:
                errors.append(str(err))
        prefix = f"config key '{key}': "
        reasons = " | ".join(e[len(prefix):] if e.startswith(prefix) else e for e in errors)
        raise ConfigError(f"{prefix}{reasons}" if reasons else f"{prefix}invalid value {shown(value)}")
    if origin is typing.Literal:
        try:
            return args[args.index(value)]  # the choice itself: a str subclass is no YAML text
        except (ValueError, TypeError):  # not a choice (an array's == is no bool: TypeError, ValueError)
            raise ConfigError(f"config key '{key}': {shown(value)} is not allowed; "
                              f"choose one of {list(args)}") from None
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}': expected a list, got {shown(value)}")
        inner = args[0] if args else Any
        items = [coerce(key, v, inner) for v in value]
        return tuple(items) if origin is tuple else items
    if annotation is Any:
        return value
    if annotation is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}': must be a mapping ({{name: value, ...}}), got "
                              f"{shown(value)}")
        return plain(key, value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key '{key}': expected true/false, got {shown(value)}")
    if annotation is int:
        number = _number(value)
        if number is None or isinstance(number, float) and not number.is_integer():  # nan, inf: False
            raise ConfigError(f"config key '{key}': expected an integer, got {shown(value)}")
        if abs(int(number)) > MAX_INT:  # an int of any size (math.isfinite of 10**400 was an OverflowError)
            raise ConfigError(f"config key '{key}': {shown(value)} is too large (integers are 64-bit: "
                              f"at most {MAX_INT})")
        return int(number)
    if annotation is float:
        number = _number(value)
        if number is None:
            raise ConfigError(f"config key '{key}': expected a number, got {shown(value)}")
        try:
            number = float(number)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise ConfigError(f"config key '{key}': expected a number (finite), got {shown(value)}")
        return number
    if annotation is str:
        if isinstance(value, PurePath):  # a path given in Python (data_dir=Path(...)): YAML holds text
            return str(value)
        if not isinstance(value, str):
            raise ConfigError(f"config key '{key}': expected a string, got {shown(value)}")
        value = str(value)  # a str subclass (NumPy's np.str_) is no YAML text
        if not value.strip():  # `--set data_dir=` read the current folder; no text key means "nothing"
            raise ConfigError(f"config key '{key}': empty text {shown(value)}; give a value, or leave the "
                              f"key out for its default")
        return value
    return value


def _python_scalar(value: Any) -> Any:
    """A NumPy scalar (``np.str_``, ``np.bool_``, ``np.int64``...: an element of an array) as the Python
    value it holds; anything else unchanged."""
    if type(value).__module__ == "numpy" and getattr(value, "shape", None) == () and hasattr(value, "item"):
        return value.item()
    return value


def plain(key: str, value: Any) -> Any:
    """``value`` (a mapping such as ``data_options``) in the plain types a config file holds: NumPy scalars,
    str subclasses and paths converted, tuples as lists, mappings and lists walked; anything else (an
    array, a tensor, an object) is a :class:`ConfigError` naming ``key``. A config built in Python with
    ``data_options={"n_train": np.int64(100)}`` or ``prior=np.str_("laplace")`` failed when its config.yaml
    was written (yaml's RepresenterError)."""
    value = _python_scalar(value)
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, (str, PurePath)):
        return str(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [plain(key, v) for v in value]
    if isinstance(value, dict):
        return {plain(key, k): plain(f"{key}.{k}", v) for k, v in value.items()}
    raise ConfigError(f"config key '{key}': {shown(value)} ({type(value).__name__}) is no value a config "
                      f"file holds; give a number, text, true/false, null, a list or a mapping")


def _check_known(cls: type, data: Any) -> None:
    """A :class:`ConfigError` listing the valid keys if ``data`` holds a key that is no field of ``cls``."""
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names), key=str)
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {_listed(unknown)} for {cls.__name__}{_did_you_mean(unknown, names)}; "
            f"valid keys: {', '.join(sorted(names))}"
        )


def _did_you_mean(unknown: list[Any], names: list[str]) -> str:
    """The valid keys an unknown key was probably meant as, for its error message: ``epohcs`` → epochs, and
    ``data_options.normalize`` → the mapping form ``data_options={normalize: ...}`` (keys do not nest)."""
    hints = []
    for key in unknown[:20]:
        if not isinstance(key, str):
            continue
        head, dot, tail = key.partition(".")
        if dot and head in names:
            hints.append(f"{shown(key)}: keys do not nest; give {head} a mapping, e.g. "
                         f"'{head}={{{tail}: VALUE}}'")
            continue
        close = difflib.get_close_matches(key.lower(), names, n=1, cutoff=0.75)
        if close:
            hints.append(f"{shown(key)}: did you mean '{close[0]}'?")
    return f" ({'; '.join(hints)})" if hints else ""


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Build ``cls`` (a :class:`CommonConfig` subclass) from a plain dict, rejecting unknown keys; the
    types are checked and coerced once, by :func:`coerce_fields` in ``CommonConfig.__post_init__``.

    Every value counts as the user's; :func:`layered_config` builds a config from a preset and what the
    user set on top of it, refusing a setting that would have no effect."""
    _check_known(cls, data)
    return cls(**data)


@dataclasses.dataclass(frozen=True)
class UsedWhen:
    """One row of a config class's ``USED_WHEN`` table: its key has an effect only while the config key
    ``key`` is one of ``values`` (``hidden_size`` only with ``decoder=mlp``).

    ``off`` is the value of the key that means "not used" (``0.0`` for a loss weight, ``False`` for a
    switch), which a user may set whatever ``key`` is; None where no value means that (a size, a scale).
    """

    key: str
    values: tuple[Any, ...]
    off: Any = None


# Who gave the values of a layer of :func:`layered_config`.
PRESET = "preset"  # a built-in preset: a key the user's settings make inert is fine (it takes its off value)
USER = "user"  # --set, overrides, a sweep's grid, keyword arguments: an inert key is refused
# a YAML file given by path (a copy of a preset, a run's config.yaml) or a config object (maybe
# dataclasses.replace of a preset's config): whose keys they are cannot be told, so an inert key is warned of
UNSURE = "unsure"


@dataclasses.dataclass(frozen=True)
class Layer:
    """Values of config keys and who gave them (:data:`PRESET`, :data:`USER` or :data:`UNSURE`);
    ``where`` names them in a message ("in my.yaml"), empty for --set / overrides / keyword arguments."""

    values: Any
    given_by: str
    where: str = ""


def layered_config(cls: type, layers: list[Layer]) -> Any:
    """Build ``cls`` from ``layers`` (a later layer's value of a key replaces an earlier one's; a later
    ``data_options`` mapping is merged into the earlier one, option by option), after checking that every
    setting the user gave has an effect under the others.

    The one check of settings without effect: each config class lists in ``USED_WHEN`` (key →
    :class:`UsedWhen`) the keys used only under some value of another key. Where the merged settings make
    such a key inert and it was given

    * by the user (:data:`USER`), other than as its ``off`` value: a :class:`ConfigError` naming the key, the
      setting that makes it inert and the fix, before any work (``likelihood_sigma`` with
      ``likelihood=mse`` would be silently ignored);
    * by a preset (:data:`PRESET`): fine, the key takes its ``off`` value (else the field's default), so
      that the config shows what runs (``--set decoder=linear`` on an "-nl" preset: its ``hidden_size`` and
      hidden-bias weight decay are not the user's);
    * by a file or config object whose keys may be a preset's (:data:`UNSURE`): a warning, the value kept.
    """
    merged: dict[str, Any] = {}
    origin: dict[str, Layer] = {}
    option_origin: dict[str, Layer] = {}  # who gave each data option
    for layer in layers:
        values = dict(layer.values or {})
        _check_known(cls, values)
        options = values.get("data_options")
        if isinstance(options, dict):
            # data options are merged option by option: --set 'data_options={split_seed: 1}' on a preset
            # with {normalize: unit} replaced the whole mapping, so the preset's normalize silently fell back
            # to the source's default (and bce then refused the data, blaming their range)
            if isinstance(merged.get("data_options"), dict):
                values["data_options"] = {**merged["data_options"], **options}
            else:
                option_origin = {}
            option_origin.update(dict.fromkeys(options, layer))
        elif "data_options" in values:
            option_origin = {}
        merged.update(values)
        origin.update(dict.fromkeys(values, layer))
    fields = {f.name: f for f in dataclasses.fields(cls)}
    refused, warned = [], []
    warned += _drop_other_sources_options(merged, origin, option_origin)
    for key, (value, rule, setting) in _unused(cls, merged).items():
        layer = origin[key]
        if layer.given_by == PRESET:
            merged[key] = rule.off if rule.off is not None else fields[key].default
            continue
        used = " or ".join(f"{rule.key}={v}" for v in rule.values)
        where = f" {layer.where}" if layer.where else ""
        problem = (f"config key '{key}' (set to {shown(value)}{where}) has no effect with "
                   f"{rule.key}={setting}: it is used only with {used}")
        if layer.given_by == UNSURE:
            if value != fields[key].default:  # a default value says nothing of what the user meant
                warned.append(f"{problem}; it is ignored")
            continue
        off = f" (or set it to {rule.off})" if rule.off is not None else ""
        refused.append(f"{problem}, so the run would silently ignore it; leave {key} out{off}, "
                       f"or set {used}")
    if refused:
        raise ConfigError("; ".join(refused))
    for message in warned:
        warnings.warn(message, UserWarning, stacklevel=3)
    return cls(**merged)


def _drop_other_sources_options(merged: dict[str, Any], origin: dict[str, Layer],
                                option_origin: dict[str, Layer]) -> list[str]:
    """A preset's ``data_options`` are options of the preset's ``data`` source: when the user's layer
    picks another source (``--set data=synthetic`` on an MNIST preset), the preset's options that source
    does not have are dropped (they take the source's defaults), as a preset's other keys that a setting
    makes unused are (``normalize`` used to block the run as "no such option"). From a file given by path
    (:data:`UNSURE`) they are dropped with a warning (returned); an option the user gave
    (``option_origin``) is never dropped: the config's own check names it."""
    options, source = merged.get("data_options"), merged.get("data")
    source_layer = origin.get("data")
    if (not isinstance(options, dict) or not options or not isinstance(source, str) or source_layer is None
            or source_layer.given_by != USER):
        return []
    from sparsecoder.data.registry import source_options

    try:
        accepted = source_options(source)
    except ValueError:  # an unknown source: named by the config's own check
        return []
    dropped = [name for name in options if name not in accepted and name in option_origin
               and option_origin[name].given_by != USER]
    if not dropped:
        return []
    merged["data_options"] = {name: value for name, value in options.items() if name not in dropped}
    unsure = [name for name in dropped if option_origin[name].given_by == UNSURE]
    if not unsure:
        return []
    layer = option_origin[unsure[0]]
    where = f" {layer.where}" if layer.where else ""
    return [f"data_options {_listed(unsure)}{where} are not options of data source '{source}'; "
            f"they are ignored"]


def _unused(cls: type, values: dict[str, Any]) -> dict[str, tuple[Any, UsedWhen, Any]]:
    """The keys of ``values`` that ``cls.USED_WHEN`` says have no effect under ``values`` (a key not in
    ``values`` at its field's default), other than at their ``off`` value: ``{key: (its value coerced, its
    rule, the value of the rule's key)}``. Values are coerced to their field's type first, so that a wrong
    type or choice is named as such (:class:`ConfigError`), not as a setting without effect."""
    defaults = field_defaults(cls)
    hints = _field_types(cls)

    def value_of(key: str) -> Any:
        return coerce(key, values[key], hints[key]) if key in values else defaults[key]

    out = {}
    for key, rule in getattr(cls, "USED_WHEN", {}).items():
        if key not in values:
            continue
        setting = value_of(rule.key)
        if setting in rule.values:
            continue
        value = value_of(key)
        if rule.off is None or value != rule.off:
            out[key] = (value, rule, setting)
    return out


def to_dict(config: Any) -> dict[str, Any]:
    """Plain-YAML-friendly dict of a config (tuples become lists)."""
    out = {}
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def _listed(keys: list[Any], most: int = 20) -> str:
    """``keys`` as a short list for a message: each :func:`shown`, at most ``most`` of them."""
    text = ", ".join(shown(k) for k in keys[:most])
    return f"[{text}, ... {len(keys) - most:,} more]" if len(keys) > most else f"[{text}]"


def absolute_data_path(value: Any, keep: Iterable[str] = ()) -> Any:
    """A relative data path (``data_dir``, ``data_options`` ``path``) as the absolute path it names from the
    current folder, as the command lines store it: ``evaluate``, ``--resume`` and a sweep's trials (Ray
    workers) find the data from any folder, and a rerun from another folder, where the same relative text
    names other data, is not taken for the same run. A leading ``~`` is left to the loader (the home
    folder); a text in ``keep`` (recorded relative by an older version) stays as it is, so that its own
    rerun still recognises its runs."""
    if (isinstance(value, str) and value.strip() and not value.startswith("~") and not os.path.isabs(value)
            and value not in keep):
        return os.path.abspath(value)
    return value


def absolute_data_paths(overrides: dict[str, Any], keep: Iterable[str] = ()) -> dict[str, Any]:
    """``overrides`` with ``data_dir`` and ``data_options`` ``path`` made absolute
    (:func:`absolute_data_path`)."""
    keep = set(keep)
    out = dict(overrides)
    if "data_dir" in out:
        out["data_dir"] = absolute_data_path(out["data_dir"], keep)
    options = out.get("data_options")
    if isinstance(options, dict) and "path" in options:
        out["data_options"] = {**options, "path": absolute_data_path(options["path"], keep)}
    return out


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """Parse ``["lam=0.01", "decoder=mlp"]`` into ``{"lam": 0.01, "decoder": "mlp"}`` (YAML values).

    A key given twice is refused: the last value would silently win."""
    out: dict[str, Any] = {}
    given: dict[str, str] = {}
    items = list(items or [])
    for index, item in enumerate(items):
        if "=" not in item:
            raise ConfigError(f"override {shown(item)} is not of the form KEY=VALUE (e.g. --set lam=0.01)")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"override {shown(item)} has an empty key")
        if key in given:
            raise ConfigError(f"--set key {shown(key)} is given twice ({shown(given[key])} and "
                              f"{shown(item)}); give each key once")
        given[key] = item
        try:
            out[key] = load_yaml_text(raw, "the value") if raw.strip() else ""
        except ConfigError as err:
            raise ConfigError(f"override {shown(item)}: cannot parse value ({err}){_split_hint(items, index)}"
                              ) from None
    return out


def _split_hint(items: list[str], index: int) -> str:
    """For an unparsable ``--set`` value that opens a YAML mapping or list: the words after it that the
    shell split off at spaces (up to the next ``KEY=VALUE``), shown as one quoted word to give instead."""
    value = items[index].split("=", 1)[1].lstrip()
    if value[:1] not in ("{", "["):
        return ""
    words = [items[index]]
    for word in items[index + 1:]:
        if "=" in word:
            break
        words.append(word)
    return (f"; a value with spaces must reach the command as one word: quote it in the shell, e.g. --set "
            f"{shlex.quote(' '.join(words))}")


# YAML 1.1 (PyYAML) reads a number with a leading zero as octal and one with colons as base 60: `seed=010`
# was 8 while `seed=0800` was 800, `epochs=1:30` was 90 and `data_dir=12:30` the integer 750. sparsecoder's
# YAML reads numbers as YAML 1.2 does: digits are decimal (010 is 10), 1:30 is text; 0x / 0b prefixes stay.
_YAML_NUMBERS = {
    # YAML 1.1's forms less base 60 (0[0-7_]+ then read as decimal), so that what yaml.safe_dump writes
    # unquoted ("09" is text to it) reads back as it was
    "tag:yaml.org,2002:int": re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)"
                                        r"|[-+]?0x[0-9a-fA-F_]+)$"),
    "tag:yaml.org,2002:float": re.compile(r"""^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?
                                              |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
                                              |[-+]?\.(?:inf|Inf|INF)
                                              |\.(?:nan|NaN|NAN))$""", re.X),
}


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key repeated in one mapping (PyYAML keeps the last value) and
    reads numbers as YAML 1.2 does (:data:`_YAML_NUMBERS`); an integer of more digits than Python converts
    is refused naming its place."""

    yaml_implicit_resolvers = {
        first: [(tag, _YAML_NUMBERS.get(tag, regexp)) for tag, regexp in resolvers]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_yaml_int(self, node):
        text = self.construct_scalar(node).replace("_", "")
        digits = text.lstrip("+-")
        if digits[:2] in ("0b", "0x"):
            return super().construct_yaml_int(node)
        try:
            return int(text, 10)
        except ValueError:  # only Python's limit on digits (the resolver admits decimal digits alone)
            raise yaml.constructor.ConstructorError(
                None, None, f"found an integer of {len(digits):,} digits (no config value holds one that "
                f"large)", node.start_mark) from None

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden below it
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    repeated = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key: the constructor below refuses it
                    continue
                if repeated:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"found the key {shown(key)} twice (each key may appear once)", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


def _expanded_size(root: yaml.Node) -> int:
    """How many nodes the document ``root`` holds once every alias is expanded (a node reached through
    several aliases counts each time); a :class:`ConfigError` if a node contains itself."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        ident = id(node)
        if children_done:
            on_path.discard(ident)
            sizes[ident] = 1 + sum(sizes[id(c)] for c in _children(node))
            continue
        if ident in sizes:
            continue
        if ident in on_path:
            raise ConfigError("it holds a value that contains itself (a recursive alias)")
        on_path.add(ident)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                raise ConfigError("it holds a value that contains itself (a recursive alias)")
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _count_nodes(root: yaml.Node) -> int:
    """The number of distinct nodes of ``root`` (each alias target once)."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) not in seen:
            seen.add(id(node))
            stack.extend(_children(node))
    return len(seen)


def load_yaml_text(text: str, what: str) -> Any:
    """``yaml.safe_load(text)``, except that a key repeated in a mapping, a value containing itself and
    aliases that expand to more than :data:`MAX_ALIAS_EXPANSION` extra values are refused; any problem is a
    :class:`ConfigError` starting with ``what`` (the file or the ``--set`` item)."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            extra = _expanded_size(node) - _count_nodes(node)
        except ConfigError as err:
            raise ConfigError(f"{what}: {err}") from None
        if extra > MAX_ALIAS_EXPANSION:
            raise ConfigError(f"{what}: its aliases (*name) expand to {extra:,} more values, over the "
                              f"{MAX_ALIAS_EXPANSION:,} allowed; write the values out instead")
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        raise ConfigError(f"{what} is not valid YAML: {' '.join(str(err).split())}") from None
    except RecursionError:
        raise ConfigError(f"{what}: its values are nested too deeply to read") from None
    finally:
        loader.dispose()


def read_yaml(path: Any) -> Any:
    """The value in a preset, ``config.yaml`` or record file, read by :func:`load_yaml_text`; a file over
    :data:`MAX_YAML_BYTES`, a binary file or malformed YAML is a :class:`ConfigError` naming it."""
    if hasattr(path, "stat"):
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise ConfigError(f"{path} is {size:,} bytes, more than the {MAX_YAML_BYTES:,} a preset or "
                              f"config YAML file may hold; is it the right file?")
    with path.open("rb") as stream:  # read no more than the limit even if the file grows meanwhile
        raw = stream.read(MAX_YAML_BYTES + 1)
    if len(raw) > MAX_YAML_BYTES:
        raise ConfigError(f"{path} is more than the {MAX_YAML_BYTES:,} bytes a preset or config YAML file "
                          f"may hold; is it the right file?")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text (UTF-8) YAML file") from None
    return load_yaml_text(text, str(path))


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    model: str
    paper: str
    description: str
    config: dict[str, Any]
    path: str = ""  # the YAML file given in place of a built-in preset's name; empty for a built-in one
    # ``by_lam:`` settings that go with larger λ (paper Table 3: VDL-NL on patches takes γ = 40 from
    # λ = 1e-2): ((threshold, {key: value}), ...) ascending; the last threshold ≤ λ applies
    by_lam: tuple[tuple[float, dict[str, Any]], ...] = ()

    def lam_settings(self, lam: Any) -> dict[str, Any]:
        """The ``by_lam`` settings for ``lam`` (those of the largest threshold ≤ ``lam``; ``{}`` below every
        threshold, for a preset without ``by_lam``, or for a ``lam`` that is not a number)."""
        try:
            lam = float(lam)
        except (TypeError, ValueError, OverflowError):  # OverflowError: an integer of 400 digits
            return {}  # the config class refuses it with its own message
        settings: dict[str, Any] = {}
        for threshold, values in self.by_lam:
            if lam >= threshold:
                settings = values
        return dict(settings)

    def config_class(self) -> type:
        classes = config_classes()
        if self.model not in classes:
            where = f"preset file {self.path}" if self.path else f"preset '{self.name}'"
            raise ConfigError(f"{where}: unknown model {shown(self.model)}; 'model:' names a model family, "
                              f"one of: {', '.join(sorted(classes))}")
        return classes[self.model]

    def unused(self, overrides: dict[str, Any]) -> set[str]:
        """The keys of ``overrides`` that would have no effect on top of this preset (``USED_WHEN``)."""
        cls = self.config_class()
        _check_known(cls, overrides)
        return set(_unused(cls, {**self.config, **overrides})) & set(overrides)

    def build(self, overrides: dict[str, Any] | None = None) -> Any:
        """The config of this preset with ``overrides`` (the user's) on top, by :func:`layered_config`: an
        override without effect under the other settings is refused; a built-in preset's own keys that the
        overrides make inert are not. A key without effect in a YAML file given by path is warned of, not
        refused: the file may be a copy of a preset (whose linear variants list the "-nl" hidden_size) or a
        run's config.yaml (which lists every key), so its keys cannot be told to be the user's.

        The preset's ``by_lam`` settings for the run's λ (the user's, else the preset's) come between the two,
        so a key the user sets wins over them."""
        overrides = dict(overrides or {})
        by_lam = self.lam_settings(overrides.get("lam", self.config.get("lam")))
        given = (Layer(self.config, UNSURE, f"in {self.path}") if self.path else Layer(self.config, PRESET))
        return layered_config(self.config_class(), [
            given, Layer(by_lam, given.given_by, given.where), Layer(overrides, USER)])


def _preset_files() -> dict[str, Any]:
    root = resources.files("sparsecoder") / "presets"
    return {p.name[: -len(".yaml")]: p for p in root.iterdir() if p.name.endswith(".yaml")}


# The keys of a preset or config.yaml besides ``config``'s own: what `save_config` writes (the model, the
# preset's name, paper and description, the estimator that saved the run) and nothing else. A key outside
# `config:` (say `epochs: 3` one level too high) would otherwise be ignored without a word.
TEXT_KEYS = ("preset", "paper", "description", "estimator")
TOP_LEVEL_KEYS = ("model", *TEXT_KEYS, "config", "by_lam")


# What to do about a preset file (one given by path) that is not a preset, and about a run's config.yaml
# that is not a config: named by every error about the file's form (empty, not a mapping, keys missing).
PRESET_FILE_FIX = ("write a preset there ('model:' naming a model family, e.g. sparse_autoencoder or vae, "
                   "and 'config:' its keys, as in a run's config.yaml), or give a preset name (`sparsecoder "
                   "presets` lists them)")
RUN_CONFIG_FIX = ("restore it from a copy: sparsecoder wrote it with the run, which cannot be resumed, "
                  "evaluated or used without it (or train the run again into a new --out)")


def _yaml_holds(data: Any) -> str:
    """What a YAML file that should hold a mapping holds instead, for an error message: ``is empty`` (no
    value, or only comments), ``holds a list, not a mapping``..."""
    if data is None:
        return "is empty"
    kind = {str: "string", bool: "boolean", int: "number", float: "number"}.get(type(data),
                                                                              type(data).__name__)
    return f"holds a {kind}, not a mapping"


def _check_document(path: Any, data: Any, what: str, fix: str = PRESET_FILE_FIX) -> dict[str, Any]:
    """``data`` (a preset or config file's value) as a mapping of :data:`TOP_LEVEL_KEYS` with a ``model``
    name, text fields and a ``config`` mapping (possibly empty); otherwise a :class:`ConfigError` naming the
    file and ``fix`` where the file's form is wrong."""
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} {_yaml_holds(data)}; {fix}")
    if not isinstance(data.get("model"), str):
        raise ConfigError(f"{what} {path} must be a mapping with a 'model' key naming a model family; {fix}")
    unknown = sorted((k for k in data if k not in TOP_LEVEL_KEYS), key=str)
    if unknown:
        raise ConfigError(f"{what} {path}: unknown top-level key(s) {_listed(unknown)}; the top level may "
                          f"only hold {', '.join(TOP_LEVEL_KEYS)} (config keys such as epochs or lam go "
                          f"under 'config:')")
    for key in TEXT_KEYS:
        if not isinstance(data.get(key) or "", str):
            raise ConfigError(f"{what} {path}: '{key}' must be text, got {shown(data[key])}")
    if not isinstance(data.get("config") or {}, dict):
        raise ConfigError(f"{what} {path}: 'config' must be a mapping of config keys to values; {fix}")
    return data


def _read_preset(name: str, path: Any, user_file: bool = False) -> Preset:
    data = _check_document(path, read_yaml(path), "preset file")
    preset = Preset(
        name=name,
        model=data["model"],
        paper=data.get("paper") or "",
        description=data.get("description") or "",
        config=dict(data.get("config") or {}),
        path=str(path) if user_file else "",
        by_lam=_by_lam(path, data.get("by_lam")),
    )
    if user_file:
        _check_not_inheriting(path, data.get("preset"), preset)
    if preset.by_lam:
        cls = preset.config_class()
        if "lam" not in {f.name for f in dataclasses.fields(cls)}:
            raise ConfigError(f"preset file {path}: 'by_lam' needs a model with a 'lam' key; "
                              f"{cls.__name__} has none")
        for threshold, settings in preset.by_lam:
            try:
                _check_known(cls, settings)
            except ConfigError as err:
                raise ConfigError(f"preset file {path}: by_lam {threshold:g}: {err}") from None
    return preset


def _check_not_inheriting(path: Any, named: Any, preset: Preset) -> None:
    """A file's ``preset:`` only records the preset a run came from (a run's config.yaml lists every key):
    a file that names a built-in preset of its model but leaves out keys that preset sets (a hand-written
    ``preset: svae-mnist`` + ``config: {epochs: 5}``) would train those keys at the model's defaults, not
    the preset's, without a word; it is a :class:`ConfigError` naming them and the fix. Keys the file's
    own settings make unused (``USED_WHEN``) and keys at their default are not asked for."""
    files = _preset_files()
    if not isinstance(named, str) or named not in files:
        return
    base = _read_preset(named, files[named])
    if base.model != preset.model:
        return
    cls = preset.config_class()
    hints = _field_types(cls)
    defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    inert = _unused(cls, {**base.config, **preset.config})
    left_out = [f"{key}: {shown(value)}" for key, value in base.config.items()
                if key not in preset.config and key not in inert
                and (key not in defaults or coerce(key, value, hints[key]) != defaults[key])]
    if left_out:
        raise ConfigError(
            f"preset file {path} names preset '{named}' but leaves out keys that preset sets "
            f"({', '.join(left_out[:20])}{', ...' if len(left_out) > 20 else ''}); a file does not inherit "
            f"from the preset it names: those keys would take {cls.__name__}'s defaults. Add them under "
            f"'config:', or train the preset by name with your changes: sparsecoder train {named} --set "
            f"KEY=VALUE ...")


def _by_lam(path: Any, value: Any) -> tuple[tuple[float, dict[str, Any]], ...]:
    """A preset's ``by_lam:`` mapping (λ threshold → config keys and values) as ascending pairs; a
    :class:`ConfigError` naming the file for any other form. Its keys are checked as config keys when a
    config is built (:meth:`Preset.build`)."""
    if value is None:
        return ()
    form = ("'by_lam' must map a λ threshold to the config keys that go with λ at or above it, e.g. "
            "by_lam: {0.01: {gamma: 40.0}}")
    if not isinstance(value, dict):
        raise ConfigError(f"preset file {path}: {form}; it {_yaml_holds(value)}")
    pairs = []
    for threshold, settings in value.items():
        if (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                or not math.isfinite(threshold) or threshold < 0):
            raise ConfigError(f"preset file {path}: by_lam threshold {shown(threshold)} is not a number "
                              f">= 0; {form}")
        if not isinstance(settings, dict) or not settings:
            raise ConfigError(f"preset file {path}: by_lam {threshold:g} must be a non-empty mapping of "
                              f"config keys to values; {form}")
        if "lam" in settings:
            raise ConfigError(f"preset file {path}: by_lam {threshold:g} sets 'lam' itself; list the other "
                              f"keys that go with λ >= {threshold:g}")
        pairs.append((float(threshold), dict(settings)))
    return tuple(sorted(pairs, key=lambda pair: pair[0]))


def list_presets() -> list[Preset]:
    return [_read_preset(n, p) for n, p in sorted(_preset_files().items())]


def load_preset(name: str, overrides: dict[str, Any] | None = None) -> tuple[Preset, Any]:
    """Return the preset and its config with ``overrides`` applied and validated.

    ``name`` may also be a path to a YAML file of the same format (or a saved run's config.yaml).
    """
    preset = find_preset(name)
    return preset, preset.build(overrides)


def find_preset(name: str) -> Preset:
    """The built-in preset ``name``, or the preset/config YAML file at the path ``name``; a
    :class:`ConfigError` naming the problem otherwise."""
    files = _preset_files()
    if name in files:
        preset = _read_preset(name, files[name])
    elif Path(name).is_file():
        preset = _read_preset(Path(name).stem, Path(name), user_file=True)
    elif _looks_like_path(name):
        path = Path(name)
        problem = ("is a folder, not a YAML file" if path.is_dir()
                   else "is not a regular file (a pipe, socket or device)" if path.exists()
                   else "is a broken link" if path.is_symlink() else "does not exist")
        raise ConfigError(f"preset file {name} {problem}; give an existing preset/config YAML file or a "
                          f"preset name (`sparsecoder presets` lists them)")
    else:
        close = difflib.get_close_matches(name.lower().replace("_", "-"), files, n=1, cutoff=0.75)
        hint = f" did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown preset '{name}';{hint} run `sparsecoder presets` to list them: "
                          f"{', '.join(sorted(files))}")
    return preset


def _looks_like_path(name: str) -> bool:
    """Whether a preset argument names a file rather than a preset: a path separator or a YAML suffix."""
    import os

    separators = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    return any(sep in name for sep in separators) or name.lower().endswith((".yaml", ".yml"))


def save_config(path: Path, model: str, config: Any, extra: dict[str, Any] | None = None) -> None:
    """Write a fully resolved config as YAML (same format as a preset), atomically; ``extra`` holds text
    fields of :data:`TEXT_KEYS` (those that :func:`read_config_document` reads back)."""
    from sparsecoder.io import atomic_write_text

    wrong = [k for k in extra or {} if k not in TEXT_KEYS]
    if wrong:  # a programming error: the file could not be read back
        raise ValueError(f"save_config: extra keys {wrong} are not among {TEXT_KEYS}")

    doc = {"model": model, **(extra or {}), "config": to_dict(config)}
    atomic_write_text(Path(path), yaml.safe_dump(doc, sort_keys=False))


def read_config_document(path: Path) -> dict[str, Any]:
    """The mapping in a run's ``config.yaml`` (``model`` name, ``config`` mapping and the preset's other
    fields), its format checked but not its values; a :class:`ConfigError` naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no config file at {path}")
    data = read_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("model"), str) or "config" not in data:
        held = f"{_yaml_holds(data)}: it " if not isinstance(data, dict) else ""
        raise ConfigError(f"{path} {held}is not a sparsecoder config (needs 'model' and 'config' keys); "
                          f"{RUN_CONFIG_FIX}")
    if not isinstance(data["config"], dict):
        raise ConfigError(f"{path}: 'config' must be a mapping of config keys to values; {RUN_CONFIG_FIX}")
    return _check_document(path, data, "config file", RUN_CONFIG_FIX)


def read_record(path: Path, kinds: dict[str, type | tuple[type, ...]], fix: str) -> dict[str, Any]:
    """The mapping in a YAML record sparsecoder wrote (``sweep.yaml``, ``reproduce.yaml``), each key of
    ``kinds`` present with a value of its type; otherwise a :class:`ConfigError` naming the file, what is
    wrong with it, and ``fix``."""
    try:
        data = read_yaml(Path(path))
    except ConfigError as err:
        raise ConfigError(f"{err}; {fix}") from None
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror}; {fix}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is damaged: it {_yaml_holds(data)}; {fix}")
    for key, kind in kinds.items():
        if not isinstance(data.get(key), kind):
            raise ConfigError(f"{path} is damaged: '{key}' is {shown(data.get(key))}; {fix}")
    return data


def load_config(path: Path) -> tuple[str, Any]:
    """Read a run's ``config.yaml`` back into ``(model_name, config)``."""
    data = read_config_document(path)
    classes = config_classes()
    if data["model"] not in classes:
        raise ConfigError(f"{path}: unknown model '{data['model']}'; known: {sorted(classes)}")
    return data["model"], from_dict(classes[data["model"]], data["config"])


@dataclasses.dataclass(frozen=True)
class CommonConfig:
    """Fields every trainable family shares (data, schedule, reproducibility).

    Family configs subclass this (``@register_config("name") @dataclass(frozen=True)``) and add their
    own fields; ``__post_init__`` of a subclass should call ``super().__post_init__()``. A family lists
    in ``USED_WHEN`` the keys that have an effect only under some value of another key
    (:class:`UsedWhen`; checked by :func:`layered_config`).
    """

    USED_WHEN: typing.ClassVar[dict[str, UsedWhen]] = {}

    data: str = "mnist"  # a source name from `sparsecoder data list`
    data_dir: str | None = None  # user-supplied full data (IDX folder, image folder, IMAGES.mat, ...)
    data_options: dict = dataclasses.field(default_factory=dict)  # extra keyword arguments of the loader
    limit: int | None = None  # cap on the number of training samples
    epochs: int = 10
    batch_size: int = 250
    seed: int = 0
    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda", "cuda:1", ...
    num_threads: int | None = None  # torch CPU threads; None = torch's default
    # validate epochs k, 2k, ... and always the last (the best weights are chosen among those); 1 = every
    # epoch, the paper's protocol (SPEC §2.6: the best epoch by validation energy)
    validate_every: int = 1

    def __post_init__(self) -> None:
        coerce_fields(self)
        check(1 <= self.epochs <= MAX_EPOCHS, "epochs",
              f"must be >= 1 and <= {MAX_EPOCHS}, got {self.epochs}")
        check(1 <= self.validate_every <= MAX_EPOCHS, "validate_every",
              f"must be an integer >= 1 and <= {MAX_EPOCHS} (1 validates every epoch, k every k-th epoch and "
              f"the last), got {self.validate_every}")
        check(1 <= self.batch_size <= MAX_BATCH_SIZE, "batch_size",
              f"must be >= 1 and <= {MAX_BATCH_SIZE}, got {self.batch_size}")
        check(self.limit is None or 2 <= self.limit <= MAX_INT, "limit",
              f"must be >= 2 or null, got {self.limit}")
        check(0 <= self.seed <= MAX_INT, "seed", f"must be in [0, 2**63 - 1], got {self.seed}")
        check(self.num_threads is None or 1 <= self.num_threads <= MAX_THREADS, "num_threads",
              f"must be in [1, {MAX_THREADS}] or null (torch's default), got {self.num_threads}")
        _check_device(self.device)
        _check_data_options(self.data, self.data_options)


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def field_defaults(cls: type) -> dict[str, Any]:
    """``{name: default}`` of the dataclass ``cls``'s fields that have one (a ``default_factory``'s value
    made fresh)."""
    return {f.name: f.default_factory() if f.default is dataclasses.MISSING else f.default
            for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}


def coerce_fields(config: Any) -> None:
    """Check and convert every field of the frozen dataclass ``config`` to its annotated type, in place.

    The one conversion of config values, for a preset or ``--set`` value (through :func:`from_dict`) as
    for a config built directly in Python (``SparseAutoencoderConfig(fista_restart="false")``,
    ``VAEConfig(n_latents=2.5)``, ``encoder="mlp"`` where only ``lista``/``none`` exist): a wrong type or
    a value outside a ``Literal``'s choices is a :class:`ConfigError` naming the key, not a truthy string
    or a float size used as given.
    """
    hints = _field_types(type(config))
    for field in dataclasses.fields(config):
        object.__setattr__(config, field.name, coerce(field.name, getattr(config, field.name),
                                                      hints[field.name]))


def _check_device(device: str) -> None:
    """``device`` must parse as a torch device (CUDA's presence is checked where the model is built)."""
    if device == "auto":
        return
    import torch

    try:
        torch.device(device)
    except (RuntimeError, ValueError) as err:
        raise ConfigError(f"config key 'device': {shown(device)} is not a device (auto, cpu, cuda, cuda:N): "
                          f"{str(err).splitlines()[0][:MAX_SHOWN]}") from None


def _check_data_options(source: str, options: dict) -> None:
    """The data source exists, and each option is one of its loader's keyword arguments, of its type."""
    from sparsecoder.data.registry import NOT_OPTIONS, SOURCES

    if source not in SOURCES:
        raise ConfigError(f"config key 'data': unknown data source {shown(source)}; "
                          f"known: {', '.join(SOURCES)}")
    loader = SOURCES[source].loader
    # the loader's own keywords (seed, limit, data_dir, test_only) are config keys or set by the caller
    accepted = [k for k in inspect.signature(loader).parameters if k not in NOT_OPTIONS]
    try:
        hints = typing.get_type_hints(loader)
    except Exception:  # noqa: BLE001 - unresolvable annotations: names are still checked
        hints = {}
    for name, value in options.items():
        key = f"data_options.{name}"
        if not isinstance(name, str) or name not in accepted:
            head, colon, tail = name.partition(":") if isinstance(name, str) else ("", "", "")
            hint = (f" (YAML needs a space after the colon: '{head}: {tail}')" if colon and head in accepted
                    else "")
            raise ConfigError(f"config key '{key}': data source '{source}' has no such option{hint}; its "
                              f"options are: {', '.join(accepted) or 'none'}")
        if name in hints:
            coerce(key, value, hints[name])
