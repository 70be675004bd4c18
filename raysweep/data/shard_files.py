"""The on-disk form of a sharded dataset: `index.json` and the `<split>-NNNNN.npz` shards that
`raysweep data convert` writes, read through one filesystem layer (`raysweep.data.store`).

The index lists, per shard: file, examples, first_id, per-class counts, bytes and SHA-256; each
shard is an uncompressed NumPy archive of consecutive examples (`ids`, `labels`, and `pixels` or
the image files' own bytes in `data` + `offsets`). Reading checks a shard against its checksum
(`CorruptShard` names it). The reader that orders and shares examples is `raysweep.data.shards`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import zipfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from raysweep.core.errors import SpecError
from raysweep.data import store

FORMAT = "raysweep-shards/1"
INDEX = "index.json"
Payload = Literal["pixels", "encoded"]
Fit = Literal["pad", "resize", "crop"]  # pixels: pad or resize to image_size; encoded: scale, centre-crop


# The index -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardInfo:
    file: str  # name within the dataset folder
    examples: int
    first_id: int  # holds ids first_id .. first_id + examples - 1
    classes: tuple[int, ...]  # examples per class
    bytes: int
    sha256: str


@dataclass(frozen=True)
class ShardIndex:
    url: str  # as the user wrote it
    name: str
    payload: Payload
    fit: Fit
    num_classes: int
    class_names: tuple[str, ...]
    in_chans: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    splits: dict[str, tuple[ShardInfo, ...]]  # "train" (the pool validation is held out from), "test"

    def examples(self, split: str = "train") -> int:
        return sum(s.examples for s in self.splits.get(split, ()))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "name": self.name, "payload": self.payload, "fit": self.fit,
            "num_classes": self.num_classes, "class_names": list(self.class_names), "in_chans": self.in_chans,
            "mean": list(self.mean), "std": list(self.std),
            "splits": {k: [{"file": s.file, "examples": s.examples, "first_id": s.first_id,
                            "classes": list(s.classes), "bytes": s.bytes, "sha256": s.sha256} for s in v]
                       for k, v in self.splits.items()},
        }

    @classmethod
    def from_json(cls, url: str, raw: Any) -> ShardIndex:
        where = f"{store.display(*store.split_url(url))}/{INDEX}"
        try:
            if raw.get("format") != FORMAT:
                raise ValueError(f"format {raw.get('format')!r}, expected {FORMAT!r}")
            splits = {
                k: tuple(ShardInfo(str(s["file"]), int(s["examples"]), int(s["first_id"]),
                                   tuple(int(c) for c in s["classes"]), int(s["bytes"]), str(s["sha256"]))
                         for s in v)
                for k, v in raw["splits"].items()
            }
            index = cls(url=url, name=str(raw["name"]), payload=raw["payload"], fit=raw["fit"],
                        num_classes=int(raw["num_classes"]), class_names=tuple(raw["class_names"]),
                        in_chans=int(raw["in_chans"]), mean=tuple(float(m) for m in raw["mean"]),
                        std=tuple(float(s) for s in raw["std"]), splits=splits)
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            raise SpecError(f"expected a shard index written by `raysweep data convert`, got {where} "
                            f"({type(err).__name__}: {err})", key="url") from None
        index._check(where)
        return index

    def _check(self, where: str) -> None:
        """The index agrees with itself: ids run on without gaps, counts add up."""
        if "train" not in self.splits or not self.splits["train"]:
            raise SpecError(f"expected a train split with shards in {where}, got none", key="url")
        for split, shards in self.splits.items():
            next_id = 0
            for s in shards:
                if s.first_id != next_id or s.examples < 1 or sum(s.classes) != s.examples \
                        or len(s.classes) != self.num_classes:
                    raise SpecError(f"the index disagrees with itself at {split} shard {s.file} in {where} "
                                    f"(first_id {s.first_id}, expected {next_id}; {s.examples} examples, "
                                    f"class counts sum to {sum(s.classes)})", key="url")
                next_id += s.examples


def read_index(url: str) -> ShardIndex:
    """The index at `url`; a one-line `SpecError` for a missing bucket, an empty prefix, a folder
    without an index, a store refusing the credentials, or an index that is not one."""
    protocol, root = store.split_url(url)
    fs = store.filesystem(protocol)
    where = store.display(protocol, root)

    def fetch() -> bytes | None:
        try:
            return bytes(fs.cat_file(store.join(protocol, root, INDEX)))
        except FileNotFoundError:
            return None

    raw = store.call(f"{where}/{INDEX}", fetch)
    if raw is None:
        raise SpecError(_why_no_index(fs, protocol, root, where), key="url")
    try:
        return ShardIndex.from_json(url, json.loads(raw))
    except json.JSONDecodeError as err:
        raise SpecError(f"expected JSON in {where}/{INDEX}, got {err}", key="url") from None


def _why_no_index(fs: Any, protocol: str, root: str, where: str) -> str:
    if protocol == "file" and not fs.exists(root):
        return f"expected a dataset folder written by `raysweep data convert`, got {where}: no such folder"
    if protocol != "file":
        bucket = root.split("/", 1)[0]
        if not store.call(f"{protocol}://{bucket}", lambda: fs.exists(bucket)):
            return f"expected a dataset folder written by `raysweep data convert`, got {where}: no such bucket"
    try:
        listing = store.call(where, lambda: fs.ls(root, detail=False))
    except SpecError:
        listing = []
    if not listing:
        return f"expected a dataset folder written by `raysweep data convert`, got {where}: nothing there " \
               f"(an empty prefix)"
    return f"expected {INDEX} in {where}, got {len(listing)} other entries: write shards with `raysweep data convert`"


def check_shards(index: ShardIndex, *, checksums: bool = False) -> int:
    """Preflight: every shard the index names exists with the size it records (one listing), and with
    `checksums` its SHA-256 matches (reads every byte). Returns the bytes of all shards."""
    protocol, root = store.split_url(index.url)
    fs = store.filesystem(protocol)
    where = store.display(protocol, root)
    listing = store.call(where, lambda: fs.ls(root, detail=True))
    sizes = {str(e["name"]).rstrip("/").rsplit("/", 1)[-1]: int(e.get("size") or 0) for e in listing}
    total = 0
    for split, shards in index.splits.items():
        for s in shards:
            if s.file not in sizes:
                raise SpecError(f"the index disagrees with the shards: {split} shard {s.file} is missing "
                                f"from {where}", key="url")
            if sizes[s.file] != s.bytes:
                raise SpecError(f"the index disagrees with the shards: {where}/{s.file} holds {sizes[s.file]} "
                                f"bytes, the index says {s.bytes}", key="url")
            if checksums:
                load_shard(index, s)
            total += s.bytes
    return total


class CorruptShard(OSError):
    """A shard whose bytes differ from what the index recorded (SHA-256 or contents)."""


@dataclass(frozen=True)
class LoadedShard:
    labels: np.ndarray
    pixels: np.ndarray | None  # payload "pixels": uint8 [n, C, H, W]
    data: np.ndarray | None  # payload "encoded": every file's bytes, end to end
    offsets: np.ndarray | None  # [n + 1]: example i is data[offsets[i]:offsets[i + 1]]

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.labels, self.pixels, self.data, self.offsets) if a is not None)


def load_shard(index: ShardIndex, shard: ShardInfo) -> LoadedShard:
    """One shard read whole and checked against the index; `CorruptShard` names it otherwise."""
    protocol, root = store.split_url(index.url)
    path = store.join(protocol, root, shard.file)
    fs = store.filesystem(protocol)
    name = store.display(protocol, path)
    return _parse(shard, name, _fetch(fs, name, path))


def load_shards(index: ShardIndex, shards: Sequence[ShardInfo]) -> list[LoadedShard | CorruptShard]:
    """Several shards fetched together (on s3:// and gs:// the requests are in flight at once), each
    checked; a corrupt one comes back as its `CorruptShard` for the caller to raise or skip.

    Checking (SHA-256) and parsing run in a thread per shard, up to the host's cores (hashlib and
    the reads release the GIL), and so do the reads of a local or mounted folder: resuming in a
    global order, which needs every shard at once, costs the slowest shard rather than their sum."""
    protocol, root = store.split_url(index.url)
    fs = store.filesystem(protocol)
    paths = [store.join(protocol, root, s.file) for s in shards]
    got: Any = None
    if getattr(fs, "async_impl", False) and len(paths) > 1:
        got = store.call(f"{len(paths)} shards in {store.display(protocol, root)}", lambda: fs.cat(paths))

    def one(shard: ShardInfo, path: str) -> LoadedShard | CorruptShard:
        raw = got.get(path) if isinstance(got, dict) else None
        if raw is None:  # a local folder, one shard, or a filesystem that keys its answer differently
            raw = _fetch(fs, store.display(protocol, path), path)
        try:
            return _parse(shard, store.display(protocol, path), bytes(raw))
        except CorruptShard as err:
            return err

    threads = min(len(paths), os.cpu_count() or 1, 16)
    if threads <= 1:
        return [one(s, p) for s, p in zip(shards, paths)]
    with ThreadPoolExecutor(threads, thread_name_prefix="raysweep-shard") as pool:
        return list(pool.map(one, shards, paths))


def _fetch(fs: Any, name: str, path: str) -> bytes:
    return bytes(store.call(name, lambda: fs.cat_file(path)))


def _parse(shard: ShardInfo, name: str, raw: bytes) -> LoadedShard:
    digest = hashlib.sha256(raw).hexdigest()
    if digest != shard.sha256:
        raise CorruptShard(f"shard {name} is corrupt: SHA-256 {digest[:16]}..., the index says "
                           f"{shard.sha256[:16]}... ({len(raw)} bytes read, {shard.bytes} expected)")
    try:
        arrays = npz_arrays(raw)
    except (ValueError, zipfile.BadZipFile, struct.error) as err:
        raise CorruptShard(f"shard {name} is not a NumPy archive raysweep can read: {err}") from None
    ids = arrays.get("ids")
    if ids is None or not np.array_equal(ids, np.arange(shard.first_id, shard.first_id + shard.examples)):
        raise CorruptShard(f"shard {name} disagrees with the index: expected ids {shard.first_id}.."
                           f"{shard.first_id + shard.examples - 1}")
    return LoadedShard(arrays["labels"].astype(np.int64), arrays.get("pixels"), arrays.get("data"),
                       arrays.get("offsets"))


_LOCAL_HEADER = struct.Struct("<4s22xHH")  # a zip member's local header: signature, name and extra lengths


_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _data_start(raw: bytes, info: zipfile.ZipInfo) -> int:
    sig, name_len, extra_len = _LOCAL_HEADER.unpack_from(raw, info.header_offset)
    if sig != b"PK\x03\x04":
        raise ValueError(f"member {info.filename}: no local header at {info.header_offset}")
    return info.header_offset + _LOCAL_HEADER.size + name_len + extra_len


def _magic(raw: bytes, start: int, info: zipfile.ZipInfo) -> tuple[int, int] | None:
    if raw[start : start + 6] != b"\x93NUMPY" or info.file_size < 8:
        return None
    return raw[start + 6], raw[start + 7]


def npz_arrays(raw: bytes) -> dict[str, np.ndarray]:
    """The arrays of an .npz held in `raw`. A member stored uncompressed (as `data convert` writes
    them) is a read-only view into `raw`, not a copy, and its zip CRC is not recomputed (the shard's
    SHA-256 has checked every byte); a compressed member is read by `np.load`."""
    out: dict[str, np.ndarray] = {}
    view = memoryview(raw)
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        for info in zf.infolist():
            key = info.filename.removesuffix(".npy")
            start = _data_start(raw, info) if info.compress_type == zipfile.ZIP_STORED else None
            version = _magic(raw, start, info) if start is not None else None
            header = _HEADERS.get(version) if version is not None else None
            if start is None or header is None:  # compressed, or an .npy version without a public header reader
                with zf.open(info) as stored:
                    out[key] = np.lib.format.read_array(stored, allow_pickle=False)
                continue
            member = io.BytesIO(view[start : start + info.file_size])
            np.lib.format.read_magic(member)
            shape, fortran, dtype = header(member)
            if dtype.hasobject:
                raise ValueError(f"member {info.filename} holds Python objects")
            count = int(np.prod(shape, dtype=np.int64))
            arr = np.frombuffer(raw, dtype=dtype, count=count, offset=start + member.tell())
            out[key] = arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)
    return out
