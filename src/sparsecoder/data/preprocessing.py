"""Row-wise preprocessing of the data sources: raw rows ↔ model rows, stored in every run folder.

A data source turns the values of its files ("raw" rows, in the source's own units) into the rows a
model sees ("model" rows). Where that map acts on each row alone it is a :class:`Preprocessing`
object that a run folder stores (``preprocessing.json``) so that a trained run can encode raw rows and
decode codes back to raw units without the training data:

==================  =============================================================================
``standardize``     ``model = (raw / raw_divisor − mean) / std`` with scalar or per-feature ``mean``
                    and ``std``; exact inverse ``raw = (model · std + mean) · raw_divisor``.
                    MNIST: raw = pixel values 0–255 as in the IDX files, ``raw_divisor = 255``,
                    ``mean = 0.1307``, ``std = 0.3081`` (SPEC §2.8; ``normalize="unit"``: 0 and 1);
                    ``arrays``: raw = values as in the file, the training split's statistics.
``luminance``       CIFAR-10 patches: raw row = one RGB patch as in the batch files' layout
                    (``3·p²`` values 0–255: the red plane, then green, then blue, each ``p×p``
                    row-major); ``model = (0.299 R + 0.587 G + 0.114 B) / 255`` (ITU-R BT.601 luma).
                    Three channels become one, so the inverse is a right inverse: the grey patch
                    ``R = G = B = 255 · model`` whose luminance is ``model`` (the weights sum to 1).
``identity``        Sources whose rows are used as generated or stored (synthetic sources, the
                    ``cifar_patches`` substitute in [0, 1], ``IMAGES.mat`` whitened patches).
``not_row_wise``    Sources whose preprocessing needs the surrounding image (local contrast
                    normalisation of ``patches``, whitening of ``whitened_patches`` photographs):
                    ``forward``/``inverse`` raise a :class:`ValueError` that says why and to use
                    model-space rows.
==================  =============================================================================

Every object has ``forward(raw_rows) -> model rows`` (float32), ``inverse(model_rows) -> raw rows``
(float64), ``to_dict()`` and is rebuilt by :func:`preprocessing_from_dict`; new kinds register with
:func:`register_preprocessing`. Arithmetic is in float64 and rounded once to float32, so a source that
builds its splits with ``forward`` gives exactly the rows ``forward`` gives a user.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from sparsecoder.util import native_array

if TYPE_CHECKING:
    import torch

__all__ = [
    "Preprocessing",
    "Standardize",
    "Luminance",
    "Identity",
    "NotRowWise",
    "register_preprocessing",
    "preprocessing_from_dict",
]

_KINDS: dict[str, type[Preprocessing]] = {}


def register_preprocessing(cls: type[Preprocessing]) -> type[Preprocessing]:
    """Class decorator: make ``cls`` (with a unique class attribute ``name``) loadable from a dict."""
    if not getattr(cls, "name", None) or cls.name in _KINDS:
        raise ValueError(f"preprocessing class {cls.__name__} needs a new, unique 'name' attribute")
    _KINDS[cls.name] = cls
    return cls


def preprocessing_from_dict(spec: dict[str, Any]) -> Preprocessing:
    """The preprocessing object ``spec`` (from :meth:`Preprocessing.to_dict`) describes."""
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"a preprocessing description must be a dict with a 'name', got {spec!r}")
    kind = _KINDS.get(spec["name"])
    if kind is None:
        raise ValueError(f"unknown preprocessing '{spec['name']}'; known: {sorted(_KINDS)} (a run folder "
                         f"written by a newer sparsecoder?)")
    return kind.from_dict(spec)


def _float64_rows(rows, n_features: int | None, what: str, *, values: bool = True) -> np.ndarray:
    """``rows`` (array or tensor, n × d) as a float64 array, checked for shape and (``values``) finiteness."""
    array = native_array(rows, what)  # tensors of any dtype (bfloat16, requiring grad); no sparse matrix
    if array.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (samples × features), got shape {array.shape}")
    if np.iscomplexobj(array) or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"{what} must be real numbers, got dtype {array.dtype}")
    if n_features is not None and array.shape[1] != n_features:
        raise ValueError(f"{what} have {array.shape[1]} features per row, expected {n_features}")
    if values and array.dtype.kind == "f" and not np.isfinite(array).all():  # integers are always finite
        raise ValueError(f"{what} contain NaN or inf")
    return array.astype(np.float64)


class Preprocessing(abc.ABC):
    """Base class: a map from raw rows (source units) to model rows and back.

    Subclasses set ``name`` (the registry key), ``row_wise`` and implement :meth:`_forward`,
    :meth:`_inverse` and :meth:`to_dict`/:meth:`from_dict`.
    """

    name: ClassVar[str] = ""
    row_wise: ClassVar[bool] = True
    # (low, high) of the source's raw units where they have one (8-bit pixels: 0–255), else None; raw rows
    # outside it are refused by `forward` (e.g. −1000 or 70,000 as MNIST "pixels": other units, not pixels)
    raw_range: tuple[float, float] | None = None
    raw_units: ClassVar[str] = "raw values"

    def raw_features(self, n_features: int) -> int:
        """Values per raw row for a model row of ``n_features`` values (equal unless channels merge)."""
        return n_features

    def forward(self, raw_rows, n_features: int | None = None, *, checked: bool = False) -> torch.Tensor:
        """Model rows (float32 tensor) of ``raw_rows`` (n × raw_features), refused when they hold NaN/inf or
        values outside :attr:`raw_range`. ``checked``: the caller has found them finite and in range already
        (:meth:`check_raw_range`; ``encode_run`` checks all its rows before the first block is encoded), so
        they are not scanned again."""
        import torch

        expected = None if n_features is None else self.raw_features(n_features)
        raw = _float64_rows(raw_rows, expected, "raw rows", values=not checked)
        if not checked:
            self.check_raw_range(raw)
        return torch.from_numpy(np.ascontiguousarray(self._forward(raw), dtype=np.float32))

    def check_raw_range(self, raw: np.ndarray) -> None:
        """Refuse finite raw rows (any real dtype) with a value outside :attr:`raw_range`, naming both."""
        if self.raw_range is None or raw.size == 0:
            return
        low, high = self.raw_range
        smallest, largest = float(raw.min()) + 0.0, float(raw.max()) + 0.0  # + 0.0: -0.0 is shown as 0
        if smallest < low or largest > high:
            raise ValueError(f"raw rows hold values from {smallest:g} to {largest:g}, outside the "
                             f"{self.raw_units} {low:g}–{high:g} of the data source; give rows in its raw "
                             f"units, or rows already in model space (--input model)")

    def inverse(self, model_rows, n_features: int | None = None) -> np.ndarray:
        """Raw rows (float64 array, source units) of ``model_rows`` (n × n_features)."""
        return self._inverse(_float64_rows(model_rows, n_features, "model rows"))

    @abc.abstractmethod
    def _forward(self, raw: np.ndarray) -> np.ndarray:
        """Model rows of the float64 raw rows."""

    @abc.abstractmethod
    def _inverse(self, model: np.ndarray) -> np.ndarray:
        """Raw rows of the float64 model rows."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name}

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> Preprocessing:
        return cls()

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_dict()})"


