"""Rungs written in a search-space file: a timm model name plus keyword arguments, for any timm family.

A `TimmCfg` is the architecture config of such a rung, next to timm's `NfCfg` and our `VitCfg`; the
ladder module builds it through `build_timm`. The model is created from scratch (no pretrained
weights: nothing can be downloaded, and a scaling study trains from initialisation), and it takes
`num_classes`, `in_chans` and, where its class has one, `img_size` from the data, exactly as the
built-in rungs do, so those keys are refused in the file.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import timm
import torch
from torch import nn

from raysweep.core.errors import SpecError

# Set from the data, never by hand: a file that sets them would disagree with the data it trains on.
DATA_KWARGS = {"num_classes": "the dataset's classes", "in_chans": "the dataset's channels",
               "img_size": "data.image_size"}
# Arguments of timm.create_model that load or describe pretrained weights: rungs train from scratch.
WEIGHT_KWARGS = ("pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path", "cache_dir")

# What timm's constructors raise for arguments they cannot use, measured on timm 1.0.31: an unknown
# key -> TypeError, embed_dim not divisible by num_heads -> AssertionError, an unknown act_layer ->
# KeyError, too few `layers` -> AttributeError, too few `dims` -> IndexError; a forward pass that
# cannot run at this image size -> RuntimeError or ValueError. Only timm code runs inside the `try`.
BUILD_ERRORS = (TypeError, ValueError, AssertionError, KeyError, IndexError, AttributeError, RuntimeError)


@dataclass(frozen=True)
class TimmCfg:
    """A rung defined by a timm model name and keyword arguments for `timm.create_model`."""

    model: str  # a name of timm.list_models(), e.g. resnet18, convnext_atto, vit_tiny_patch16_224
    kwargs_json: str = "{}"  # canonical JSON (sorted keys): exact, and hashable so measurements can be cached

    @classmethod
    def of(cls, model: str, kwargs: Mapping[str, Any]) -> TimmCfg:
        return cls(model, json.dumps(dict(kwargs), sort_keys=True))

    @property
    def kwargs(self) -> dict[str, Any]:
        return json.loads(self.kwargs_json)  # a fresh copy each time: timm may keep the lists it is given


def check_model_name(model: str) -> None:
    """A one-line SpecError (no key: the caller locates it) unless timm registers `model`."""
    if timm.is_model(model):
        return
    near = difflib.get_close_matches(model, timm.list_models(), n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(near)}?)" if near else " (see timm.list_models())"
    raise SpecError(f"expected a timm model name{hint}, got {model!r}")


def check_kwargs(kwargs: Mapping[str, Any]) -> None:
    """Refuse the keys that the data or the from-scratch rule decide; the key names the argument."""
    for key in kwargs:
        if key in DATA_KWARGS:
            raise SpecError(f"expected no {key}: it is set from the data ({DATA_KWARGS[key]}), "
                            f"got {kwargs[key]!r}", key=key)
        if key in WEIGHT_KWARGS:
            raise SpecError(f"expected no {key}: rungs train from scratch and no weights can be fetched, "
                            f"got {kwargs[key]!r}", key=key)


@functools.cache
def _takes_img_size(cfg: TimmCfg) -> bool:
    """Whether the model's class has an `img_size` argument (ViTs, Swin, ...; not ResNets or ConvNeXts).

    Found by building it once on the meta device at timm's default size and reading its class's
    signature: the class is what an entry point builds, and passing img_size to a class without one
    is a TypeError.
    """
    with torch.device("meta"):
        model = timm.create_model(cfg.model, pretrained=False, **cfg.kwargs)
    return "img_size" in inspect.signature(type(model).__init__).parameters


def build_timm(cfg: TimmCfg, num_classes: int, in_chans: int, image_size: int) -> nn.Module:
    """A freshly initialised timm model sized for the data, on the current default device."""
    size: dict[str, Any] = {"img_size": image_size} if _takes_img_size(cfg) else {}
    return timm.create_model(cfg.model, pretrained=False, num_classes=num_classes, in_chans=in_chans,
                             **size, **cfg.kwargs)


def check_builds(cfg: TimmCfg, *, num_classes: int, in_chans: int, image_size: int) -> None:
    """Build the rung on the meta device and run one forward pass; a one-line SpecError (keyed
    `kwargs`) if timm cannot, with timm's own message."""
    with torch.device("meta"):
        try:
            model = build_timm(cfg, num_classes, in_chans, image_size)
            model(torch.empty(2, in_chans, image_size, image_size))  # 2: BatchNorm refuses a batch of one
        except BUILD_ERRORS as exc:
            detail = str(exc).splitlines()[0] if str(exc) else ""
            raise SpecError(f"timm cannot build {cfg.model} with {cfg.kwargs_json} at {image_size}x{image_size}: "
                            f"{type(exc).__name__}: {detail}", key="kwargs") from None
