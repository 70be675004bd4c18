"""Shard datasets on a real S3-compatible server: moto in server mode on 127.0.0.1, with IAM
credentials checked, reached through the production code path (endpoint and keys from the
environment, as AWS_ENDPOINT_URL_S3 / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY). The server and
its fixtures: tests/object_stores.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from raysweep.cli import main
from raysweep.config import DataSpec
from raysweep.core.errors import SpecError
from raysweep.data import load_splits, shards, store
from raysweep.data.convert import convert
from raysweep.data.shards import CorruptShard, ShardImageSet, check_shards, read_index
from tests.object_stores import BUCKET, start_moto

pytest.importorskip("moto.server", reason="the S3 tests need moto[server] (pip install -e .[dev])")


@pytest.fixture
def digits_s3(s3: dict[str, str]) -> str:
    url = f"s3://{BUCKET}/digits/"
    if not store.filesystem("s3").exists(f"{BUCKET}/digits/index.json"):
        convert("digits", url, shard_examples=300)
    return url


def _error(url: str) -> str:
    store.forget_clients()
    with pytest.raises(SpecError) as err:
        load_splits(DataSpec(dataset="shards", url=url), verify=True)
    text = str(err.value)
    assert "\n" not in text and text.startswith("url: ")
    return text


def test_shards_on_s3_give_the_in_memory_batches(digits_s3: str, monkeypatch: pytest.MonkeyPatch) -> None:
    memory = load_splits(DataSpec(dataset="digits"))
    for workers, cache in ((0, shards.CACHE_BYTES), (2, shards.CACHE_BYTES), (2, 30_000)):
        # with room for one shard, the forked decoding workers fetch the rest through their own clients
        monkeypatch.setattr(shards, "CACHE_BYTES", cache)
        # (the global order, asked for: `auto` would read a cache this small in windows)
        splits = load_splits(DataSpec(dataset="shards", url=digits_s3, loader_workers=workers, shard_window=0),
                             verify=True)
        pairs = zip(memory.train.batches(64, seed=2, epoch=0, start=3),
                    splits.train.batches(64, seed=2, epoch=0, start=3), strict=True)
        assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in pairs)
    assert check_shards(read_index(digits_s3), checksums=True) > 0


def test_cli_inspect_reads_s3(digits_s3: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "inspect", digits_s3, "--verify", "--sheet", str(tmp_path / "s.png")]) == 0
    assert "train: 1,797 examples in 6 shards" in capsys.readouterr().out and (tmp_path / "s.png").is_file()


def test_preflight_on_s3_names_a_missing_bucket_and_an_empty_prefix(s3: dict[str, str]) -> None:
    assert "no such bucket" in _error("s3://no-such-bucket-here/imagenet/")
    assert "empty prefix" in _error(f"s3://{BUCKET}/nothing-here/")


def test_preflight_on_s3_finds_a_shard_missing_from_the_index(s3: dict[str, str]) -> None:
    url = f"s3://{BUCKET}/missing/"
    convert("digits", url, shard_examples=600, overwrite=True)
    store.filesystem("s3").rm(f"{BUCKET}/missing/train-00001.npz")
    assert "train shard train-00001.npz is missing" in _error(url)


def test_wrong_credentials_are_one_line_and_masked(digits_s3: str, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = "not-the-secret-but-long-enough-to-mask"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    text = _error(digits_s3)
    assert "refused the credentials" in text and wrong not in text
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIANOSUCHKEY")
    assert "refused the credentials" in _error(digits_s3)


def test_a_corrupt_shard_on_s3_fails_naming_it(s3: dict[str, str]) -> None:
    url = f"s3://{BUCKET}/corrupt/"
    convert("digits", url, shard_examples=600, overwrite=True)
    fs = store.filesystem("s3")
    path = f"{BUCKET}/corrupt/train-00001.npz"
    raw = bytearray(fs.cat_file(path))
    raw[100] ^= 0x01
    fs.pipe_file(path, bytes(raw))
    splits = load_splits(DataSpec(dataset="shards", url=url, loader_workers=0), verify=True)  # sizes agree
    with pytest.raises(CorruptShard, match=r"shard s3://rs-data/corrupt/train-00001\.npz is corrupt"):
        list(splits.train.batches(64, seed=0, epoch=0))


def test_a_store_that_goes_down_fails_after_retries_with_one_line(monkeypatch: pytest.MonkeyPatch,
                                                                  s3_server: dict[str, str]) -> None:
    proc, endpoint = start_moto(auth=False)
    monkeypatch.setattr(shards, "CACHE_BYTES", 30_000)  # room for one shard: the rest is read mid-epoch
    try:
        for name, value in {**s3_server, "AWS_ENDPOINT_URL_S3": endpoint,
                            "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}.items():
            monkeypatch.setenv(name, value)
        store.forget_clients()
        fs = store.filesystem("s3")
        fs.mkdir(BUCKET)
        convert("digits", f"s3://{BUCKET}/d/", shard_examples=300)
        pool = ShardImageSet(read_index(f"s3://{BUCKET}/d/"), torch.arange(1797), image_size=8)
        batches = pool.batches(64, seed=0, epoch=0, shuffle=False)  # in id order: shard by shard
        next(batches)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    monkeypatch.setattr(store.time, "sleep", lambda s: None)  # the backoff, not the test, should wait
    with pytest.raises(OSError, match=r"cannot read s3://rs-data/d/train-0000\d\.npz after 4 attempts"):
        for _ in range(30):
            next(batches)
    store.forget_clients()
