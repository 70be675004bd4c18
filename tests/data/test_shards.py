"""Shard datasets on a local disk: round trip, order, shares, resume, integrity, preflight, the CLI."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from raysweep.cli import main
from raysweep.config import DataSpec, spec_from_dict
from raysweep.config.trial import TrialConfig
from raysweep.core.errors import SpecError
from raysweep.core.records import M
from raysweep.data import load_splits
from raysweep.data import shards as shards_module
from raysweep.data.convert import convert, inspect
from raysweep.data.imagesets import batch_share
from raysweep.data.shards import CorruptShard, ShardImageSet, check_shards, load_shard, read_index
from raysweep.data.sources import _read_digits
from raysweep.train.loop import Placement, run_training

BATCH = 64


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> str:
    """scikit-learn's digits as 9 shards of at most 200 examples."""
    url = str(tmp_path_factory.mktemp("shards") / "digits")
    convert("digits", url, shard_examples=200)
    return url


def _copy(url: str, tmp_path: Path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(url, out)
    return out


def _shards(url: str, **kw: Any) -> Any:
    return load_splits(DataSpec(dataset="shards", url=url, loader_workers=kw.pop("loader_workers", 0), **kw))


def _ids(images: ShardImageSet, *, seed: int, epoch: int, step: int, rank: int = 0, world: int = 1) -> list[int]:
    order = images.order(seed=seed, epoch=epoch)
    return images.ids[batch_share(order, step, BATCH, rank=rank, world=world)].tolist()


def test_convert_then_read_gives_the_source_back(digits: str) -> None:
    data = _read_digits(None)
    index = read_index(digits)
    assert [s.examples for s in index.splits["train"]] == [200] * 8 + [197]
    assert index.examples() == len(data.labels) == 1797
    for info in index.splits["train"]:
        shard = load_shard(index, info)
        rows = slice(info.first_id, info.first_id + info.examples)
        assert np.array_equal(shard.pixels[:, 0], data.images[rows])  # type: ignore[index]
        assert np.array_equal(shard.labels, data.labels[rows])
        assert list(info.classes) == np.bincount(data.labels[rows], minlength=10).tolist()


@pytest.mark.parametrize("image_size", [8, 16])
def test_shards_give_the_in_memory_batches_step_by_step(digits: str, image_size: int) -> None:
    memory = load_splits(DataSpec(dataset="digits", image_size=image_size))
    shards = _shards(digits, image_size=image_size)
    assert (len(shards.train), len(shards.val), shards.num_classes) == (len(memory.train), len(memory.val), 10)
    assert torch.equal(shards.train.ids, memory.train.indices) and torch.equal(shards.val.ids, memory.val.indices)
    for epoch in (0, 1):
        pairs = zip(memory.train.batches(BATCH, seed=7, epoch=epoch), shards.train.batches(BATCH, seed=7, epoch=epoch),
                    strict=True)
        for (x0, y0), (x1, y1) in pairs:
            assert torch.equal(x0, x1) and torch.equal(y0, y1)  # bit for bit, normalisation included
    evals = zip(memory.val.batches(50, seed=0, epoch=0, drop_last=False, shuffle=False),
                shards.val.batches(50, seed=0, epoch=0, drop_last=False, shuffle=False), strict=True)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in evals)


def test_loader_workers_decode_the_same_batches(digits: str) -> None:
    inline, workers = _shards(digits).train, _shards(digits, loader_workers=2).train
    pairs = zip(inline.batches(BATCH, seed=3, epoch=2, start=4), workers.batches(BATCH, seed=3, epoch=2, start=4),
                strict=True)
    assert sum(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in pairs) == 25 - 4


def test_a_cache_smaller_than_the_dataset_gives_the_same_batches(digits: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    whole = list(_shards(digits).train.batches(BATCH, seed=8, epoch=0))
    monkeypatch.setattr(shards_module, "CACHE_BYTES", 30_000)  # one 200-example shard at a time
    for window in (0, 2):
        small = _shards(digits, shard_window=window).train
        got = list(small.batches(BATCH, seed=8, epoch=0))
        assert len(small._cache) <= 2 and len(got) == len(whole)
        if not window:
            assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(whole, got))


