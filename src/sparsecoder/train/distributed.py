"""Data-parallel training on ``torch.distributed`` (launched by ``torchrun``): who this process is, and the
few collectives the trainer needs.

``torchrun --standalone --nproc_per_node=N -m sparsecoder train PRESET --out DIR`` starts N processes
with ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` in their environment; :func:`current_world` joins them
into one process group (``gloo`` on the CPU, ``nccl`` on CUDA, one GPU per process: ``cuda:LOCAL_RANK``).
Every process holds the model and the data, trains on its shard (:func:`shard`) of every global batch,
and the trainer all-reduces gradients and logs; rank 0 alone validates, evaluates and writes the run
folder (:meth:`World.on_main` runs a function there and hands its result, or its error, to every rank).
The other ranks wait for that rank-0 work in a group of its own whose timeout is
``SPARSECODER_RANK0_TIMEOUT`` seconds (default 24 h), not the training collectives' (torch's default,
30 min on gloo), so a long evaluation does not time them out. A process whose ``train`` raises posts its
error to the rendezvous store before it leaves the group; the others, whose collective then fails, raise
:class:`RankFailed` naming that rank and its error. Without torchrun's agent the store lives in rank 0, so a
failing rank 0 keeps it up after leaving the group until every other rank has stopped (at most
:data:`FAILURE_LINGER_S` seconds).
Multi-node runs use torchrun's rendezvous flags (``--nnodes``, ``--node_rank``, ``--rdzv_endpoint``);
nothing here depends on being on one machine.
"""

from __future__ import annotations

import datetime
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist

__all__ = ["World", "RankFailed", "current_world", "shard", "LOCAL_STATISTICS_ENV", "RANK0_TIMEOUT_ENV",
           "FAILURE_LINGER_S", "under_torchrun_agent"]

T = TypeVar("T")

# Debug switch for the tests only: with it set to "1" the variance hinge uses each process's *local*
# batch std (the mistake per-GPU batch statistics make), so a test can show that the global std matters.
LOCAL_STATISTICS_ENV = "SPARSECODER_DEBUG_LOCAL_BATCH_STATISTICS"


# Seconds the other processes wait for rank 0's own work (validation, test evaluation, pictures, writing
# the run folder); a malformed value is refused up front like torchrun's variables
RANK0_TIMEOUT_ENV = "SPARSECODER_RANK0_TIMEOUT"
DEFAULT_RANK0_TIMEOUT_S = 24 * 3600
_FAILED_KEY = "sparsecoder/failed/rank"  # + rank: the error a process stopped with (rendezvous store)
_STOPPED_KEY = "sparsecoder/stopped/rank"  # + rank: set when a process leaves the group (run over or failed)
# How long a failing rank 0 keeps the store it hosts (launches without torchrun's agent) after leaving the
# group, waiting for the other ranks to read its error and stop
FAILURE_LINGER_S = 10.0


class RankFailed(RuntimeError):
    """Another training process stopped the run (``rank``: which one, None when unknown; ``kind``: the
    class name of its error, e.g. ``TrainingDiverged``), or contact with one was lost."""

    def __init__(self, message: str, rank: int | None = None, kind: str = ""):
        super().__init__(message)
        self.rank, self.kind = rank, kind

    @classmethod
    def stopped_by(cls, rank: int, kind: str, message: str) -> RankFailed:
        """The error of the other processes when process ``rank`` stopped with a ``kind`` error."""
        return cls(f"rank {rank} stopped the run: {kind}: {message}", rank=rank, kind=kind)


