"""Small helpers several areas share: reading numbers and arrays a user passes in, quoting a library's
error, packages callable as their main function and packages whose names are imported on first use. This
module imports nothing else from sparsecoder, so any module may import it without a cycle, and nothing
heavier than the standard library at import (numpy and torch inside the functions that need them): the
packages' ``__init__`` use it on the way to ``sparsecoder --help``."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import math
import numbers
import os
import pkgutil
import sys
import types
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = ["FLOAT32_MAX", "physical_memory", "resolve_device", "first_sentence", "check_dense",
           "host_values", "float_rows",
           "native_array", "as_array", "finite_number", "callable_package", "lazy_names", "torch_threads",
           "autograd_on", "tensor_from_numpy", "user_path"]

# The largest finite float32 (float(np.finfo(np.float32).max), written out so that this module needs no
# numpy at import): the models compute in float32, and values beyond it become inf.
FLOAT32_MAX = 3.4028234663852886e38


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine, or None where the platform does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def resolve_device(name, what: str = "config key 'device'"):
    """``"auto"`` → CUDA when available, else CPU; any other name (or a :class:`torch.device`) as that
    device, once it is known to work here: a ``ValueError`` starting with ``what`` (the config key, or
    the argument) before any work, for a name torch cannot read, CUDA or a CUDA index this machine lacks,
    ``meta`` (no values), and a backend torch parses everywhere but fails on only once a tensor is put there
    (``mps``, ``xpu``: "PyTorch is not linked with support for mps devices")."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(name, (str, torch.device)):
        raise ValueError(f"{what}: {name!r} is not a device name; use auto, cpu, cuda (cuda:N) or a "
                         f"torch.device")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"{what}: {name!r} is not a torch device ({err})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{what}: {name!r} needs CUDA (not available); use auto or cpu")
    if device.type == "meta":
        raise ValueError(f"{what}: {name!r} holds shapes but no values: nothing can be trained "
                         f"or computed on it; use auto, cpu or cuda")
    if device.type not in ("cpu", "cuda"):
        # mps, xpu, …: torch parses the name on any machine and fails only once a tensor is put there
        try:
            torch.empty(1, device=device)
        except (RuntimeError, AssertionError) as err:
            raise ValueError(f"{what}: {name!r} is not available on this machine "
                             f"({first_sentence(err, 120)}); use auto or cpu") from None
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        # else torch's "invalid device ordinal" once the model is moved, after the run folder was prepared
        count = torch.cuda.device_count()
        gpus = f"{count} GPU{'s' if count != 1 else ''}"
        raise ValueError(f"{what}: {name!r}, but this machine has {gpus} (cuda:0 to "
                         f"cuda:{count - 1}); use one of them, cuda or auto")
    return device


def first_sentence(err: BaseException, limit: int = 200) -> str:
    """The first sentence of a library's error on one line, at most ``limit`` characters (torch's about a
    damaged zip file runs to five sentences); the exception's type name when it has no message."""
    text = " ".join(str(err).split())
    return text.split(". ")[0][:limit] or type(err).__name__


def check_dense(value, name: str, needs: str = "dense arrays") -> None:
    """A ``TypeError`` for a scipy sparse matrix or array (numpy reads one as a 0-d object array: later
    errors spoke of "sparse array length is ambiguous" or "setting an array element with a sequence"),
    naming ``name`` and scikit-learn's fix, ``.toarray()``, or for a sparse torch tensor (``.to_dense()``);
    a ``ValueError`` for a tensor on torch's ``meta`` device (a shape without values); anything else
    passes."""
    sparse = sys.modules.get("scipy.sparse")  # not imported: nothing can be one of its matrices
    if sparse is not None and sparse.issparse(value):
        raise TypeError(f"{name} is a scipy sparse {type(value).__name__}, but {needs} are needed: pass "
                        f"{name}.toarray() (as scikit-learn says)")
    layout = getattr(value, "layout", None)
    if layout is not None and str(layout) != "torch.strided":
        raise TypeError(f"{name} is a {layout} tensor, but {needs} are needed: pass {name}.to_dense()")
    check_has_values(name, value)  # torch said "Cannot copy out of meta tensor; no data!"


