"""A finished trial's kept checkpoint: found under its Train run folder, its SHA-256 defined, checked, costed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch

from raysweep.core.errors import SpecError
from raysweep.core.records import Tag, TrialKey
from raysweep.train.kept import (
    KeptCheckpoint,
    checkpoint_sha256,
    final_checkpoint,
    format_bytes,
    recorded_sha256,
    state_bytes,
    verify_checkpoint,
)
from raysweep.train.worker import LOCAL_CHECKPOINTS, STATE_FILE, keep_copy, save_state


def _state(step: int) -> dict:
    return {"model": {"w": torch.full((3,), float(step))}, "step": step}


def _save(folder: Path, step: int, mtime: int | None = None) -> Path:
    folder.mkdir(parents=True)
    save_state(_state(step), folder)
    if mtime is not None:
        os.utime(folder / STATE_FILE, ns=(mtime, mtime))
    return folder


def test_the_sha256_of_a_checkpoint_is_that_of_its_state_file_as_save_state_records_it(tmp_path: Path) -> None:
    folder = _save(tmp_path / "c", 7)
    (folder / "params.rank1.sha256").write_text("a record about it, not part of it\n")
    expected = hashlib.sha256((folder / STATE_FILE).read_bytes()).hexdigest()
    assert checkpoint_sha256(folder) == expected == recorded_sha256(folder)


def test_the_final_checkpoint_of_a_worker_group_trial_is_rays_newest(tmp_path: Path) -> None:
    run = tmp_path / TrialKey("s", "nfnet_t0", 1.0, 0.1).train_run_name()
    _save(run / "checkpoint_2026-01-01_10-00-00.000001", 4, mtime=1_000)
    newest = _save(run / "checkpoint_2026-01-01_10-00-09.000001", 8, mtime=2_000)
    (run / "hosts").mkdir()
    kept = final_checkpoint(run)
    assert kept == KeptCheckpoint(str(newest.resolve()), checkpoint_sha256(newest))
    assert kept.tags() == {Tag.CHECKPOINT: str(newest.resolve()), Tag.CHECKPOINT_SHA256: kept.sha256}


def test_the_final_checkpoint_of_a_local_mode_trial_is_its_newest_keyed_copy(tmp_path: Path) -> None:
    run = tmp_path / "run"
    for step in (4, 8, 12):
        keep_copy(_save(tmp_path / f"src{step}", step, mtime=step * 1000), run / LOCAL_CHECKPOINTS, step=step)
    kept = final_checkpoint(run)
    assert kept is not None and Path(kept.path).name == "checkpoint_000000000012"
    assert torch.load(Path(kept.path) / STATE_FILE, weights_only=True)["step"] == 12


def test_a_folder_without_a_digest_is_no_kept_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert final_checkpoint(run) is None  # no folder at all
    folder = _save(run / "checkpoint_1", 1)
    (folder / "state.sha256").unlink()
    assert final_checkpoint(run) is None


def test_verify_passes_an_intact_checkpoint_and_names_a_changed_one(tmp_path: Path) -> None:
    folder = _save(tmp_path / "c", 3)
    kept = KeptCheckpoint(str(folder), checkpoint_sha256(folder))
    assert verify_checkpoint(kept, run="abc") == folder
    data = (folder / STATE_FILE).read_bytes()
    (folder / STATE_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(SpecError, match=rf"{Tag.CHECKPOINT_SHA256}: expected the checkpoint .*c \(recorded by run "
                                        r"abc\) to have SHA-256") as err:
        verify_checkpoint(kept, run="abc")
    assert "\n" not in str(err.value)
    with pytest.raises(SpecError, match="no such file"):
        verify_checkpoint(KeptCheckpoint(str(tmp_path / "gone"), kept.sha256))


def test_state_bytes_count_weights_and_optimiser_state() -> None:
    assert state_bytes(1000, "sgd") == 8000  # weights + momentum, fp32
    assert state_bytes(1000, "adamw") == 12000  # weights + two moments
    assert format_bytes(512) == "512 B" and format_bytes(1536) == "1.5 KiB" and format_bytes(3 * 2**30) == "3 GiB"
