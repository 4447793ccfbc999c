"""sparsecoder: sparse coding, dictionary learning and sparse VAEs in PyTorch.

The public API; documentation imports only from here::

    from sparsecoder import sparse_encode, fista, train, load_run, load_data, load_preset
    from sparsecoder import evaluate_run, encode_run, decode_run

``train``, ``sweep`` and ``reproduce`` are the packages of those names, callable as their function
(``sparsecoder.train(...)`` is ``sparsecoder.train.train(...)``), so that their modules stay reachable:
``import sparsecoder.train.run as run`` and ``sparsecoder.sweep.spec`` work as for any package.
"""

__version__ = "0.1.0"

from sparsecoder import reproduce, sweep, train  # noqa: E402 - the packages, callable (docstring)
from sparsecoder.config import load_preset  # noqa: E402
from sparsecoder.data import load as load_data  # noqa: E402
from sparsecoder.estimators import SAE, MiniBatchDictionaryLearning, SparseCoder, SparseVAE  # noqa: E402
from sparsecoder.inference import FistaResult, fista, sparse_encode  # noqa: E402
from sparsecoder.models.sparse_autoencoder import SparseAutoencoder, SparseAutoencoderConfig  # noqa: E402
from sparsecoder.models.vae import VAE, VAEConfig  # noqa: E402
from sparsecoder.train import decode_run, encode_run, evaluate_run, load_run  # noqa: E402

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
