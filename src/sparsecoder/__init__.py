"""sparsecoder: sparse coding, dictionary learning and sparse VAEs in PyTorch."""

__version__ = "0.1.0"

from sparsecoder.inference import FistaResult as FistaResult  # noqa: E402
from sparsecoder.inference import fista as fista  # noqa: E402
from sparsecoder.inference import sparse_encode as sparse_encode  # noqa: E402
