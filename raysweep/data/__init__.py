"""Offline datasets for the sweep: registry, train/validation splits, and batch iteration.

May import: `raysweep.core` and `raysweep.config` (the `data:` section it reads); torch, numpy and
PIL. Free of Ray, MLflow and Optuna, so data loading can be tested and reused alone.
"""

from raysweep.data.imagesets import FolderImageSet, ImageSet, TensorImageSet
from raysweep.data.registry import DATASETS, load_splits
from raysweep.data.sources import (
    FASHION_MNIST_DIR,
    ArraySource,
    FolderSource,
    Source,
    Splits,
    scan_folder,
    split_indices,
)

__all__ = [
    "DATASETS",
    "FASHION_MNIST_DIR",
    "ArraySource",
    "FolderImageSet",
    "FolderSource",
    "ImageSet",
    "Source",
    "Splits",
    "TensorImageSet",
    "load_splits",
    "scan_folder",
    "split_indices",
]
