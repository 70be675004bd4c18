"""Offline datasets for the sweep: registry, train/validation splits, and batch iteration.

Free of Ray, MLflow and Optuna, so data loading can be tested and reused alone.
"""

from raysweep.data.imagesets import FolderImageSet, ImageSet, TensorImageSet
from raysweep.data.sources import (
    DATASETS,
    FASHION_MNIST_DIR,
    ArraySource,
    FolderSource,
    Source,
    Splits,
    load_splits,
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
