"""`raysweep finetune SPACE --dry-run` against a real SQLite MLflow store of recorded pre-training trials.

The pre-training is recorded the way a sweep records it (raysweep's own tracker: params, metrics,
status, and the kept checkpoint's tags); the checkpoints are real files. Bad input is one line on
stderr naming the file or flag and the key, exit 2.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from raysweep.cli import main as cli_main
from raysweep.train.worker import STATE_FILE
from tests.finetune.pretraining import record_pretraining, write_space


def main(argv: list[str]) -> int:
    """`raysweep finetune ARGS`, through the real command line."""
    return cli_main(["finetune", *argv])


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
    assert "finetune.pretrained: expected kept checkpoints" in err and "(nfnet_t0@0.5 lr=0.2 seed 0)" in err
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


def test_an_unknown_experiment(store: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    """(Bad input without --dry-run, which must fail before Ray starts: tests/cli/test_bad_input.py.)"""
    tmp, uri = store
    capsys.readouterr()
    space = write_space(tmp, pretrained={"experiment": "nope"})
    assert main([str(space), "--dry-run", "--tracking-uri", uri]) == 2
    assert f"{space}: finetune.pretrained.experiment: expected an MLflow experiment at" in one_error(capsys)


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
