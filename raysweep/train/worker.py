"""The Ray Train entry of a trial: prepare the process for its device, wire reports and checkpoints to Ray.

Runs on every worker of a trial's worker group, or inside the Tune trial process itself when the
trial uses Ray Train's local mode (`workers_per_trial: 0`). In local mode Ray wants `ray.tune`'s
report and checkpoint API; in a worker group, `ray.train`'s (forwarded to Tune by
`TuneReportCallback`). This module hides the difference from the loop; the device object
(`raysweep.devices`) hides the device.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from raysweep.devices import device_for
from raysweep.train.loop import run_training
from raysweep.trial import TrialConfig

STATE_FILE = "state.pt"


def train_loop_per_worker(config: dict[str, Any]) -> None:
    import ray.train
    import ray.tune
    from ray.tune.trainable.trainable_fn_utils import _in_tune_session

    cfg = TrialConfig.from_dict(config["trial"])
    device = device_for(cfg.spec.resources)
    device.setup_process(compile_cache=config.get("compile_cache"))
    local = _in_tune_session()  # True only in Ray Train local mode, where the loop runs in the trial
    api = ray.tune if local else ray.train
    if local:
        rank, world = 0, 1
    else:
        ctx = ray.train.get_context()
        rank, world = ctx.get_world_rank(), ctx.get_world_size()
    place = device.placement(rank=rank, world=world)

    resume = None
    ckpt = api.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            resume = torch.load(Path(d) / STATE_FILE, map_location="cpu", weights_only=False)

    def report(metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
        if state is None or rank != 0:
            api.report(metrics)
            return
        with tempfile.TemporaryDirectory(prefix="raysweep-ckpt-") as d:
            torch.save(state, Path(d) / STATE_FILE)
            api.report(metrics, checkpoint=api.Checkpoint.from_directory(d))

    run_training(cfg, report, place, resume)
