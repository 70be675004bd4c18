"""`SweepSpec`: one search-space file as a frozen, validated object.

Validation here needs nothing but the file: the checks that need a built model or the data
(a ladder's rungs exist and build, the dataset reads) are `raysweep.cli.preflight`'s, which runs
once before anything launches, so a trial process rebuilding its spec from a dict builds no model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from raysweep.config._checks import MAX_EPOCHS, _check_name, _non_empty, _positive, _seed
from raysweep.config.ladder import LadderSpec
from raysweep.config.resources import ResourcesSpec
from raysweep.config.sections import (
    MAX_ADAMW_LR,
    CheckpointSpec,
    DataSpec,
    LrSpec,
    OptimSpec,
    SearchSpec,
    TrackingSpec,
    TrainSpec,
)
from raysweep.core.errors import SpecError


@dataclass(frozen=True)
class SweepSpec:
    name: str  # names the sweep: the MLflow parent run and the Ray Tune experiment folder
    ladder: LadderSpec
    epochs: tuple[float, ...]  # epoch budgets, ascending; 0.25 = a quarter pass over the training split
    lr: LrSpec = field(default_factory=LrSpec)
    data: DataSpec = field(default_factory=DataSpec)
    batch_size: int = 64  # global batch, split across the workers of a trial
    eval_batch_size: int = 500  # fixed so that XLA compiles one eval graph
    # 0: evaluate at every whole epoch inside the budget and at its end; N > 0: also at N evenly spaced
    # points of every budget (k/N of its steps), so a short budget is seen often enough for early
    # stopping and for the curves `raysweep table` exports (issue 16)
    eval_points: int = 0
    optim: OptimSpec = field(default_factory=OptimSpec)
    resources: ResourcesSpec = field(default_factory=ResourcesSpec)
    search: SearchSpec = field(default_factory=SearchSpec)
    tracking: TrackingSpec = field(default_factory=TrackingSpec)
    checkpoint: CheckpointSpec = field(default_factory=CheckpointSpec)
    train: TrainSpec = field(default_factory=TrainSpec)  # torch.compile, bf16 autocast
    seed: int = 0  # trial seed: init and data order
    description: str = ""

    def validate(self) -> None:
        _check_name(self.name, "name")
        _non_empty(self.epochs, "epochs")
        for i, e in enumerate(self.epochs):
            _positive(e, f"epochs[{i}]")
            if e > MAX_EPOCHS:
                raise SpecError(f"expected an epoch budget of at most {MAX_EPOCHS:g}, got {e:g}", key=f"epochs[{i}]")
        if list(self.epochs) != sorted(set(self.epochs)):
            raise SpecError(f"expected distinct epoch budgets in ascending order, got {list(self.epochs)}", key="epochs")
        _positive(self.batch_size, "batch_size")
        _positive(self.eval_batch_size, "eval_batch_size")
        if not isinstance(self.eval_points, int) or isinstance(self.eval_points, bool) or self.eval_points < 0:
            raise SpecError(f"expected a whole number >= 0 of evaluation points, got {self.eval_points!r}",
                            key="eval_points")
        scheduler = self.search.scheduler_spec()
        if scheduler is not None and self.eval_points < 1:
            raise SpecError("expected evaluation points with search.scheduler (its rungs are evaluation points; "
                            f"8 suits a 7-point LR grid), got eval_points {self.eval_points}", key="eval_points")
        if scheduler is not None and scheduler.grace_period > self.eval_points:
            raise SpecError(f"expected at most eval_points ({self.eval_points}) evaluation points, got "
                            f"{scheduler.grace_period}", key="search.scheduler.grace_period")
        if self.optim.name == "adamw" and self.lr.high > MAX_ADAMW_LR:
            raise SpecError(f"expected an LR grid for AdamW (around 1e-3, at most {MAX_ADAMW_LR}), got lr.high "
                            f"{self.lr.high:g}: set lr to e.g. {{base: 1.0e-3, low: 1.25e-4, high: 8.0e-3}}",
                            key="lr.high")
        workers = max(1, self.resources.workers_per_trial)
        if self.batch_size % workers:
            raise SpecError(
                f"expected a multiple of resources.workers_per_trial ({workers}), got {self.batch_size}",
                key="batch_size",
            )
        tpu = self.resources.tpu
        if tpu is not None and self.batch_size % tpu.chips():
            # SPMD shards the batch over every chip of the slice: an uneven share is padding or an error
            raise SpecError(f"expected a multiple of the {tpu.chips()} chips of a {tpu.pod_type()} slice, "
                            f"got {self.batch_size}", key="batch_size")
        _seed(self.seed, "seed")

    # Derived views -------------------------------------------------------------------------
    def lr_grid(self) -> tuple[float, ...]:
        return self.lr.grid()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
