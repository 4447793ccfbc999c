"""Model families, looked up by the name their config class registers (``model:`` in a preset).

A family is one registration (:func:`register_model`): the model class (an ``nn.Module`` implementing
:class:`sparsecoder.train.protocol.TrainableModel`, with ``from_config(config, data) -> model``), and the
functions the trainer calls around it — ``validate(model, split)`` (per-epoch metrics with ``val_loss``),
``evaluate(model, data)`` (test metrics for ``metrics.json``) and ``pictures(model, data, out_dir)`` (PNGs).
Each may be given as the object or as ``"package.module:name"`` (imported on first use).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Family", "register_model", "model_class", "family", "build_model"]


@dataclass(frozen=True)
class Family:
    """What the trainer needs to know about one model family (objects, resolved by :func:`family`)."""

    model: type
    validate: Callable
    evaluate: Callable
    pictures: Callable | None = None


_FAMILIES: dict[str, dict[str, object]] = {
    "sparse_autoencoder": {
        "model": "sparsecoder.models.sparse_autoencoder:SparseAutoencoder",
        "validate": "sparsecoder.eval.sae:validation_metrics",
        "evaluate": "sparsecoder.eval.sae:evaluate",
        "pictures": "sparsecoder.viz:sae_pictures",
    },
    "vae": {
        "model": "sparsecoder.models.vae:VAE",
        "validate": "sparsecoder.eval.vae:validation_metrics",
        "evaluate": "sparsecoder.eval.vae:evaluate",
        "pictures": "sparsecoder.viz:vae_pictures",
    },
}


def register_model(name: str, model: str | type, *, validate: str | Callable, evaluate: str | Callable,
                   pictures: str | Callable | None = None) -> None:
    """Add a model family under ``name`` (its config class registers the same name with
    :func:`sparsecoder.config.register_config`).

    Parameters
    ----------
    model : type or "package.module:ClassName"
    validate : callable ``(model, split) -> dict`` with ``val_loss`` (lower is better), or its path
    evaluate : callable ``(model, data) -> dict`` of test metrics, or its path
    pictures : callable ``(model, data, out_dir) -> list[Path]``, its path, or None (no pictures)
    """
    _FAMILIES[name] = {"model": model, "validate": validate, "evaluate": evaluate, "pictures": pictures}


def _resolve(target):
    if target is None or not isinstance(target, str):
        return target
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def family(name: str) -> Family:
    """The registered family ``name`` with every entry imported."""
    if name not in _FAMILIES:
        raise ValueError(f"unknown model '{name}'; known: {sorted(_FAMILIES)}")
    return Family(**{key: _resolve(value) for key, value in _FAMILIES[name].items()})


def model_class(name: str) -> type:
    if name not in _FAMILIES:
        raise ValueError(f"unknown model '{name}'; known: {sorted(_FAMILIES)}")
    return _resolve(_FAMILIES[name]["model"])


def build_model(config, data):
    """Instantiate the model a config describes, sized for ``data`` (on the CPU; the trainer moves it).

    A model whose training state exceeds the machine's memory is refused before anything is allocated by
    its constructor (:func:`sparsecoder.models.common.check_fits_in_memory`, a ``ConfigError`` naming the
    size keys to lower; a family's model class should call it first thing). As a backstop, tensors the
    machine still cannot allocate are a ``ValueError`` naming the config's sizes (torch's allocator error
    would otherwise reach the user as an unexpected RuntimeError)."""
    try:
        return model_class(config.model_name).from_config(config, data)
    except (RuntimeError, MemoryError) as err:
        if not isinstance(err, MemoryError) and "allocate" not in str(err):
            raise
        from sparsecoder.models.common import SIZE_KEYS

        sizes = ", ".join(f"{key}={getattr(config, key)}" for key in SIZE_KEYS if hasattr(config, key))
        asked = re.search(r"allocate (\d+) bytes", str(err))
        what = f"a tensor of {int(asked.group(1)) / 2**30:,.1f} GiB" if asked else "its tensors"
        raise ValueError(f"the model does not fit in this machine's memory: torch could not allocate {what}; "
                         f"lower its size ({sizes})") from None
