"""sparsecoder: sparse coding, dictionary learning and sparse VAEs in PyTorch.

The public API; documentation imports only from here::

    from sparsecoder import sparse_encode, fista, train, load_run, load_data, load_preset
    from sparsecoder import evaluate_run, encode_run, decode_run

``train``, ``sweep`` and ``reproduce`` are the packages of those names, callable as their function
(``sparsecoder.train(...)`` is ``sparsecoder.train.train(...)``), so that their modules stay reachable:
``import sparsecoder.train.run as run`` and ``sparsecoder.sweep.spec`` work as for any package.

Each name is imported on first use (:func:`sparsecoder.util.lazy_names`): ``import sparsecoder`` and
``sparsecoder --help`` do not import torch, scikit-learn, numba, scipy, matplotlib or Ray.
"""

__version__ = "0.1.0"

from sparsecoder.util import lazy_names  # noqa: E402

# Each public name is imported on first use (PEP 562), so that `import sparsecoder` and `sparsecoder --help`
# import neither torch nor scikit-learn: name -> "module:attribute" (a bare module: the module itself).
__getattr__, __dir__ = lazy_names(__name__, {
    "FistaResult": "sparsecoder.inference.fista:FistaResult",
    "MiniBatchDictionaryLearning": "sparsecoder.estimators:MiniBatchDictionaryLearning",
    "SAE": "sparsecoder.estimators:SAE",
    "SparseAutoencoder": "sparsecoder.models.sparse_autoencoder:SparseAutoencoder",
    "SparseAutoencoderConfig": "sparsecoder.models.configs:SparseAutoencoderConfig",
    "SparseCoder": "sparsecoder.estimators:SparseCoder",
    "SparseVAE": "sparsecoder.estimators:SparseVAE",
    "VAE": "sparsecoder.models.vae:VAE",
    "VAEConfig": "sparsecoder.models.configs:VAEConfig",
    "decode_run": "sparsecoder.train.run:decode_run",
    "encode_run": "sparsecoder.train.run:encode_run",
    "evaluate_run": "sparsecoder.train.run:evaluate_run",
    "fista": "sparsecoder.inference.fista:fista",
    "load_data": "sparsecoder.data.registry:load",
    "load_preset": "sparsecoder.config:load_preset",
    "load_run": "sparsecoder.train.run:load_run",
    "reproduce": "sparsecoder.reproduce",  # the packages, callable (docstring)
    "sparse_encode": "sparsecoder.inference.lasso:sparse_encode",
    "sweep": "sparsecoder.sweep",
    "train": "sparsecoder.train",
})

__all__ = [
    "FistaResult",
    "MiniBatchDictionaryLearning",
    "SAE",
    "SparseAutoencoder",
    "SparseAutoencoderConfig",
    "SparseCoder",
    "SparseVAE",
    "VAE",
    "VAEConfig",
    "decode_run",
    "encode_run",
    "evaluate_run",
    "fista",
    "load_data",
    "load_preset",
    "load_run",
    "reproduce",
    "sparse_encode",
    "sweep",
    "train",
    "__version__",
]
