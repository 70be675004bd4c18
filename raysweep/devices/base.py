"""The device contract: one object per device owns everything that differs between devices.

A `Device` is chosen once from `resources` (`device_for`) and answers, on the driver, what a trial
asks of Ray (the Tune trial's own resources, the Ray Train backend and scaling, how many trials fit
the cluster) and, on the worker, how the process is prepared (threads, PJRT environment, compile
cache), where tensors live, where lazy work is cut, and how many devices a trial counts for
core-hours. Nothing outside `raysweep.devices` asks which device a sweep uses.

Ray objects are built in methods that import Ray lazily, so the worker-side half (and the tests of
it) import no Ray.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch

if TYPE_CHECKING:
    from raysweep.config import ResourcesSpec


@dataclass(frozen=True)
class Placement:
    """Where one copy of the training loop runs, and how it moves data and cuts lazy work.

    rank/world are the Ray Train worker's; data_rank/data_world say which share of every global
    batch this process reads (the XLA process index on a TPU slice, not the Ray rank).
    """

    device: torch.device
    rank: int = 0
    world: int = 1
    data_rank: int = 0
    data_world: int = 1
    devices_in_group: int = 1  # accelerator devices (or CPU workers) the trial holds, for core-hours
    lazy: bool = False  # XLA: no .item() inside the step; check the loss at log points only
    ddp: bool = False  # wrap the model in DistributedDataParallel (eager devices with world > 1)
    sync: Callable[[], None] = field(default=lambda: None)  # cut the lazy graph once per step
    put: Callable[[torch.Tensor], torch.Tensor] | None = None  # host batch -> device (sharded on XLA SPMD)
    compile_seconds: Callable[[], float] = field(default=lambda: 0.0)  # graph compilation so far

    def to_device(self, t: torch.Tensor) -> torch.Tensor:
        return self.put(t) if self.put is not None else t.to(self.device)


class Device(ABC):
    """One kind of device. Subclasses are registered in `raysweep.devices.DEVICES` by `name`."""

    name: ClassVar[str]
    lazy: ClassVar[bool] = False

    def __init__(self, resources: ResourcesSpec) -> None:
        self.resources = resources

    # Driver side: what a trial asks of Ray --------------------------------------------------------
    def workers(self) -> int:
        """Ray Train workers per trial; 0 = Ray Train local mode (the loop runs in the Tune trial)."""
        return self.resources.workers()

    def per_worker_resources(self) -> dict[str, float]:
        return {"CPU": float(self.resources.cpus_per_worker)}

    def trial_resources(self) -> dict[str, float]:
        """What the Tune trial itself holds: the whole loop in local mode, a token with a worker group."""
        if self.workers() == 0:
            return self.per_worker_resources()
        # The trial only drives the Train run (whose controller asks for 0 CPUs); the workers hold the
        # CPUs. Ray refuses an all-zero request, and 0.01 CPU would leave 2 CPUs short of 2 workers, so
        # the driver reserves memory instead: real, and never the binding constraint.
        return {"CPU": 0, "memory": 256 * 2**20}

    def trial_demand(self) -> dict[str, float]:
        """Everything one running trial holds, summed over its workers (for `concurrency`)."""
        n = max(1, self.workers())
        demand: dict[str, float] = {}
        for k, v in self.per_worker_resources().items():
            demand[k] = demand.get(k, 0.0) + v * n
        return demand

    def concurrency(self, cluster: dict[str, float]) -> tuple[int, str | None]:
        """How many trials fit the cluster at once (capped by resources.concurrent_trials), and a
        one-line note when fewer fit than were asked for. Raises SpecError when not even one fits:
        a worker group that cannot be placed fails after a minute and would count as a failed trial."""
        from raysweep.core.errors import SpecError

        fits = self.resources.concurrent_trials
        for kind, need in self.trial_demand().items():
            if need <= 0:
                continue
            have = float(cluster.get(kind, 0.0))
            if have < need:
                raise SpecError(f"expected a trial to fit the cluster's {have:g} {kind}, got {need:g} {kind} "
                                f"per trial", key=_RESOURCE_KEYS.get(kind, "resources"))
            fits = min(fits, int(have // need))
        return self._note(fits, "the cluster")

    def _note(self, fits: int, what: str) -> tuple[int, str | None]:
        asked = self.resources.concurrent_trials
        fits = max(1, min(asked, fits))
        note = None
        if fits < asked:
            note = (f"raysweep: {what} fits {fits} of the {asked} concurrent trials asked for "
                    f"(resources.concurrent_trials); running {fits} at a time")
        return fits, note

    @abstractmethod
    def trainer(self, train_fn: Callable[[dict[str, Any]], None], *, config: dict[str, Any],
                run_config: Any) -> Any:
        """The Ray Train trainer of one trial (imports Ray)."""

    def worker_env(self) -> dict[str, str]:
        """Environment for the worker processes, set before anything imports the device's runtime."""
        return {}

    # Worker side: the process and the loop ---------------------------------------------------------
    def setup_process(self, *, compile_cache: str | None = None) -> None:
        """Prepare this process once (threads, runtime environment, compile cache); idempotent."""

    @abstractmethod
    def placement(self, *, rank: int, world: int) -> Placement:
        """Where this worker's copy of the loop runs."""

    def describe_process(self) -> dict[str, Any]:
        """What the device runtime says of this process (written to the trial's host records)."""
        return {}


_RESOURCE_KEYS = {"CPU": "resources.cpus_per_worker", "GPU": "resources.gpus_per_worker", "TPU": "resources.tpu"}
