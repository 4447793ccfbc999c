"""Building blocks of the sparse autoencoders: LISTA encoder, linear / one-hidden-layer decoders, and the
collapse-guard constraints (unit-norm columns, weight-decay parameter groups).

The names are imported on first use (:func:`sparsecoder.util.lazy_names`): the data sources' size checks
(:mod:`sparsecoder.nn.sizes`) need no torch, nor does ``sparsecoder data list``."""

from sparsecoder.util import lazy_names

__all__ = [
    "LISTAEncoder",
    "LinearDecoder",
    "MLPDecoder",
    "unit_norm_columns_",
    "unit_norm_decoder_",
    "weight_decay_param_groups",
]

__getattr__, __dir__ = lazy_names(__name__, {
    **{name: f"sparsecoder.nn.constraints:{name}"
       for name in ("unit_norm_columns_", "unit_norm_decoder_", "weight_decay_param_groups")},
    **{name: f"sparsecoder.nn.decoders:{name}" for name in ("LinearDecoder", "MLPDecoder")},
    "LISTAEncoder": "sparsecoder.nn.encoders:LISTAEncoder",
})
