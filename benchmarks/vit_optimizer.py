"""SGD (the NFNet recipe) against AdamW on the ViT demo's smallest rung, MNIST-5k, in-process (no Ray).

Each trial is one `run_training` call with a report function that drops everything; the table shows
the final validation accuracy and loss per optimiser, LR and epoch budget. The AdamW settings are the
ViT demo's (search_spaces/vit_demo.yaml); the SGD ones are what that file held before it moved to AdamW.

    PYTHONPATH=$PWD python benchmarks/vit_optimizer.py > benchmarks/vit_optimizer.txt
"""

from __future__ import annotations

import sys
import time

import torch

from raysweep.config import load_spec
from raysweep.config.trial import TrialConfig
from raysweep.train.loop import Placement, run_training

SPACE = "search_spaces/vit_demo.yaml"
SGD = ["optim={name: sgd, agc_clip: 0.01, weight_decay: 1.0e-5, warmup_fraction: 0.1, label_smoothing: 0.1}",
       "lr={base: 0.2, factor: 2, low: 0.05, high: 0.8}"]
RUNS = {"sgd": (SGD, (0.2, 0.4, 0.8)), "adamw": ([], (2e-3, 4e-3, 8e-3))}
BUDGETS = (2.0, 8.0)


def main() -> int:
    torch.set_num_threads(1)
    print(f"{'optim':<6} {'rung':<7} {'epochs':>6} {'lr':>7} {'val/acc':>8} {'val/loss':>9} {'wall s':>7}")
    for epochs in BUDGETS:
        for name, (overrides, lrs) in RUNS.items():
            spec = load_spec(SPACE, [*overrides, f"epochs=[{epochs}]"])
            rung = spec.ladder.rungs[0]
            for lr in lrs:
                t0 = time.perf_counter()
                out = run_training(TrialConfig(spec, rung, epochs, lr), lambda m, s: None,
                                   Placement(torch.device("cpu")))
                print(f"{name:<6} {rung:<7} {epochs:>6g} {lr:>7g} {out['val/acc']:>8.3f} {out['val/loss']:>9.3f} "
                      f"{time.perf_counter() - t0:>7.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
