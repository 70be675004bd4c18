"""Ladders written in a search-space file: timm rungs load, are measured from the built model, take
their shape from the data, and cross processes as a plain dict."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from raysweep.config import load_spec, spec_from_dict
from raysweep.models import (
    Ladder,
    TimmCfg,
    build_model,
    count_params,
    flops_per_example,
    forward_flops_per_example,
    ladder_of,
    param_count,
)

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "search_spaces/timm_resnet_demo.yaml"
MNIST = {"num_classes": 10, "in_chans": 1, "image_size": 32}


def test_the_demo_file_loads_with_every_defined_rung() -> None:
    spec = load_spec(DEMO)
    assert spec.ladder.family == "resnet_mnist"
    assert spec.ladder.rungs == ("resnet_s", "resnet_m", "resnet_l")  # omitted: every rung under timm
    ref = ladder_of(spec.ladder)
    assert isinstance(ref, Ladder) and ref.rung_names() == spec.ladder.rungs
    cfg = ref.rung("resnet_m").cfg
    assert isinstance(cfg, TimmCfg) and cfg.model == "resnet18d"
    assert cfg.kwargs == {"layers": [1, 1, 1, 1], "channels": [16, 32, 64, 128], "stem_width": 8}
    # a subset is chosen by name, as for a built-in ladder
    assert load_spec(DEMO, ["ladder.rungs=[resnet_s, resnet_l]"]).ladder.rungs == ("resnet_s", "resnet_l")


def test_params_and_flops_are_measured_from_the_built_model() -> None:
    ref = ladder_of(load_spec(DEMO).ladder)
    counts = [param_count(ref, r, **MNIST) for r in ref.rung_names()]
    assert counts == sorted(set(counts)) and counts[0] > 10_000
    for rung, n in zip(ref.rung_names(), counts, strict=True):
        model = build_model(ref, rung, **MNIST)  # a real build agrees with the meta-device count
        assert count_params(model) == n
        f = flops_per_example(ref, rung, **MNIST)
        assert 2.5 <= f / forward_flops_per_example(ref, rung, **MNIST) <= 3.0, rung
    # the count is the model's, not a name's: resnet_l doubles resnet_m's blocks
    assert counts[2] > 2 * counts[1]


def test_the_model_takes_classes_channels_and_image_size_from_the_data() -> None:
    spec = spec_from_dict({"name": "v", "epochs": [1], "ladder": {"family": "vit_yaml", "timm": [
        {"name": "vit_xs", "model": "vit_tiny_patch16_224",
         "kwargs": {"patch_size": 4, "embed_dim": 32, "depth": 2, "num_heads": 2}}]}})
    torch.manual_seed(0)
    vit = build_model(ladder_of(spec.ladder), "vit_xs", num_classes=7, in_chans=1, image_size=32)
    assert vit.pos_embed.shape[1] == (32 // 4) ** 2 + 1  # img_size came from the data, not timm's 224
    out = vit(torch.randn(2, 1, 32, 32))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    # the same architecture as the built-in vit_t0: same measured size
    assert param_count(ladder_of(spec.ladder), "vit_xs", **MNIST) == param_count("vit_cpu", "vit_t0", **MNIST)

    resnet = build_model(ladder_of(load_spec(DEMO).ladder), "resnet_s", num_classes=3, in_chans=3, image_size=40)
    assert resnet(torch.randn(2, 3, 40, 40)).shape == (2, 3)  # ResNets take no img_size and need none


def test_the_spec_crosses_processes_as_a_plain_dict() -> None:
    spec = load_spec(DEMO)
    again = spec_from_dict(spec.to_dict())
    assert again == spec and ladder_of(again.ladder) == ladder_of(spec.ladder)
    # equal ladders hash equal, so measurements made for one are reused for the other
    assert hash(ladder_of(again.ladder)) == hash(ladder_of(spec.ladder))


@pytest.mark.parametrize("kwargs", [{"layers": [1, 1]}, {"act_layer": "no_such_act"}, {"depthh": 3}])
def test_arguments_timm_cannot_use_are_caught_by_preflight(kwargs: dict) -> None:
    from raysweep.cli.preflight import check_spec
    from raysweep.core.errors import SpecError

    # the file's own checks pass (config builds no model); preflight builds the rung and refuses it
    spec = spec_from_dict({"name": "r", "epochs": [1], "ladder": {"family": "r", "timm": [
        {"name": "a", "model": "resnet18", "kwargs": kwargs}]}}, file="f.yaml")
    with pytest.raises(SpecError) as info:
        check_spec(spec, "f.yaml")
    msg = str(info.value)
    assert msg.startswith("f.yaml: ladder.timm[0].kwargs: timm cannot build resnet18") and "\n" not in msg
