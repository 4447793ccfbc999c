"""What the trainer needs from a model family, and the data a family declares about its optimisation.

A model family is an ``nn.Module`` that says *what* to optimise; the trainer
(:mod:`sparsecoder.train.trainer`, :class:`sparsecoder.train.optimization.Optimization`) decides *how*:
it moves the model to the device, builds one Adam optimiser per :class:`OptimizerSpec`, runs backward and
the steps in the declared order (SPEC §2.6: decoder step, then encoder step), applies the model's
projections after the steps, runs the learning-rate schedules, averages gradients over processes
(data-parallel training), checkpoints and resumes. Evaluation and pictures are not the model's either:
they are functions registered with the family (:func:`sparsecoder.models.register_model`), found in
:mod:`sparsecoder.eval` and :mod:`sparsecoder.viz`.

What the trainer relies on beyond the signatures below:

* ``state_dict()`` / ``load_state_dict()`` (an ``nn.Module`` has them) hold *all* the model's state that
  training changes, apart from the optimisers and schedules (which the trainer saves itself).
* No device is captured at construction: ``model.to(device)`` moves everything, and the model reads its
  device from its parameters (:func:`sparsecoder.models.common.module_device`).
* Each loss in :attr:`StepOutput.losses` is a *mean over the rows of the batch* it was given: with several
  processes the trainer weights each process's gradients by its share of the global batch, so that the
  result equals the gradient of the single-process mean loss.
* Randomness inside :meth:`TrainableModel.training_losses` comes from torch's (or NumPy's / ``random``'s)
  global generator: the trainer seeds them and saves/restores their states, so a resumed run is exact.
* Divergence guard: every log named ``loss``, ``energy`` or ending in ``_loss`` must be finite, so is
  ``val_loss`` and every floating-point tensor of ``state_dict()``; else the run stops. A step or a
  validation that raises is a divergence too when ``state_dict()`` or :meth:`TrainableModel.encode` of
  its rows holds NaN/inf (the trainer asks after the error), so a family may refuse non-finite codes.
* Optional ``batch_requirement() -> (rows, why)``: the fewest rows a training mini-batch may have (VDL's
  variance guard: 2); the trainer refuses smaller batches before the first epoch, saying whether the
  training split, ``batch_size`` or the split of the rows into batches is the cause.
* Training logs and validation metrics share one ``history.csv`` row, so their names must differ
  (validation metrics start with ``val_``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

__all__ = ["ParamGroupSpec", "OptimizerSpec", "StepOutput", "Reduce", "TrainableModel"]

# Element-wise sum of a tensor over all processes (``dist.all_reduce``); ``None`` for one process.
Reduce = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ParamGroupSpec:
    """One Adam parameter group: which parameters, their learning rate and (L2) weight decay.

    ``weight_decay`` is Adam's L2 penalty added to the gradient (``torch.optim.Adam(weight_decay=…)``).
    ``name`` is kept in the optimiser's ``param_groups`` (and so in ``checkpoint.pt``).
    """

    name: str
    params: Sequence[torch.nn.Parameter]
    lr: float
    weight_decay: float = 0.0


@dataclass(frozen=True)
class OptimizerSpec:
    """One named Adam optimiser and its learning-rate schedule.

    ``lr_step_every``/``lr_step_factor``: multiply every group's learning rate by ``lr_step_factor`` after
    each ``lr_step_every``-th epoch (``torch.optim.lr_scheduler.StepLR``; e.g. 30 and 0.5 = "halved every
    30 epochs", SPEC §2.7); ``None`` = constant. The trainer steps the optimisers in the order the model
    lists them, and logs ``lr_<name>`` (the first group's learning rate) per epoch.
    """

    name: str
    groups: Sequence[ParamGroupSpec]
    lr_step_every: int | None = None
    lr_step_factor: float = 0.5


@dataclass
class StepOutput:
    """What a family returns for one (shard of a) mini-batch.

    Attributes
    ----------
    losses : dict of str to Tensor
        Per optimiser name, the scalar loss (mean over the batch rows) whose gradient that optimiser
        follows. Losses of different optimisers must depend on disjoint parameters.
    logs : dict of str to float
        Scalars averaged over the epoch (sample-weighted, over all processes) into ``history.csv``.
    """

    losses: dict[str, torch.Tensor]
    logs: dict[str, float] = field(default_factory=dict)


class TrainableModel(Protocol):
    def optimizer_specs(self) -> list[OptimizerSpec]:
        """The optimisers to build, in the order their steps are taken."""

    def projections(self) -> list[Callable[[], None]]:
        """In-place constraints (e.g. unit-norm decoder columns) applied after every set of steps."""

    def training_losses(self, batch: torch.Tensor, *, reduce: Reduce | None = None) -> StepOutput:
        """Losses and logs of one batch; ``reduce`` sums a tensor over processes (batch statistics)."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes for model-space rows ``x`` (amortised: encoder / posterior mean)."""

    def state_dict(self) -> dict:
        """All tensors training changes (``nn.Module.state_dict``)."""

    def load_state_dict(self, state_dict: dict):
        """Inverse of :meth:`state_dict` (``nn.Module.load_state_dict``, strict)."""
