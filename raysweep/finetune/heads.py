"""A pre-trained model rebuilt for a downstream task: same backbone bit for bit, a new zeroed head.

A model is rebuilt from what its pre-training run records (the ladder, the rung, the data's
classes, channels and resolution: `Source`), never unpickled: `build_model` makes the same
architecture and `load_state_dict(strict=True)` puts every backbone tensor back exactly. Then:

- the classifier is replaced for the downstream classes with timm's `reset_classifier` and
  zero-initialised, as big_vision's transfer configs do (a zero head starts every class at the
  same logit, so the first steps do not undo the backbone with a random head's gradients);
- a change of resolution resamples a ViT's absolute position embedding to the new patch grid
  (timm's `resample_abs_pos_embed`, bicubic; the class token's entry is kept as it is); an NFNet
  is fully convolutional with global pooling and takes the new size as it is;
- a resolution the model cannot take (a ViT whose patch does not divide it; any model timm cannot
  run at that size) and a change in the number of channels are one-line `SpecError`s.

Pure torch and timm (no Ray, MLflow or Optuna).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from timm.layers import resample_abs_pos_embed
from torch import Tensor, nn

from raysweep.core.errors import SpecError
from raysweep.models import LadderRef, build_model
from raysweep.models.timm_rungs import BUILD_ERRORS
from raysweep.train.kept import KeptCheckpoint, read_kept_state

POS_EMBED = "pos_embed"  # timm's name for a ViT's absolute position embedding


@dataclass(frozen=True)
class Source:
    """What a pre-training run records about its model: enough to rebuild it exactly."""

    ladder: LadderRef  # a registered family's name, or the search space's own ladder
    rung: str
    num_classes: int
    in_chans: int
    image_size: int


@dataclass(frozen=True)
class Target:
    """The downstream data's shape."""

    num_classes: int
    in_chans: int
    image_size: int


def check_target(source: Source, target: Target) -> None:
    """A one-line SpecError unless the pre-trained model can take the downstream data: the same
    channels, and a resolution it can be built and run at (checked on the meta device, no memory)."""
    if target.in_chans != source.in_chans:
        raise SpecError(f"expected downstream images with the pre-training's {source.in_chans} channels "
                        f"({source.rung}), got {target.in_chans}", key="finetune.data")
    size = target.image_size
    try:
        with torch.device("meta"):
            model = build_model(source.ladder, source.rung, num_classes=source.num_classes,
                                in_chans=source.in_chans, image_size=size)
            model(torch.empty(2, source.in_chans, size, size))
    except SpecError as err:
        raise SpecError(f"expected a resolution {source.rung} can take, got {size}x{size}: {err.detail}",
                        key="finetune.data.image_size") from None
    except BUILD_ERRORS as exc:
        detail = str(exc).splitlines()[0] if str(exc) else ""
        raise SpecError(f"expected a resolution {source.rung} can take, got {size}x{size}: "
                        f"{type(exc).__name__}: {detail}", key="finetune.data.image_size") from None


def resample_pos_embed(pos_embed: Tensor, model: nn.Module, old_grid: tuple[int, int]) -> Tensor:
    """`pos_embed` (from a model with patch grid `old_grid`) resampled to `model`'s grid; the same
    tensor when the grids agree."""
    new_grid = tuple(model.patch_embed.grid_size)  # type: ignore[union-attr,arg-type]
    if new_grid == tuple(old_grid):
        return pos_embed
    prefix = 0 if getattr(model, "no_embed_class", False) else int(getattr(model, "num_prefix_tokens", 0))
    return resample_abs_pos_embed(pos_embed, new_size=list(new_grid), old_size=list(old_grid),
                                  num_prefix_tokens=prefix)


def _grid(source: Source) -> tuple[int, int] | None:
    with torch.device("meta"):
        model = build_model(source.ladder, source.rung, num_classes=source.num_classes, in_chans=source.in_chans,
                            image_size=source.image_size)
    patch = getattr(model, "patch_embed", None)
    return tuple(patch.grid_size) if patch is not None and hasattr(model, POS_EMBED) else None  # type: ignore[return-value]


def transfer(source: Source, state: Mapping[str, Tensor], target: Target, *, zero_head: bool = True) -> nn.Module:
    """The pre-trained model (`state`: its `model.state_dict()`) rebuilt at the target resolution,
    its backbone loaded bit-identical, its classifier replaced for the target classes and zeroed
    (`zero_head`; else timm's own initialisation of the new head)."""
    check_target(source, target)
    model = build_model(source.ladder, source.rung, num_classes=source.num_classes, in_chans=source.in_chans,
                        image_size=target.image_size)
    weights = dict(state)
    grid = _grid(source)
    if grid is not None and POS_EMBED in weights:
        weights[POS_EMBED] = resample_pos_embed(weights[POS_EMBED], model, grid)
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise SpecError(f"expected a checkpoint of {source.rung} as its run records it, got a state that does "
                        f"not fit: {first}", key="finetune.pretrained") from None
    model.reset_classifier(target.num_classes)  # type: ignore[operator]
    if not zero_head:
        return model
    with torch.no_grad():
        for p in model.get_classifier().parameters():  # type: ignore[operator]
            p.zero_()
    return model


def head_names(model: nn.Module) -> set[str]:
    """State-dict names of the classifier (everything else is the backbone)."""
    head = {id(t) for t in model.get_classifier().state_dict(keep_vars=True).values()}  # type: ignore[operator]
    return {k for k, t in model.state_dict(keep_vars=True).items() if id(t) in head}


def from_checkpoint(kept: KeptCheckpoint, source: Source, target: Target, *, run: str = "",
                    zero_head: bool = True) -> nn.Module:
    """The model a fine-tuning trial starts from: the checkpoint's SHA-256 checked against the one
    its run recorded, its state read safely (tensors and plain data only), then `transfer`."""
    return transfer(source, read_kept_state(kept, run=run)["model"], target, zero_head=zero_head)
