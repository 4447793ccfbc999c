"""sparsecoder: sparse coding, dictionary learning and sparse VAEs in PyTorch.

The public API; documentation imports only from here::

    from sparsecoder import sparse_encode, fista, train, load_run, load_data, load_preset
    from sparsecoder import evaluate_run, encode_run, decode_run

(``sparsecoder.train`` is the function ``train``, which hides the subpackage of that name from attribute
access: ``sparsecoder.train.evaluate_run`` does not exist, so the run-folder functions are exported here.)
"""

__version__ = "0.1.0"

from sparsecoder.config import load_preset  # noqa: E402
from sparsecoder.data import load as load_data  # noqa: E402
from sparsecoder.estimators import SAE, MiniBatchDictionaryLearning, SparseCoder, SparseVAE  # noqa: E402
from sparsecoder.inference import FistaResult, fista, sparse_encode  # noqa: E402
from sparsecoder.models.sparse_autoencoder import SparseAutoencoder, SparseAutoencoderConfig  # noqa: E402
from sparsecoder.models.vae import VAE, VAEConfig  # noqa: E402
from sparsecoder.reproduce import reproduce  # noqa: E402
from sparsecoder.sweep import sweep  # noqa: E402
from sparsecoder.train import decode_run, encode_run, evaluate_run, load_run, train  # noqa: E402

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
