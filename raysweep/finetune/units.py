"""The fine-tuning trials on the sweep's machinery: units, their spec, and where each trial starts.

A fine-tuning sweep runs on the same Ray Tune + Ray Train machinery as a pre-training sweep (devices,
TPU slices, retries, resumption, the journal, redaction). What differs is described here as data:

- a **unit** is one thing whose fine-tuning LRs the searcher tries: a chosen checkpoint (or, for the
  from-scratch baseline, a rung), a fine-tuning seed and repeated augmentation's k. The searcher's
  lattice has one "model" per unit (its `name`) and the one fine-tuning budget; a trial is
  (unit, LR). `Unit.to_dict` travels in the trial's config (`TrialConfig.finetune`), so a trial's
  durable key (`FinetuneKey`) holds the source trial's key, its seed and its k;
- `trial_spec` is the sweep spec a fine-tuning trial trains under: the pre-training's ladder,
  recipe and resources, the downstream data, the fine-tuning batch, budget and LR grid, the
  fine-tuning experiment;
- `FinetuneStart` is where a trial starts (the checkpoint's backbone with a new head, or a fresh
  model for the baseline) and what it reads (repeated, augmented batches), plugged into the
  training loop (`raysweep.train.loop.Start`); the loop's schedule, checkpoints, resumption and
  data-order digest are pre-training's.

Pure torch (no Ray, MLflow or Optuna): `finetune_loop_per_worker` is the Ray Train entry only
because it hands `FinetuneStart` to the shared one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from raysweep.config import SweepSpec
from raysweep.config.trial import TrialConfig
from raysweep.core.records import M, format_epochs
from raysweep.finetune.plan import FinetunePlan
from raysweep.finetune.repeat_aug import Augment, RepeatedOrder, repeated_batches
from raysweep.finetune.spec import FinetuneSpace
from raysweep.models import build_model, ladder_of


@dataclass(frozen=True)
class Unit:
    """One (checkpoint or baseline rung, seed, k): the searcher tries its fine-tuning LRs."""

    name: str  # its "model" in the searcher's lattice
    model: str  # the rung
    seed: int  # the fine-tuning seed (initialisation of a baseline, data order, augmentation)
    repeats: int  # repeated augmentation's k
    head_init: str  # zero | timm
    augment: tuple[str, int, bool]  # Augment's (crop, pad, flip)
    # the source checkpoint (all empty or NaN for the from-scratch baseline)
    source_trial_key: str = ""
    source_run: str = ""
    source_cell: str = ""
    source_lr: float = math.nan
    source_shape: tuple[int, int, int] = (0, 0, 0)  # (classes, channels, size) the source was built at
    checkpoint: str = ""
    checkpoint_sha256: str = ""
    pretrain_loss: float = math.nan
    pretrain_flops: float = 0.0
    pretrain_core_hours: float = 0.0
    reasons: tuple[tuple[str, str], ...] = ()  # (why, frontier point): why the checkpoint was chosen

    @property
    def baseline(self) -> bool:
        return not self.source_trial_key

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["augment"], d["source_shape"] = list(self.augment), list(self.source_shape)
        d["reasons"] = [list(r) for r in self.reasons]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Unit:
        crop, pad, flip = d["augment"]
        return cls(**{**d, "augment": (str(crop), int(pad), bool(flip)),
                      "source_shape": tuple(int(v) for v in d["source_shape"]),  # type: ignore[arg-type]
                      "reasons": tuple((str(w), str(p)) for w, p in d["reasons"])})


def unit_name(model: str, seed: int, repeats: int, *, epochs: float | None = None, lr: float | None = None) -> str:
    """A unit's name: `<rung>_e<epochs>_lr<lr>_s<seed>_k<k>` from a checkpoint, `<rung>_scratch_s<seed>_k<k>`."""
    what = "scratch" if epochs is None else f"e{format_epochs(epochs)}_lr{lr:g}"
    return f"{model}_{what}_s{seed}_k{repeats}"


