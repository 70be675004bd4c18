"""The training recipe against its formulas: schedule spans the budget, AGC, parameter groups."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from raysweep.train.recipe import adaptive_grad_clip, lr_at, param_groups, plan_steps, unitwise_norm


def test_plan_fractional_budget_is_a_fraction_of_one_pass() -> None:
    plan = plan_steps(n_train=4500, batch_size=64, epochs=0.25, warmup_fraction=0.05)
    assert plan.steps_per_epoch == 70
    assert plan.total_steps == math.floor(0.25 * 4500 / 64) == 17
    assert plan.eval_steps == (17,)
    assert plan.examples == 17 * 64


def test_plan_evaluates_at_every_epoch_boundary_and_the_end() -> None:
    plan = plan_steps(n_train=4500, batch_size=64, epochs=2.5, warmup_fraction=0.1)
    assert plan.total_steps == 175
    assert plan.eval_steps == (70, 140, 175)
    assert plan.warmup_steps == 18
    whole = plan_steps(n_train=4500, batch_size=64, epochs=2, warmup_fraction=0.1)
    assert whole.eval_steps == (70, 140)  # epoch 2 is the end: evaluated once


def test_plan_with_eval_points_evaluates_evenly_at_any_budget() -> None:
    short = plan_steps(n_train=4500, batch_size=64, epochs=0.25, warmup_fraction=0.05, eval_points=8)
    assert short.eval_steps == (2, 4, 6, 8, 10, 12, 14, 17)  # floor(k x 17 / 8): 8 points inside a quarter epoch
    long = plan_steps(n_train=4500, batch_size=64, epochs=2.5, warmup_fraction=0.1, eval_points=4)
    assert long.eval_steps == (43, 70, 87, 131, 140, 175)  # the epoch boundaries are kept
    tiny = plan_steps(n_train=192, batch_size=64, epochs=1, warmup_fraction=0.0, eval_points=8)
    assert tiny.eval_steps == (1, 2, 3)  # no more points than steps
    default = plan_steps(n_train=4500, batch_size=64, epochs=2.5, warmup_fraction=0.1)
    assert default.eval_steps == (70, 140, 175)  # 0: unchanged


def test_plan_leaves_a_decay_step_even_with_a_huge_warmup_share() -> None:
    plan = plan_steps(n_train=192, batch_size=64, epochs=1, warmup_fraction=0.9)
    assert plan.total_steps == 3 and plan.warmup_steps == 2


def test_plan_rejects_budgets_that_buy_no_step() -> None:
    with pytest.raises(ValueError, match="buys no optimiser step"):
        plan_steps(n_train=100, batch_size=64, epochs=0.25, warmup_fraction=0.0)


@pytest.mark.parametrize("total, warmup", [(17, 1), (175, 18), (1000, 0), (3, 2), (1, 0)])
def test_schedule_warms_up_then_cosine_reaches_zero_exactly_at_the_end(total: int, warmup: int) -> None:
    peak = 1.6
    lrs = [lr_at(s, peak=peak, total_steps=total, warmup_steps=warmup) for s in range(total + 1)]
    if warmup:
        assert lrs[warmup - 1] == pytest.approx(peak)
        assert all(a < b for a, b in itertools.pairwise(lrs[:warmup]))
        assert lrs[0] == pytest.approx(peak / warmup)
    else:
        assert lrs[0] == pytest.approx(peak)
    decay = lrs[warmup:]
    assert all(a >= b for a, b in itertools.pairwise(decay))
    assert lrs[total] == pytest.approx(0.0, abs=1e-12)
    assert all(v > 0 for v in lrs[:total])
    if total - warmup >= 2:
        mid = warmup + (total - warmup) / 2
        if mid.is_integer():
            assert lr_at(int(mid), peak=peak, total_steps=total, warmup_steps=warmup) == pytest.approx(peak / 2)


def test_unitwise_norm_per_output_unit() -> None:
    w = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    assert torch.allclose(unitwise_norm(w), torch.tensor([[5.0], [1.0]]))
    v = torch.tensor([3.0, 4.0])
    assert unitwise_norm(v).item() == pytest.approx(5.0)
    gain = torch.tensor([3.0, 4.0]).reshape(2, 1, 1, 1)  # timm's conv gains: one unit, like a vector
    assert unitwise_norm(gain).item() == pytest.approx(5.0)
    conv = torch.ones(2, 3, 2, 2)
    assert torch.allclose(unitwise_norm(conv).flatten(), torch.full((2,), math.sqrt(12)))


def test_agc_matches_the_formula_on_a_hand_made_tensor() -> None:
    clip, eps = 0.01, 1e-3
    p = nn.Parameter(torch.tensor([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]]))
    # unit 0: ||W||=5, ||G||=1 -> ratio 0.2 > 0.01 -> G scaled to 0.05
    # unit 1: ||W||=0 -> floored to eps 1e-3, ||G||=1e-6 -> ratio 1e-3 < 0.01 -> unchanged
    # unit 2: ||W||=1, ||G||=0.005 -> ratio 0.005 < 0.01 -> unchanged
    p.grad = torch.tensor([[0.6, 0.8], [1e-6, 0.0], [0.0, 0.005]])
    before = p.grad.clone()
    adaptive_grad_clip([p], clip=clip, eps=eps)
    expected0 = before[0] * (clip * 5.0 / 1.0)
    assert torch.allclose(p.grad[0], expected0)
    assert torch.linalg.norm(p.grad[0]).item() == pytest.approx(clip * 5.0)
    assert torch.equal(p.grad[1], before[1])
    assert torch.equal(p.grad[2], before[2])


def test_agc_uses_eps_floor_for_zero_weights() -> None:
    p = nn.Parameter(torch.zeros(1, 2))
    p.grad = torch.tensor([[3.0, 4.0]])
    adaptive_grad_clip([p], clip=0.01, eps=1e-3)
    assert torch.linalg.norm(p.grad).item() == pytest.approx(0.01 * 1e-3)


def test_param_groups_keep_decay_off_gains_biases_and_agc_off_head() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    groups, agc = param_groups(model, weight_decay=1e-5, head_names={"2.weight", "2.bias"},
                               no_decay_names={"0.bias", "2.bias"})
    decay = {id(p) for p in groups[0]["params"]}
    no_decay = {id(p) for p in groups[1]["params"]}
    assert groups[0]["weight_decay"] == 1e-5 and groups[1]["weight_decay"] == 0.0
    assert decay == {id(model[0].weight), id(model[2].weight)}
    assert no_decay == {id(model[0].bias), id(model[2].bias)}
    assert {id(p) for p in agc} == {id(model[0].weight), id(model[0].bias)}


def test_nfnet_conv_gains_get_no_weight_decay() -> None:
    from raysweep.models import build_model, no_weight_decay_names

    model = build_model("nfnet_cpu", "nfnet_t0", num_classes=10, in_chans=1, image_size=32)
    names = no_weight_decay_names(model)
    groups, _ = param_groups(model, weight_decay=1e-5, head_names=set(), no_decay_names=names)
    no_decay = {id(p) for p in groups[1]["params"]}
    gains = [p for n, p in model.named_parameters() if n.endswith(".gain") and p.ndim == 4]
    assert gains and all(id(p) in no_decay for p in gains)
