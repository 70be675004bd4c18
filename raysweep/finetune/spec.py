"""The search space's `finetune:` section: a frozen, validated `FinetuneSpec`.

A fine-tuning sweep is written as its pre-training search space plus a `finetune:` section, so the
file is the whole experiment (big_vision's rule): the ladder the checkpoints were trained on, the
batch size, optimiser, resources and tracking are the sweep's own, and the section says what
differs. Every key, its default and why:

```yaml
finetune:
  pretrained:                # where the checkpoints come from (like `raysweep analyze`)
    experiment: null         # an MLflow experiment at the tracking URI; null: this file's tracking.experiment
    sweeps: []               # only these sweeps (parent run names, globs); []: every sweep in it
  select:                    # which checkpoints (raysweep.finetune.select)
    rule: frontier           # frontier: the paper's comparison at each frontier point; cells: the cells below
    neighbours: true         # frontier: also each point's larger- and smaller-model neighbour
    larger_lr: false         # also the next larger LR each frontier point's cell ran to the end
    within: 4.0              # a neighbour's compute within this factor of the point's
    cells: []                # rule cells: model@epochs names, each at its best LR
  data: {dataset: digits}    # the downstream data, as a sweep's `data:` (other classes; image_size may differ)
  epochs: 2                  # required: the budget, in passes over the downstream training split
  lr: {base: 0.1, factor: 2, low: 0.025, high: 0.4}   # required: the fine-tuning LR grid
  searcher: grid             # grid: every LR per checkpoint; monotone: the 2-trial rule per checkpoint, from lr.base
                             # (no bound across checkpoints: the prior says nothing across them)
  seeds: 3                   # fine-tuning runs per (checkpoint, LR), seeds 0..seeds-1
  batch_size: null           # null: the sweep's batch_size
  head: {init: zero}         # zero: the new classifier starts at zero (big_vision); timm: timm's own init
  repeated_augmentation: 1   # k: each batch holds k augmented copies of batch/k images (1: off); k > 1
                             # runs every point with k and again without (k=1), for the comparison
  augment: {crop: null, pad: 4, flip: null}   # null: what suits the data (no flips for digits)
  baseline: true             # also train each chosen rung from scratch at the same budget and LR grid
  experiment: null           # the fine-tuning sweep's MLflow experiment; null: "<pre-training experiment>-finetune"
```

Unknown keys, wrong types and impossible values are one-line `SpecError`s naming the file and the
dotted key (`finetune.select.rule`), through the same builder as the sweep's sections. Any key can be
overridden on the command line, `raysweep finetune SPACE --set finetune.epochs=4 --set batch_size=32`
(`raysweep run` accepts and checks `--set finetune.*` too), each checked against these fields. Checks that
need the data or a built model (the resolution a model can take) belong to the plan.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from raysweep.config import (
    MAX_EPOCHS,
    DataSpec,
    LrSpec,
    SweepSpec,
    apply_overrides,
    build,
    non_empty,
    positive,
    read_space,
    show,
    spec_from_dict,
)
from raysweep.core.errors import SpecError
from raysweep.finetune.repeat_aug import Augment, default_augment
from raysweep.finetune.select import WITHIN_DEFAULT, SelectRule

SECTION = "finetune"
MAX_SEEDS = 100  # more fine-tuning seeds per point than this is a typo, not a study
MAX_REPEATS = 64  # DeiT uses 3; a batch of 64 copies of one image teaches nothing


@dataclass(frozen=True)
class PretrainedSpec:
    experiment: str | None = None  # an MLflow experiment at the tracking URI; None: this file's tracking.experiment
    sweeps: tuple[str, ...] = ()  # sweep (parent run) names or globs; empty: every sweep of the experiment

    def validate(self) -> None:
        if self.experiment is not None and (not self.experiment.strip() or not self.experiment.isprintable()):
            raise SpecError(f"expected an MLflow experiment name, got {show(self.experiment)}", key="experiment")
        for i, s in enumerate(self.sweeps):
            if not s.strip() or not s.isprintable():
                raise SpecError(f"expected a sweep name or glob, got {show(s)}", key=f"sweeps[{i}]")


@dataclass(frozen=True)
class SelectSpec:
    rule: Literal["frontier", "cells"] = "frontier"  # the paper's comparison, or the cells named below
    neighbours: bool = True  # frontier: also the larger- and smaller-model neighbour of each point
    larger_lr: bool = False  # also the next larger LR each frontier point's cell ran
    within: float = WITHIN_DEFAULT  # a neighbour's compute within this factor of the point's
    cells: tuple[str, ...] = ()  # rule cells: model@epochs

    def validate(self) -> None:
        if not self.within >= 1:
            raise SpecError(f"expected a factor >= 1, got {self.within!r}", key="within")
        if self.rule == "cells":
            non_empty(self.cells, "cells")
        elif self.cells:
            raise SpecError(f"expected no cells with rule frontier (set rule: cells to name them), got "
                            f"{list(self.cells)}", key="cells")
        for i, cell in enumerate(self.cells):
            model, at, epochs = cell.rpartition("@")
            try:
                ok = bool(model and at) and math.isfinite(float(epochs)) and float(epochs) > 0
            except ValueError:
                ok = False
            if not ok:
                raise SpecError(f"expected a cell name model@epochs (e.g. nfnet_t1@2), got {show(cell)}",
                                key=f"cells[{i}]")

    def rule_of(self) -> SelectRule:
        return SelectRule(rule=self.rule, neighbours=self.neighbours, larger_lr=self.larger_lr, within=self.within,
                          cells=self.cells)


@dataclass(frozen=True)
class HeadSpec:
    # zero: the new classifier's weights and bias start at 0 (big_vision's transfer configs), so every
    # class starts at the same logit; timm: the fresh head's own initialisation
    init: Literal["zero", "timm"] = "zero"


@dataclass(frozen=True)
class AugmentSpec:
    crop: Literal["pad", "resized", "none"] | None = None  # None: pad for the built-in sets, resized for a folder
    pad: int = 4  # pad-and-crop: translate by up to this many pixels
    flip: bool | None = None  # None: by the data (never for digits)

    def validate(self) -> None:
        if self.pad < 0:
            raise SpecError(f"expected an integer >= 0, got {self.pad!r}", key="pad")

    def for_data(self, dataset: str) -> Augment:
        base = default_augment(dataset)
        return Augment(crop=self.crop or base.crop, pad=self.pad,
                       flip=base.flip if self.flip is None else self.flip)


@dataclass(frozen=True)
class FinetuneSpec:
    data: DataSpec  # the downstream data, as a sweep's `data:`
    epochs: float  # the fine-tuning budget, in passes over the downstream training split
    lr: LrSpec  # the fine-tuning LR grid (no default: fine-tuning LRs are not pre-training's)
    pretrained: PretrainedSpec = field(default_factory=PretrainedSpec)
    select: SelectSpec = field(default_factory=SelectSpec)
    searcher: Literal["grid", "monotone"] = "grid"  # per checkpoint: every LR, or the paper's 2-trial rule
    seeds: int = 3  # fine-tuning runs per (checkpoint, LR): the paired test over seeds needs several
    batch_size: int | None = None  # None: the sweep's batch_size
    head: HeadSpec = field(default_factory=HeadSpec)
    repeated_augmentation: int = 1  # k copies of batch/k images per batch (the paper used it); 1: off
    augment: AugmentSpec = field(default_factory=AugmentSpec)
    baseline: bool = True  # each chosen rung also trained from scratch at this budget: the gain is a number
    experiment: str | None = None  # the MLflow experiment of the fine-tuning sweep; None: "<pre-training's>-finetune"

    def validate(self) -> None:
        positive(self.epochs, "epochs")
        if self.epochs > MAX_EPOCHS:
            raise SpecError(f"expected an epoch budget of at most {MAX_EPOCHS:g}, got {self.epochs:g}", key="epochs")
        if not 1 <= self.seeds <= MAX_SEEDS:
            raise SpecError(f"expected an integer in [1, {MAX_SEEDS}], got {self.seeds!r}", key="seeds")
        if self.batch_size is not None:
            positive(self.batch_size, "batch_size")
        if self.experiment is not None and (not self.experiment.strip() or not self.experiment.isprintable()):
            raise SpecError(f"expected an MLflow experiment name, got {show(self.experiment)}", key="experiment")
        if not 1 <= self.repeated_augmentation <= MAX_REPEATS:
            raise SpecError(f"expected an integer in [1, {MAX_REPEATS}], got {self.repeated_augmentation!r}",
                            key="repeated_augmentation")

    def batch(self, sweep: SweepSpec) -> int:
        return self.batch_size or sweep.batch_size

    def repeat_values(self) -> tuple[int, ...]:
        """The k each checkpoint is fine-tuned with: k and 1 (without) when repeated augmentation is on,
        so that its effect is a number, as the paper reports both (90.3% and 90.4%)."""
        return (1, self.repeated_augmentation) if self.repeated_augmentation > 1 else (1,)

    def augmentation(self) -> Augment:
        return self.augment.for_data(self.data.dataset)


@dataclass(frozen=True)
class FinetuneSpace:
    """A fine-tuning search space: the pre-training sweep's spec and its `finetune:` section."""

    sweep: SweepSpec
    finetune: FinetuneSpec
    file: str

    @property
    def experiment(self) -> str:
        """The MLflow experiment the checkpoints are read from."""
        return self.finetune.pretrained.experiment or self.sweep.tracking.experiment


