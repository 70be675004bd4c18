"""Ladder registry: sizes rise along every ladder, CPU rungs build and run, FLOPs are counted right."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from raysweep.core.errors import SpecError
from raysweep.models import (
    LADDERS,
    Ladder,
    VitCfg,
    build_model,
    classifier_param_names,
    count_params,
    flops_per_example,
    forward_flops_per_example,
    is_gain_or_bias,
    no_weight_decay_names,
    param_count,
)
from raysweep.models.flops import _CUSTOM_FLOPS

CPU = {"num_classes": 10, "in_chans": 1, "image_size": 32}
PAPER = {"num_classes": 1000, "in_chans": 3, "image_size": 224}
CPU_RUNGS = [(f, r) for f in ("nfnet_cpu", "vit_cpu") for r in LADDERS[f].rung_names()]


def _kw(family: str) -> dict[str, int]:
    return CPU if family.endswith("_cpu") else PAPER


def test_registry_has_the_families_and_enough_rungs() -> None:
    assert {"nfnet_cpu", "nfnet_paper", "vit_cpu"} <= set(LADDERS)
    assert len(LADDERS["nfnet_cpu"].rungs) >= 5
    assert len(LADDERS["vit_cpu"].rungs) >= 4
    assert LADDERS["nfnet_paper"].rung_names() == (
        "nfnet_f0", "nfnet_f1", "nfnet_f3", "nfnet_f3plus", "nfnet_f7", "nfnet_f7plus",
    )  # fmt: skip
    for family, lad in LADDERS.items():
        assert isinstance(lad, Ladder) and lad.family == family


def test_unknown_rung_and_family_are_one_line_errors() -> None:
    with pytest.raises(SpecError, match="nfnet_t0"):
        LADDERS["nfnet_cpu"].rung("nfnet_f0")
    with pytest.raises(SpecError, match="nfnet_cpu"):
        build_model("resnet", "r50", **CPU)
    with pytest.raises(SpecError, match="divisible by the patch size 4"):
        build_model("vit_cpu", "vit_t0", num_classes=10, in_chans=1, image_size=30)


@pytest.mark.parametrize("family", sorted(LADDERS))
def test_params_strictly_rise_along_every_ladder(family: str) -> None:
    counts = [param_count(family, r, **_kw(family)) for r in LADDERS[family].rung_names()]
    assert counts == sorted(set(counts)), counts


@pytest.mark.parametrize("family", ["nfnet_cpu", "vit_cpu"])
def test_cpu_rungs_roughly_double(family: str) -> None:
    counts = [param_count(family, r, **CPU) for r in LADDERS[family].rung_names()]
    ratios = [b / a for a, b in itertools.pairwise(counts)]
    assert all(1.5 <= q <= 3.0 for q in ratios), ratios


def test_nfnet_cpu_spans_the_cpu_budget() -> None:
    counts = [param_count("nfnet_cpu", r, **CPU) for r in LADDERS["nfnet_cpu"].rung_names()]
    assert 15_000 <= counts[0] <= 30_000 and counts[-1] <= 1_500_000


@pytest.mark.parametrize(
    ("rung", "millions"),
    [
        ("nfnet_f0", 71.5),
        ("nfnet_f1", 132.6),
        ("nfnet_f3", 254.9),
        ("nfnet_f3plus", 423),
        ("nfnet_f7plus", 830),
    ],
)
def test_paper_ladder_matches_the_published_sizes(rung: str, millions: float) -> None:
    assert param_count("nfnet_paper", rung, **PAPER) == pytest.approx(millions * 1e6, rel=0.02)


def test_paper_ladder_follows_the_f_family_pattern() -> None:
    depths = {r.name: r.cfg.depths for r in LADDERS["nfnet_paper"].rungs}  # type: ignore[union-attr]
    assert depths["nfnet_f0"] == (1, 2, 6, 3)
    assert depths["nfnet_f1"] == (2, 4, 12, 6)
    assert depths["nfnet_f3"] == depths["nfnet_f3plus"] == (4, 8, 24, 12)
    assert depths["nfnet_f7"] == depths["nfnet_f7plus"] == (8, 16, 48, 24)
    for name in ("nfnet_f3plus", "nfnet_f7plus"):
        assert LADDERS["nfnet_paper"].rung(name).cfg.channels == (384, 768, 2048, 2048)  # type: ignore[union-attr]


@pytest.mark.parametrize(("family", "rung"), CPU_RUNGS)
def test_every_cpu_rung_builds_and_runs(family: str, rung: str) -> None:
    torch.manual_seed(0)
    model = build_model(family, rung, **CPU)
    logits = model(torch.randn(2, 1, 32, 32))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    assert count_params(model) == param_count(family, rung, **CPU)  # meta and real builds agree


def test_flops_rise_with_rung_and_are_about_three_forwards() -> None:
    for family in ("nfnet_cpu", "vit_cpu"):
        train = [flops_per_example(family, r, **CPU) for r in LADDERS[family].rung_names()]
        assert train == sorted(set(train)), (family, train)
        for rung, f in zip(LADDERS[family].rung_names(), train):
            # a bit under 3x: nothing differentiates the input image, so the stem's input gradient is skipped
            assert 2.7 <= f / forward_flops_per_example(family, rung, **CPU) <= 3.0, (family, rung)


def test_vit_flops_count_attention() -> None:
    cfg = LADDERS["vit_cpu"].rung("vit_t0").cfg
    assert isinstance(cfg, VitCfg)
    tokens, d = (32 // cfg.patch_size) ** 2 + 1, cfg.embed_dim
    # per block: qkv, proj and the 4x MLP (12 d^2 multiply-adds a token) plus QK^T and AV (2 n^2 d)
    per_block = 2 * (12 * d * d * tokens + 2 * tokens * tokens * d)
    floor = cfg.depth * per_block
    assert (
        floor
        <= forward_flops_per_example("vit_cpu", "vit_t0", **CPU)
        <= 1.1 * floor + 2 * 16 * d * 64 + 2 * d * 10
    )


def test_grouped_conv_backward_is_counted_as_two_forwards() -> None:
    conv = nn.Conv2d(16, 32, 3, padding=1, groups=4)
    x = torch.randn(2, 16, 8, 8, requires_grad=True)
    with FlopCounterMode(display=False, custom_mapping=_CUSTOM_FLOPS) as fwd:
        conv(x)
    with FlopCounterMode(display=False, custom_mapping=_CUSTOM_FLOPS) as both:
        conv(x).sum().backward()
    assert fwd.get_total_flops() == 2 * 2 * 64 * 32 * 4 * 9
    assert both.get_total_flops() == 3 * fwd.get_total_flops()


@pytest.mark.parametrize(("family", "rung"), [("nfnet_cpu", "nfnet_t0"), ("vit_cpu", "vit_t0")])
def test_classifier_names_are_the_head(family: str, rung: str) -> None:
    model = build_model(family, rung, **CPU)
    names = classifier_param_names(model)
    assert names and all(n.startswith("head") for n in names)
    head = {id(p) for p in model.get_classifier().parameters()}  # type: ignore[operator]
    assert {n for n, p in model.named_parameters() if id(p) in head} == names


def test_gains_and_biases_are_kept_out_of_weight_decay() -> None:
    model = build_model("nfnet_cpu", "nfnet_t0", **CPU)
    params = dict(model.named_parameters())
    exempt = {n for n, p in params.items() if is_gain_or_bias(n, p)}
    assert "head.fc.bias" in exempt and "stem.conv.gain" in exempt  # the gain is stored (C, 1, 1, 1)
    assert any(n.endswith("skipinit_gain") for n in exempt)  # a 0-d scalar
    assert "head.fc.weight" not in exempt and "stem.conv.weight" not in exempt
    assert all(params[n].ndim >= 2 for n in set(params) - exempt)

    vit = build_model("vit_cpu", "vit_t0", **CPU)
    assert {"pos_embed", "cls_token"} <= no_weight_decay_names(vit)
    assert "blocks.0.attn.qkv.weight" not in no_weight_decay_names(vit)


def test_a_new_rung_is_a_table_entry() -> None:
    base = LADDERS["vit_cpu"].rung("vit_t0")
    assert isinstance(base.cfg, VitCfg)
    wider = dataclasses.replace(base, name="vit_wide", cfg=dataclasses.replace(base.cfg, embed_dim=48))
    lad = Ladder("demo", (base, wider))
    assert lad.rung_names() == ("vit_t0", "vit_wide")
    with pytest.raises(AssertionError, match="repeats"):
        Ladder("demo", (base, base))