def _store():
    from torch.distributed import distributed_c10d

    return distributed_c10d._get_default_store()


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (``world_size == 1``: plain training)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # this process group was joined here (and is left by close())
    main_group: Any = None  # the gloo group in which the other ranks wait for rank 0 (rank0_timeout)
    rank0_timeout: float = DEFAULT_RANK0_TIMEOUT_S

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """Element-wise sum of ``tensor`` over all processes, in place; returns it (a no-op alone)."""
        if self.distributed:
            self._collective("summing over the processes",
                             lambda: dist.all_reduce(tensor, op=dist.ReduceOp.SUM))
        return tensor

    def gather(self, obj: T) -> list[T]:
        """Every process's ``obj`` (picklable), indexed by rank."""
        if not self.distributed:
            return [obj]
        gathered: list[Any] = [None] * self.world_size
        self._collective("gathering from the processes", lambda: dist.all_gather_object(gathered, obj))
        return gathered

    def on_main(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on rank 0 only and return its result on every rank.

        If ``fn`` raises on rank 0, rank 0 re-raises it and every other rank raises :class:`RankFailed`
        with its message, so that all processes stop together instead of waiting on a collective. The
        other ranks wait up to ``rank0_timeout`` seconds (``SPARSECODER_RANK0_TIMEOUT``).
        """
        result, error = None, None
        if self.is_main:
            try:
                result = fn()
            except BaseException as err:  # noqa: BLE001 - handed to the other ranks, then re-raised
                error = err
        if self.distributed:
            box = [result if error is None else None,
                   None if error is None else (type(error).__name__, str(error))]
            self._collective("waiting for rank 0's validation, evaluation or writes",
                             lambda: dist.broadcast_object_list(box, src=0, group=self.main_group),
                             waiting_for_main=True)
            result, failure = box
            if failure is not None and not self.is_main:
                raise RankFailed.stopped_by(0, *failure)
        if error is not None:
            raise error
        return result  # type: ignore[return-value]

    def _collective(self, what: str, call: Callable[[], Any], waiting_for_main: bool = False) -> Any:
        """``call()``, a collective; its failure (the peer's connection closed, or a timeout) becomes a
        :class:`RankFailed` naming the process that posted its error (:meth:`report_failure`), or saying
        that contact was lost and why that happens."""
        try:
            return call()
        except RuntimeError as err:  # gloo: RuntimeError; nccl: DistBackendError, a RuntimeError
            posted = self._posted_failure()
            if posted is not None and posted:
                raise RankFailed.stopped_by(posted["rank"], posted["kind"], posted["message"]) from err
            if waiting_for_main and not self.is_main:
                why = (f"rank 0 died (killed, out of memory, its machine lost) or its validation, evaluation "
                       f"or writes took longer than {self.rank0_timeout:g} s (set {RANK0_TIMEOUT_ENV} to "
                       f"more seconds)")
            else:
                why = ("another process died (killed, out of memory, its machine lost: torchrun's summary "
                       "names its rank) or stopped answering within the process group's timeout")
            if posted is None and not self.is_main:
                why += ("; the rendezvous store is unreachable too, so the process that hosts it (rank 0, "
                        "when not launched by torchrun) has most likely died: its own output says why")
            raise RankFailed(f"rank {self.rank} lost contact with the other training processes while {what}: "
                             f"{why} ({type(err).__name__}: {str(err)[:300]})", rank=self.rank) from err

    def report_failure(self, error: BaseException) -> bool:
        """Post the error this process stops with to the rendezvous store, before it leaves the process
        group, so that the processes whose collective fails name it (a :class:`RankFailed` relaying
        another rank's error is not posted again; this rank's lost contact is). True when posted: pass it
        to :meth:`close`."""
        if not self.distributed or (isinstance(error, RankFailed) and error.rank != self.rank):
            return False
        record = {"rank": self.rank, "kind": type(error).__name__, "message": str(error)[:4000]}
        try:
            _store().set(f"{_FAILED_KEY}{self.rank}", json.dumps(record))
        except Exception:  # noqa: BLE001 - the store is gone too: the others report a lost contact
            return False
        return True

    def _posted_failure(self) -> dict[str, Any] | None:
        """The error another process posted (the lowest such rank); ``{}`` when none did, None when the
        store cannot be read (it lives in rank 0 without torchrun's agent, and went with it)."""
        try:
            store = _store()
            for rank in range(self.world_size):
                key = f"{_FAILED_KEY}{rank}"
                if rank != self.rank and store.check([key]):
                    return json.loads(store.get(key))
        except Exception:  # noqa: BLE001 - unreachable or unreadable: nothing to name
            return None
        return {}

    def rank_seed(self, seed: int) -> int:
        """The seed of this process's random generators: ``seed`` on rank 0, a derived one elsewhere
        (so that e.g. VAE posterior noise differs between shards)."""
        if self.rank == 0:
            return int(seed)
        return int(np.random.SeedSequence([int(seed), self.rank]).generate_state(1)[0])

    def close(self, posted_failure: bool = False) -> None:
        """Leave the process group if :func:`current_world` joined it (not one the caller set up).

        ``posted_failure`` (what :meth:`report_failure` returned): on rank 0, whose process may host the
        rendezvous store (launches without torchrun's agent), the store is kept up after leaving, until
        every other rank has stopped or :data:`FAILURE_LINGER_S` seconds have passed, so that the others,
        whose collective fails when this rank leaves, can still read the error and name it."""
        store = None
        if self.distributed and dist.is_initialized():
            try:
                store = _store()  # a reference keeps a store this process hosts up after the group is gone
                store.set(f"{_STOPPED_KEY}{self.rank}", "1")
            except Exception:  # noqa: BLE001 - the store is gone: nobody is left to read it
                store = None
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()  # all its groups, main_group too
        elif self.main_group is not None and dist.is_initialized():
            dist.destroy_process_group(self.main_group)
        if posted_failure and self.is_main and store is not None:
            others = [f"{_STOPPED_KEY}{rank}" for rank in range(1, self.world_size)]
            try:
                store.wait(others, datetime.timedelta(seconds=FAILURE_LINGER_S))
            except Exception:  # noqa: BLE001 - a rank that died, or the linger is over: leave anyway
                pass


# What torchrun sets for each process (env:// rendezvous); a missing or malformed one is named up front.
LAUNCH_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
_LAUNCH_FIX = ("these variables are set by torchrun for each process it starts: launch with `torchrun "
               "--nproc_per_node=N -m sparsecoder train ...`, or unset WORLD_SIZE (and RANK) to train in one "
               "process")


def _launch_error(problem: str) -> ValueError:
    return ValueError(f"{problem}; {_LAUNCH_FIX}")


def _environment_int(name: str, default: int | None = None, low: int = 0) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        if default is None:
            raise _launch_error(f"WORLD_SIZE={os.environ.get('WORLD_SIZE')} asks for several processes but "
                                f"{name} is not set")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _launch_error(f"environment variable {name}={raw[:50]!r} is not an integer") from None
    if value < low:
        raise _launch_error(f"environment variable {name}={value} must be >= {low}")
    return value


def process_rank() -> int:
    """This process's rank among the training processes: ``RANK`` under torchrun, 0 in a single process
    (``WORLD_SIZE`` unset or 1, whatever ``RANK`` a scheduler left in the environment); see
    :func:`launch_environment`."""
    return launch_environment()[1]


def launch_environment() -> tuple[int, int, int]:
    """``(world_size, rank, local_rank)`` from the environment torchrun sets, checked: integers,
    ``0 <= RANK < WORLD_SIZE``, and with ``WORLD_SIZE > 1`` every variable of :data:`LAUNCH_VARIABLES`
    present (a stray ``WORLD_SIZE`` alone would otherwise be a ``KeyError`` or a wait for processes that
    never come). ``(1, 0, 0)`` without ``WORLD_SIZE``."""
    world_size = _environment_int("WORLD_SIZE", default=1, low=1)
    if world_size == 1:
        return 1, 0, 0
    rank = _environment_int("RANK")
    local_rank = _environment_int("LOCAL_RANK", default=0)
    if rank >= world_size:
        raise _launch_error(f"RANK={rank} is not below WORLD_SIZE={world_size}")
    if not os.environ.get("MASTER_ADDR", "").strip():
        raise _launch_error(f"WORLD_SIZE={world_size} asks for several processes but MASTER_ADDR is not set")
    _environment_int("MASTER_PORT", low=1)  # refuses a missing one with the same message
    return world_size, rank, local_rank


def current_world(device: torch.device) -> World:
    """The :class:`World` of this process; joins the process group torchrun describes in the environment.

    Parameters
    ----------
    device : torch.device
        The configured device. With several processes on CUDA, process ``LOCAL_RANK`` uses
        ``cuda:LOCAL_RANK`` and the ``nccl`` backend; on the CPU the ``gloo`` backend.
    """
    world_size, rank, local_rank = launch_environment()
    if world_size == 1:
        return World(device=device)
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"process {rank} wants cuda:{local_rank} but this machine has "
                               f"{torch.cuda.device_count()} GPUs; use --nproc_per_node <= the GPU count")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    rank0_timeout = rank0_timeout_seconds()
    owns_group = not dist.is_initialized()
    if owns_group:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    for key in (_FAILED_KEY, _STOPPED_KEY):  # this process's record of an earlier run in the same group
        try:
            _store().delete_key(f"{key}{rank}")
        except Exception:  # noqa: BLE001 - a store without the key, or without deletion
            pass
    main_group = dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=rank0_timeout))
    return World(rank=rank, world_size=world_size, local_rank=local_rank, device=device,
                 owns_group=owns_group, main_group=main_group, rank0_timeout=rank0_timeout)