@register_preprocessing
class Standardize(Preprocessing):
    """``model = (raw / raw_divisor − mean) / std``; ``mean``/``std`` scalars or one value per feature.

    Parameters
    ----------
    mean, std : float or sequence of float
        Subtracted and divided after the division by ``raw_divisor``; ``std`` must be positive.
    raw_divisor : float
        Scale of the raw units (255 for 8-bit pixels, 1 for values used as stored).
    raw_range : (float, float), optional
        The raw units' range where they have one (MNIST pixel values: 0–255); ``forward`` refuses raw rows
        outside it. None (``arrays``: values as in the file): any finite value.
    """

    name = "standardize"
    raw_units = "pixel values"

    def __init__(self, mean=0.0, std=1.0, raw_divisor: float = 1.0, raw_range=None):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        self.raw_divisor = float(raw_divisor)
        if raw_range is not None:
            low, high = (float(v) for v in raw_range)
            if not (np.isfinite(low) and np.isfinite(high) and low < high):
                raise ValueError(f"standardize: raw_range must be two finite numbers low < high, got "
                                 f"{raw_range}")
            self.raw_range = (low, high)
        if self.mean.ndim > 1 or self.std.ndim > 1:
            raise ValueError("standardize: mean and std must be scalars or 1-D (one value per feature)")
        if not (np.all(self.std > 0) and np.all(np.isfinite(self.std)) and np.all(np.isfinite(self.mean))):
            raise ValueError("standardize: std must be positive and finite, mean finite")
        if not (self.raw_divisor > 0 and np.isfinite(self.raw_divisor)):
            raise ValueError(f"standardize: raw_divisor must be positive, got {raw_divisor}")

    def _check_width(self, n: int) -> None:
        for label, value in (("mean", self.mean), ("std", self.std)):
            if value.ndim == 1 and value.shape[0] != n:
                raise ValueError(f"rows have {n} features but the per-feature {label} has {value.shape[0]}")

    def _forward(self, raw: np.ndarray) -> np.ndarray:
        self._check_width(raw.shape[1])
        return (raw / self.raw_divisor - self.mean) / self.std

    def _inverse(self, model: np.ndarray) -> np.ndarray:
        self._check_width(model.shape[1])
        return (model * self.std + self.mean) * self.raw_divisor

    def to_dict(self) -> dict[str, Any]:
        spec = {"name": self.name, "mean": self.mean.tolist(), "std": self.std.tolist(),
                "raw_divisor": self.raw_divisor}
        if self.raw_range is not None:  # only where the units have one: older files read as before
            spec["raw_range"] = list(self.raw_range)
        return spec

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> Standardize:
        return cls(spec["mean"], spec["std"], spec.get("raw_divisor", 1.0), spec.get("raw_range"))


