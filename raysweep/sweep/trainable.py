"""The Tune function trainable: one trial drives one Ray Train V2 run on its device.

Ray 2.60 cannot take a Train trainer as a Tune trainable (Train V2); the supported pattern is a
function that builds the trainer and calls `fit()`, with `TuneReportCallback` forwarding rank 0's
reports. The device object builds the trainer (TorchTrainer for cpu/cuda, raysweep's torch_xla
backend for xla). The Train run is named after the trial's durable key, under one storage path, so
a re-run of the same trial (a Tune retry, or a resumed sweep after the driver died) resumes from its
own latest checkpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ray.train.v2.api.config import CheckpointConfig, FailureConfig, RunConfig
from ray.tune.integration.ray_train import TuneReportCallback

from raysweep.config import SweepSpec, spec_from_dict
from raysweep.config.trial import TrialConfig
from raysweep.devices import device_for
from raysweep.finetune.units import finetune_loop_per_worker
from raysweep.train.worker import train_loop_per_worker


def trial_config(spec: SweepSpec, config: dict[str, Any], units: Mapping[str, Any] | None = None) -> TrialConfig:
    """A Tune trial's config as a `TrialConfig`; in a fine-tuning sweep (`units`: unit name -> its
    plain data) the searcher's "model" is a unit, whose data the trial carries."""
    return TrialConfig(spec=spec, model=config["model"], epochs=float(config["epochs"]), lr=float(config["lr"]),
                       reason=config.get("reason", ""), study=str(config.get("study", "")),
                       attempt=int(config.get("attempt", 0)),
                       finetune=units[config["model"]] if units else None)


def run_trial(config: dict[str, Any], *, spec_dict: dict[str, Any], storage_path: str,
              compile_cache: str | None = None, units: Mapping[str, Any] | None = None) -> None:
    # Ray Train and Tune log every local-mode start and every checkpoint at INFO: on a sweep of many
    # short trials that buries the one line per trial the driver prints.
    for name in ("ray.train", "ray.tune"):
        logging.getLogger(name).setLevel(logging.WARNING)
    spec = spec_from_dict(spec_dict, file="<sweep spec>")
    cfg = trial_config(spec, config, units)
    device = device_for(spec.resources)
    local = device.workers() == 0
    run_config = RunConfig(
        name=cfg.train_run_name(),
        **tune_storage(storage_path),  # type: ignore[arg-type]
        callbacks=[] if local else [TuneReportCallback()],  # type: ignore[list-item]
        failure_config=FailureConfig(max_failures=spec.resources.max_failures),
        checkpoint_config=CheckpointConfig(num_to_keep=2),  # the previous one if the last is torn
        worker_runtime_env={"env_vars": device.worker_env()} if device.worker_env() else None,
    )
    loop = train_loop_per_worker if cfg.finetune is None else finetune_loop_per_worker
    trainer = device.trainer(loop,
                             config={"trial": cfg.to_dict(), "compile_cache": compile_cache,
                                     "hosts_dir": f"{storage_path.rstrip('/')}/{cfg.train_run_name()}/hosts"},
                             run_config=run_config)
    trainer.fit()


def tune_storage(location: str) -> dict[str, Any]:
    """Tune's storage_path, and for an s3:// or gs:// URL the pyarrow filesystem over raysweep's own
    store clients (`raysweep.data.store`: endpoint and credentials from the environment)."""
    from raysweep.data.store import arrow_filesystem, is_remote

    if not is_remote(location):
        return {"storage_path": location}
    fs, path = arrow_filesystem(location)
    return {"storage_path": path, "storage_filesystem": fs}


def trial_resources(spec: SweepSpec) -> dict[str, float]:
    """What the Tune trial itself holds (the device decides)."""
    return device_for(spec.resources).trial_resources()
