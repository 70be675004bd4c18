"""Model ladders for the sweep: registry, one factory, and measured size and cost.

May import: `raysweep.core`; torch and timm. Free of Ray, MLflow, Optuna and of the config (a
search space's ladder section is read by duck typing, `ladder_of`), so the models can be built,
counted and tested alone. `checks` holds the ladder checks the CLI's preflight runs.
"""

from raysweep.models.flops import flops_per_example, forward_flops_per_example
from raysweep.models.ladder import (
    LADDERS,
    ArchCfg,
    Ladder,
    LadderRef,
    Rung,
    VitCfg,
    build_model,
    classifier_param_names,
    count_params,
    is_gain_or_bias,
    ladder,
    ladder_of,
    no_weight_decay_names,
    param_count,
)
from raysweep.models.timm_rungs import TimmCfg

__all__ = [
    "LADDERS",
    "ArchCfg",
    "Ladder",
    "LadderRef",
    "Rung",
    "TimmCfg",
    "VitCfg",
    "build_model",
    "classifier_param_names",
    "count_params",
    "flops_per_example",
    "forward_flops_per_example",
    "is_gain_or_bias",
    "ladder",
    "ladder_of",
    "no_weight_decay_names",
    "param_count",
]
