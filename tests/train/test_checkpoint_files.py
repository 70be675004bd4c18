"""Checkpoint files: saved with a digest, loaded with weights_only, a torn latest one skipped for the previous."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from raysweep.train.worker import STATE_FILE, keep_copy, newest_readable, read_state, save_state


def _state(step: int) -> dict:
    return {"model": {"w": torch.full((3,), float(step))}, "step": step, "rng": torch.get_rng_state(),
            "data_digest": "ab" * 32, "window": (torch.zeros(()), 0)}


def test_a_saved_state_reads_back(tmp_path: Path) -> None:
    save_state(_state(5), tmp_path)
    assert read_state(tmp_path)["step"] == 5


def test_a_torn_state_is_refused(tmp_path: Path) -> None:
    save_state(_state(5), tmp_path)
    data = (tmp_path / STATE_FILE).read_bytes()
    (tmp_path / STATE_FILE).write_bytes(data[: len(data) // 2])  # cut short, as by a crash mid-write
    with pytest.raises(ValueError, match="digest"):
        read_state(tmp_path)


def test_pickled_code_is_refused_even_with_a_matching_digest(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (print, ("ran code",))

    torch.save({"step": 1, "x": Evil()}, tmp_path / STATE_FILE)
    import hashlib

    (tmp_path / "state.sha256").write_text(hashlib.sha256((tmp_path / STATE_FILE).read_bytes()).hexdigest())
    with pytest.raises(pickle.UnpicklingError):
        read_state(tmp_path)  # weights_only=True: tensors and plain data only


def test_the_newest_readable_copy_wins_and_a_torn_one_is_skipped(tmp_path: Path) -> None:
    for step in (4, 8, 12):
        src = tmp_path / f"src{step}"
        src.mkdir()
        save_state(_state(step), src)
        keep_copy(src, tmp_path / "keyed", step=step)
    names = sorted(p.name for p in (tmp_path / "keyed").iterdir())
    assert names == ["checkpoint_000000000008", "checkpoint_000000000012"]  # the newest two are kept
    newest = tmp_path / "keyed" / "checkpoint_000000000012" / STATE_FILE
    newest.write_bytes(newest.read_bytes()[:100])
    state, used, skipped = newest_readable(sorted((tmp_path / "keyed").glob("checkpoint_*"), reverse=True))
    assert state is not None and state["step"] == 8
    assert used == "checkpoint_000000000008" and skipped == ["checkpoint_000000000012"]


def test_a_ray_checkpoint_whose_latest_is_torn_resumes_from_the_one_kept_beside_it(tmp_path: Path) -> None:
    # Ray Train keeps checkpoint_<timestamp> folders side by side (num_to_keep=2); its Checkpoint
    # reads them through pyarrow's filesystem, local here
    from ray.train import Checkpoint

    from raysweep.train.worker import load_resume_state

    for i, step in enumerate((8, 12)):
        folder = tmp_path / f"checkpoint_2026-11-29_10-00-0{i}.000000"
        folder.mkdir()
        save_state(_state(step), folder)
    latest = tmp_path / "checkpoint_2026-11-29_10-00-01.000000"
    (latest / STATE_FILE).write_bytes((latest / STATE_FILE).read_bytes()[:100])
    state, used, skipped = load_resume_state(Checkpoint(str(latest)))
    assert state is not None and state["step"] == 8
    assert used == "checkpoint_2026-11-29_10-00-00.000000" and skipped == [latest.name]
    (tmp_path / "checkpoint_2026-11-29_10-00-00.000000" / "state.sha256").write_text("0" * 64)
    assert load_resume_state(Checkpoint(str(latest)))[:2] == (None, None)
