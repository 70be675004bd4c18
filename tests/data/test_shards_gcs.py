"""Shard datasets on a real GCS emulator (gcp-storage-emulator on 127.0.0.1), reached through the
production code path: gcsfs reads the endpoint from STORAGE_EMULATOR_HOST. The emulator checks no
credentials; refused credentials are tested against the S3 server (test_shards_s3.py)."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from raysweep.config import DataSpec
from raysweep.core.errors import SpecError
from raysweep.data import load_splits, store
from raysweep.data.convert import convert
from raysweep.data.shards import CorruptShard

pytest.importorskip("gcsfs")
EMULATOR = shutil.which("gcp-storage-emulator") or str(Path(sys.executable).with_name("gcp-storage-emulator"))
if not Path(EMULATOR).is_file():
    pytest.skip("the GCS tests need gcp-storage-emulator (pip install -e .[dev])", allow_module_level=True)

BUCKET = "rs-data"


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([EMULATOR, "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the GCS emulator did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def gcs(emulator: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator)
    # gcsfs asks Google's control API for each bucket's layout and logs a warning when it cannot
    logging.getLogger("gcsfs").setLevel(logging.ERROR)
    store.forget_clients()
    fs = store.filesystem("gs")
    if not fs.exists(BUCKET):
        fs.mkdir(BUCKET)
    yield
    store.forget_clients()


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