def units_of(plan: FinetunePlan) -> tuple[Unit, ...]:
    """The plan's units, in plan order: each chosen checkpoint's, then the baseline's."""
    ft = plan.space.finetune
    aug = ft.augmentation()
    common = {"head_init": ft.head.init, "augment": (aug.crop, aug.pad, aug.flip)}
    out: dict[str, Unit] = {}
    for c in plan.choices:
        ch = c.choice
        reasons = tuple((str(r.why), r.point) for r in ch.reasons)
        for t in c.trials:
            src = t.checkpoint
            assert src is not None, "a chosen checkpoint's trial has its pre-training row"
            name = unit_name(ch.model, t.seed, t.repeats, epochs=ch.epochs, lr=ch.lr)
            shape = plan.sources[ch.model]
            out.setdefault(name, Unit(
                name=name, model=ch.model, seed=t.seed, repeats=t.repeats, **common,  # type: ignore[arg-type]
                source_trial_key=src.trial_key, source_run=src.run_id, source_cell=ch.cell, source_lr=ch.lr,
                source_shape=(shape.num_classes, shape.in_chans, shape.image_size), checkpoint=src.checkpoint,
                checkpoint_sha256=src.checkpoint_sha256, pretrain_loss=src.val_loss,
                pretrain_flops=float(src.flops or 0.0), pretrain_core_hours=float(src.core_hours or 0.0),
                reasons=reasons))
    for t in plan.baseline:
        name = unit_name(t.model, t.seed, t.repeats)
        out.setdefault(name, Unit(name=name, model=t.model, seed=t.seed, repeats=t.repeats, **common))  # type: ignore[arg-type]
    return tuple(out.values())


def trial_spec(space: FinetuneSpace, *, name: str | None = None) -> SweepSpec:
    """The spec fine-tuning trials train under: pre-training's ladder, recipe and resources; the
    downstream data, batch, budget and LR grid; the fine-tuning searcher and experiment."""
    sweep, ft = space.sweep, space.finetune
    experiment = ft.experiment or f"{sweep.tracking.experiment}-finetune"
    return dataclasses.replace(
        sweep, name=name or f"{sweep.name}_finetune", data=ft.data, batch_size=ft.batch(sweep),
        epochs=(ft.epochs,), lr=ft.lr,
        description=f"fine-tuning of {sweep.name}'s checkpoints on {ft.data.dataset}",
        search=dataclasses.replace(sweep.search, searcher=ft.searcher, warm_start=None),
        tracking=dataclasses.replace(sweep.tracking, experiment=experiment))


class FinetuneStart:
    """Where a fine-tuning trial starts and what it reads (`raysweep.train.loop.Start`)."""

    def __init__(self, cfg: TrialConfig) -> None:
        assert cfg.finetune is not None, "a fine-tuning trial carries its unit"
        self.cfg = cfg
        self.unit = Unit.from_dict(cfg.finetune)
        crop, pad, flip = self.unit.augment
        self.augment = Augment(crop=crop, pad=pad, flip=flip)  # type: ignore[arg-type]

    def model(self, splits: Any, place: Any) -> nn.Module:
        from raysweep.finetune.heads import Source, Target, from_checkpoint
        from raysweep.train.kept import KeptCheckpoint

        u, ladder = self.unit, ladder_of(self.cfg.spec.ladder)
        if u.baseline:  # from scratch: a fresh model at the downstream shape, initialised by the seed
            model = build_model(ladder, u.model, num_classes=splits.num_classes, in_chans=splits.in_chans,
                                image_size=splits.image_size)
        else:
            model = from_checkpoint(KeptCheckpoint(u.checkpoint, u.checkpoint_sha256), Source(ladder, u.model, *u.source_shape),
                                    Target(splits.num_classes, splits.in_chans, splits.image_size), run=u.source_run,
                                    zero_head=u.head_init == "zero")
        return model.to(place.device)

    def batches(self, splits: Any, *, batch_size: int, seed: int, epoch: int, rank: int, world: int,
                start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = RepeatedOrder(n=len(splits.train), batch_size=batch_size, repeats=self.unit.repeats, seed=seed)
        first = epoch * order.steps_per_epoch
        return repeated_batches(splits.train._gather, order, self.augment, start=first + start,
                                stop=first + order.steps_per_epoch, rank=rank, world=world)

    def metrics(self, out: dict[str, Any]) -> dict[str, Any]:
        out[M.PRETRAIN_FLOPS] = self.unit.pretrain_flops
        out[M.PRETRAIN_CORE_HOURS] = self.unit.pretrain_core_hours
        if M.VAL_ACC in out:
            out[M.FT_TOP1], out[M.FT_LOSS] = out[M.VAL_ACC], out[M.VAL_LOSS]
        return out


def finetune_loop_per_worker(config: dict[str, Any]) -> None:
    """The Ray Train entry of a fine-tuning trial: pre-training's, from `FinetuneStart`."""
    from raysweep.train.worker import train_loop_per_worker

    train_loop_per_worker(config, start_of=FinetuneStart)
