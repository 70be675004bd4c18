"""Shard datasets on a real GCS emulator (gcp-storage-emulator on 127.0.0.1), reached through the
production code path: gcsfs reads the endpoint from STORAGE_EMULATOR_HOST. The emulator checks no
credentials; refused credentials are tested against the S3 server (test_shards_s3.py). The
emulator and its fixtures: tests/object_stores.py."""

from __future__ import annotations

import pytest
import torch

from raysweep.config import DataSpec
from raysweep.core.errors import SpecError
from raysweep.data import load_splits, store
from raysweep.data.convert import convert
from raysweep.data.shards import CorruptShard
from tests.object_stores import BUCKET, emulator_binary

pytest.importorskip("gcsfs")
if emulator_binary() is None:
    pytest.skip("the GCS tests need gcp-storage-emulator (pip install -e .[dev])", allow_module_level=True)


def test_shards_on_gcs_give_the_in_memory_batches(gcs: None) -> None:
    url = f"gs://{BUCKET}/digits/"
    convert("digits", url, shard_examples=300, overwrite=True)
    memory = load_splits(DataSpec(dataset="digits"))
    shards = load_splits(DataSpec(dataset="shards", url=url, loader_workers=0), verify=True)
    pairs = zip(memory.train.batches(64, seed=4, epoch=1), shards.train.batches(64, seed=4, epoch=1), strict=True)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in pairs)


def test_preflight_on_gcs_names_a_missing_bucket_and_an_empty_prefix(gcs: None) -> None:
    for url, needle in (("gs://no-such-bucket-here/x/", "no such bucket"), (f"gs://{BUCKET}/empty/", "empty prefix")):
        with pytest.raises(SpecError, match=needle):
            load_splits(DataSpec(dataset="shards", url=url), verify=True)


def test_a_corrupt_shard_on_gcs_fails_naming_it(gcs: None) -> None:
    url = f"gs://{BUCKET}/corrupt/"
    convert("digits", url, shard_examples=900, overwrite=True)
    fs = store.filesystem("gs")
    raw = bytearray(fs.cat_file(f"{BUCKET}/corrupt/train-00000.npz"))
    raw[-10] ^= 0x01
    fs.pipe_file(f"{BUCKET}/corrupt/train-00000.npz", bytes(raw))
    train = load_splits(DataSpec(dataset="shards", url=url, loader_workers=0), verify=True).train
    with pytest.raises(CorruptShard, match=r"shard gs://rs-data/corrupt/train-00000\.npz is corrupt"):
        next(train.batches(64, seed=0, epoch=0))
