"""Datasets and splits: sizes, disjointness, determinism, batches and shards, lazy image folders."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from raysweep.config import DataSpec
from raysweep.core.errors import SpecError
from raysweep.data import DATASETS, FASHION_MNIST_DIR, ImageSet, TensorImageSet, load_splits, split_indices
from raysweep.data.sources import _read_mnist5k


def _hashes(images: ImageSet) -> set[str]:
    return {
        hashlib.sha1(x.numpy().tobytes()).hexdigest()
        for x, _ in images.batches(500, seed=0, epoch=0, drop_last=False, shuffle=False)
        for x in x
    }


def _tiny(n: int = 20) -> TensorImageSet:
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    return TensorImageSet(images, torch.arange(n) % 3, torch.arange(n), mean=(0.0,), std=(1 / 255,))


def test_registry_names() -> None:
    from typing import get_args

    from raysweep.config import DatasetName

    # the config names the datasets without importing the data layer: the two lists must agree
    assert set(DATASETS) == set(get_args(DatasetName)) == {"mnist5k", "fashion_mnist", "digits", "image_folder", "shards"}


def test_mnist5k_has_500_of_each_digit() -> None:
    labels = _read_mnist5k(None).labels
    assert len(labels) == 5000 and np.bincount(labels).tolist() == [500] * 10


def test_split_sizes_add_up_and_val_is_held_out() -> None:
    splits = load_splits(DataSpec(dataset="mnist5k", val_fraction=0.1))
    assert (len(splits.train), len(splits.val)) == (4500, 500)
    assert (splits.num_classes, splits.in_chans, splits.image_size, splits.name) == (10, 1, 32, "mnist5k")
    train, val = splits.train, splits.val
    assert isinstance(train, TensorImageSet) and isinstance(val, TensorImageSet)
    assert set(train.indices.tolist()).isdisjoint(val.indices.tolist())
    assert len(set(train.indices.tolist()) | set(val.indices.tolist())) == 5000
    assert not _hashes(train) & _hashes(val)  # no image in both (MNIST-5k has no exact duplicates)


def test_the_split_depends_on_split_seed_only() -> None:
    a = split_indices(1000, DataSpec(split_seed=0))
    b = split_indices(1000, DataSpec(split_seed=0))
    c = split_indices(1000, DataSpec(split_seed=1))
    assert torch.equal(a[1], b[1]) and torch.equal(a[0], b[0])
    assert not torch.equal(a[1].sort().values, c[1].sort().values)


def test_train_subset_keeps_the_first_n_of_the_shuffled_part() -> None:
    full_train, full_val = split_indices(1000, DataSpec())
    train, val = split_indices(1000, DataSpec(train_subset=50))
    assert torch.equal(train, full_train[:50]) and torch.equal(val, full_val)
    with pytest.raises(SpecError, match="train_subset"):
        split_indices(1000, DataSpec(train_subset=901))


def test_images_are_padded_and_normalised() -> None:
    splits = load_splits(DataSpec(dataset="mnist5k", image_size=32))
    x, y = next(splits.train.batches(64, seed=0, epoch=0))
    assert x.shape == (64, 1, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    border = torch.cat([x[..., :2, :].flatten(), x[..., -2:, :].flatten(), x[..., :2].flatten()])
    assert torch.allclose(border, border[0])  # zero padding: the normalised value of a black pixel
    assert abs(float(x.mean())) < 0.3 and 0.7 < float(x.std()) < 1.2


def test_batches_drop_the_last_partial_batch() -> None:
    data = _tiny(20)
    assert data.steps_per_epoch(6) == 3
    assert [len(y) for _, y in data.batches(6, seed=0, epoch=0)] == [6, 6, 6]
    assert [len(y) for _, y in data.batches(6, seed=0, epoch=0, drop_last=False)] == [6, 6, 6, 2]


def test_order_depends_on_seed_and_epoch() -> None:
    data = _tiny(20)

    def order(seed: int, epoch: int) -> list[float]:
        return torch.cat([x[:, 0, 0, 0] for x, _ in data.batches(20, seed=seed, epoch=epoch)]).tolist()

    assert order(0, 0) == order(0, 0)
    assert order(0, 0) != order(0, 1) and order(0, 1) != order(1, 0)
    assert sorted(order(3, 2)) == list(range(20))
    unshuffled = [x[:, 0, 0, 0].tolist() for x, _ in data.batches(10, seed=0, epoch=0, shuffle=False)]
    assert unshuffled == [list(range(10)), list(range(10, 20))]


def test_shards_are_disjoint_and_cover_each_global_batch() -> None:
    data = _tiny(40)
    glob = [x[:, 0, 0, 0].tolist() for x, _ in data.batches(8, seed=5, epoch=1)]
    shards = [
        [x[:, 0, 0, 0].tolist() for x, _ in data.batches(8, seed=5, epoch=1, rank=r, world=4)]
        for r in range(4)
    ]
    for step, batch in enumerate(glob):
        parts = [shards[r][step] for r in range(4)]
        assert all(len(p) == 2 for p in parts)
        assert sorted(v for p in parts for v in p) == sorted(batch)
    with pytest.raises(ValueError, match="divisible"):
        next(data.batches(6, seed=0, epoch=0, rank=0, world=4))
    with pytest.raises(ValueError, match="rank"):
        next(data.batches(8, seed=0, epoch=0, rank=4, world=4))


def test_digits_are_resized_up() -> None:
    splits = load_splits(DataSpec(dataset="digits", image_size=16))
    assert len(splits.train) + len(splits.val) == 1797
    assert next(splits.val.batches(4, seed=0, epoch=0))[0].shape == (4, 1, 16, 16)


def test_a_path_for_a_dataset_without_one_is_an_error() -> None:
    with pytest.raises(SpecError, match="path"):
        load_splits(DataSpec(dataset="mnist5k", path="/tmp"))


def _write_folder(root: Path, mode: str, sizes: dict[str, int]) -> None:
    rng = np.random.default_rng(0)
    for name, count in sizes.items():
        label = sorted(sizes).index(name)  # classes are numbered in name order
        (root / name).mkdir(parents=True)
        for i in range(count):
            shape = (20, 24) if mode == "L" else (20, 24, 3)
            pixels = np.clip(rng.normal(40 + 80 * label, 10, size=shape), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, mode=mode).save(root / name / f"{i:03d}.{'png' if i % 2 else 'jpg'}")
    # hidden entries are not data (an empty folder or a stray file is an error: tests/cli/test_bad_input.py)
    (root / ".ipynb_checkpoints").mkdir()
    (root / min(sizes) / ".DS_Store").write_bytes(b"\0\1")


@pytest.mark.parametrize(("mode", "chans"), [("L", 1), ("RGB", 3)])
def test_image_folder_reads_lazily(tmp_path: Path, mode: str, chans: int) -> None:
    _write_folder(tmp_path, mode, {"cat": 6, "ant": 4, "bee": 10})
    splits = load_splits(
        DataSpec(dataset="image_folder", path=str(tmp_path), val_fraction=0.25, image_size=16)
    )
    assert splits.class_names == ("ant", "bee", "cat") and splits.num_classes == 3
    assert (len(splits.train), len(splits.val), splits.in_chans) == (15, 5, chans)
    x, y = next(splits.train.batches(5, seed=0, epoch=0))
    assert x.shape == (5, chans, 16, 16) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1  # 0.5 / 0.5 normalisation
    # brightness encodes the class, so labels must travel with their own pixels
    for x, y in splits.train.batches(15, seed=0, epoch=0):
        means = [float(x[y == k].mean()) for k in range(3) if (y == k).any()]
        assert len(means) >= 2 and means == sorted(means), means
    xi, yi = splits.val[0]
    assert xi.shape == (chans, 16, 16) and yi.ndim == 0


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such folder"):
        load_splits(DataSpec(dataset="image_folder", path=str(tmp_path / "missing")))
    with pytest.raises(SpecError, match="at least 2 class folders"):
        load_splits(DataSpec(dataset="image_folder", path=str(tmp_path)))


def test_fashion_mnist_missing_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_splits(DataSpec(dataset="fashion_mnist", path=str(tmp_path)))


@pytest.mark.skipif(
    not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)",
)
def test_fashion_mnist_loads_60k_and_a_test_split() -> None:
    splits = load_splits(DataSpec(dataset="fashion_mnist", val_fraction=0.1))
    assert (len(splits.train), len(splits.val)) == (54_000, 6_000)
    assert splits.test is not None and len(splits.test) == 10_000
    x, y = next(splits.test.batches(100, seed=0, epoch=0, shuffle=False))
    assert x.shape == (100, 1, 32, 32) and set(y.tolist()) <= set(range(10))
