"""Sharded datasets (`data: {dataset: shards, url: ...}`): the reader, the order, the source (the
files and their index are `raysweep.data.shard_files`).

A dataset is a folder (a path, file://, gs:// or s3://) holding `index.json` and shard files
`<split>-NNNNN.npz`, written by `raysweep data convert`. Each shard is an uncompressed NumPy
archive of consecutive examples: `ids` (int64, the example ids first_id .. first_id + n - 1),
`labels` (int64), and either `pixels` (uint8 [n, C, H, W], for decoded datasets, read back bit for
bit) or `data` + `offsets` (the image files' own bytes, PNG or JPEG, decoded by the loader).
The index lists, per shard: file, examples, first_id, per-class counts, bytes and SHA-256.

Why a reader of our own (see NOTES_FOR_LEAD.md): every point below is a few lines over this
format, while Ray Data cannot resume mid-epoch (ray-project/ray#37633), WebDataset has no
built-in mid-epoch resume, MosaicML streaming's last release is July 2025, and grain needs
random access to records (ArrayRecord), which an object store gives only per byte range.

- Order: the global order of an epoch is `epoch_order(len, seed, epoch)`, the in-memory loader's
  own function, so a dataset read from shards gives the same batches, step by step, as in memory.
  `shard_window=k` orders shards by (seed, epoch) and examples within windows of k shards, so
  each process holds at most k shards at a time (for data far larger than memory). A global order
  touches nearly every shard each step, so it reads well only while the split fits the process's
  shard cache (`data.shard_cache_mb`, default `CACHE_BYTES`); beyond it each step would fetch shards again. `shard_window: auto`
  (the default) keeps the global order where the split fits and reads windows of as many shards as
  the cache holds where it does not (`window_for`, which also warns of a setting that thrashes).
- Shares: each process reads only its share (`batch_share`) of every global batch, keyed by
  (data_rank, data_world): the XLA process index on a TPU slice, the Train rank elsewhere.
- Workers: with `loader_workers > 0`, a torch DataLoader decodes whole steps in worker processes
  with prefetch, off the training step.
- Position: (epoch, step) fixes everything; `batches(..., start=step)` seeks there at once.
- Validation: held out by example id with `split_indices(N, split_seed)`, like every dataset.
- Integrity: a shard whose SHA-256 differs from the index fails naming the shard, or (opt-in
  `skip_corrupt_shards`) is dropped, logged and counted in `ShardImageSet.skipped`.
"""

from __future__ import annotations

import io
import logging
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from raysweep.config import DataSpec
from raysweep.core.errors import SpecError
from raysweep.data.imagesets import _Normalised, batch_share, check_share, epoch_order, read_image
from raysweep.data.shard_files import (  # noqa: F401 - re-exported for the data layer's callers
    FORMAT,
    INDEX,
    CorruptShard,
    LoadedShard,
    Payload,
    ShardIndex,
    ShardInfo,
    check_shards,
    load_shard,
    load_shards,
    read_index,
)
from raysweep.data.sources import Source, Splits, _fit, split_indices

log = logging.getLogger(__name__)
CACHE_BYTES = 1 << 30  # decoded shards one process keeps (LRU) unless data.shard_cache_mb says: Fashion-MNIST's 47 MB fit many times over
PREFETCH = 4  # steps each loader worker decodes ahead


# The reader ------------------------------------------------------------------------------------


