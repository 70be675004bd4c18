"""The Tune function trainable: one trial drives one Ray Train V2 `TorchTrainer` run.

Ray 2.60 cannot take a `TorchTrainer` as a Tune trainable (Train V2); the supported pattern is a
function that builds the trainer and calls `fit()`, with `TuneReportCallback` forwarding rank 0's
reports. The Train run is named after the Tune trial, under one storage path, so a retried trial
resumes from its own latest checkpoint.
"""

from __future__ import annotations

import logging
from typing import Any

import ray.train
import ray.tune
from ray.train.torch import TorchConfig, TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from raysweep.config import SweepSpec, spec_from_dict
from raysweep.train.worker import train_loop_per_worker
from raysweep.trial import TrialConfig


def trial_config(spec: SweepSpec, config: dict[str, Any]) -> TrialConfig:
    return TrialConfig(spec=spec, model=config["model"], epochs=float(config["epochs"]), lr=float(config["lr"]),
                       reason=config.get("reason", ""))


def run_trial(config: dict[str, Any], *, spec_dict: dict[str, Any], storage_path: str) -> None:
    # Ray Train and Tune log every local-mode start and every checkpoint at INFO: on a sweep of many
    # short trials that buries the one line per trial the driver prints.
    for name in ("ray.train", "ray.tune"):
        logging.getLogger(name).setLevel(logging.WARNING)
    spec = spec_from_dict(spec_dict, file="<sweep spec>")
    cfg = trial_config(spec, config)
    res = spec.resources
    trial_id = ray.tune.get_context().get_trial_id()
    local = res.workers_per_trial == 0
    per_worker: dict[str, float] = {"CPU": res.cpus_per_worker}
    if res.gpus_per_worker:
        per_worker["GPU"] = res.gpus_per_worker
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"trial": cfg.to_dict()},
        torch_config=TorchConfig(backend="nccl" if res.device == "cuda" else "gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=res.workers_per_trial,
            use_gpu=res.device == "cuda",
            resources_per_worker=None if local else per_worker,
        ),
        run_config=ray.train.RunConfig(
            name=f"train-{trial_id}",
            storage_path=storage_path,
            callbacks=[] if local else [TuneReportCallback()],  # type: ignore[list-item]
            failure_config=ray.train.FailureConfig(max_failures=res.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
        ),
    )
    trainer.fit()


def trial_resources(spec: SweepSpec) -> dict[str, float]:
    """What the Tune trial itself holds: the whole loop in local mode, nothing when workers do the work."""
    res = spec.resources
    if res.workers_per_trial == 0:
        out: dict[str, float] = {"CPU": res.cpus_per_worker}
        if res.gpus_per_worker:
            out["GPU"] = res.gpus_per_worker
        return out
    # The trial only drives the Train run (whose controller asks for 0 CPUs); the workers hold the
    # CPUs. Ray refuses an all-zero request, and 0.01 CPU would leave 2 CPUs short of 2 workers, so
    # the driver reserves memory instead: real, and never the binding constraint.
    return {"CPU": 0, "memory": 256 * 2**20}
