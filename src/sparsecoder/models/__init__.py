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


def model_class(name: str) -> type:
    if name not in _MODELS:
        raise ValueError(f"unknown model '{name}'; known: {sorted(_MODELS)}")
    module, attr = _MODELS[name].split(":")
    return getattr(importlib.import_module(module), attr)


def build_model(config, data):
    """Instantiate the model a config describes, sized for ``data``."""
    return model_class(config.model_name).from_config(config, data)
