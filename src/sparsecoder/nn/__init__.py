"""Building blocks of the sparse autoencoders: LISTA encoder, linear / one-hidden-layer decoders, and the
collapse-guard constraints (unit-norm columns, weight-decay parameter groups)."""

from sparsecoder.nn.constraints import unit_norm_columns_, unit_norm_decoder_, weight_decay_param_groups
from sparsecoder.nn.decoders import LinearDecoder, MLPDecoder
from sparsecoder.nn.encoders import LISTAEncoder

__all__ = [
    "LISTAEncoder",
    "LinearDecoder",
    "MLPDecoder",
    "unit_norm_columns_",
    "unit_norm_decoder_",
    "weight_decay_param_groups",
]
