"""Model ladders: named rungs of one architecture family, ascending in size, and the one factory.

A ladder is a table of typed architecture configs (timm's `NfCfg` for NFNets, `VitCfg` below for
ViTs). Every rung is written as `dataclasses.replace(base, **overrides)`, so adding a rung is adding
a table row and adding an architecture is adding a config type, one builder and a table. Parameter
counts are measured from the built model (on the meta device for the paper's large rungs), never
inferred from a rung's name.

The built-in ladders are registered in `LADDERS` by family name. A search-space file can define
its own ladder of timm models (`TimmCfg` rungs, see timm_rungs.py); the functions below take either
a registered family's name or such a `Ladder` object (a `LadderRef`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from timm.models.nfnet import NfCfg, NormFreeNet
from timm.models.nfnet import model_cfgs as _timm_nf_cfgs
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from raysweep.core.errors import SpecError
from raysweep.models.timm_rungs import TimmCfg, build_timm


@dataclass(frozen=True)
class VitCfg:
    """A Vision Transformer's architecture; the fields are passed to timm's `VisionTransformer`."""

    patch_size: int
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    class_token: bool = True
    global_pool: str = "token"  # classify from the class token, as ViT-S/B/L do


ArchCfg = NfCfg | VitCfg | TimmCfg


@dataclass(frozen=True)
class Rung:
    name: str  # mirrors upstream names (nfnet_f0, vit_b16) or an explicit small size (nfnet_t0)
    cfg: ArchCfg


@dataclass(frozen=True)
class Ladder:
    family: str
    rungs: tuple[Rung, ...]  # ascending in size
    description: str = ""

    def __post_init__(self) -> None:
        names = self.rung_names()
        if len(set(names)) != len(names):
            raise AssertionError(f"ladder {self.family} repeats a rung name: {names}")  # a table bug

    def rung_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.rungs)

    def rung(self, name: str) -> Rung:
        for r in self.rungs:
            if r.name == name:
                return r
        raise SpecError(f"expected a rung of {self.family} {list(self.rung_names())}, got {name!r}")


def _rung(name: str, base: ArchCfg, **overrides: Any) -> Rung:
    """The one factory: a rung is its base config with a few fields replaced."""
    return Rung(name, dataclasses.replace(base, **overrides))


# NFNets --------------------------------------------------------------------------------------


def _f_widths(w: int) -> dict[str, Any]:
    """The F-family's width rule at base width `w` (F0 is w=256): stage widths (1, 2, 6, 6) x w,
    grouped 3x3 convs of w/2 channels a group, and a final 1x1 conv to twice the last stage."""
    return {"channels": (w, 2 * w, 6 * w, 6 * w), "group_size": w // 2, "num_features": 12 * w}


# Stage depths: F0 is (1, 2, 6, 3), and F1, F3, F7 double it in turn; the CPU rungs use a half and a
# quarter of F0 (rounded up) because on a CPU every extra block costs wall time, while width is
# nearly free below a few hundred channels.
_F0_DEPTHS = (1, 2, 6, 3)
_F7_DEPTHS = (8, 16, 48, 24)
_HALF_F0_DEPTHS = (1, 1, 3, 2)
_QUARTER_F0_DEPTHS = (1, 1, 1, 1)
# The "+" variants widen every stage (stated for F4+ in the NFNet paper, inferred for F3+ and F7+).
_PLUS_WIDTHS = {"channels": (384, 768, 2048, 2048), "num_features": 4096}

# The CPU ladder keeps the F-family block (bottleneck, grouped convs, extra 3x3 conv, squeeze-excite,
# GELU, skipinit) but takes a 3x3 stride-2 stem instead of the 4-conv stride-4 stem, so that 32x32
# inputs end the last stage at 1x1 rather than below it. Symmetric padding replaces TF "same"
# padding (only needed to load DeepMind's weights), and ch_div=2 keeps widths such as 12 exact
# instead of rounding them up to a multiple of 8 for GPU tensor cores.
_NF_CPU_BASE = dataclasses.replace(
    _timm_nf_cfgs["dm_nfnet_f0"], stem_type="3x3", stem_chs=None, same_padding=False, ch_div=2
)

NFNET_CPU = Ladder(
    "nfnet_cpu",
    (
        # each rung doubles depth or widens 1.33-1.5x, as F0 -> F1 -> F3 deepen and "+" widens
        _rung("nfnet_t0", _NF_CPU_BASE, depths=_QUARTER_F0_DEPTHS, **_f_widths(8)),
        _rung("nfnet_t1", _NF_CPU_BASE, depths=_QUARTER_F0_DEPTHS, **_f_widths(12)),
        _rung("nfnet_t2", _NF_CPU_BASE, depths=_HALF_F0_DEPTHS, **_f_widths(12)),
        _rung("nfnet_t3", _NF_CPU_BASE, depths=_HALF_F0_DEPTHS, **_f_widths(16)),
        _rung("nfnet_t4", _NF_CPU_BASE, depths=_F0_DEPTHS, **_f_widths(16)),
        _rung("nfnet_t5", _NF_CPU_BASE, depths=_F0_DEPTHS, **_f_widths(24)),
        _rung("nfnet_t6", _NF_CPU_BASE, depths=_F0_DEPTHS, **_f_widths(32)),
    ),
    "F-family NFNets shrunk for 32x32 inputs on a CPU: 24k to 1.1M parameters, about 2x per rung",
)

NFNET_PAPER = Ladder(
    "nfnet_paper",
    (
        _rung("nfnet_f0", _timm_nf_cfgs["dm_nfnet_f0"]),
        _rung("nfnet_f1", _timm_nf_cfgs["dm_nfnet_f1"]),
        _rung("nfnet_f3", _timm_nf_cfgs["dm_nfnet_f3"]),
        _rung("nfnet_f3plus", _timm_nf_cfgs["dm_nfnet_f3"], **_PLUS_WIDTHS),
        # timm ships no dm_nfnet_f7: F7 is F3 with its depth doubled
        _rung("nfnet_f7", _timm_nf_cfgs["dm_nfnet_f3"], depths=_F7_DEPTHS),
        _rung("nfnet_f7plus", _timm_nf_cfgs["dm_nfnet_f3"], depths=_F7_DEPTHS, **_PLUS_WIDTHS),
    ),
    "The paper's NFNet F0, F1, F3, F3+, F7, F7+ (Smith et al. 2023); 71.5M to 830M parameters",
)

# ViTs ----------------------------------------------------------------------------------------

# Patch 4 turns a 32x32 image into 64 tokens; heads of 16 channels keep attention meaningful at
# these widths. Each rung doubles depth or widens 1.33-1.5x (about 2x parameters).
_VIT_CPU_BASE = VitCfg(patch_size=4, embed_dim=32, depth=2, num_heads=2)

VIT_CPU = Ladder(
    "vit_cpu",
    (
        _rung("vit_t0", _VIT_CPU_BASE),
        _rung("vit_t1", _VIT_CPU_BASE, depth=4),
        _rung("vit_t2", _VIT_CPU_BASE, depth=4, embed_dim=48, num_heads=3),
        _rung("vit_t3", _VIT_CPU_BASE, depth=4, embed_dim=64, num_heads=4),
        _rung("vit_t4", _VIT_CPU_BASE, depth=8, embed_dim=64, num_heads=4),
    ),
    "Small ViTs with 4x4 patches for 32x32 inputs: 28k to 400k parameters, about 2x per rung",
)

_VIT_S16 = VitCfg(patch_size=16, embed_dim=384, depth=12, num_heads=6)

VIT_PAPER = Ladder(
    "vit_paper",
    (
        _rung("vit_s16", _VIT_S16),
        _rung("vit_b16", _VIT_S16, embed_dim=768, num_heads=12),
        _rung("vit_l16", _VIT_S16, embed_dim=1024, depth=24, num_heads=16),
    ),
    "ViT-S/16, ViT-B/16, ViT-L/16 (Dosovitskiy et al. 2021)",
)

LADDERS: dict[str, Ladder] = {lad.family: lad for lad in (NFNET_CPU, NFNET_PAPER, VIT_CPU, VIT_PAPER)}


# Building ------------------------------------------------------------------------------------


def _build_nfnet(cfg: NfCfg, num_classes: int, in_chans: int, image_size: int) -> nn.Module:
    return NormFreeNet(cfg, num_classes=num_classes, in_chans=in_chans)  # any input size works


def _build_vit(cfg: VitCfg, num_classes: int, in_chans: int, image_size: int) -> nn.Module:
    if image_size % cfg.patch_size:
        raise SpecError(
            f"expected an image size divisible by the patch size {cfg.patch_size}, got {image_size}"
        )
    return VisionTransformer(
        img_size=image_size, in_chans=in_chans, num_classes=num_classes, **dataclasses.asdict(cfg)
    )


# One builder per config type: a new architecture adds a line here and a ladder table above.
_BUILDERS: dict[type, Callable[..., nn.Module]] = {NfCfg: _build_nfnet, VitCfg: _build_vit, TimmCfg: build_timm}

# A registered family's name, or a ladder defined elsewhere (a search-space file's timm rungs). Such a
# ladder object must be hashable, as TimmCfg rungs are, so that measurements of it can be cached;
# registered ladders (whose NfCfg is not hashable) go by name.
LadderRef = str | Ladder


def ladder(family: LadderRef) -> Ladder:
    """The ladder registered as `family` (or `family` itself); a one-line error names the known families."""
    if isinstance(family, Ladder):
        return family
    if family not in LADDERS:
        raise SpecError(f"expected a ladder family of {sorted(LADDERS)}, got {family!r}")
    return LADDERS[family]


def ladder_of(spec: Any) -> LadderRef:
    """What a search space's `ladder:` section (a `raysweep.config.LadderSpec`) builds from: the
    registered family's name, or the ladder its `timm:` rungs define."""
    if not spec.timm:
        return str(spec.family)
    rungs = tuple(Rung(r.name, TimmCfg.of(r.model, r.kwargs)) for r in spec.timm)
    return Ladder(spec.family, rungs, "defined in the search-space file")