def test_an_image_folder_round_trips_through_its_own_file_bytes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for c, name in enumerate(("cat", "dog")):
        (tmp_path / "src" / name).mkdir(parents=True)
        for i in range(5):
            size = (20 + 3 * i, 14 + 2 * c)  # varied sizes and aspect ratios
            pixels = rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "src" / name / f"{i}.{'png' if i % 2 else 'jpg'}")
    convert(str(tmp_path / "src"), str(tmp_path / "shards"), shard_examples=3)
    memory = load_splits(DataSpec(dataset="image_folder", path=str(tmp_path / "src"), image_size=12))
    shards = _shards(str(tmp_path / "shards"), image_size=12)
    assert shards.class_names == ("cat", "dog") and shards.in_chans == 3
    a = list(memory.train.batches(3, seed=1, epoch=0))
    b = list(shards.train.batches(3, seed=1, epoch=0))
    assert len(a) == len(b) == 3 and all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))


@pytest.mark.parametrize("world", [2, 4])
def test_ranks_read_disjoint_shares_that_cover_each_global_batch(digits: str, world: int) -> None:
    train = _shards(digits).train
    per_rank = [list(train.batches(BATCH, seed=5, epoch=1, rank=r, world=world)) for r in range(world)]
    whole = list(train.batches(BATCH, seed=5, epoch=1))
    for step, (x, y) in enumerate(whole):
        shares = [_ids(train, seed=5, epoch=1, step=step, rank=r, world=world) for r in range(world)]
        flat = [i for share in shares for i in share]
        assert len(flat) == len(set(flat)) == BATCH  # disjoint, and as many as the global batch
        assert flat == _ids(train, seed=5, epoch=1, step=step)  # together, exactly the global batch in order
        assert torch.equal(torch.cat([per_rank[r][step][1] for r in range(world)]), y)
        assert torch.equal(torch.cat([per_rank[r][step][0] for r in range(world)]), x)


def test_a_windowed_order_is_a_permutation_per_epoch_holding_few_shards_at_once(digits: str) -> None:
    train = _shards(digits, shard_window=2).train
    a, b = train.order(seed=1, epoch=0), train.order(seed=1, epoch=0)
    assert torch.equal(a, b) and sorted(a.tolist()) == list(range(len(train)))
    assert not torch.equal(a, train.order(seed=1, epoch=1))
    shard_of = (np.searchsorted(train._starts, train.ids[a].numpy(), side="right") - 1).tolist()
    windows = []  # the shards each run of positions comes from, in reading order
    for k in shard_of:
        if not windows or (k not in windows[-1] and len(windows[-1]) == 2):
            windows.append({k})
        windows[-1].add(k)
    assert len(windows) == 5 and all(len(w) <= 2 for w in windows)  # 9 shards read 2 at a time, each once
    assert sorted(k for w in windows for k in w) == list(range(9))


@pytest.mark.parametrize("start", [0, 1, 12, 24])
def test_resuming_mid_epoch_reads_exactly_the_rest_of_the_order(digits: str, start: int) -> None:
    train = _shards(digits).train
    full = list(train.batches(BATCH, seed=9, epoch=3))
    fresh = _shards(digits).train
    calls = []
    gather = fresh._gather
    fresh._gather = lambda p: calls.append(len(p)) or gather(p)  # type: ignore[method-assign]
    rest = list(fresh.batches(BATCH, seed=9, epoch=3, start=start))
    assert len(calls) == len(full) - start  # a seek: nothing before `start` is read
    assert len(rest) == len(full) - start
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(full[start:], rest))


def _trial(data: dict[str, Any], every_steps: int = 0) -> TrialConfig:
    spec = spec_from_dict({
        "name": "shards", "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0"]}, "epochs": [2.0],
        "data": {**data, "train_subset": 256}, "batch_size": 64, "search": {"searcher": "grid"},
        "checkpoint": {"every_steps": every_steps},
    })
    return TrialConfig(spec, "nfnet_t0", 2.0, 0.4)


