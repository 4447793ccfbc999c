"""The common shape of every data source: train/val/test splits of row vectors plus their inverse map.

Every loader returns a :class:`DataSplits`. Rows are flattened samples (``n × d`` float32, batch
first), already normalised for the model. ``Split.to_pixels`` maps model-space rows back to pixel space
(``[0, 1]`` for images) with a per-sample affine map ``pixels = x * scale + offset``: a global
normalisation has scalar ``scale``/``offset``; local contrast normalisation has one value per sample
and pixel (SPEC §2.8), so PSNR can always be computed in pixel space (SPEC §3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Split:
    """One split: ``x`` (n×d float32, normalised), optional integer ``labels`` (n,), inverse map."""

    x: torch.Tensor
    labels: torch.Tensor | None = None
    scale: torch.Tensor | float = 1.0  # scalar, (d,) or (n, d)
    offset: torch.Tensor | float = 0.0  # scalar, (d,) or (n, d)

    def __len__(self) -> int:
        return self.x.shape[0]

    def to_pixels(self, x: torch.Tensor, index: torch.Tensor | slice | None = None) -> torch.Tensor:
        """Map model-space rows ``x`` (rows ``index`` of this split; all rows if None) to pixel space."""
        scale, offset = self.scale, self.offset
        if index is not None:
            if isinstance(scale, torch.Tensor) and scale.dim() == 2:
                scale = scale[index]
            if isinstance(offset, torch.Tensor) and offset.dim() == 2:
                offset = offset[index]
        if isinstance(scale, torch.Tensor):
            scale = scale.to(x.device, x.dtype)
        if isinstance(offset, torch.Tensor):
            offset = offset.to(x.device, x.dtype)
        return x * scale + offset

    def subset(self, index: torch.Tensor | slice) -> Split:
        def pick(v):
            return v[index] if isinstance(v, torch.Tensor) and v.dim() == 2 else v

        return Split(
            x=self.x[index],
            labels=None if self.labels is None else self.labels[index],
            scale=pick(self.scale),
            offset=pick(self.offset),
        )


@dataclass
class DataSplits:
    """What every registered source returns."""

    name: str
    train: Split
    val: Split
    test: Split
    image_shape: tuple[int, ...] | None  # e.g. (28, 28) for plotting rows as images; None for plain vectors
    normalization: str  # human-readable description of what was applied, e.g. "(x/255 - 0.1307) / 0.3081"
    n_classes: int | None = None
    true_dictionary: torch.Tensor | None = None  # synthetic sources: (d, l) ground-truth atoms as columns
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return self.train.x.shape[1]

    def describe(self) -> str:
        sizes = f"train {len(self.train)}, val {len(self.val)}, test {len(self.test)}"
        shape = "x".join(map(str, self.image_shape)) if self.image_shape else f"d={self.dim}"
        return f"{self.name}: {sizes}; samples {shape}; normalisation: {self.normalization}"