def check_has_values(name: str, *tensors) -> None:
    """A ``ValueError`` naming ``name`` when a tensor is on torch's ``meta`` device: it has a shape but no
    values to compute with (torch would only say that ``Tensor.item()`` cannot be called on it)."""
    if any(getattr(t, "is_meta", False) is True for t in tensors):
        raise ValueError(f"{name} is on the 'meta' device, which holds shapes but no values; build or load "
                         f"it on a real device ('cpu', 'cuda') before computing with it")


def host_values(value, name: str):
    """``value`` with a torch tensor as the numpy array of its values (detached, on the CPU; bfloat16, which
    numpy lacks, as float64 like numpy's float16), anything else unchanged. A sparse or ``meta`` tensor is
    refused naming ``name`` (:func:`check_dense`)."""
    torch = sys.modules.get("torch")  # not imported: nothing can be a tensor
    if torch is not None and isinstance(value, torch.Tensor):
        check_dense(value, name, "dense rows")
        value = value.detach().cpu()
        return (value.to(torch.float64) if value.dtype == torch.bfloat16 else value).numpy()
    return value


def tensor_from_numpy(array: np.ndarray):
    """``torch.from_numpy(array)``, of a copy when ``array`` is read-only (``np.load(mmap_mode="r")``, the
    memmaps joblib hands to scikit-learn's ``GridSearchCV`` workers, ``np.broadcast_to`` views): torch has
    no read-only tensors and warns "The given NumPy array is not writable" at the call, and an in-place
    operation on such a tensor would write into, or crash on, memory the caller does not own."""
    import torch

    return torch.from_numpy(array if array.flags.writeable else array.copy())


def user_path(text: str):
    """A path argument (``argparse`` ``type=``) with a leading ``~`` or ``~user`` expanded as a shell would:
    ``--out=~/runs/x`` (zsh, or a quoted ``~``) reaches the command unexpanded and made a folder named ``~``
    in the current one. An empty path is refused: ``Path("")`` is the current folder (``--out "$UNSET"``
    trained a run into it)."""
    import argparse
    from pathlib import Path

    if not text.strip():
        raise argparse.ArgumentTypeError(f"empty path {text!r}; give a file or folder (. is the current one)")
    return Path(os.path.expanduser(text))


def float_rows(value, name: str, *, rows: str = "row", float64: bool = False) -> np.ndarray:
    """``value`` (a numpy array or memmap of any real dtype, byte order or strides, a torch tensor, a pandas
    DataFrame, nested lists) as a 2-D, finite, C-contiguous, native-byte-order numpy array of at least one
    row (``rows`` names them in the message) and one column: float32 stays float32, every other dtype
    becomes float64 (scikit-learn's rule; ``float64``: always float64). Read by scikit-learn's
    ``check_array``, which names ``name`` for NaN/inf, complex values, scipy sparse matrices and wrong
    ranks; the input is never modified (a copy is made whenever anything needs converting)."""
    import numpy as np
    from sklearn.utils import check_array

    array = check_array(host_values(value, name), dtype=np.float64 if float64 else [np.float64, np.float32],
                        order="C", input_name=name, ensure_min_samples=0, ensure_min_features=0)
    if 0 in array.shape:
        raise ValueError(f"{name} has shape {array.shape}: it needs at least one {rows} of at least one "
                         f"feature")
    return array


def native_array(value, name: str = "the array") -> np.ndarray:
    """``value`` (a tensor, array or nested lists) as a numpy array of its own dtype: integer labels and
    indices, and boolean masks, stay so (:func:`as_array` makes every value a float64). A bfloat16 tensor,
    which numpy lacks, gives float32 (exact); a scipy sparse matrix is refused (:func:`check_dense`)."""
    import numpy as np

    check_dense(value, name)
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
    return np.asarray(value)


