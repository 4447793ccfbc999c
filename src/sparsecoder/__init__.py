"""sparsecoder: sparse coding, dictionary learning and sparse VAEs in PyTorch."""

__version__ = "0.1.0"
