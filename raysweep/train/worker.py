"""The Ray Train entry of a trial: place the loop on its device, wire reports and checkpoints to Ray.

Runs on every worker of a trial's worker group, or inside the Tune trial process itself when the
trial uses Ray Train's local mode (`workers_per_trial: 0`). In local mode Ray wants `ray.tune`'s
report and checkpoint API; in a worker group, `ray.train`'s (forwarded to Tune by
`TuneReportCallback`). This module hides the difference from the loop.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from raysweep.records import M, TrialStatus
from raysweep.train.loop import Placement, run_training
from raysweep.trial import TrialConfig

STATE_FILE = "state.pt"
DIGEST_FILE = "params.rank{rank}.sha256"  # in a worker group's final checkpoint, one per rank


def param_digest(state_dict: dict[str, Any]) -> str:
    """SHA-256 over a model's tensors (names, dtypes, shapes and bytes, in name order): equal for
    bit-identical replicas."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().to("cpu").contiguous().reshape(-1)
        h.update(f"{name}:{t.dtype}:{tuple(state_dict[name].shape)};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def train_loop_per_worker(config: dict[str, Any]) -> None:
    import ray.train
    import ray.tune
    from ray.tune.trainable.trainable_fn_utils import _in_tune_session

    cfg = TrialConfig.from_dict(config["trial"])
    local = _in_tune_session()  # True only in Ray Train local mode, where the loop runs in the trial
    api = ray.tune if local else ray.train
    if local:
        rank, world = 0, 1
    else:
        ctx = ray.train.get_context()
        rank, world = ctx.get_world_rank(), ctx.get_world_size()
    place = placement(cfg, rank=rank, world=world)

    resume = None
    ckpt = api.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            resume = torch.load(Path(d) / STATE_FILE, map_location="cpu", weights_only=False)

    def report(metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
        # In a worker group, each rank leaves a digest of its parameters in the final checkpoint
        # (Ray merges the ranks' files into one folder): the record that DDP kept the replicas equal.
        final = state is not None and world > 1 and metrics.get(M.STATUS) == TrialStatus.OK.value
        if state is None or (rank != 0 and not final):
            api.report(metrics)
            return
        with tempfile.TemporaryDirectory(prefix="raysweep-ckpt-") as d:
            if rank == 0:
                torch.save(state, Path(d) / STATE_FILE)
            if final:
                (Path(d) / DIGEST_FILE.format(rank=rank)).write_text(param_digest(state["model"]) + "\n")
            api.report(metrics, checkpoint=api.Checkpoint.from_directory(d))

    run_training(cfg, report, place, resume)


def placement(cfg: TrialConfig, *, rank: int, world: int) -> Placement:
    res = cfg.spec.resources
    if res.device == "cpu":
        torch.set_num_threads(res.cpus_per_worker)
        return Placement(torch.device("cpu"), rank=rank, world=world, devices_in_group=max(1, world))
    if res.device == "cuda":
        import ray.train.torch

        return Placement(ray.train.torch.get_device(), rank=rank, world=world,
                         devices_in_group=max(1, world) * res.gpus_per_worker)
    # xla: PJRT picks TPU where there is one; without, run on the host CPU.
    os.environ.setdefault("PJRT_DEVICE", "TPU" if os.path.exists("/dev/accel0") or os.environ.get("TPU_NAME") else "CPU")
    import torch_xla
    import torch_xla.runtime as xr

    cache = os.environ.get("RAYSWEEP_XLA_CACHE", os.path.join(tempfile.gettempdir(), "raysweep-xla-cache"))
    try:
        xr.initialize_cache(cache, readonly=False)
    except RuntimeError:
        pass  # already initialised in this process (local mode runs many trials in one process)
    return Placement(torch_xla.device(), rank=rank, world=world,
                     devices_in_group=max(1, world) * xr.addressable_runtime_device_count(),
                     sync=torch_xla.sync, lazy=True)
