"""An ok trial's final checkpoint is recorded on its MLflow child run (folder and SHA-256), read back
by `read_trials`: how fine-tuning on another machine finds it from the experiment alone.

The Tune callback is driven the way Tune drives it (start, result, complete) against a real SQLite
MLflow store; the trial's checkpoint is written where its Train run keeps it.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from raysweep.config import spec_from_dict
from raysweep.core.records import M, TrialKey
from raysweep.results.mlflow_rows import read_trials
from raysweep.sweep.callbacks import MlflowTrialCallback
from raysweep.tracking import SweepTracker
from raysweep.train.kept import KeptCheckpoint, checkpoint_sha256, verify_checkpoint
from raysweep.train.worker import LOCAL_CHECKPOINTS, keep_copy, save_state

SPEC = {"name": "ktest", "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0"]}, "epochs": [0.5],
        "lr": {"base": 0.1, "factor": 2, "low": 0.1, "high": 0.2}, "data": {"dataset": "mnist5k"},
        "search": {"searcher": "grid"}, "tracking": {"experiment": "ktest"}}


def test_an_ok_trial_records_its_final_checkpoint_and_a_diverged_one_does_not(tmp_path: Path) -> None:
    import torch

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = spec_from_dict(SPEC)
    tracker = SweepTracker(uri, "ktest", journal_dir=tmp_path / "sweep")
    parent = tracker.start_sweep(spec, source="test", n_cells=1, study="kstudy")
    storage = tmp_path / "train"
    cb = MlflowTrialCallback(tracker, parent, spec, concurrent=1, train_storage=storage)
    for lr, status in ((0.1, "ok"), (0.2, "diverged")):
        trial = SimpleNamespace(trial_id=f"t{lr}", config={"model": "nfnet_t0", "epochs": 0.5, "lr": lr,
                                                           "study": "kstudy", "reason": "test"})
        cb.on_trial_start(0, [], trial)
        src = tmp_path / f"src{lr}"
        src.mkdir()
        save_state({"model": {"w": torch.ones(2) * lr}, "step": 9}, src)
        run_dir = storage / TrialKey("kstudy", "nfnet_t0", 0.5, lr).train_run_name()
        keep_copy(src, run_dir / LOCAL_CHECKPOINTS, step=9)
        cb.on_trial_result(0, [], trial, {M.STATUS: status, M.STEP: 9, M.VAL_LOSS: 1.5, M.FLOPS: 1e9,
                                          M.MODEL_PARAMS: 1000, M.FLOPS_PER_EXAMPLE: 5.0, M.MODEL_NUM_CLASSES: 10,
                                          M.MODEL_IN_CHANS: 1, M.MODEL_IMAGE_SIZE: 32})
        cb.on_trial_complete(0, [], trial)
    tracker.close(30.0)

    rows = {r.lr: r for r in read_trials(uri, "ktest")}
    ok = rows[0.1]
    assert ok.trial_key == "kstudy|nfnet_t0@0.5|lr=0.1|attempt=0"
    # what the model is rebuilt from: the family, the rung and the shape it was built at
    assert (ok.family, ok.model, ok.shape) == ("nfnet_cpu", "nfnet_t0", (10, 1, 32))
    folder = storage / TrialKey.from_token(ok.trial_key).train_run_name() / LOCAL_CHECKPOINTS
    assert ok.checkpoint == str((folder / "checkpoint_000000000009").resolve())
    assert ok.checkpoint_sha256 == checkpoint_sha256(Path(ok.checkpoint))
    verify_checkpoint(KeptCheckpoint(ok.checkpoint, ok.checkpoint_sha256), run=ok.run_id)
    assert rows[0.2].checkpoint == "" and rows[0.2].checkpoint_sha256 == ""  # diverged: nothing to fine-tune
