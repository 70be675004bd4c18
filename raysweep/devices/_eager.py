"""Eager PyTorch devices: `cpu` (gloo between workers) and `cuda` (nccl), both through Ray's TorchTrainer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from raysweep.devices.base import Device, Placement


class CpuDevice(Device):
    name = "cpu"
    _backend = "gloo"

    def trainer(self, train_fn: Callable[[dict[str, Any]], None], *, config: dict[str, Any],
                run_config: Any) -> Any:
        from ray.train.torch import TorchConfig, TorchTrainer
        from ray.train.v2.api.config import ScalingConfig

        local = self.workers() == 0
        return TorchTrainer(
            train_fn,
            train_loop_config=config,
            torch_config=TorchConfig(backend=self._backend),
            scaling_config=ScalingConfig(
                num_workers=self.workers(),
                use_gpu=self.name == "cuda",
                resources_per_worker=None if local else self.per_worker_resources(),
            ),
            run_config=run_config,
        )

    def setup_process(self, *, compile_cache: str | None = None) -> None:
        # One trial per worker slot: more intra-op threads than CPUs held only fight the other trials.
        torch.set_num_threads(self.resources.cpus_per_worker)

    def placement(self, *, rank: int, world: int) -> Placement:
        return Placement(torch.device("cpu"), rank=rank, world=world, data_rank=rank, data_world=world,
                         devices_in_group=max(1, world), ddp=world > 1)


class CudaDevice(CpuDevice):
    name = "cuda"
    _backend = "nccl"

    def per_worker_resources(self) -> dict[str, float]:
        return {**super().per_worker_resources(), "GPU": float(self.resources.gpus_per_worker)}

    def placement(self, *, rank: int, world: int) -> Placement:
        if world > 1:
            import ray.train.torch

            device = ray.train.torch.get_device()
        else:
            device = torch.device("cuda", 0)
        return Placement(device, rank=rank, world=world, data_rank=rank, data_world=world,
                         devices_in_group=max(1, world) * self.resources.gpus_per_worker, ddp=world > 1,
                         sync=torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None))
