"""Model families, looked up by the name their config class registers (``model:`` in a preset).

Each model class provides ``from_config(config, data: DataSplits) -> model`` and implements
:class:`sparsecoder.train.protocol.TrainableModel`.
"""

from __future__ import annotations

import importlib

_MODELS = {
    "sparse_autoencoder": "sparsecoder.models.sparse_autoencoder:SparseAutoencoder",
    "vae": "sparsecoder.models.vae:VAE",
}


def register_model(name: str, target: str | type) -> None:
    """Add a model family: ``target`` is the class or ``"package.module:ClassName"`` (imported lazily).

    Its config class registers itself under the same ``name`` with :func:`sparsecoder.config.register_config`.
    """
    _MODELS[name] = target


def model_class(name: str) -> type:
    if name not in _MODELS:
        raise ValueError(f"unknown model '{name}'; known: {sorted(_MODELS)}")
    target = _MODELS[name]
    if isinstance(target, type):
        return target
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def build_model(config, data):
    """Instantiate the model a config describes, sized for ``data``."""
    return model_class(config.model_name).from_config(config, data)
