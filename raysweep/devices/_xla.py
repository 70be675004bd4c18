"""`xla`: PyTorch/XLA on PJRT, a TPU slice per trial where there is one, the host CPU where not.

On a TPU slice a trial is one Ray Train worker per host (Ray reserves the whole slice through
`ScalingConfig(use_tpu=True, topology=..., accelerator_type=...)`), every host runs the same SPMD
program over one global device mesh, and each host feeds its own share of every global batch,
keyed by the XLA process index (Ray's ranks are sorted by pod name, not TPU worker id).

Compile once per shape: the step's graph must not depend on the learning rate, the budget or the
step. torch_xla uploads Python scalars (the LR the schedule sets each step) as device data, except
the "special" scalars 0 and 1, which it bakes into the graph as constants; `XLA_NO_SPECIAL_SCALARS`
turns that exception off, so an LR that happens to be 1.0 or 0.0 compiles nothing new. Trials that
share a process (reused Tune actors in local mode) reuse the in-memory compiled graphs; trials in
other processes read the persistent compilation cache under the sweep's results folder, which a
cluster keeps on shared storage. (PJRT's CPU client cannot deserialise executables, so on CPU only
the in-process reuse helps; on TPU both do.)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from raysweep.devices.base import Device, Placement

if TYPE_CHECKING:
    from raysweep.config import TpuSpec

DATA_AXIS = "data"


def data_share(process_index: int, process_count: int) -> tuple[int, int]:
    """(data_rank, data_world): the share of every global batch an XLA SPMD process reads. On a
    multi-host slice each host reads its own share, keyed by its XLA process index (PJRT numbers a
    slice's hosts by their TPU worker id); a single host reads the whole batch."""
    return (process_index, process_count) if process_count > 1 else (0, 1)


def _has_local_tpu() -> bool:
    return os.path.exists("/dev/accel0") or os.path.exists("/dev/vfio/0")


class XlaDevice(Device):
    name = "xla"
    lazy = True

    @property
    def tpu(self) -> TpuSpec | None:
        return self.resources.tpu

    # Driver side ----------------------------------------------------------------------------------
    def per_worker_resources(self) -> dict[str, float]:
        out = {"CPU": float(self.resources.cpus_per_worker)}
        if self.tpu is not None:
            out["TPU"] = float(self.tpu.chips_per_host())  # libtpu holds every chip of its host
        return out

    def worker_env(self) -> dict[str, str]:
        # PJRT_DEVICE is not here: a host may name its own (a CPU test host that fakes a TPU one), so
        # the backend and setup_process only fill it in where it is missing.
        return {"XLA_NO_SPECIAL_SCALARS": "1"}

    def concurrency(self, cluster: dict[str, float]) -> tuple[int, str | None]:
        if self.tpu is None:
            return super().concurrency(cluster)
        from raysweep.core.errors import SpecError

        # Ray puts `TPU-<pod type>-head: 1` on host 0 of every slice: one per slice of that shape.
        head = f"TPU-{self.tpu.pod_type()}-head"
        slices = int(cluster.get(head, 0))
        if slices < 1:
            raise SpecError(f"expected a cluster with a {self.tpu.pod_type()} slice ({self.tpu.accelerator_type} "
                            f"{self.tpu.topology}), got none (no {head!r} resource)", key="resources.tpu")
        fits, _ = super().concurrency(cluster)  # the hosts' CPUs must fit too
        return self._note(min(fits, slices), f"the cluster's {slices} {self.tpu.pod_type()} slice(s)")

    def trainer(self, train_fn: Callable[[dict[str, Any]], None], *, config: dict[str, Any],
                run_config: Any) -> Any:
        from ray.train.v2.api.config import ScalingConfig
        from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

        from raysweep.devices.xla_backend import XlaConfig

        local = self.workers() == 0
        tpu = self.tpu
        scaling = ScalingConfig(
            num_workers=self.workers(),
            use_tpu=tpu is not None,
            topology=tpu.topology if tpu is not None else None,
            accelerator_type=tpu.accelerator_type if tpu is not None else None,
            resources_per_worker=None if local else self.per_worker_resources(),
        )
        return DataParallelTrainer(train_fn, train_loop_config=config, scaling_config=scaling,
                                   backend_config=XlaConfig(env=self.worker_env(), use_tpu=tpu is not None),
                                   run_config=run_config)

    # Worker side ----------------------------------------------------------------------------------
    def setup_process(self, *, compile_cache: str | None = None) -> None:
        for k, v in self.worker_env().items():
            os.environ.setdefault(k, v)
        # PJRT picks the TPU where this host has one; without, the host CPU.
        os.environ.setdefault("PJRT_DEVICE", "TPU" if self.tpu is not None or _has_local_tpu() else "CPU")
        import torch_xla
        import torch_xla.runtime as xr

        # Once per process: a reused trial actor keeps the cache (and its compiled graphs) it has.
        if compile_cache and not torch_xla._XLAC._xla_computation_cache_is_initialized():
            os.makedirs(compile_cache, exist_ok=True)
            xr.initialize_cache(compile_cache, readonly=False)
        if self.spmd() and not xr.is_spmd():
            xr.use_spmd()  # before any tensor exists on the device

    def spmd(self) -> bool:
        """SPMD over a global mesh on a TPU slice, and wherever one process sees several devices."""
        if self.tpu is not None:
            return True
        return int(os.environ.get("CPU_NUM_DEVICES", "1") or 1) > 1 and os.environ.get("PJRT_DEVICE") == "CPU"

    def describe_process(self) -> dict[str, Any]:
        import torch_xla.runtime as xr

        return {"pjrt_device": xr.device_type(), "xla_process_index": xr.process_index(),
                "xla_process_count": xr.process_count(), "xla_global_devices": xr.global_runtime_device_count(),
                "xla_local_devices": xr.addressable_runtime_device_count(), "spmd": xr.is_spmd(),
                "env": {k: os.environ[k] for k in sorted(os.environ) if k.startswith(("TPU_", "PJRT_", "XLA_"))}}

    def placement(self, *, rank: int, world: int) -> Placement:
        import numpy as np
        import torch_xla
        import torch_xla.core.xla_model as xm
        import torch_xla.debug.metrics as met
        import torch_xla.runtime as xr

        device = torch_xla.device()

        def compile_seconds() -> float:
            data = met.metric_data("CompileTime")
            return float(data[1]) / 1e9 if data else 0.0

        if not xr.is_spmd():
            # One XLA device per process; a worker group of several processes would be unsynchronised
            # replicas, so each reads the whole batch (config validation allows this only on a TPU).
            return Placement(device, rank=rank, world=world, devices_in_group=max(1, world), lazy=True,
                             sync=torch_xla.sync, compile_seconds=compile_seconds)
        import torch_xla.distributed.spmd as xs

        n = xr.global_runtime_device_count()
        mesh = xs.Mesh(np.arange(n), (n,), (DATA_AXIS,))
        processes = xr.process_count()
        multi_host = processes > 1

        def put(t: torch.Tensor) -> torch.Tensor:
            spec = xs.ShardingSpec(mesh, (DATA_AXIS,) + (None,) * (t.ndim - 1), minibatch=multi_host)
            out: torch.Tensor = xm.send_cpu_data_to_device([t], device, spec)[0]  # type: ignore[index]
            return out

        data_rank, data_world = data_share(xr.process_index(), processes)
        return Placement(device, rank=rank, world=world, data_rank=data_rank, data_world=data_world,
                         devices_in_group=n, lazy=True, sync=torch_xla.sync, put=put,
                         compile_seconds=compile_seconds)