LUMINANCE_WEIGHTS = (0.299, 0.587, 0.114)


@register_preprocessing
class Luminance(Preprocessing):
    """CIFAR-10 RGB patch rows (``3·p²`` values 0–255, planes R, G, B) → luminance in [0, 1] (``p²``).

    ``model = (0.299 R + 0.587 G + 0.114 B) / 255`` per pixel. ``inverse`` returns the grey RGB patch
    ``R = G = B = 255 · model``, the one whose luminance is ``model`` (a right inverse: colour is lost).
    """

    name = "luminance"
    raw_range = (0.0, 255.0)
    raw_units = "RGB values"

    def raw_features(self, n_features: int) -> int:
        return 3 * n_features

    def _forward(self, raw: np.ndarray) -> np.ndarray:
        if raw.shape[1] % 3:
            raise ValueError(f"RGB patch rows need 3·p² values (R, G, B planes), got {raw.shape[1]}")
        planes = raw.reshape(len(raw), 3, -1).transpose(0, 2, 1)  # (n, p², 3)
        return planes / 255.0 @ np.asarray(LUMINANCE_WEIGHTS)

    def _inverse(self, model: np.ndarray) -> np.ndarray:
        return np.tile(model * 255.0, (1, 3))


@register_preprocessing
class Identity(Preprocessing):
    """Model rows are the raw rows (sources used as generated or as stored)."""

    name = "identity"

    def _forward(self, raw: np.ndarray) -> np.ndarray:
        return raw

    def _inverse(self, model: np.ndarray) -> np.ndarray:
        return model


@register_preprocessing
class NotRowWise(Preprocessing):
    """A source whose preprocessing needs more than the row (e.g. the surrounding image for LCN).

    ``forward`` and ``inverse`` raise :class:`ValueError` with ``reason``; model-space rows still work.
    """

    name = "not_row_wise"
    row_wise = False

    def __init__(self, source: str, reason: str):
        self.source, self.reason = str(source), str(reason)

    def refuse(self):
        """Raise the :class:`ValueError` that says why bare rows cannot be mapped (also before any work)."""
        raise ValueError(f"the {self.source} source cannot map bare rows to model space or back: "
                         f"{self.reason}; give model-space rows (--input model / --output model)")

    def forward(self, raw_rows, n_features: int | None = None, *, checked: bool = False) -> torch.Tensor:
        self.refuse()

    def inverse(self, model_rows, n_features: int | None = None) -> np.ndarray:
        self.refuse()

    def _forward(self, raw: np.ndarray) -> np.ndarray:
        self.refuse()

    def _inverse(self, model: np.ndarray) -> np.ndarray:
        self.refuse()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "reason": self.reason}

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> NotRowWise:
        return cls(spec.get("source", "data"), spec.get("reason", "its preprocessing is not row-wise"))
