"""Pieces the model families share: device resolution, the device of a module, input-row validation, and
the guard that refuses a model too large for this machine's memory before anything is allocated."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from sparsecoder import util
from sparsecoder.config import ConfigError
from sparsecoder.inference.fista import all_finite, check_has_values
from sparsecoder.nn.sizes import check_size
from sparsecoder.util import FLOAT32_MAX, resolve_device  # noqa: F401 - resolve_device: the models' import

# Config keys that size a model's tensors: named when a model does not fit in memory (those a config has
# and that change its parameter count).
SIZE_KEYS = ("n_components", "hidden_size", "n_latents", "encoder_hidden", "decoder_hidden", "resnet_blocks")
# Copies of every parameter while training with Adam: the weights, their gradients and the two moments
# (16 bytes per float32 parameter).
TRAINING_COPIES = 4


def _building_on_meta() -> bool:
    """True inside ``with torch.device("meta")``: a module built there allocates no memory."""
    return torch.empty(0).device.type == "meta"


def training_size(build: Callable[[], nn.Module]) -> tuple[int | None, float] | None:
    """``(parameters, bytes)`` of the module ``build()`` returns, counted exactly without allocating it.

    ``build`` runs on torch's ``meta`` device (shapes and dtypes, no storage), so the count is the real
    architecture's, at the cost of building it (about a millisecond for this package's models). The bytes
    are the training state: ``TRAINING_COPIES`` copies of every parameter (weights, gradients, Adam's two
    moments) plus the buffers. A tensor too large for torch to describe (over 2**63 bytes: its size
    calculation overflows) is ``(None, inf)``. None when ``build`` cannot run on the meta device for any
    other reason (e.g. an initialisation that reads data values): there is then no up-front count, and
    :func:`sparsecoder.models.build_model`'s catch of the allocator's error is the only guard. A
    ``ValueError`` from ``build`` (a configuration the model refuses) propagates: the real build would raise
    it too.
    """
    try:
        with torch.device("meta"):
            module = build()
    except ValueError:
        raise
    except RuntimeError as err:
        return (None, math.inf) if "overflow" in str(err) else None
    except Exception:  # an operation without a meta implementation: no up-front count
        return None
    count = sum(p.numel() for p in module.parameters())
    size = sum(TRAINING_COPIES * p.numel() * p.element_size() for p in module.parameters())
    size += sum(b.numel() * b.element_size() for b in module.buffers())
    return count, size


def check_fits_in_memory(build: Callable[..., nn.Module], config, *, what: str = "the model",
                         n_features: int | None = None) -> None:
    """Refuse, before anything is allocated, a model whose training state exceeds this machine's memory.

    ``build(config)`` builds the model (it is run on the meta device: nothing is allocated, see
    :func:`training_size`); given ``n_features`` (the row width it is built for), ``build(config, n)`` builds
    it for rows of ``n`` features. The error (a :class:`~sparsecoder.config.ConfigError`) names ``what``
    (e.g. "a VAE on 784 features"), the config's size keys that change the parameter count and their
    values, the parameter count, the GiB needed and available, and every fix: lower those keys, or (where
    the model would fit on narrower rows) give rows of at most the number of features that fits. Nothing
    is checked when the model is itself being built on the meta device (the count's own build), when the
    platform does not report its memory, or when ``build`` cannot run on the meta device.
    """
    if _building_on_meta():
        return
    memory = util.physical_memory()  # looked up at the call: one place to stand in for it in tests
    if memory is None:
        return
    counted = training_size(lambda: build(config))
    if counted is None or counted[1] <= memory:
        return
    count, needed = counted
    keys = _size_keys(build, config) or [k for k in SIZE_KEYS if hasattr(config, k)]
    sizes = f" ({', '.join(f'{key}={getattr(config, key)}' for key in keys)})" if keys else ""
    size = (f"{count:,} parameters, {_amount(needed)} to train (weights, gradients and Adam's two "
            f"moments)" if count is not None else "a tensor of more than 2**63 bytes")
    if len(keys) > 1:
        lower = f"{', '.join(keys[:-1])} or {keys[-1]}"
    else:
        lower = keys[0] if keys else "its sizes"
    fits = None if n_features is None else _features_that_fit(build, config, n_features, memory)
    narrower = (f", or give rows of at most {fits:,} features (these have {n_features:,}: e.g. a smaller "
                f"patch_size, or fewer dimensions)" if fits else "")
    raise ConfigError(
        f"the model does not fit in this machine's memory: {what}{sizes} has {size}, more than this "
        f"machine's {_amount(memory)}; lower {lower}{narrower}")


def _features_that_fit(build: Callable[..., nn.Module], config, n_features: int, memory: int) -> int | None:
    """The largest row width below ``n_features`` whose model ``build(config, n)`` fits in ``memory``
    (bisection, counted on the meta device), or None when not even one feature per row fits (the other
    sizes dominate: fewer features is no fix)."""
    def fits(n: int) -> bool:
        counted = training_size(lambda: build(config, n))
        return counted is not None and counted[1] <= memory

    if n_features <= 1 or not fits(1):
        return None
    low, high = 1, n_features  # fits(low), not fits(high)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def _amount(n_bytes: float) -> str:
    """``n_bytes`` in GiB, or in MiB below a tenth of a GiB."""
    return f"{n_bytes / 2**30:,.1f} GiB" if n_bytes >= 2**30 / 10 else f"{n_bytes / 2**20:,.1f} MiB"


def _size_keys(build: Callable[[object], nn.Module], config) -> list[str]:
    """The keys of :data:`SIZE_KEYS` that change the parameter count of ``build(config)`` (e.g.
    ``hidden_size`` only with the one-hidden-layer decoder): with every size key at 2, each in turn at 3,
    counted on the meta device (small sizes: the counts never overflow)."""
    present = [key for key in SIZE_KEYS
               if isinstance(getattr(config, key, None), int) and not isinstance(getattr(config, key), bool)]
    try:
        small = dataclasses.replace(config, **{key: 2 for key in present})
        base = training_size(lambda: build(small))
    except (TypeError, ValueError):
        return []
    keys = []
    for key in present:
        try:
            larger = dataclasses.replace(small, **{key: 3})
            counted = training_size(lambda c=larger: build(c))
        except (TypeError, ValueError):
            continue
        if base is not None and counted is not None and counted[0] != base[0]:
            keys.append(key)
    return keys


def module_device(module: nn.Module) -> torch.device:
    """The device of ``module``'s first parameter (CPU for a module without parameters).

    Models read their device here instead of keeping one from construction, so ``model.to(device)``
    moves them completely.
    """
    for parameter in module.parameters():
        return parameter.device
    return torch.device("cpu")


def check_model_arguments(model: nn.Module, config, config_class: type, n_features, image_shape,
                          what: str) -> tuple[int, tuple[int, ...] | None]:
    """The checks a model family's constructor starts with, before any tensor: ``config`` is a
    ``config_class``, ``n_features`` a size (:func:`check_size`), ``image_shape`` fits it
    (:func:`check_image_shape`), and the training state of ``type(model)(config, n_features, image_shape)``
    fits in memory (:func:`check_fits_in_memory`; ``what``, e.g. "a VAE", names the model). Errors name
    the model's class. Returns ``n_features`` and ``image_shape`` as checked."""
    owner = type(model).__name__
    if not isinstance(config, config_class):
        raise ValueError(f"{owner} needs a {config_class.__name__}, not {type(config).__name__}")
    n_features = check_size(owner, "n_features", n_features)
    image_shape = check_image_shape(owner, image_shape, n_features)
    check_model_fits(type(model), config, n_features, image_shape, what)
    return n_features, image_shape


def check_model_fits(model_class: type, config, n_features: int, image_shape, what: str) -> None:
    """:func:`check_fits_in_memory` of ``model_class(config, n_features, image_shape)``, counted on the meta
    device and built for other row widths too, to name the widest rows that fit; ``what`` (e.g. "a VAE")
    names the model."""
    check_fits_in_memory(lambda c, n=n_features: model_class(c, n, image_shape if n == n_features else None),
                         config, what=f"{what} on {n_features} features", n_features=n_features)


def check_image_shape(owner: str, image_shape, n_features: int) -> tuple[int, ...] | None:
    """``image_shape`` (how a row is drawn as an image) as a tuple of ints, None for None or an empty
    one; a ``ValueError`` naming ``owner`` unless it is positive integers whose product is ``n_features``."""
    if image_shape is None or (isinstance(image_shape, (tuple, list)) and not image_shape):
        return None
    if not isinstance(image_shape, (tuple, list)):
        raise ValueError(f"{owner}: image_shape must be a tuple of positive integers, got {image_shape!r}")
    shape = tuple(check_size(owner, "every entry of image_shape", n) for n in image_shape)
    if math.prod(shape) != n_features:
        raise ValueError(f"{owner}: image_shape {shape} holds {math.prod(shape)} values, not the "
                         f"{n_features} features of a row; give the shape of the rows' images, or None")
    return shape


def check_float32_model(module: nn.Module) -> None:
    """Refuse, naming the fix, a model whose floating parameters are no longer float32 (``model.double()``,
    ``model.half()``): it computes in float32 (rows, FISTA codes, metrics), and torch would only say that
    "mat1 and mat2 must have the same dtype"."""
    for parameter in module.parameters():
        if parameter.is_floating_point() and parameter.dtype != torch.float32:
            raise ValueError(f"{type(module).__name__} computes in float32, but its parameters are "
                             f"{parameter.dtype}; convert it back with model.float()")


def check_rows(x, n_features: int, device: torch.device, name: str = "x") -> torch.Tensor:
    """``x`` as float32 rows on ``device``, after :func:`check_row_values`."""
    check_row_values(x, n_features, name)
    return x.to(device, torch.float32)


def check_row_values(x, n_features: int, name: str = "x") -> None:
    """Refuse, naming ``name``, anything but a finite ``(n, n_features)`` tensor of real numbers that float32
    holds (a complex tensor would lose its imaginary part, a float64 value beyond ±3.4e38 would become inf);
    a NaN/inf is reported with the number of such rows and the first one."""
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != n_features:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        if not isinstance(x, torch.Tensor):
            hint = f": pass torch.as_tensor({name}) (encode_run takes arrays)"
        elif x.dim() == 1 and x.shape[0] == n_features:
            hint = f"; a single row: {name}.reshape(1, -1)"
        else:
            hint = ""
        raise ValueError(f"{name} must be a 2-D tensor (n, {n_features}), got {shape}{hint}")
    check_has_values(name, x)
    if x.is_complex():
        raise ValueError(f"{name} must be real numbers, got {x.dtype}")
    if not all_finite(x):
        bad = torch.nonzero(~torch.isfinite(x).all(dim=1)).flatten()
        raise ValueError(f"{name} contains NaN or inf in {len(bad)} of {x.shape[0]} rows (the first: row "
                         f"{int(bad[0])})")
    check_float32_range(x, name)


def check_float32_range(array: np.ndarray | torch.Tensor, what: str) -> None:
    """Refuse by name finite values that the models' float32 would turn into inf (|x| > 3.4e38) — rows or
    codes given in float64 to encode/decode, an estimator or a model (they used to be reported as NaN/inf,
    or gave NaN outputs)."""
    if isinstance(array, torch.Tensor):
        wide = array.is_floating_point() and array.element_size() > 4 and array.numel() > 0
        largest = float(array.detach().abs().max()) if wide else 0.0
    else:
        wide = array.dtype.itemsize > 4 and array.size and np.issubdtype(array.dtype, np.floating)
        largest = float(np.abs(array).max()) if wide else 0.0
    if largest > FLOAT32_MAX:
        raise ValueError(f"{what} hold values up to {largest:.4g}, beyond float32's range (±3.4e38) in which "
                         f"the model computes; rescale them")


def check_finite_output(values, what: str, inputs=None, cause: str = ""):
    """``values`` (an ``(n, …)`` model output returned to a user: a tensor or a numpy array) unchanged when
    every entry is finite; else a ``ValueError`` naming ``what``, how many of the ``n`` rows are NaN/inf,
    the largest ``|input|`` (given ``inputs``, a tensor or an array) and ``cause`` (the likely reason and its
    fix) — never NaN/inf handed back as a result. The one check for every output path (the estimators,
    ``encode_run``/``decode_run``)."""
    checked = _as_tensor(values)
    if all_finite(checked):
        return values
    bad = int((~torch.isfinite(checked.reshape(checked.shape[0], -1))).any(dim=1).sum())
    largest = ""
    if inputs is not None:
        inputs = _as_tensor(inputs)
        if inputs.numel():
            largest = f" (largest |input|: {float(inputs.detach().abs().max()):.4g})"
    raise ValueError(f"{what} are NaN/inf for {bad} of {checked.shape[0]} rows{largest}"
                     + (f"; {cause}" if cause else ""))


def _as_tensor(values) -> torch.Tensor:
    """A tensor view of ``values`` (a numpy array is wrapped without a copy where it is writable)."""
    if isinstance(values, torch.Tensor):
        return values
    return util.tensor_from_numpy(np.asarray(values))