def test_training_from_shards_matches_memory_and_resumes_mid_epoch(tmp_path: Path) -> None:
    """The loop trained from mnist5k shards gives the in-memory run's losses and data-order digest,
    and a run resumed from a mid-epoch checkpoint gives them too."""
    torch.set_num_threads(1)
    convert("mnist5k", str(tmp_path / "m"))
    cpu = Placement(torch.device("cpu"))
    reports: dict[str, list[tuple[dict[str, Any], dict[str, Any] | None]]] = {"memory": [], "shards": []}
    for kind, data in (("memory", {"dataset": "mnist5k"}), ("shards", {"dataset": "shards", "url": str(tmp_path / "m")})):
        run_training(_trial(data, every_steps=3), lambda m, s, k=kind: reports[k].append((m, copy.deepcopy(s))), cpu)
    memory, shards = reports["memory"][-1][0], reports["shards"][-1][0]
    assert shards["data/order_digest"] == memory["data/order_digest"] and shards["val/loss"] == memory["val/loss"]
    mid = next(s for m, s in reports["shards"] if s is not None and m["step"] == 3)  # step 3 of 4 in epoch 0
    assert mid["data_position"] == (0, 3)
    resumed: list[dict[str, Any]] = []
    shard_data = {"dataset": "shards", "url": str(tmp_path / "m")}
    out = run_training(_trial(shard_data, every_steps=3), lambda m, s: resumed.append(m), cpu, resume=mid)
    assert out["data/order_digest"] == memory["data/order_digest"] and out["val/loss"] == memory["val/loss"]


