"""Repeated augmentation: each batch holds k augmented copies of batch/k distinct images.

The idea of DeiT's and timm's `RepeatAugSampler` (Hoffer et al. 2020, "Augment your batch"; the
paper fine-tunes with it), kept inside one global batch rather than spread over ranks:

- **Order.** Epoch e draws a permutation of the n training images from (seed, e), by the same
  derivation as `ImageSet.batches`, so k=1 is exactly the plain order. Step j of the epoch takes
  the next batch/k images of that permutation and repeats each k times, side by side.
- **Budget.** Counted in examples processed, as every raysweep budget is (`plan_steps`): an epoch
  is still n // batch steps of `batch` examples, so a run costs the same FLOPs with and without
  repeats. With k copies, an epoch shows n/k distinct images k times each (DeiT's choice too);
  the permutation changes every epoch, so the images not shown in one epoch come up in others.
- **Determinism and resumption.** A global step s is epoch s // steps_per_epoch, position
  s % steps_per_epoch; its images and every copy's augmentation follow from (seed, epoch,
  position) alone, so a run resumed at step s reads exactly the batches it would have read, and
  the data-order digest over (x, y) (the loop's) covers the repeats and the augmentations.
- **Augmentations.** Real ones, per copy, drawn for the whole global batch (a rank applies its
  shard's), documented in `Augment`: a pad-and-crop (translate by up to `pad` pixels, the edge
  pixels replicated), or a random-resized crop (torchvision's sampling of area and aspect), and a
  horizontal flip only where the data allows one (`default_augment`: never for digits).

Pure torch (no Ray, MLflow or Optuna).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from raysweep.core.errors import SpecError

_AUGMENT_STREAM: Final = 0x41554721  # keeps the augmentation draws apart from the order's

# Datasets whose images change meaning when mirrored: a flipped 2 or 7 is not a digit.
NO_FLIP: Final = frozenset({"mnist5k", "digits"})

Gather = Callable[[Tensor], tuple[Tensor, Tensor]]  # positions -> (x [B, C, H, W] float, y [B])


def _generator(*words: int) -> torch.Generator:
    # SeedSequence mixes the words into independent streams (as ImageSet's epoch generator does)
    state = np.random.SeedSequence(list(words)).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


@dataclass(frozen=True)
class Augment:
    """The augmentation every copy gets, drawn independently per copy.

    crop "pad": pad by `pad` pixels on each side (edge pixels replicated, so a digit's black
    background stays black) and cut the original size back out at a random offset, a translation
    by up to `pad` pixels; "resized": a random box of `scale` of the area and an aspect ratio in
    `ratio` (log-uniform), resized back to the original size bilinearly (torchvision's
    RandomResizedCrop sampling, 10 tries, then the whole image); "none": no crop.
    flip: mirror left-right with probability 1/2.
    """

    crop: Literal["pad", "resized", "none"] = "pad"
    pad: int = 4  # CIFAR's standard translation at 32x32
    scale: tuple[float, float] = (0.35, 1.0)  # big_vision's inception_crop lower bound for small images
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = False

    def draw(self, n: int, size: int, gen: torch.Generator) -> Tensor:
        """Per-image parameters [n, 5] (top, left, height, width, flip), in the padded frame for "pad"."""
        out = torch.zeros(n, 5, dtype=torch.long)
        out[:, 2:4] = size
        if self.crop == "pad" and self.pad:
            out[:, 0:2] = torch.randint(0, 2 * self.pad + 1, (n, 2), generator=gen)
        elif self.crop == "resized":
            for i in range(n):
                out[i, :4] = torch.tensor(self._box(size, gen))
        if self.flip:
            out[:, 4] = torch.randint(0, 2, (n,), generator=gen)
        return out

    def _box(self, size: int, gen: torch.Generator) -> tuple[int, int, int, int]:
        area = size * size
        lo, hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(10):
            u = torch.rand(4, generator=gen, dtype=torch.float64).tolist()
            target = area * (self.scale[0] + u[0] * (self.scale[1] - self.scale[0]))
            aspect = math.exp(lo + u[1] * (hi - lo))
            w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
            if 0 < w <= size and 0 < h <= size:
                return int(u[2] * (size - h + 1)), int(u[3] * (size - w + 1)), h, w
        return 0, 0, size, size

    def apply(self, x: Tensor, params: Tensor) -> Tensor:
        """The images [B, C, H, W] augmented by `params` (from `draw`), the same shape."""
        size = x.shape[-1]
        if self.crop == "pad" and self.pad:
            x = F.pad(x, (self.pad,) * 4, mode="replicate")
        out = []
        for img, (top, left, h, w, flip) in zip(x, params.tolist(), strict=True):
            crop = img[:, top : top + h, left : left + w]
            if (h, w) != (size, size):
                crop = F.interpolate(crop[None], size=(size, size), mode="bilinear", align_corners=False)[0]
            out.append(crop.flip(-1) if flip else crop)
        return torch.stack(out) if out else x[:0]


def default_augment(dataset: str) -> Augment:
    """What suits the data: a 4-pixel translation for the built-in small images (no flip for digits),
    a random-resized crop with flips for an image folder of natural images."""
    if dataset == "image_folder":
        return Augment(crop="resized", flip=True)
    return Augment(crop="pad", pad=4, flip=dataset not in NO_FLIP)


@dataclass(frozen=True)
class RepeatedOrder:
    """Which training images each global step reads, with `repeats` copies of each (k)."""

    n: int  # training examples
    batch_size: int  # global batch
    repeats: int  # k: copies of each distinct image in a batch (1: the plain order)
    seed: int

    def __post_init__(self) -> None:
        if isinstance(self.repeats, bool) or self.repeats < 1 or self.batch_size % self.repeats:
            raise SpecError(f"expected repeated_augmentation to be an integer >= 1 dividing the batch size "
                            f"{self.batch_size}, got {self.repeats!r}", key="finetune.repeated_augmentation")
        if self.n < self.batch_size:
            raise SpecError(f"expected at least one batch ({self.batch_size}) of training examples, got {self.n}",
                            key="finetune.data")

    @property
    def distinct(self) -> int:
        """Distinct images per batch."""
        return self.batch_size // self.repeats

    @property
    def steps_per_epoch(self) -> int:
        """As without repeats: an epoch is n examples processed (`plan_steps`' steps_per_epoch)."""
        return self.n // self.batch_size

    def positions(self, step: int) -> Tensor:
        """The training-set positions global step `step` reads (each repeated k times, side by side)."""
        epoch, j = divmod(step, self.steps_per_epoch)
        perm = torch.randperm(self.n, generator=_generator(self.seed, epoch))
        return perm[j * self.distinct : (j + 1) * self.distinct].repeat_interleave(self.repeats)

    def augment_generator(self, step: int) -> torch.Generator:
        epoch, j = divmod(step, self.steps_per_epoch)
        return _generator(self.seed, epoch, j, _AUGMENT_STREAM)


def repeated_batches(gather: Gather, order: RepeatedOrder, augment: Augment | None, *, start: int = 0,
                     stop: int | None = None, rank: int = 0, world: int = 1) -> Iterator[tuple[Tensor, Tensor]]:
    """This rank's shard of global steps start, start+1, ... (until `stop`), augmented per copy.

    Resuming at step s yields exactly what the uninterrupted run read from step s on.
    """
    if order.batch_size % world or not 0 <= rank < world:
        raise ValueError(f"`batch_size % world == 0 and 0 <= rank < world` must hold, but got "
                         f"(batch_size={order.batch_size}, rank={rank}, world={world})")
    step = start
    while stop is None or step < stop:
        shard = torch.tensor_split(torch.arange(order.batch_size), world)[rank]
        x, y = gather(order.positions(step)[shard])
        if augment is not None:
            params = augment.draw(order.batch_size, x.shape[-1], order.augment_generator(step))
            x = augment.apply(x, params[shard])
        yield x, y
        step += 1
