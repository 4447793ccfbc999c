"""Pieces the model families share: device resolution, the device of a module, input-row validation."""

from __future__ import annotations

import torch
from torch import nn

from sparsecoder.inference.fista import all_finite


def resolve_device(name: str) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; anything else is passed to :class:`torch.device`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"config key 'device': {name!r} is not a torch device ({err})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"config key 'device': {name!r} needs CUDA (not available); use auto or cpu")
    return device


def module_device(module: nn.Module) -> torch.device:
    """The device of ``module``'s first parameter (CPU for a module without parameters).

    Models read their device here instead of keeping one from construction, so ``model.to(device)``
    moves them completely.
    """
    for parameter in module.parameters():
        return parameter.device
    return torch.device("cpu")


def check_rows(x, n_features: int, device: torch.device, name: str = "x") -> torch.Tensor:
    """``x`` as float32 rows on ``device``, after checking it is a finite ``(n, n_features)`` tensor."""
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != n_features:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a 2-D tensor (n, {n_features}), got {shape}")
    if not all_finite(x):
        raise ValueError(f"{name} contains NaN or inf")
    return x.to(device, torch.float32)


def check_finite_output(values: torch.Tensor, what: str, inputs: torch.Tensor | None = None,
                        cause: str = "") -> torch.Tensor:
    """``values`` (an ``(n, …)`` model output returned to a user) unchanged when every entry is finite;
    else a ``ValueError`` naming ``what``, how many of the ``n`` rows are NaN/inf, the largest ``|input|``
    (given ``inputs``) and ``cause`` (the likely reason and its fix) — never NaN/inf handed back as a
    result."""
    if all_finite(values):
        return values
    bad = int((~torch.isfinite(values.reshape(values.shape[0], -1))).any(dim=1).sum())
    largest = ""
    if inputs is not None and inputs.numel():
        largest = f" (largest |input|: {float(inputs.detach().abs().max()):.4g})"
    raise ValueError(f"{what} are NaN/inf for {bad} of {values.shape[0]} rows{largest}"
                     + (f"; {cause}" if cause else ""))