def test_training_counts_the_examples_of_a_skipped_corrupt_shard(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    convert("mnist5k", str(tmp_path / "m"), shard_examples=1000)
    shard = tmp_path / "m" / "train-00002.npz"
    raw = bytearray(shard.read_bytes())
    raw[-100] ^= 0xFF
    shard.write_bytes(bytes(raw))
    data = {"dataset": "shards", "url": str(tmp_path / "m"), "skip_corrupt_shards": True, "loader_workers": 0}
    train = load_splits(_trial(data).spec.data).train
    lost = int(((train.ids >= 2000) & (train.ids < 3000)).sum())  # read once in each of 2 epochs
    out = run_training(_trial(data), lambda m, s: None, Placement(torch.device("cpu")))
    assert lost > 0 and out[M.DATA_SKIPPED] == 2 * lost and out["status"] == "ok"


# Integrity and preflight ------------------------------------------------------------------------


def test_a_corrupt_shard_fails_naming_it_unless_skipping_is_asked_for(digits: str, tmp_path: Path) -> None:
    root = _copy(digits, tmp_path)
    shard = root / "train-00003.npz"
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # same size: only the checksum can tell
    shard.write_bytes(bytes(raw))
    check_shards(read_index(str(root)))  # the cheap preflight (sizes) passes
    with pytest.raises(CorruptShard, match=r"train-00003\.npz is corrupt: SHA-256"):
        check_shards(read_index(str(root)), checksums=True)
    with pytest.raises(CorruptShard, match=r"train-00003\.npz"):
        list(_shards(str(root)).train.batches(BATCH, seed=0, epoch=0))
    train = _shards(str(root), skip_corrupt_shards=True).train
    got = sum(len(y) for _, y in train.batches(BATCH, seed=0, epoch=0, drop_last=False))
    in_shard = int(((train.ids >= 600) & (train.ids < 800)).sum())
    assert train.skipped == {"train-00003.npz": in_shard} and got == len(train) - in_shard


def _preflight_error(url: str) -> str:
    with pytest.raises(SpecError) as err:
        load_splits(DataSpec(dataset="shards", url=url), verify=True)
    text = str(err.value)
    assert "\n" not in text and text.startswith("url: ")
    return text


def test_preflight_names_a_missing_folder_an_empty_one_and_a_stray_one(tmp_path: Path) -> None:
    assert "no such folder" in _preflight_error(str(tmp_path / "absent"))
    (tmp_path / "empty").mkdir()
    assert "empty prefix" in _preflight_error(str(tmp_path / "empty"))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.txt").write_text("x")
    assert "expected index.json" in _preflight_error(f"file://{tmp_path / 'other'}")


def test_preflight_finds_an_index_that_disagrees_with_the_shards(digits: str, tmp_path: Path) -> None:
    root = _copy(digits, tmp_path)
    (root / "train-00008.npz").unlink()
    assert "train shard train-00008.npz is missing" in _preflight_error(str(root))
    shutil.rmtree(root)
    root = _copy(digits, tmp_path)
    with open(root / "train-00002.npz", "ab") as f:
        f.write(b"extra")
    assert "train-00002.npz holds" in _preflight_error(str(root))
    shutil.rmtree(root)
    root = _copy(digits, tmp_path)
    index = json.loads((root / "index.json").read_text())
    index["splits"]["train"][1]["first_id"] = 7
    (root / "index.json").write_text(json.dumps(index))
    assert "disagrees with itself at train shard train-00001.npz" in _preflight_error(str(root))
    (root / "index.json").write_text("{not json")
    assert "expected JSON" in _preflight_error(str(root))


def test_the_dataset_spec_wants_a_url_exactly_with_shards() -> None:
    with pytest.raises(SpecError, match="url"):
        DataSpec(dataset="shards").validate()
    with pytest.raises(SpecError, match="url"):
        DataSpec(dataset="digits", url="/x").validate()
    for bad in (-1, "big", True, 1.5):
        with pytest.raises(SpecError, match="shard_window: expected 'auto' or an integer >= 0"):
            DataSpec(dataset="shards", url="/x", shard_window=bad).validate()  # type: ignore[arg-type]
    DataSpec(dataset="shards", url="/x", shard_window="auto").validate()


def test_auto_reads_the_global_order_while_the_split_fits_the_cache_and_windows_beyond(
        digits: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    shards = read_index(digits).splits["train"]
    largest = max(s.bytes for s in shards)
    assert _shards(digits).train.window == 0  # the default: it fits, so the in-memory order
    monkeypatch.setattr(shards_module, "CACHE_BYTES", int(2.5 * largest))  # two shards fit, nine do not
    train = _shards(digits).train
    assert train.window == 2
    for epoch in (0, 1):  # still every example once an epoch, holding two shards at a time
        order = train.order(seed=4, epoch=epoch)
        assert sorted(order.tolist()) == list(range(len(train)))
    got = [y for _, y in train.batches(BATCH, seed=4, epoch=0)]
    assert len(got) == len(train) // BATCH and len(train._cache) <= 2
    # a setting that cannot fit warns in one line with what to set; it is still obeyed
    with caplog.at_level("WARNING", logger="raysweep.data.shards"):
        assert _shards(digits, shard_window=0).train.window == 0
        assert _shards(digits, shard_window=5).train.window == 5
        assert _shards(digits, shard_window=2).train.window == 2
    lines = [r.getMessage() for r in caplog.records if "shard_window" in r.getMessage()]
    assert len(lines) == 2 and all("\n" not in m and "use shard_window auto (here 2) or at most 2" in m for m in lines)
    assert "the split's" in lines[0] and "a window of 5 shards" in lines[1]


def test_the_window_follows_the_cache_a_host_is_given() -> None:
    from raysweep.data.shard_files import ShardInfo
    from raysweep.data.shards import cache_bytes, window_for

    imagenet = [ShardInfo(f"train-{k:05d}.npz", 1281, k * 1281, (1,), 140 << 20, "") for k in range(1000)]  # 137 GiB
    for mb, want in ((None, 7), (16 << 10, 117), (200 << 10, 0)):  # 1 GiB (default), 16 GiB, 200 GiB
        spec = DataSpec(dataset="shards", url="/x", shard_cache_mb=mb)
        spec.validate()
        assert window_for("auto", imagenet, cache=cache_bytes(spec)) == want, mb
    with pytest.raises(SpecError, match="shard_cache_mb: expected a number > 0"):
        DataSpec(dataset="shards", url="/x", shard_cache_mb=0).validate()


# The CLI ----------------------------------------------------------------------------------------


def test_cli_convert_and_inspect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"file://{tmp_path / 'd'}"
    assert main(["data", "convert", "digits", url, "--shard-examples", "500"]) == 0
    assert "wrote 1,797 train examples in 4 shards" in capsys.readouterr().out
    assert main(["data", "convert", "digits", url]) == 2  # a dataset is there already
    assert "--overwrite" in capsys.readouterr().err
    sheet = tmp_path / "sheet.png"
    assert main(["data", "inspect", url, "--verify", "--sheet", str(sheet), "--per-class", "3"]) == 0
    out = capsys.readouterr().out
    assert "train: 1,797 examples in 4 shards" in out and "0=178" in out
    with Image.open(sheet) as img:
        assert img.height == 10 * 66 and img.mode == "L"
    assert main(["data", "convert", "no_such_dataset", str(tmp_path / "x")]) == 2
    assert "expected one of" in capsys.readouterr().err
    assert main(["data", "inspect", str(tmp_path / "absent")]) == 2
    assert inspect(url).examples == {"train": 1797}


# The archive parser ----------------------------------------------------------------------------


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_arrays_reads_back_every_array_bit_for_bit(compressed: bool) -> None:
    import io

    from raysweep.data.shard_files import npz_arrays

    arrays = {"ids": np.arange(7, 12, dtype=np.int64),
              "pixels": np.random.default_rng(0).integers(0, 256, (5, 1, 3, 3), dtype=np.uint8),
              "fortran": np.asfortranarray(np.random.default_rng(1).random((3, 4))),
              "empty": np.zeros((0, 3), dtype=np.float32), "scalar": np.array(3.5)}
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    got = npz_arrays(buf.getvalue())
    assert set(got) == set(arrays)
    for key, want in arrays.items():
        assert got[key].dtype == want.dtype and got[key].shape == want.shape
        np.testing.assert_array_equal(got[key], want)
    if not compressed:  # a view into the shard's bytes, not a copy
        assert not got["pixels"].flags.writeable and not got["pixels"].flags.owndata


def test_npz_arrays_relies_on_numpys_public_header_readers() -> None:
    """The zero-copy path reads .npy headers with numpy.lib.format's public readers for versions 1.0
    and 2.0 (what np.savez writes); if numpy drops or changes them, this fails first."""
    import io

    from raysweep.data.shard_files import _HEADERS

    for version, reader in _HEADERS.items():
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.zeros((2, 3), np.uint8), version=version)
        buf.seek(0)
        assert np.lib.format.read_magic(buf) == version
        assert reader(buf) == ((2, 3), False, np.dtype(np.uint8))


def test_a_shard_that_matches_its_checksum_but_is_no_archive_fails_naming_it(digits: str, tmp_path: Path) -> None:
    import dataclasses
    import hashlib

    from raysweep.data.shard_files import _parse

    index = read_index(digits)
    shard = index.splits["train"][0]
    junk = b"not a zip file" * 100
    bad = dataclasses.replace(shard, sha256=hashlib.sha256(junk).hexdigest(), bytes=len(junk))
    with pytest.raises(CorruptShard, match=f"shard {shard.file} is not a NumPy archive"):
        _parse(bad, shard.file, junk)


def test_loader_workers_auto_reads_decoded_pixels_in_process_and_decodes_images_in_workers(digits: str) -> None:
    from raysweep.data.shards import loader_workers

    assert DataSpec(dataset="shards", url=digits).loader_workers == "auto"  # the default
    assert load_splits(DataSpec(dataset="shards", url=digits)).train.workers == 0  # digits: decoded pixels
    assert loader_workers("auto", "pixels") == 0 and loader_workers("auto", "encoded") == 2
    assert loader_workers(3, "pixels") == 3  # a number is taken as it is
