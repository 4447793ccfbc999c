"""Linear probes on frozen codes, in the low-data regime (Evtimova & LeCun 2022, §4.5 and Fig. 9; SPEC §3).

A linear classifier ``logits = W h(x) + c`` is trained with Adam (lr 1e-3, 100 epochs in the paper) and
cross-entropy on ``k`` labelled samples per class. ``h`` is either fixed features (frozen encoder codes,
or the raw pixels) or a trainable module trained end to end with the classifier (the paper's "LISTA +
Linear on raw" baseline). The weights kept are those of the epoch with the best **validation** accuracy
(ties: the lower validation cross-entropy, then the earlier epoch) — not the last epoch, which the
authors' released code reports by mistake (SPEC §3). Test top-1 and top-3 errors of those weights are
returned.
"""

from __future__ import annotations

import copy
import math
import numbers
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sparsecoder.data.base import MAX_CLASSES, check_labels
from sparsecoder.nn.sizes import check_seed, check_size
from sparsecoder.util import finite_number

__all__ = ["ProbeResult", "ProbeDiverged", "topk_error", "class_indices", "sample_per_class", "train_probe"]


def topk_error(logits, labels, k: int = 1) -> float:
    r"""Fraction of samples whose label is not among the ``k`` largest logits.

    .. math:: \frac1n \#\{i : y_i \notin \operatorname{top}_k(s_i)\}

    Ties among logits are broken by :func:`torch.topk` (the lower index first).
    """
    logits = torch.as_tensor(logits)
    labels = torch.as_tensor(labels)
    if logits.dim() != 2 or labels.dim() != 1 or logits.shape[0] != labels.shape[0]:
        raise ValueError(f"logits must be (n, classes) and labels (n,), got {tuple(logits.shape)} and "
                         f"{tuple(labels.shape)}")
    if logits.shape[0] == 0:
        raise ValueError("top-k error of zero samples is undefined")
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= logits.shape[1]:
        raise ValueError(f"k must be in [1, {logits.shape[1]}] (the number of classes) and an integer, "
                         f"got {k!r}")
    if not logits.is_floating_point() or not bool(torch.isfinite(logits).all()):
        raise ValueError(f"logits must be finite real numbers (got dtype {logits.dtype}, or NaN/inf among "
                         f"them)")
    labels = class_indices(labels, "labels", n_classes=logits.shape[1],
                           fix=f"labels index the {logits.shape[1]} columns of logits (one per class)")
    top = logits.topk(int(k), dim=1).indices
    hit = (top == torch.from_numpy(labels).to(top.device)[:, None]).any(dim=1)
    return float(1.0 - hit.double().mean())


def class_indices(labels, name: str = "labels", n_classes: int | None = None, fix: str | None = None
                  ) -> np.ndarray:
    """``labels`` as a 1-D int64 array of class indices ``0 … n_classes − 1`` (``0 … MAX_CLASSES − 1``
    when ``n_classes`` is None); labels that are not 1-D, bools, fractional, NaN or out of range are a
    ``ValueError`` naming ``name`` and ``fix`` (a float label 0.5 used to be truncated to class 0, a label
    ≥ n_classes to count as a miss). The check is :func:`sparsecoder.data.base.check_labels`.
    """
    if fix is None:
        fix = ("renumber the classes 0, 1, … (e.g. np.unique(labels, return_inverse=True)[1])"
               if n_classes is None else f"give class indices below n_classes={n_classes}")
    return check_labels(labels, name, fix, n_classes=n_classes)


