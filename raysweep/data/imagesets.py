"""Image sets the training loop draws batches from: one interface, in-memory or read on demand.

`ImageSet.batches` owns the data order. The global order of an epoch depends only on (seed, epoch),
so every rank of a worker group computes the same permutation and takes its own contiguous shard
of each global batch; a restarted trial replays the same order. Subclasses only say how to fetch
the examples at some indices (`_gather`), so an in-memory set and a folder read lazily behave alike.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor
from torch.utils.data import Dataset


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    # SeedSequence mixes (seed, epoch) into independent streams: seed 1 epoch 0 and seed 0
    # epoch 1 must not share an order, which a plain seed + epoch would give them.
    state = np.random.SeedSequence([seed, epoch]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def epoch_order(n: int, *, seed: int, epoch: int, shuffle: bool = True) -> Tensor:
    """The global order of one epoch over n examples: a function of (seed, epoch) alone.

    Every loader (in memory, a folder, shards) draws its batches from this, so they agree step by step.
    """
    return torch.randperm(n, generator=_epoch_generator(seed, epoch)) if shuffle else torch.arange(n)


def batch_share(order: Tensor, step: int, batch_size: int, *, rank: int, world: int) -> Tensor:
    """Rank `rank`'s contiguous share of global batch `step` of `order` (positions into the set)."""
    return torch.tensor_split(order[step * batch_size : (step + 1) * batch_size], world)[rank]


def check_share(batch_size: int, rank: int, world: int) -> None:
    if batch_size < 1 or world < 1 or not 0 <= rank < world:
        raise ValueError(
            f"`batch_size >= 1, world >= 1 and 0 <= rank < world` must hold, "
            f"but got (batch_size={batch_size}, rank={rank}, world={world})"
        )
    if batch_size % world:
        raise ValueError(f"expected a batch size divisible by world={world}, got {batch_size}")


def read_image(file: str | Path | IO[bytes], *, in_chans: int, image_size: int) -> np.ndarray:
    """One image file (a path or its bytes) as uint8 [C, size, size]: converted to 1 (grayscale) or 3
    (RGB) channels, then scaled and centre-cropped to a square (aspect ratio kept)."""
    with Image.open(file) as opened:
        img = opened.convert("L" if in_chans == 1 else "RGB")
    img = ImageOps.fit(img, (image_size, image_size), Image.Resampling.BILINEAR)
    pixels = np.asarray(img, dtype=np.uint8)
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


class ImageSet(Dataset, ABC):
    """Labelled images normalised to float32 [C, H, W]; also a torch `Dataset` for DataLoaders."""

    in_chans: int
    image_size: int

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def _gather(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """Examples at `positions` (0 <= p < len) as (x float32 [B, C, H, W], y int64 [B])."""

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} examples")
        x, y = self._gather(torch.tensor([i % len(self)]))
        return x[0], y[0]

    def steps_per_epoch(self, batch_size: int) -> int:
        """Full global batches in one pass (the last partial batch is dropped in training)."""
        return len(self) // batch_size

    def batches(
        self,
        batch_size: int,
        *,
        seed: int,
        epoch: int,
        rank: int = 0,
        world: int = 1,
        drop_last: bool = True,
        shuffle: bool = True,
        start: int = 0,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """One epoch of global batches of `batch_size`, each split into `world` contiguous shards.

        This rank gets shard `rank` of each global batch (batch_size // world examples). With
        drop_last=False the last partial batch is split as evenly as it goes; a rank may then get
        an empty batch, which it still receives so that every rank takes the same number of steps.
        start: the first step to yield; resuming mid-epoch seeks there at once instead of replaying.
        """
        check_share(batch_size, rank, world)
        n = len(self)
        order = epoch_order(n, seed=seed, epoch=epoch, shuffle=shuffle)
        steps = n // batch_size if drop_last else -(-n // batch_size)
        for step in range(start, steps):
            yield self._gather(batch_share(order, step, batch_size, rank=rank, world=world))


class _Normalised(ImageSet):
    """Shared by the concrete sets: uint8 pixels -> (x / 255 - mean) / std per channel, in one FMA."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], in_chans: int, image_size: int) -> None:
        if len(mean) != in_chans or len(std) != in_chans:
            raise ValueError(f"expected {in_chans} channel means and stds, got mean={mean}, std={std}")
        self.in_chans = in_chans
        self.image_size = image_size
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self._scale = torch.tensor([1 / (255 * s) for s in self.std]).view(1, -1, 1, 1)
        self._shift = torch.tensor([-m / s for m, s in zip(self.mean, self.std)]).view(1, -1, 1, 1)

    def _normalise(self, pixels: Tensor) -> Tensor:
        return torch.addcmul(self._shift, pixels.float(), self._scale)


class TensorImageSet(_Normalised):
    """A view on decoded uint8 images [N, C, H, W] held in memory, through an index map.

    Train and validation views share one cached array; a batch is a tensor index, no DataLoader.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        indices: Tensor,
        *,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[2] != images.shape[3]:
            raise ValueError(
                f"expected square uint8 images [N, C, H, W], got {images.dtype} {tuple(images.shape)}"
            )
        if len(labels) != len(images):
            raise ValueError(f"expected one label per image ({len(images)}), got {len(labels)}")
        super().__init__(mean, std, in_chans=images.shape[1], image_size=images.shape[2])
        self._images = images
        self._labels = labels.long()
        self.indices = indices.long()

    def __len__(self) -> int:
        return len(self.indices)

    def _gather(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        rows = self.indices[positions]
        return self._normalise(self._images[rows]), self._labels[rows]


class FolderImageSet(_Normalised):
    """Image files decoded on demand, so a folder far larger than memory works.

    Each image is converted to 1 (grayscale) or 3 (RGB) channels, then scaled and centre-cropped
    to a square of `image_size` (aspect ratio kept).
    """

    def __init__(
        self,
        files: Sequence[str | Path],
        labels: Tensor,
        indices: Tensor,
        *,
        in_chans: int,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        if in_chans not in (1, 3):
            raise ValueError(f"expected in_chans 1 or 3, got {in_chans}")
        if len(labels) != len(files):
            raise ValueError(f"expected one label per file ({len(files)}), got {len(labels)}")
        super().__init__(mean, std, in_chans=in_chans, image_size=image_size)
        self._files = tuple(str(f) for f in files)
        self._labels = labels.long()
        self.indices = indices.long()

    def __len__(self) -> int:
        return len(self.indices)

    def _read(self, path: str) -> np.ndarray:
        return read_image(path, in_chans=self.in_chans, image_size=self.image_size)

    def _gather(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        rows = self.indices[positions]
        size = (len(rows), self.in_chans, self.image_size, self.image_size)
        pixels = (
            np.stack([self._read(self._files[r]) for r in rows.tolist()])
            if len(rows)
            else np.zeros(size, np.uint8)
        )
        return self._normalise(torch.from_numpy(pixels)), self._labels[rows]
