"""Checkpoints in a bucket, without Ray, on a real S3 server (moto) and a real GCS emulator
(tests/object_stores.py): a local-mode trial's keyed copies written and resumed from, the final one
found and recorded as the bucket's URI, its SHA-256 verified and its state loaded through
raysweep's filesystem layer, as fine-tuning does; a changed state is named."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from raysweep.core.errors import SpecError
from raysweep.core.records import Tag
from raysweep.data import store
from raysweep.finetune.heads import Source, Target, from_checkpoint, head_names
from raysweep.models import build_model
from raysweep.train.kept import checkpoint_bytes, final_checkpoint, read_kept_state, verify_checkpoint
from raysweep.train.worker import (
    DIGEST_FILE,
    STATE_FILE,
    keep_copy,
    keyed_folder,
    newest_readable_remote,
    save_state,
)
from tests.object_stores import BUCKET


def _src(tmp_path: Path, step: int, model: torch.nn.Module | None = None) -> Path:
    folder = tmp_path / f"src{step}"
    folder.mkdir()
    save_state({"model": (model.state_dict() if model else {"w": torch.full((3,), float(step))}), "step": step},
               folder)
    return folder


@pytest.fixture(params=["s3", "gs"])
def bucket(request: pytest.FixtureRequest) -> str:
    """s3://BUCKET or gs://BUCKET, on its server, with the environment pointing at it."""
    request.getfixturevalue({"s3": "s3", "gs": "gcs"}[request.param])
    return f"{request.param}://{BUCKET}"


def test_keyed_copies_in_a_bucket_resume_and_are_kept(bucket: str, tmp_path: Path) -> None:
    run = f"{bucket}/res/train/trial-a"
    keyed = keyed_folder(f"{run}/hosts")
    assert keyed == f"{run}/checkpoints"
    for step in (4, 8, 12):
        keep_copy(_src(tmp_path, step), keyed, step=step)
    fs, root = store.remote(str(keyed))
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls(root, detail=False)) == \
        ["checkpoint_000000000008", "checkpoint_000000000012"]  # the newest two
    state, used, skipped = newest_readable_remote(str(keyed))
    assert state is not None and state["step"] == 12 and used == "checkpoint_000000000012" and skipped == []

    fs.rm(f"{root}/checkpoint_000000000012/{DIGEST_FILE}")  # cut short before its digest: skipped
    state, used, skipped = newest_readable_remote(str(keyed))
    assert state is not None and state["step"] == 8 and skipped == ["checkpoint_000000000012"]
    kept = final_checkpoint(run)
    assert kept is not None and kept.path == f"{run}/checkpoints/checkpoint_000000000008"


def test_a_kept_checkpoint_in_a_bucket_verifies_and_loads_as_fine_tuning_reads_it(bucket: str, tmp_path: Path) -> None:
    run = f"{bucket}/res/train/trial-b"
    model = build_model("nfnet_cpu", "nfnet_t0", num_classes=10, in_chans=1, image_size=16)
    keep_copy(_src(tmp_path, 5, model), keyed_folder(f"{run}/hosts"), step=5)
    kept = final_checkpoint(run)
    assert kept is not None and kept.path == f"{run}/checkpoints/checkpoint_000000000005"
    assert kept.tags()[Tag.CHECKPOINT].startswith(bucket)
    assert kept.sha256 == (tmp_path / "src5" / DIGEST_FILE).read_text()
    assert verify_checkpoint(kept) == kept.path and checkpoint_bytes(kept.path) > 0
    assert read_kept_state(kept)["step"] == 5
    tuned = from_checkpoint(kept, Source("nfnet_cpu", "nfnet_t0", 10, 1, 16), Target(4, 1, 16))
    backbone = {k: v for k, v in model.state_dict().items() if k not in head_names(tuned)}
    assert backbone
    assert all(torch.equal(tuned.state_dict()[k], v) for k, v in backbone.items())

    fs, folder = store.remote(kept.path)
    raw = bytearray(fs.cat_file(f"{folder}/{STATE_FILE}"))
    raw[-5] ^= 1
    fs.pipe_file(f"{folder}/{STATE_FILE}", bytes(raw))
    with pytest.raises(SpecError, match=rf"expected the checkpoint {bucket}/res/train/trial-b/checkpoints/"
                                        r"checkpoint_000000000005 \(recorded by run r1\) to have SHA-256"):
        read_kept_state(kept, run="r1")
    with pytest.raises(SpecError, match="to have SHA-256"):
        verify_checkpoint(kept)
    fs.rm(folder, recursive=True)
    with pytest.raises(SpecError, match="got no such file"):
        verify_checkpoint(kept)