def sample_per_class(labels, n_per_class: int | None, seed: int, n_classes: int | None = None) -> np.ndarray:
    """Indices of ``n_per_class`` samples of every class present in ``labels`` — of every class
    ``0 … n_classes − 1`` when ``n_classes`` is given — drawn without replacement by a generator seeded with
    ``seed`` (sorted); ``None`` gives every index.

    A class with fewer than ``n_per_class`` samples is an error naming it; with ``n_classes``, so is a class
    with no sample at all (even for ``None``): the probe would never see it, and "k per class" would be
    k per class present.
    """
    labels = class_indices(labels, "labels", n_classes=n_classes)
    if len(labels) == 0:
        raise ValueError("labels is empty: no samples to draw from")
    seed = check_seed("sample_per_class", seed)
    if n_per_class is not None and (isinstance(n_per_class, bool) or int(n_per_class) != n_per_class
                                    or n_per_class < 1):
        raise ValueError(f"samples per class must be an integer >= 1 or None (all), got {n_per_class!r}")
    classes = np.unique(labels) if n_classes is None else np.arange(n_classes)
    for cls in classes:
        size = int(np.sum(labels == cls))
        if size < (n_per_class or 1):
            raise ValueError(f"class {cls} has {size} samples, fewer than the {n_per_class or 1} per class "
                             f"asked for; lower the number of samples per class (or give more data)")
    if n_per_class is None:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(labels == cls), size=int(n_per_class), replace=False)
              for cls in classes]
    return np.sort(np.concatenate(chosen))


@dataclass
class ProbeResult:
    """Test errors of the weights of the best validation epoch (``best_epoch``, 1-based)."""

    top1_error: float
    top3_error: float
    val_accuracy: float
    best_epoch: int
    n_train: int


class ProbeDiverged(ValueError):
    """The probe's training loss or validation logits became NaN/inf (a learning rate too large, or inputs
    so large that float32 logits overflow); no result is returned."""


class _Probe(nn.Module):
    def __init__(self, features: nn.Module | None, n_in: int, n_classes: int):
        super().__init__()
        self.features = features if features is not None else nn.Identity()
        self.linear = nn.Linear(n_in, n_classes)

    def forward(self, x):
        return self.linear(self.features(x))