def under_torchrun_agent() -> bool:
    """Whether torchrun's agent started this process and hosts the rendezvous store (not rank 0): it
    stops every process once one has failed or is stopped by a signal."""
    return os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").strip().lower() == "true"


def rank0_timeout_seconds() -> float:
    """``SPARSECODER_RANK0_TIMEOUT`` (seconds >= 1), default :data:`DEFAULT_RANK0_TIMEOUT_S`."""
    raw = os.environ.get(RANK0_TIMEOUT_ENV, "").strip()
    if not raw:
        return float(DEFAULT_RANK0_TIMEOUT_S)
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 1):  # also the time its group has to form, at the start
        raise ValueError(f"environment variable {RANK0_TIMEOUT_ENV}={raw[:50]!r} must be a number of seconds "
                         f">= 1 (how long the other processes wait for rank 0's validation, evaluation and "
                         f"writes; default {DEFAULT_RANK0_TIMEOUT_S}); set it so, or unset it")
    return value


def shard(index: torch.Tensor, world: World) -> torch.Tensor:
    """This process's rows of a global batch ``index``: contiguous pieces whose sizes differ by at most
    one (``torch.tensor_split``), piece ``rank`` for process ``rank``."""
    if not world.distributed:
        return index
    return torch.tensor_split(index, world.world_size)[world.rank]
