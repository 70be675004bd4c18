"""`raysweep data convert` and `raysweep data inspect`: write a shard dataset, and look at one.

convert: a built-in dataset (its decoded pixels, read back bit for bit) or an image folder (each
file's own bytes, decoded by the loader) becomes shards plus `index.json` at a path, file://, gs://
or s3:// URL. The index is written last, so an interrupted conversion leaves no dataset behind.
inspect: counts, classes, bytes (optionally every checksum), and a contact sheet PNG.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from raysweep.core.errors import SpecError
from raysweep.data import store
from raysweep.data.imagesets import read_image
from raysweep.data.registry import DATASETS
from raysweep.data.shards import INDEX, ShardIndex, ShardInfo, check_shards, load_shard, read_index
from raysweep.data.sources import ArraySource, FolderSource, _channel_stats, _nchw, scan_folder

SHARD_BYTES = 64 * 2**20  # a shard closes past this: large enough that per-request latency is amortised


@dataclass(frozen=True)
class _Pool:
    """What one split is written from: labels and either pixels or image files."""

    labels: np.ndarray
    pixels: np.ndarray | None = None  # uint8 [N, C, H, W]
    files: tuple[str, ...] = ()


def convert(src: str, url: str, *, path: str | None = None, shard_bytes: int = SHARD_BYTES,
            shard_examples: int | None = None, overwrite: bool = False) -> ShardIndex:
    """Write `src` (a built-in dataset name, or an image folder) as shards at `url`; return the index."""
    if shard_bytes < 1 or (shard_examples is not None and shard_examples < 1):
        raise SpecError(f"expected positive shard sizes, got {shard_bytes} bytes, {shard_examples} examples",
                        key="--shard-examples")
    protocol, root = store.split_url(url)
    fs = store.filesystem(protocol)
    where = store.display(protocol, root)
    if store.call(where, lambda: fs.exists(store.join(protocol, root, INDEX))) and not overwrite:
        raise SpecError(f"expected a place without a dataset, got {where} (it holds {INDEX}; pass --overwrite)",
                        key="URL")
    if protocol == "file":
        fs.makedirs(root, exist_ok=True)

    source = DATASETS.get(src)
    if isinstance(source, ArraySource):
        data = source.read(path)
        images = _nchw(data.images)
        mean, std = _channel_stats(images)
        pools = {"train": _Pool(data.labels.astype(np.int64), np.ascontiguousarray(images))}
        if data.test_images is not None and data.test_labels is not None:
            pools["test"] = _Pool(data.test_labels.astype(np.int64), np.ascontiguousarray(_nchw(data.test_images)))
        name, payload, fit = source.name, "pixels", str(source.fit)
        class_names = tuple(str(c) for c in range(source.num_classes))
        in_chans = images.shape[1]
    elif source is None or isinstance(source, FolderSource):
        folder = Path(path or src).expanduser().resolve()
        if source is None and not folder.is_dir():
            raise SpecError(f"expected one of {sorted(n for n, s in DATASETS.items() if isinstance(s, ArraySource))} "
                            f"or an image folder, got {src!r}", key="SRC")
        scan = scan_folder(str(folder))
        pools = {"train": _Pool(scan.labels.astype(np.int64), files=scan.files)}
        name, payload, fit = folder.name, "encoded", "crop"
        class_names, in_chans = scan.class_names, scan.in_chans
        mean = std = (0.5,) * in_chans  # as the in-memory image folder: pixels to [-1, 1]
    else:
        raise SpecError(f"expected a dataset stored on disk, got {src!r} (already shards)", key="SRC")

    splits: dict[str, tuple[ShardInfo, ...]] = {}
    for split, pool in pools.items():
        infos: list[ShardInfo] = []
        for first, stop, blob in _shards(pool, shard_bytes, shard_examples):
            file = f"{split}-{len(infos):05d}.npz"
            _put(fs, f"{where}/{file}", store.join(protocol, root, file), blob)
            counts = np.bincount(pool.labels[first:stop], minlength=len(class_names))
            infos.append(ShardInfo(file, stop - first, first, tuple(int(c) for c in counts), len(blob),
                                   hashlib.sha256(blob).hexdigest()))
        splits[split] = tuple(infos)
    index = ShardIndex(url=url, name=name, payload=payload, fit=fit, num_classes=len(class_names),  # type: ignore[arg-type]
                       class_names=class_names, in_chans=in_chans, mean=mean, std=std, splits=splits)
    text = json.dumps(index.to_json(), indent=1).encode()
    _put(fs, f"{where}/{INDEX}", store.join(protocol, root, INDEX), text)
    return index


def _put(fs: Any, what: str, path: str, blob: bytes) -> None:
    store.call(what, lambda: fs.pipe_file(path, blob))


def _shards(pool: _Pool, shard_bytes: int, shard_examples: int | None) -> Iterator[tuple[int, int, bytes]]:
    n = len(pool.labels)
    if pool.pixels is not None:
        per = max(1, shard_bytes // max(1, pool.pixels[0].nbytes))
        per = min(per, shard_examples or per)
        for first in range(0, n, per):
            stop = min(n, first + per)
            yield first, stop, _npz(ids=np.arange(first, stop, dtype=np.int64), labels=pool.labels[first:stop],
                                    pixels=pool.pixels[first:stop])
        return
    first = 0
    while first < n:
        blobs: list[bytes] = []
        size = 0
        while first + len(blobs) < n and (not blobs or size < shard_bytes) \
                and len(blobs) < (shard_examples or n):
            blobs.append(Path(pool.files[first + len(blobs)]).read_bytes())
            size += len(blobs[-1])
        stop = first + len(blobs)
        offsets = np.cumsum([0] + [len(b) for b in blobs], dtype=np.int64)
        yield first, stop, _npz(ids=np.arange(first, stop, dtype=np.int64), labels=pool.labels[first:stop],
                                data=np.frombuffer(b"".join(blobs), dtype=np.uint8), offsets=offsets)
        first = stop


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]  # uncompressed: the loader reads each array without inflating it
    return buf.getvalue()


# inspect ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inspection:
    index: ShardIndex
    examples: dict[str, int]  # per split
    per_class: dict[str, tuple[int, ...]]  # per split, examples per class
    shards: dict[str, int]
    bytes: int
    sheet: Path | None

    def lines(self) -> list[str]:
        ix = self.index
        head = (f"{store.display(*store.split_url(ix.url))}: {ix.name}, {ix.num_classes} classes, "
                f"{ix.in_chans} channel(s), payload {ix.payload}, {self.bytes:,} bytes")
        out = [head]
        for split, n in self.examples.items():
            counts = ", ".join(f"{c}={k}" for c, k in zip(ix.class_names, self.per_class[split]))
            out.append(f"  {split}: {n:,} examples in {self.shards[split]} shards; per class: {counts}")
        if self.sheet is not None:
            out.append(f"  contact sheet: {self.sheet}")
        return out


def inspect(url: str, *, sheet: Path | None = None, per_class: int = 8, checksums: bool = False,
            cell: int = 64) -> Inspection:
    """Counts, classes and bytes of the dataset at `url` (every shard's SHA-256 with `checksums`),
    and, with `sheet`, a PNG of the first `per_class` images of each class of the train split."""
    index = read_index(url)
    total = check_shards(index, checksums=checksums)
    per = {split: tuple(int(sum(s.classes[c] for s in shards)) for c in range(index.num_classes))
           for split, shards in index.splits.items()}
    if sheet is not None:
        _contact_sheet(index, sheet, per_class, cell)
    return Inspection(index, {k: index.examples(k) for k in index.splits}, per,
                      {k: len(v) for k, v in index.splits.items()}, total, sheet)


def _contact_sheet(index: ShardIndex, out: Path, per_class: int, cell: int) -> None:
    picks: dict[int, list[np.ndarray]] = {c: [] for c in range(index.num_classes)}
    for info in index.splits["train"]:
        if all(len(v) >= per_class for v in picks.values()):
            break
        if not any(info.classes[c] and len(picks[c]) < per_class for c in picks):
            continue
        shard = load_shard(index, info)
        for row, label in enumerate(shard.labels.tolist()):
            if len(picks[label]) >= per_class:
                continue
            if shard.pixels is not None:
                img = shard.pixels[row]
            else:
                assert shard.data is not None and shard.offsets is not None
                blob = shard.data[shard.offsets[row] : shard.offsets[row + 1]].tobytes()
                img = read_image(io.BytesIO(blob), in_chans=index.in_chans, image_size=cell)
            picks[label].append(img)
    label_w = 8 + 7 * max((len(n) for n in index.class_names), default=1)
    mode = "L" if index.in_chans == 1 else "RGB"
    sheet = Image.new(mode, (label_w + per_class * (cell + 2), index.num_classes * (cell + 2)), 255 if mode == "L"
                      else (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for c, images in picks.items():
        y = c * (cell + 2)
        draw.text((4, y + cell // 2 - 5), index.class_names[c], fill=0 if mode == "L" else (0, 0, 0))
        for j, pixels in enumerate(images):
            arr = pixels[0] if index.in_chans == 1 else pixels.transpose(1, 2, 0)
            tile = Image.fromarray(np.ascontiguousarray(arr), mode=None).resize((cell, cell), Image.Resampling.NEAREST)
            sheet.paste(tile, (label_w + j * (cell + 2), y))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, format="PNG")
