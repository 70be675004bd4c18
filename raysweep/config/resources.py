"""Where a trial runs: the device, Ray Train's worker group and, on a TPU, the pod slice it reserves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from raysweep.config import tpu
from raysweep.config._checks import _positive
from raysweep.core.errors import SpecError

Device = Literal["cpu", "xla", "cuda"]


@dataclass(frozen=True)
class TpuSpec:
    """One TPU pod slice per trial, named as Ray Train's ScalingConfig names it; Ray reserves the
    whole slice and runs one worker per host (rules in raysweep/tpu.py, pinned against Ray's)."""

    accelerator_type: str  # Ray's form: TPU-V4, TPU-V5P, TPU-V5LITEPOD, TPU-V6E, ... (ray.util.accelerators)
    topology: str  # chips along each axis, e.g. 2x2x2 (8 chips: a v4-16 of 2 hosts)

    def validate(self) -> None:
        try:
            tpu.version(self.accelerator_type)
        except ValueError as err:
            raise SpecError(str(err), key="accelerator_type") from None
        try:
            tpu.check(self.accelerator_type, self.topology)
        except ValueError as err:
            raise SpecError(str(err), key="topology") from None

    def chips(self) -> int:
        return tpu.chips(self.topology)

    def chips_per_host(self) -> int:
        return tpu.chips_per_host(self.accelerator_type, self.topology)

    def hosts(self) -> int:
        """Ray Train workers per trial: one per TPU VM of the slice."""
        return tpu.hosts(self.accelerator_type, self.topology)

    def pod_type(self) -> str:
        """`v4-16`: what Ray's `ray.io/tpu-pod-type` label and `TPU-<pod type>-head` resource say."""
        return tpu.pod_type(self.accelerator_type, self.topology)


@dataclass(frozen=True)
class ResourcesSpec:
    device: Device = "cpu"  # cpu (gloo), xla (PJRT: CPU or TPU), cuda (nccl)
    # 0 = Ray Train local mode: the loop runs inside the Tune trial, no worker group (about 25 s
    # cheaper per trial on a small CPU machine); >= 1 = a Ray Train worker group of that size.
    workers_per_trial: int = 0
    cpus_per_worker: int = 1
    gpus_per_worker: int = 0
    concurrent_trials: int = 2  # trials running side by side
    max_failures: int = 0  # Ray Train restarts of a worker group from its latest checkpoint
    tpu: TpuSpec | None = None  # a TPU pod slice per trial (device xla); None: no TPU

    def validate(self) -> None:
        if self.workers_per_trial < 0:
            raise SpecError(f"expected an integer >= 0, got {self.workers_per_trial!r}", key="workers_per_trial")
        _positive(self.cpus_per_worker, "cpus_per_worker")
        if self.gpus_per_worker < 0:
            raise SpecError(f"expected an integer >= 0, got {self.gpus_per_worker!r}", key="gpus_per_worker")
        _positive(self.concurrent_trials, "concurrent_trials")
        if self.max_failures < 0:
            raise SpecError(f"expected an integer >= 0, got {self.max_failures!r}", key="max_failures")
        if self.tpu is not None:
            self._validate_tpu(self.tpu)
        elif self.device == "xla" and self.workers_per_trial > 1:
            # multi-host XLA (one worker per TPU host, SPMD over a global mesh) is not built yet: the
            # workers would train unsynchronised replicas
            raise SpecError(f"expected at most 1 worker with device xla, got {self.workers_per_trial}",
                            key="workers_per_trial")
        if self.device == "cuda" and self.gpus_per_worker == 0:
            raise SpecError("expected gpus_per_worker >= 1 with device cuda, got 0", key="gpus_per_worker")

    def _validate_tpu(self, tpu: TpuSpec) -> None:
        # Ray Train's ScalingConfig rules for use_tpu (ray/train/v2/api/config.py), checked here so
        # that a bad slice is a one-line error instead of a ValueError inside every trial.
        if self.device != "xla":
            raise SpecError(f"expected device xla with a TPU slice (resources.tpu), got {self.device!r}",
                            key="device")
        if self.gpus_per_worker:
            raise SpecError(f"expected no GPUs with a TPU slice, got {self.gpus_per_worker}", key="gpus_per_worker")
        hosts = tpu.hosts()
        if self.workers_per_trial and self.workers_per_trial % hosts:
            raise SpecError(f"expected 0 (one worker per host) or a multiple of the {hosts} hosts of a "
                            f"{tpu.pod_type()} slice, got {self.workers_per_trial}", key="workers_per_trial")

    def workers(self) -> int:
        """Ray Train workers per trial; 0 is local mode, except on a TPU slice (one per host)."""
        if self.tpu is not None:
            return self.workers_per_trial or self.tpu.hosts()
        return self.workers_per_trial