def _logits(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([model(x[s:s + batch_size]) for s in range(0, x.shape[0], batch_size)])


def _diverged(epoch: int, steps: int, what: str, lr: float, features, x: torch.Tensor) -> str:
    if steps == 0:  # nothing was trained yet: the learning rate is not the cause
        source = "the features module gives NaN/inf on these inputs, or " if features is not None else ""
        return (f"the probe's {what} NaN/inf before any training step: {source}the inputs are too large "
                f"for float32 logits (largest |x| {float(x.abs().max()):.3g}); check the features / rescale "
                f"the inputs")
    cause = "; or the features module gives NaN/inf" if features is not None else ""
    return (f"the probe diverged in epoch {epoch}: its {what} NaN/inf. The learning rate is probably "
            f"too large (lr={lr:g}); lower it{cause}. No result is returned")


def train_probe(train_x, train_y, val_x, val_y, test_x, test_y, *, n_classes: int, epochs: int = 100,
                lr: float = 1e-3, batch_size: int = 250, seed: int = 0, features: nn.Module | None = None,
                n_features_out: int | None = None) -> ProbeResult:
    """Train a linear classifier (on top of ``features``, trained with it, when given) and test it.

    Parameters
    ----------
    train_x, val_x, test_x : (n, d) tensors
        Inputs: frozen codes or raw rows (and the input of ``features`` when given).
    train_y, val_y, test_y : (n,) integer tensors
        Labels in ``[0, n_classes)``.
    n_classes : int
        Number of classes (10 for MNIST).
    epochs : int
        Passes over the training samples (100 in the paper); mini-batches of ``batch_size``, shuffled by a
        generator seeded with ``seed``, which also seeds the initial weights.
    lr : float
        Adam's learning rate (1e-3 in the paper).
    features : nn.Module, optional
        A trainable feature extractor in front of the linear layer (e.g. a randomly initialised
        :class:`~sparsecoder.nn.encoders.LISTAEncoder`), trained end to end; a deep copy is trained, the
        module given is left unchanged. ``n_features_out`` is then its output width.

    Returns
    -------
    ProbeResult
        Top-1 and top-3 test errors of the weights of the epoch with the best validation accuracy.
    """
    n_classes = check_size("train_probe", "n_classes", n_classes)
    epochs = check_size("train_probe", "epochs", epochs)
    batch_size = check_size("train_probe", "batch_size", batch_size)
    lr = finite_number(lr, "lr", positive=True)
    seed = check_seed("train_probe", seed)
    if features is None and n_features_out is not None:  # the linear layer was built that wide, then failed
        raise ValueError(f"n_features_out={n_features_out!r} is the output width of features, but no "
                         f"features module was given; leave it out (the probe reads the inputs' width)")
    if not n_classes >= 3:
        raise ValueError(f"top-3 error needs at least 3 classes, got n_classes={n_classes}")
    if n_classes > MAX_CLASSES:  # the linear layer is n_classes wide: 10**12 would not fit in memory
        raise ValueError(f"n_classes={n_classes} is more than the {MAX_CLASSES:,} classes a probe takes; "
                         f"renumber the classes 0, 1, … (np.unique(labels, return_inverse=True)[1])")
    tensors = [torch.as_tensor(t) for t in (train_x, train_y, val_x, val_y, test_x, test_y)]
    train_x, train_y, val_x, val_y, test_x, test_y = tensors
    for name, x, y in (("train", train_x, train_y), ("val", val_x, val_y), ("test", test_x, test_y)):
        if x.dim() != 2 or y.dim() != 1 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
            raise ValueError(f"{name}: inputs must be (n, d) and labels (n,) with n >= 1, got "
                             f"{tuple(x.shape)} and {tuple(y.shape)}")
        if x.shape[1] != train_x.shape[1]:
            raise ValueError(f"{name} inputs have {x.shape[1]} features but train inputs {train_x.shape[1]}; "
                             f"give every split the same features (codes of the same model)")
        if x.is_complex() or x.dtype == torch.bool:
            raise ValueError(f"{name} inputs must be real numbers, got dtype {x.dtype}")
        # the probe trains in float32: a NaN/inf, or a float64 value beyond float32's range, would train
        # on NaN losses and still report errors
        if not torch.isfinite(x.float()).all():
            raise ValueError(f"{name} inputs hold NaN or inf (or values beyond float32's range, 3.4e38); "
                             f"check the model that produced the codes")
    labels = [torch.from_numpy(class_indices(y, f"{name} labels", n_classes,
                                             f"every split's labels are class indices below "
                                             f"n_classes={n_classes}")).to(y.device)
              for name, y in (("train", train_y), ("val", val_y), ("test", test_y))]
    train_x, val_x, test_x = (x.float() for x in (train_x, val_x, test_x))
    train_y, val_y, test_y = labels
    torch.manual_seed(seed)
    if features is not None:
        features = copy.deepcopy(features)
        if n_features_out is None:
            raise ValueError("give n_features_out (the output width of features)")
        with torch.no_grad():
            out = features(train_x[:1])
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, n_features_out):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"features map a batch of 1 row to {shape}, not (1, n_features_out="
                             f"{n_features_out}); give n_features_out as the features' output width")
    model = _Probe(features, n_features_out or train_x.shape[1], n_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    n = train_x.shape[0]
    best = (-math.inf, math.inf)  # (val accuracy, -) compared as (accuracy, -loss)
    best_state, best_epoch, steps = None, 0, 0
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            index = order[start:start + batch_size]
            loss = F.cross_entropy(model(train_x[index]), train_y[index])
            if not torch.isfinite(loss):  # NaN logits failed later in topk_error, naming "logits"
                raise ProbeDiverged(_diverged(epoch, steps, "training loss is", lr, features, train_x))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
        model.eval()
        with torch.no_grad():
            logits = _logits(model, val_x, 1024)
            if not torch.isfinite(logits).all():
                raise ProbeDiverged(_diverged(epoch, steps, "validation logits are", lr, features, val_x))
            accuracy = 1.0 - topk_error(logits, val_y, 1)
            val_loss = float(F.cross_entropy(logits, val_y))
        if accuracy > best[0] or (accuracy == best[0] and val_loss < best[1]):
            best, best_epoch = (accuracy, val_loss), epoch
            best_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        logits = _logits(model, test_x, 1024)
    return ProbeResult(top1_error=topk_error(logits, test_y, 1), top3_error=topk_error(logits, test_y, 3),
                       val_accuracy=best[0], best_epoch=best_epoch, n_train=n)