def finetune_from_dict(raw: Mapping[str, Any], *, file: str = "<dict>") -> FinetuneSpace:
    """The sweep and its `finetune:` section from a search space's top-level mapping; one-line errors."""
    if SECTION not in raw:
        raise SpecError(f"expected a {SECTION}: section (what to fine-tune, on which data), got none; see "
                        f"raysweep/finetune/spec.py for its keys", file=file, key=SECTION)
    rest = {k: v for k, v in raw.items() if k != SECTION}
    sweep = spec_from_dict(rest, file=file)
    try:
        ft = build(FinetuneSpec, raw[SECTION], SECTION)
        _check_with_sweep(ft, sweep)
    except SpecError as err:
        raise err.located(file=file) from None
    return FinetuneSpace(sweep=sweep, finetune=ft, file=file)


def _check_with_sweep(ft: FinetuneSpec, sweep: SweepSpec) -> None:
    batch = ft.batch(sweep)
    key = f"{SECTION}.batch_size" if ft.batch_size else "batch_size"
    if batch % ft.repeated_augmentation:
        raise SpecError(f"expected repeated_augmentation to divide the batch size {batch}, got "
                        f"{ft.repeated_augmentation}", key=f"{SECTION}.repeated_augmentation")
    workers = max(1, sweep.resources.workers_per_trial)
    if batch % workers:
        raise SpecError(f"expected a multiple of resources.workers_per_trial ({workers}), got {batch}", key=key)
    tpu = sweep.resources.tpu
    if tpu is not None and batch % tpu.chips():
        raise SpecError(f"expected a multiple of the {tpu.chips()} chips of a {tpu.pod_type()} slice, got {batch}",
                        key=key)


def load_finetune(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> FinetuneSpace:
    """Read, override (`--set finetune.epochs=3`, `--set batch_size=32`) and validate a fine-tuning
    search space (YAML): `finetune.*` keys are checked against `FinetuneSpec`'s fields, the others
    against the sweep's."""
    file = str(path)
    raw = read_space(path)
    if SECTION not in raw:
        finetune_from_dict(raw, file=file)  # says the section is missing, before any override adds one
    try:
        raw = apply_overrides(raw, overrides, file=file, sections={SECTION: FinetuneSpec})
    except RecursionError:  # copying or quoting a value nested thousands deep
        raise SpecError("expected a search space, got lists or mappings nested too deeply", file=file) from None
    return finetune_from_dict(raw, file=file)