class ShardImageSet(_Normalised):
    """The examples `ids` of one split of a shard dataset, normalised like the in-memory sets."""

    def __init__(self, index: ShardIndex, ids: Tensor, *, split: str = "train", image_size: int,
                 workers: int = 0, window: int = 0, skip_corrupt: bool = False, cache_bytes: int | None = None) -> None:
        super().__init__(index.mean, index.std, in_chans=index.in_chans, image_size=image_size)
        self.index = index
        self.split = split
        self.shards = index.splits[split]
        self.ids = ids.long()
        self.workers = workers
        self.window = window
        self.skip_corrupt = skip_corrupt
        self._starts = np.array([s.first_id for s in self.shards], dtype=np.int64)
        self._cache: OrderedDict[int, LoadedShard | None] = OrderedDict()
        self._cached_bytes = 0
        self.cache_bytes = cache_bytes if cache_bytes is not None else CACHE_BYTES
        self.skipped: dict[str, int] = {}  # corrupt shard -> examples dropped (this process)

    def __len__(self) -> int:
        return len(self.ids)

    # order
    def order(self, *, seed: int, epoch: int, shuffle: bool = True) -> Tensor:
        """Positions into this set in the order of epoch `epoch`: a function of (seed, epoch) alone."""
        if not shuffle or not self.window:
            return epoch_order(len(self), seed=seed, epoch=epoch, shuffle=shuffle)
        shard_of = torch.from_numpy(np.searchsorted(self._starts, self.ids.numpy(), side="right") - 1)
        shard_order = epoch_order(len(self.shards), seed=seed, epoch=epoch)
        parts = []
        for w in range(0, len(self.shards), self.window):
            members = torch.isin(shard_of, shard_order[w : w + self.window]).nonzero().flatten()
            parts.append(members[torch.randperm(len(members), generator=_window_generator(seed, epoch, w))])
        return torch.cat(parts)

    def batches(self, batch_size: int, *, seed: int, epoch: int, rank: int = 0, world: int = 1,
                drop_last: bool = True, shuffle: bool = True, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        check_share(batch_size, rank, world)
        order = self.order(seed=seed, epoch=epoch, shuffle=shuffle)
        steps = len(self) // batch_size if drop_last else -(-len(self) // batch_size)
        self._warm(order, start, batch_size, rank, world)
        if self.workers == 0 or steps - start <= 1:
            for step in range(start, steps):
                yield self._gather(batch_share(order, step, batch_size, rank=rank, world=world))
            return
        loader = DataLoader(_Steps(self, order, batch_size, rank, world), batch_size=None,
                            sampler=range(start, steps), num_workers=min(self.workers, steps - start),
                            prefetch_factor=PREFETCH)
        for pixels, labels in loader:
            yield self._normalise(pixels), labels

    # reading
    def _warm(self, order: Tensor, start: int, batch_size: int, rank: int, world: int) -> None:
        """Fetch, all at once, the shards this rank reads first from `start` on (within the cache, and
        within the first window): time to first batch is one round trip, not one per shard, and
        loader workers forked after this inherit them instead of fetching each its own copy."""
        share = batch_size // world
        full = order[start * batch_size : len(order) - len(order) % batch_size].view(-1, batch_size)
        if not len(full):
            return
        which = np.searchsorted(self._starts, self.ids[full[:, rank * share : (rank + 1) * share]].numpy().ravel(),
                                side="right") - 1
        _, first = np.unique(which, return_index=True)
        wanted, room = [], self.cache_bytes - self._cached_bytes
        for k in which[np.sort(first)].tolist()[: self.window or None]:
            if k not in self._cache:
                room -= self.shards[k].bytes
                if room < 0:
                    break
                wanted.append(k)
        for lo in range(0, len(wanted), 16):  # 16 requests in flight at a time
            group = wanted[lo : lo + 16]
            for k, loaded in zip(group, load_shards(self.index, [self.shards[k] for k in group])):
                self._admit(k, loaded)

    def _gather(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        pixels, labels = self._gather_pixels(positions)
        return self._normalise(pixels), labels

    def _gather_pixels(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """uint8 pixels fitted to image_size, and labels, at `positions`; a loader worker sends these
        (a quarter of the float32 bytes) and the training process normalises them."""
        ids = self.ids[positions].numpy()
        which = np.searchsorted(self._starts, ids, side="right") - 1
        keep = np.ones(len(ids), dtype=bool)
        labels = np.zeros(len(ids), dtype=np.int64)
        out: np.ndarray | None = None
        for k in np.unique(which).tolist():
            sel = np.flatnonzero(which == k)
            shard = self._shard(k)
            if shard is None:  # corrupt, and the user opted into skipping it
                keep[sel] = False
                self.skipped[self.shards[k].file] = self.skipped.get(self.shards[k].file, 0) + len(sel)
                continue
            rows = ids[sel] - self.shards[k].first_id
            labels[sel] = shard.labels[rows]
            if shard.pixels is not None:
                part = shard.pixels[rows]
            else:
                part = np.stack([self._decode(shard, int(r)) for r in rows])
            if out is None:
                out = np.zeros((len(ids), *part.shape[1:]), dtype=np.uint8)
            out[sel] = part
        if out is None:  # nothing left to read
            empty = torch.zeros(0, self.in_chans, self.image_size, self.image_size, dtype=torch.uint8)
            return empty, torch.zeros(0, dtype=torch.int64)
        return self._fit_batch(torch.from_numpy(out[keep])), torch.from_numpy(labels[keep])

    def _decode(self, shard: LoadedShard, row: int) -> np.ndarray:
        assert shard.data is not None and shard.offsets is not None
        blob = shard.data[shard.offsets[row] : shard.offsets[row + 1]].tobytes()
        return read_image(io.BytesIO(blob), in_chans=self.in_chans, image_size=self.image_size)

    def _fit_batch(self, pixels: Tensor) -> Tensor:
        if self.index.payload == "encoded" or len(pixels) == 0:  # read_image scaled and cropped each image
            return pixels
        return _fit(pixels.numpy(), self.image_size, "pad" if self.index.fit == "pad" else "resize")

    def _shard(self, k: int) -> LoadedShard | None:
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        try:
            loaded: LoadedShard | CorruptShard = load_shard(self.index, self.shards[k])
        except CorruptShard as err:
            loaded = err
        return self._admit(k, loaded)

    def _admit(self, k: int, loaded: LoadedShard | CorruptShard) -> LoadedShard | None:
        """Cache shard k (None for a corrupt one being skipped; a corrupt one otherwise raises)."""
        if isinstance(loaded, CorruptShard):
            if not self.skip_corrupt:
                raise loaded
            log.warning("raysweep: skipping %s (data.skip_corrupt_shards)", loaded)
        kept = loaded if isinstance(loaded, LoadedShard) else None
        self._cache[k] = kept
        self._cached_bytes += kept.nbytes if kept is not None else 0
        while self._cached_bytes > self.cache_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cached_bytes -= old.nbytes if old is not None else 0
        return kept


AUTO_WORKERS = {"pixels": 0, "encoded": 2}  # data.loader_workers 'auto', by the shards' payload


def loader_workers(setting: str | int, payload: str) -> int:
    """The decoding processes a trial's shard loader uses: the setting, or for 'auto' none for decoded
    pixels (a gather is a copy; measured on 2 cores, 2 workers slowed nfnet_t0's step 8-10% while
    in-process reading ran at 150x its rate) and 2 for encoded images, which must be decoded."""
    return AUTO_WORKERS[payload] if setting == "auto" else int(setting)


def cache_bytes(spec: DataSpec) -> int:
    """A process's shard cache: data.shard_cache_mb, else `CACHE_BYTES`."""
    return spec.shard_cache_mb << 20 if spec.shard_cache_mb is not None else CACHE_BYTES


def window_for(setting: str | int, shards: Sequence[ShardInfo], *, cache: int, url: str = "") -> int:
    """The shard window a split is read with: the setting, or for 'auto' 0 (the global order, as in
    memory) when the split's shards fit one process's shard cache, else the most shards that fit it.
    A setting whose window does not fit the cache is kept, with a one-line warning: each step would
    fetch shards the cache has just dropped."""
    if not shards:
        return 0 if setting == "auto" else int(setting)
    total, largest = sum(s.bytes for s in shards), max(s.bytes for s in shards)
    fits = max(1, cache // largest)
    if setting == "auto":
        return 0 if total <= cache else fits
    window = int(setting)
    held = total if window == 0 or window >= len(shards) else window * largest
    if held > cache:
        log.warning("raysweep: data.shard_window %d%s: %s does not fit a process's %s shard cache, so each "
                    "step re-fetches shards; use shard_window auto (here %d) or at most %d",
                    window, f" for {url}" if url else "",
                    f"the split's {_size(total)}" if not window else f"a window of {window} shards of up to {_size(largest)}",
                    _size(cache), fits, fits)
    return window


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def _window_generator(seed: int, epoch: int, window: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, epoch, window + 1]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class _Steps(Dataset):
    """Step s -> this rank's share of global batch s, for a DataLoader whose workers decode steps."""

    def __init__(self, images: ShardImageSet, order: Tensor, batch_size: int, rank: int, world: int) -> None:
        self.images, self.order, self.batch_size, self.rank, self.world = images, order, batch_size, rank, world

    def __len__(self) -> int:
        return (len(self.order) + self.batch_size - 1) // self.batch_size

    def __getitem__(self, step: int) -> tuple[Tensor, Tensor]:
        positions = batch_share(self.order, step, self.batch_size, rank=self.rank, world=self.world)
        return self.images._gather_pixels(positions)


# The registered source -------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardSource(Source):
    name: str
    description: str

    def load(self, spec: DataSpec) -> Splits:
        if not spec.url:
            raise SpecError(f"expected a url for dataset {self.name}, got nothing", key="url")
        try:
            index = read_index(spec.url)
        except OSError as err:  # the store stayed down through every retry
            raise SpecError(str(err), key="url") from None
        train_ids, val_ids = split_indices(index.examples("train"), spec)

        cache = cache_bytes(spec)
        window = window_for(spec.shard_window, index.splits["train"], cache=cache, url=spec.url)

        def view(ids: Tensor, split: str = "train") -> ShardImageSet:
            return ShardImageSet(index, ids, split=split, image_size=spec.image_size,
                                 workers=loader_workers(spec.loader_workers, index.payload), window=window,
                                 skip_corrupt=spec.skip_corrupt_shards, cache_bytes=cache)

        test = view(torch.arange(index.examples("test")), "test") if index.examples("test") else None
        return Splits(name=index.name, train=view(train_ids), val=view(val_ids), num_classes=index.num_classes,
                      in_chans=index.in_chans, image_size=spec.image_size, test=test,
                      class_names=index.class_names)

    def verify(self, spec: DataSpec) -> None:
        """The index agrees with the shard files' names and sizes (one listing; checksums are read with
        the shards, or all at once by `raysweep data inspect --verify`)."""
        try:
            index = read_index(spec.url or "")
            check_shards(index)
        except OSError as err:
            raise SpecError(str(err), key="url") from None
        # warns, before launch, of a window that thrashes the cache
        window_for(spec.shard_window, index.splits["train"], cache=cache_bytes(spec), url=spec.url or "")


def example_ids(images: ShardImageSet, positions: Sequence[int] | Tensor) -> list[int]:
    """The example ids at `positions` of `images` (what tests count shares by)."""
    return images.ids[torch.as_tensor(positions, dtype=torch.long)].tolist()
