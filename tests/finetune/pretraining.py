"""A pre-training experiment recorded as a sweep records one, without Ray: for tests of `raysweep finetune`.

`record_pretraining` writes the runs through raysweep's own tracker (params, metrics, status, the
kept checkpoint's tags) into a SQLite MLflow store, and real checkpoint files (a freshly built model
of each rung) under `<tmp>/train`; `write_space` writes a search space with a `finetune:` section
that reads them. Shared by tests/finetune, tests/faults and the bad-input corpus (tests/cli).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from raysweep.config import spec_from_dict
from raysweep.config.trial import TrialConfig
from raysweep.core.records import M
from raysweep.models import build_model, param_count
from raysweep.tracking import SweepTracker
from raysweep.train.kept import KeptCheckpoint, checkpoint_sha256
from raysweep.train.worker import save_state

ROOT = Path(__file__).resolve().parents[2]
DEMO = yaml.safe_load((ROOT / "search_spaces/demo.yaml").read_text())
SECTION = {"data": {"dataset": "digits"}, "epochs": 1, "lr": {"base": 0.1, "factor": 2, "low": 0.05, "high": 0.2},
           "seeds": 2}
# (model, epochs) -> loss at lr 0.2 (lr 0.1 is 0.05 worse). FLOPs are params x epochs x 1000.
# t0: 23.6k params, t1: 46.6k. Frontier: t0@0.5, t0@1, t1@1 (t1@0.5 costs about t0@1 but is worse).
LOSSES = {("nfnet_t0", 0.5): 2.0, ("nfnet_t0", 1.0): 1.8, ("nfnet_t1", 0.5): 1.85, ("nfnet_t1", 1.0): 1.5}
EXPERIMENT = "pre"  # the pre-training's MLflow experiment


def record_pretraining(tmp: Path, *, checkpoints: bool = True, ladder: str = "nfnet_cpu",
                       losses: dict[tuple[str, float], float] = LOSSES, shape: bool = True) -> str:
    """A pre-training sweep recorded as the tracker records one, in `<tmp>/mlflow.db` (its URI is
    returned); each (cell, LR in 0.1 and 0.2) one finished run. `checkpoints`: each run keeps a real
    checkpoint; `shape`: the runs record the data shape their model was built at (runs made before
    that was recorded do not)."""
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    raw = {**DEMO, "ladder": {"family": ladder, "rungs": sorted({m for m, _ in losses})},
           "tracking": {"experiment": EXPERIMENT}}
    spec = spec_from_dict(raw)
    tracker = SweepTracker(uri, EXPERIMENT, journal_dir=tmp / "journal")
    parent = tracker.start_sweep(spec, source="test", n_cells=len(losses), study="pre-study")
    for (model, epochs), loss in losses.items():
        n = param_count(ladder, model, num_classes=10, in_chans=1, image_size=32)
        for lr, extra in ((0.1, 0.05), (0.2, 0.0)):
            cfg = TrialConfig(spec=spec, model=model, epochs=epochs, lr=lr, reason="test", study="pre-study")
            run = tracker.start_trial(parent, cfg, trial_id=cfg.key.slug())
            built = {M.MODEL_NUM_CLASSES: 10, M.MODEL_IN_CHANS: 1, M.MODEL_IMAGE_SIZE: 32} if shape else {}
            tracker.log_result(run, {M.STEP: 10, M.VAL_LOSS: loss + extra, M.FLOPS: n * epochs * 1000.0,
                                     "model_params": n, "flops_per_example": 1.0, M.STATUS: "ok", **built})
            if checkpoints:
                folder = tmp / "train" / cfg.key.train_run_name() / "checkpoints" / "checkpoint_000000000010"
                folder.mkdir(parents=True)
                model_ = build_model(ladder, model, num_classes=10, in_chans=1, image_size=32)
                save_state({"model": model_.state_dict(), "step": 10}, folder)
                tracker.set_tags(run, KeptCheckpoint(str(folder), checkpoint_sha256(folder)).tags())
            tracker.end_trial(run, status="ok")
    tracker.end_sweep(parent, summary_rows=[], metrics={}, tags={})
    tracker.close(30.0)
    return uri


def space_dict(*, ladder: str = "nfnet_cpu", rungs: tuple[str, ...] = ("nfnet_t0", "nfnet_t1"),
               top: dict[str, Any] | None = None, **section: Any) -> dict[str, Any]:
    """The demo search space on `ladder`'s `rungs`, reading experiment "pre", with `top` merged in at
    the top level and `section` into the `finetune:` section."""
    return {**DEMO, "ladder": {"family": ladder, "rungs": list(rungs)}, "tracking": {"experiment": EXPERIMENT},
            **(top or {}), "finetune": {**SECTION, **section}}


def write_space(tmp: Path, *, name: str = "ft.yaml", ladder: str = "nfnet_cpu",
                rungs: tuple[str, ...] = ("nfnet_t0", "nfnet_t1"), top: dict[str, Any] | None = None,
                **section: Any) -> Path:
    """`space_dict(...)` written to `<tmp>/<name>`."""
    path = tmp / name
    path.write_text(yaml.safe_dump(space_dict(ladder=ladder, rungs=rungs, top=top, **section)))
    return path
