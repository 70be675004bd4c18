"""The shape of a dataset as a plan sees it: sizes, classes, channels, resolution, and whether it
was read or assumed (`data.assume`, for a dry run where the data is not on this machine)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataShape:
    n_train: int
    n_val: int | None  # None: not known (assumed data)
    num_classes: int
    in_chans: int
    image_size: int
    assumed: bool = False  # True: from data.assume, the data was not readable here
