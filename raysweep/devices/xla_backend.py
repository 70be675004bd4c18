"""raysweep's Ray Train backend for torch_xla (Ray's own `TorchXLAConfig` serves AWS Neuron only,
and `TorchTrainer(use_tpu=True)` picks a `torch_tpu` backend, not torch_xla).

`on_start` runs before the training function on every worker at once: it sets the PJRT
environment before anything on the worker imports torch_xla (once the runtime starts, it cannot
change), and records where each worker landed, so a trial's placement can be checked and shown.
torch_xla on a TPU slice needs no process group for SPMD: libtpu finds the other hosts of its slice
from the TPU metadata (or the TPU_* variables GKE injects).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.train.backend import Backend, BackendConfig

# The variables libtpu and torch_xla read to find a host's place in its slice.
TPU_ENV = ("TPU_NAME", "TPU_WORKER_ID", "TPU_WORKER_HOSTNAMES", "TPU_ACCELERATOR_TYPE", "TPU_TOPOLOGY",
           "TPU_SKIP_MDS_QUERY", "TPU_HOST_BOUNDS", "TPU_CHIPS_PER_HOST_BOUNDS")


@dataclass
class XlaConfig(BackendConfig):
    env: dict[str, str] = field(default_factory=dict)  # set on every worker before torch_xla loads
    use_tpu: bool = False

    @property
    def backend_cls(self) -> type[Backend]:
        return _XlaBackend

    def to_dict(self) -> dict[str, Any]:
        return {"env": dict(self.env), "use_tpu": self.use_tpu}


def _prepare_worker(env: dict[str, str]) -> dict[str, Any]:
    """On the worker: set the environment (torch_xla not imported yet) and say where we are."""
    assert "torch_xla" not in __import__("sys").modules or os.environ.get("PJRT_DEVICE"), \
        "torch_xla was imported on this worker before the XLA backend set its environment"
    for k, v in env.items():
        os.environ.setdefault(k, v)  # what the host itself sets wins (GKE's TPU_*, a test host's PJRT_DEVICE)
    return {"pid": os.getpid(), "node_id": ray.get_runtime_context().get_node_id(),
            "env": {k: os.environ[k] for k in ("PJRT_DEVICE", *TPU_ENV) if k in os.environ}}


class _XlaBackend(Backend):
    def on_start(self, worker_group: Any, backend_config: BackendConfig) -> None:
        assert isinstance(backend_config, XlaConfig)
        env = {**backend_config.env, "PJRT_DEVICE": "TPU" if backend_config.use_tpu else "CPU"}
        worker_group.execute(_prepare_worker, env)
