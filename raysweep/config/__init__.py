"""The configuration: one search-space YAML file -> one frozen, validated `SweepSpec`.

Plain data. Every default lives in these dataclasses, one line each with the reason. Unknown keys,
wrong types and impossible values raise `SpecError` naming the file, the dotted key, what was
expected and what was given; `--set a.b=value` overrides are checked exactly like the file.

May import: `raysweep.core` only (no models, data, torch, Ray, MLflow or Optuna). Checks that
need a built model or the data are `raysweep.cli.preflight`'s.

Modules: `sections` (LR grid, data, optimiser, search, checkpoints, training step, tracking), `resources` (device,
workers, TPU slice), `ladder`, `spec` (`SweepSpec`), `load` (YAML and overrides), `tpu` (slice
arithmetic, Ray's rules), `trial` (one trial's config as it crosses processes).

A search space may also carry a `finetune:` section (the later stage, `raysweep finetune`): the
sweep leaves it out (`load.LATER_STAGES`) and `raysweep.finetune.spec` builds it with this package's
builder into a frozen `FinetuneSpec`; every one of its keys is documented there, with its default
(`pretrained`, `select`, `data`, `epochs`, `lr`, `searcher`, `seeds`, `batch_size`, `head`,
`repeated_augmentation`, `augment`, `baseline`, `experiment`).
"""

from raysweep.config import tpu
from raysweep.config._build import build
from raysweep.config._checks import MAX_EPOCHS, MAX_IMAGE_SIZE, MAX_LR_POINTS, MAX_NAME_LEN, SEED_RANGE
from raysweep.config._checks import _non_empty as non_empty
from raysweep.config._checks import _positive as positive
from raysweep.config._checks import _show as show
from raysweep.config.ladder import LadderSpec, TimmRungSpec
from raysweep.config.load import (
    LATER_STAGES,
    apply_overrides,
    later_stage,
    load_spec,
    read_space,
    spec_from_dict,
)
from raysweep.config.resources import Device, ResourcesSpec, TpuSpec
from raysweep.config.sections import (
    MAX_ADAMW_LR,
    PRIOR_SEARCHERS,
    CheckpointSpec,
    DataAssumption,
    DatasetName,
    DataSpec,
    EarlyStopSpec,
    LrSpec,
    OptimSpec,
    SchedulerSpec,
    SearcherName,
    SearchSpec,
    TrackingSpec,
    TrainSpec,
)
from raysweep.config.spec import SweepSpec
from raysweep.config.trial import TrialConfig

__all__ = [
    "LATER_STAGES",
    "MAX_ADAMW_LR",
    "MAX_EPOCHS",
    "MAX_IMAGE_SIZE",
    "MAX_LR_POINTS",
    "MAX_NAME_LEN",
    "PRIOR_SEARCHERS",
    "SEED_RANGE",
    "CheckpointSpec",
    "DataAssumption",
    "DataSpec",
    "DatasetName",
    "Device",
    "EarlyStopSpec",
    "LadderSpec",
    "LrSpec",
    "OptimSpec",
    "ResourcesSpec",
    "SchedulerSpec",
    "SearchSpec",
    "SearcherName",
    "SweepSpec",
    "TimmRungSpec",
    "TpuSpec",
    "TrackingSpec",
    "TrainSpec",
    "TrialConfig",
    "apply_overrides",
    "build",
    "later_stage",
    "load_spec",
    "non_empty",
    "positive",
    "read_space",
    "show",
    "spec_from_dict",
    "tpu",
]