def build_model(family: LadderRef, rung: str, *, num_classes: int, in_chans: int, image_size: int) -> nn.Module:
    """A freshly initialised model of one rung, on the current default device."""
    for key, value in (("num_classes", num_classes), ("in_chans", in_chans), ("image_size", image_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SpecError(f"expected {key} to be an integer >= 1, got {value!r}")
    cfg = ladder(family).rung(rung).cfg
    return _BUILDERS[type(cfg)](cfg, num_classes, in_chans, image_size)


def count_params(model: nn.Module) -> int:
    """Parameters of a built model (meta-device models count too)."""
    return sum(p.numel() for p in model.parameters())


@functools.cache
def param_count(family: LadderRef, rung: str, *, num_classes: int, in_chans: int, image_size: int) -> int:
    """Parameters of a rung, measured on the meta device so that F7+ costs no memory and little time."""
    with torch.device("meta"):
        model = build_model(family, rung, num_classes=num_classes, in_chans=in_chans, image_size=image_size)
    return count_params(model)


def classifier_param_names(model: nn.Module) -> set[str]:
    """Names of the final classifier's parameters, which AGC leaves unclipped (NFNet paper)."""
    get_classifier = getattr(model, "get_classifier", None)
    if get_classifier is None:
        raise TypeError(f"expected a timm model with get_classifier(), got {type(model).__name__}")
    head_ids = {id(p) for p in get_classifier().parameters()}
    names = {name for name, p in model.named_parameters() if id(p) in head_ids}
    if not names:
        raise AssertionError(f"{type(model).__name__}.get_classifier() holds no parameters")  # num_classes=0
    return names


def is_gain_or_bias(name: str, param: torch.Tensor) -> bool:
    """True for biases and gains, which the NFNet recipe keeps out of weight decay.

    That is every parameter of at most one dimension (biases, norm weights, scalar skip gains) and
    the per-output-channel `gain` of timm's ScaledStdConv2d, which is stored 4-D as (C, 1, 1, 1).
    """
    leaf = name.rsplit(".", 1)[-1]
    return param.ndim <= 1 or leaf == "bias" or leaf.endswith("gain")


def no_weight_decay_names(model: nn.Module) -> set[str]:
    """Gains and biases, plus what the model itself asks to exempt (a ViT's pos_embed and cls_token)."""
    names = {name for name, p in model.named_parameters() if is_gain_or_bias(name, p)}
    exempt = getattr(model, "no_weight_decay", None)
    if exempt is not None:
        own = set(exempt())
        names |= {name for name, _ in model.named_parameters() if name in own}
    return names
