"""The optimiser choice: `make_optimizer` builds SGD or AdamW from `optim`, AdamW leaves gains, biases,
norms and a ViT's embeddings undecayed, and one training step runs with each (in-process, no Ray)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from raysweep.config import OptimSpec, spec_from_dict
from raysweep.config.trial import TrialConfig
from raysweep.models import build_model, classifier_param_names, no_weight_decay_names
from raysweep.train.loop import Placement, run_training
from raysweep.train.recipe import make_optimizer, param_groups

MNIST = {"num_classes": 10, "in_chans": 1, "image_size": 32}


def test_make_optimizer_builds_the_named_optimiser() -> None:
    w = torch.nn.Parameter(torch.ones(3, 3))
    sgd = make_optimizer([{"params": [w], "weight_decay": 0.0}], lr=0.1, optim=OptimSpec())
    assert type(sgd) is torch.optim.SGD
    assert sgd.defaults["momentum"] == 0.9 and sgd.defaults["nesterov"] is True
    plain = make_optimizer([{"params": [w], "weight_decay": 0.0}], lr=0.1, optim=OptimSpec(momentum=0.0))
    assert plain.defaults["nesterov"] is False  # Nesterov without momentum is refused by torch
    adamw = make_optimizer([{"params": [w], "weight_decay": 0.05}], lr=1e-3,
                           optim=OptimSpec(name="adamw", betas=(0.9, 0.95)))
    assert type(adamw) is torch.optim.AdamW and adamw.defaults["betas"] == (0.9, 0.95)
    assert adamw.param_groups[0]["weight_decay"] == 0.05 and adamw.param_groups[0]["lr"] == 1e-3


def test_adamw_decays_only_weight_matrices_of_a_vit() -> None:
    model = build_model("vit_cpu", "vit_t0", **MNIST)
    optim = OptimSpec(name="adamw")
    groups, _ = param_groups(model, weight_decay=optim.weight_decay, head_names=classifier_param_names(model),
                             no_decay_names=no_weight_decay_names(model))
    opt = make_optimizer(groups, lr=1e-3, optim=optim)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    undecayed = {names[id(p)] for g in opt.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
    assert decayed | undecayed == set(names.values()) and not decayed & undecayed
    # gains and biases, the LayerNorms' scale and shift, the position embedding and class token
    assert {"blocks.0.norm1.weight", "blocks.0.norm1.bias", "norm.weight", "head.bias", "blocks.0.attn.qkv.bias",
            "pos_embed", "cls_token"} <= undecayed
    assert {"blocks.0.attn.qkv.weight", "blocks.0.mlp.fc1.weight", "patch_embed.proj.weight",
            "head.weight"} <= decayed
    assert all(model.get_parameter(n).ndim >= 2 for n in decayed)


def one_step(optim: dict[str, Any], ladder: dict[str, Any], rung: str, lr: float) -> dict[str, Any]:
    spec = spec_from_dict({
        "name": "one", "ladder": ladder, "epochs": [1.0], "batch_size": 64, "optim": optim,
        "data": {"dataset": "mnist5k", "train_subset": 64}, "lr": {"base": lr, "low": lr, "high": lr},
    })
    states: list[dict[str, Any]] = []
    final = run_training(TrialConfig(spec, rung, 1.0, lr), lambda m, s: states.append(s) if s else None,
                         Placement(torch.device("cpu")))
    assert final["status"] == "ok" and final["step"] == 1  # 64 examples at batch 64: one step
    assert torch.isfinite(torch.tensor([final["train/loss"], final["val/loss"]])).all()
    return states[-1]["optimizer"]


@pytest.mark.parametrize(
    "optim, ladder, rung, lr, slot",
    [
        # the NFNet recipe on a ladder written in YAML (a timm ResNet)
        ({"name": "sgd", "agc_clip": 0.0}, {"family": "tiny_resnet", "timm": [
            {"name": "r", "model": "resnet18", "kwargs": {"layers": [1, 1, 1, 1], "channels": [8, 16, 32, 64]}}]},
         "r", 0.1, "momentum_buffer"),
        ({"name": "sgd"}, {"family": "nfnet_cpu", "rungs": ["nfnet_t0"]}, "nfnet_t0", 0.4, "momentum_buffer"),
        ({"name": "adamw"}, {"family": "vit_cpu", "rungs": ["vit_t0"]}, "vit_t0", 1e-3, "exp_avg_sq"),
    ],
)
def test_one_training_step_per_optimiser(optim: dict[str, Any], ladder: dict[str, Any], rung: str, lr: float,
                                         slot: str) -> None:
    torch.set_num_threads(1)
    state = one_step(optim, ladder, rung, lr)
    assert state["state"] and all(slot in s for s in state["state"].values())
    decays = sorted(g["weight_decay"] for g in state["param_groups"])
    assert decays[0] == 0.0 and decays[-1] == (0.05 if optim["name"] == "adamw" else 1e-5)
