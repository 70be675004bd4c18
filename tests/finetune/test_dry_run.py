"""`raysweep finetune SPACE --dry-run` against a real SQLite MLflow store of recorded pre-training trials.

The pre-training is recorded the way a sweep records it (raysweep's own tracker: params, metrics,
status, and the kept checkpoint's tags); the checkpoints are real files. Bad input is one line on
stderr naming the file or flag and the key, exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from raysweep.cli import main as cli_main


def main(argv: list[str]) -> int:
    """`raysweep finetune ARGS`, through the real command line."""
    return cli_main(["finetune", *argv])
from raysweep.config import spec_from_dict
from raysweep.config.trial import TrialConfig
from raysweep.core.records import M
from raysweep.models import build_model, param_count
from raysweep.tracking import SweepTracker
from raysweep.train.kept import KeptCheckpoint, checkpoint_sha256
from raysweep.train.worker import STATE_FILE, save_state

ROOT = Path(__file__).resolve().parents[2]
DEMO = yaml.safe_load((ROOT / "search_spaces/demo.yaml").read_text())
SECTION = {"data": {"dataset": "digits"}, "epochs": 1, "lr": {"base": 0.1, "factor": 2, "low": 0.05, "high": 0.2},
           "seeds": 2}
# (model, epochs) -> loss at lr 0.2 (lr 0.1 is 0.05 worse). FLOPs are params x epochs x 1000.
# t0: 23.6k params, t1: 46.6k. Frontier: t0@0.5, t0@1, t1@1 (t1@0.5 costs about t0@1 but is worse).
LOSSES = {("nfnet_t0", 0.5): 2.0, ("nfnet_t0", 1.0): 1.8, ("nfnet_t1", 0.5): 1.85, ("nfnet_t1", 1.0): 1.5}


def record_pretraining(tmp: Path, *, checkpoints: bool = True, ladder: str = "nfnet_cpu",
                       losses: dict[tuple[str, float], float] = LOSSES, shape: bool = True) -> str:
    """A pre-training sweep recorded as the tracker records one; `shape`: the runs record the data
    shape their model was built at (runs made before that was recorded do not)."""
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    raw = {**DEMO, "ladder": {"family": ladder, "rungs": sorted({m for m, _ in losses})},
           "tracking": {"experiment": "pre"}}
    spec = spec_from_dict(raw)
    tracker = SweepTracker(uri, "pre", journal_dir=tmp / "journal")
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


def write_space(tmp: Path, *, ladder: str = "nfnet_cpu", rungs: tuple[str, ...] = ("nfnet_t0", "nfnet_t1"),
                **section: Any) -> Path:
    path = tmp / "ft.yaml"
    raw = {**DEMO, "ladder": {"family": ladder, "rungs": list(rungs)}, "tracking": {"experiment": "pre"},
           "finetune": {**SECTION, **section}}
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("pre")
    return tmp, record_pretraining(tmp)


def test_the_dry_run_lists_the_chosen_checkpoints_why_and_the_flops(store: tuple[Path, str],
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    tmp, uri = store
    capsys.readouterr()
    assert main([str(write_space(tmp, repeated_augmentation=4)), "--dry-run", "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert "from MLflow experiment 'pre' (8 finished trials, 1 session(s))" in out
    assert "pre-training frontier: nfnet_t0@0.5, nfnet_t0@1, nfnet_t1@1" in out
    assert "pre-trained at 32px on 10 classes" in out  # as the runs record it
    for cell in ("nfnet_t0@0.5 lr=0.2", "nfnet_t0@1 lr=0.2", "nfnet_t1@0.5 lr=0.2", "nfnet_t1@1 lr=0.2"):
        assert cell in out
    assert "larger_model: nfnet_t1@0.5 is the larger-model neighbour of frontier point nfnet_t0@1" in out
    assert "no smaller-model neighbour of nfnet_t1@1: nfnet_t0 finished no budget above 1 epochs" in out
    assert "no smaller-model neighbour of nfnet_t0@0.5: nfnet_t0 is the smallest rung that finished" in out
    assert "repeated augmentation k=4: 16 distinct images x 4 copies a batch, the same examples and FLOPs" in out
    assert "pad-and-crop by up to 4px, no flips" in out  # digits
    assert "4 checkpoints, 48 fine-tuning runs" in out  # 4 choices x 3 LRs x 2 seeds x k in (1, 4)
    assert "from-scratch baseline (nfnet_t0, nfnet_t1): 24 runs" in out
    assert "checkpoints: 4 to load, SHA-256 checked" in out


def one_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("raysweep: error: ") and "\n" not in err, err
    return err


def test_a_checkpoint_whose_sha256_does_not_match_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = record_pretraining(tmp_path)
    (victim,) = (tmp_path / "train").glob(f"*nfnet_t0_e0.5_lr0.2_a0*/checkpoints/*/{STATE_FILE}")  # a chosen one
    victim.write_bytes(victim.read_bytes()[:-10])
    space = write_space(tmp_path)
    capsys.readouterr()  # MLflow's own log lines while the store was made
    assert main([str(space), "--dry-run", "--tracking-uri", uri]) == 2
    err = one_error(capsys)
    assert f"{space}: finetune.pretrained (raysweep.checkpoint_sha256): expected the checkpoint {victim.parent}" in err


def test_an_experiment_without_kept_checkpoints_names_the_runs_and_how_to_keep_them(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = record_pretraining(tmp_path, checkpoints=False, shape=False)  # and rebuilt from the data's shape
    capsys.readouterr()
    assert main([str(write_space(tmp_path)), "--dry-run", "--tracking-uri", uri]) == 2
    err = one_error(capsys)
    assert "finetune.from: expected kept checkpoints" in err and "(nfnet_t0@0.5 lr=0.2 seed 0)" in err
    assert "keeping its --results folder" in err


def test_a_downstream_dataset_that_cannot_be_read(store: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    tmp, uri = store
    capsys.readouterr()
    space = write_space(tmp, data={"dataset": "image_folder", "path": str(tmp / "no-such-folder")})
    assert main([str(space), "--dry-run", "--tracking-uri", uri]) == 2
    assert f"{space}: finetune.data.path: expected a folder of class folders" in one_error(capsys)


def test_a_resolution_the_model_cannot_take(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = record_pretraining(tmp_path, checkpoints=True, ladder="vit_cpu",
                             losses={("vit_t0", 1.0): 2.0, ("vit_t1", 1.0): 1.9})
    space = write_space(tmp_path, ladder="vit_cpu", rungs=("vit_t0", "vit_t1"),
                        data={"dataset": "digits", "image_size": 30})
    capsys.readouterr()
    assert main([str(space), "--dry-run", "--tracking-uri", uri]) == 2
    assert (f"{space}: finetune.data.image_size: expected a resolution vit_t0 can take, got 30x30"
            in one_error(capsys))


def test_a_select_that_picks_nothing_and_an_unknown_cell(store: tuple[Path, str],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    tmp, uri = store
    capsys.readouterr()
    space = write_space(tmp, select={"rule": "cells", "cells": ["nfnet_t2@1"]})
    assert main([str(space), "--dry-run", "--tracking-uri", uri]) == 2
    assert f"{space}: finetune.select.cells: expected a cell the pre-training ran to the end" in one_error(capsys)


def test_an_unknown_experiment_and_a_run_without_dry_run(store: tuple[Path, str],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    tmp, uri = store
    capsys.readouterr()
    space = write_space(tmp, pretrained={"experiment": "nope"})
    assert main([str(space), "--dry-run", "--tracking-uri", uri]) == 2
    assert f"{space}: finetune.pretrained.experiment: expected an MLflow experiment at" in one_error(capsys)
    assert main([str(write_space(tmp)), "--tracking-uri", uri]) == 2
    assert "--dry-run: expected --dry-run: the fine-tuning trials are not built yet" in one_error(capsys)


def test_runs_without_a_recorded_shape_are_rebuilt_from_the_pre_training_data(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = record_pretraining(tmp_path, shape=False)
    assert main([str(write_space(tmp_path)), "--dry-run", "--tracking-uri", uri]) == 0
    assert "pre-trained at 32px on 10 classes" in capsys.readouterr().out  # mnist5k, read here


def test_checkpoints_of_another_ladder_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = record_pretraining(tmp_path, ladder="vit_cpu", losses={("vit_t0", 1.0): 2.0})
    space = write_space(tmp_path)  # the nfnet_cpu ladder
    capsys.readouterr()
    assert main([str(space), "--dry-run", "--tracking-uri", uri]) == 2
    assert (f"{space}: finetune.pretrained: expected checkpoints of the file's ladder nfnet_cpu, got vit_cpu from run"
            in one_error(capsys))


def test_every_planned_trial_has_a_distinct_durable_key_naming_its_source(store: tuple[Path, str]) -> None:
    from raysweep.cli.finetune import downstream_shape, read_pretraining
    from raysweep.core.records import FinetuneKey
    from raysweep.finetune.plan import make_plan
    from raysweep.finetune.select import pretrained_from_rows
    from raysweep.finetune.spec import load_finetune

    tmp, uri = store
    space = load_finetune(write_space(tmp))
    rows, source = read_pretraining("pre", uri, (), file=space.file)
    plan = make_plan(space, pretrained_from_rows(rows), None, downstream_shape(space.finetune.data, space.file,
                                                                                dry_run=True), source=source)
    keys = [t.key("ft") for c in plan.choices for t in c.trials] + [t.key("ft") for t in plan.baseline]
    assert len(keys) == len(set(keys)) == 24 + 12
    assert all(isinstance(k, FinetuneKey) for k in keys)
    first = plan.choices[0].trials[0]
    key = first.key("ft")
    assert key is not None and first.checkpoint is not None and key.source == first.checkpoint.trial_key


def test_bad_input_creates_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """No --tracking-uri: the default store (./mlflow.db) does not exist, and the dry run makes none."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    space = write_space(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main([str(space), "--dry-run"]) == 2
    assert "--tracking-uri: expected an existing MLflow SQLite store" in one_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