def as_array(value, name: str, ndim: int | None = 2, finite: bool = True) -> np.ndarray:
    """``value`` as a float64 numpy array; a clear error for a wrong rank (and NaN/inf when ``finite``), a
    complex value or a scipy sparse matrix (:func:`check_dense`)."""
    import numpy as np

    check_dense(value, name)
    try:
        import torch

        if isinstance(value, torch.Tensor):
            if value.is_complex():
                raise ValueError(f"{name} is a complex tensor; the metrics take real values — pass "
                                 f"its real part or its absolute value")
            value = value.detach().to("cpu", torch.float64).numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    try:
        array = np.asarray(value)
        if not np.iscomplexobj(array):
            array = array.astype(np.float64, copy=False)
    except (TypeError, ValueError) as err:  # strings, ragged nesting, objects
        raise ValueError(f"{name} must be an array of real numbers (a numpy array, a torch tensor or nested "
                         f"lists of equal lengths); numpy cannot read this {type(value).__name__} as one "
                         f"({err})") from None
    if np.iscomplexobj(array):
        raise ValueError(f"{name} is a complex array; the metrics take real values — pass np.real(x) or "
                         f"np.abs(x)")
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array (samples × features), got shape {array.shape}")
    if finite and not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or inf")
    return array


def finite_number(value, name: str, *, positive: bool = False) -> float:
    """``value`` (a real number, numpy scalar or 0-d array / tensor; not a bool) as a finite float ``>= 0``
    (``> 0`` when ``positive``), or a ``ValueError`` naming ``name``."""
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        value = value.item()
    bound = "> 0" if positive else ">= 0"
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value))
            or float(value) < 0 or (positive and float(value) == 0)):
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


@contextlib.contextmanager
def torch_threads(count: int | None):
    """torch's intra-op thread count (process-global) set to ``count`` inside the block and restored after
    (None: left alone), so that a library call (``train(..., overrides={"num_threads": 1})``) leaves the
    caller's setting as it found it."""
    import torch

    previous = torch.get_num_threads()
    if count is None or count == previous:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def autograd_on():
    """Autograd on inside the block, whatever the caller's context: training (or FISTA's autograd gradient)
    called inside ``torch.no_grad()`` or ``torch.inference_mode()`` (which ``torch.enable_grad`` alone does
    not leave) failed with torch's "element 0 of tensors does not require grad"."""
    import torch

    with torch.inference_mode(False), torch.enable_grad():
        yield


class CallablePackage(types.ModuleType):
    """A package that is also its function of the same name: ``sparsecoder.train(...)`` calls
    ``sparsecoder.train.train(...)``, while ``sparsecoder.train`` stays the package, so that its modules are
    reachable as usual (``import sparsecoder.train.run as run``, ``sparsecoder.train.trainer``)."""

    def _function(self):
        return getattr(self, self.__name__.rpartition(".")[2])

    def __call__(self, *args, **kwargs):
        return self._function()(*args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:  # inspect.signature(package) is the function's
        return inspect.signature(self._function())


def callable_package(name: str) -> None:
    """Make the package ``name`` (already imported, e.g. ``__name__`` in its ``__init__``) callable as its
    function of the same name (:class:`CallablePackage`)."""
    sys.modules[name].__class__ = CallablePackage


def lazy_names(package: str, names: dict[str, str]):
    """PEP 562 ``__getattr__`` and ``__dir__`` for the package ``package`` (its ``__name__``, already in
    ``sys.modules``) whose public ``names`` are imported on first access, so that importing it (as
    ``sparsecoder --help`` does on its way to a sub-command's module) imports neither torch nor the other
    heavy libraries its modules need. ``names`` maps each name to ``"module:attribute"``, or to ``"module"``
    for a module itself; ``from package import name`` and ``package.name`` give the same object as an
    eager import did, and a submodule not imported yet is imported on access (``package.viz``), as the
    eager imports of ``__init__`` used to make it an attribute. Use in ``__init__``::

        __getattr__, __dir__ = lazy_names(__name__, {"load": "sparsecoder.data.registry:load"})
    """
    module = sys.modules[package]

    def __getattr__(name: str):
        if name in names:
            path, _, attribute = names[name].partition(":")
            value = importlib.import_module(path)
            if attribute:
                value = getattr(value, attribute)
        elif name in _submodules(module):
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(module, name, value)  # once: later reads are plain attribute reads
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(module), *names, *_submodules(module)})

    return __getattr__, __dir__


def _submodules(module: types.ModuleType) -> set[str]:
    return {info.name for info in pkgutil.iter_modules(getattr(module, "__path__", []))}
