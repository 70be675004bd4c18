"""Checkpoint selection on hand-built pre-training runs whose answers are known by construction."""

from __future__ import annotations

import math

import pytest

from raysweep.core.errors import SpecError
from raysweep.finetune.select import (
    Pretrained,
    SelectRule,
    Why,
    pretrained_from_rows,
    require_checkpoints,
    select,
)
from raysweep.results.rows import status_of

PARAMS = {"a": 100, "b": 200, "c": 400}
# Best-LR losses of a 3-rung x 3-budget lattice whose compute is params x epochs:
#   compute 100: a@1 3.0 | 200: b@1 2.7, a@2 2.8 | 400: b@2 2.5, c@1 2.6, a@4 2.75 | 800: c@2 2.3, b@4 2.45 | 1600: c@4 2.1
# The frontier is a@1, b@1, b@2, c@2, c@4 (each the lowest loss for at most its compute).
LOSS = {("a", 1): 3.0, ("a", 2): 2.8, ("a", 4): 2.75, ("b", 1): 2.7, ("b", 2): 2.5, ("b", 4): 2.45,
        ("c", 1): 2.6, ("c", 2): 2.3, ("c", 4): 2.1}
LRS = (0.1, 0.2, 0.4)  # 0.2 is best everywhere; 0.4 is 0.05 worse; 0.1 is 0.1 worse


def trial(model: str, epochs: float, lr: float, loss: float, *, seed: int = 0, ckpt: bool = True,
          flops: float | None = None) -> Pretrained:
    run = f"{model}{epochs:g}-{lr:g}-{seed}"
    return Pretrained(model=model, model_params=PARAMS[model], epochs=epochs, lr=lr, seed=str(seed), val_loss=loss,
                      status=status_of(loss), flops=flops or float(PARAMS[model] * epochs), core_hours=0.0,
                      run_id=run, trial_key=f"s|{model}@{epochs:g}|lr={lr:g}|attempt=0",
                      checkpoint=f"/ckpt/{run}" if ckpt else "", checkpoint_sha256="ab" * 32 if ckpt else "")


def lattice(seeds: int = 1, *, diverge_big_lr: bool = False) -> list[Pretrained]:
    out = []
    for (m, e), loss in LOSS.items():
        for lr, extra in zip(LRS, (0.1, 0.0, 0.05), strict=True):
            for s in range(seeds):
                bad = diverge_big_lr and lr == 0.4
                out.append(trial(m, e, lr, math.inf if bad else loss + extra + 0.001 * s, seed=s))
    return out


def by_cell(sel):  # type: ignore[no-untyped-def]
    return {(c.cell, c.lr): {r.why for r in c.reasons} for c in sel.choices}


def test_the_default_picks_each_frontier_point_and_its_neighbours_at_about_the_same_compute() -> None:
    sel = select(lattice())
    assert sel.frontier == ("a@1", "b@1", "b@2", "c@2", "c@4")
    assert by_cell(sel) == {
        ("a@1", 0.2): {Why.LOSS_OPTIMAL},
        ("b@1", 0.2): {Why.LOSS_OPTIMAL},
        ("a@2", 0.2): {Why.SMALLER_MODEL},  # of b@1: next rung down, more epochs, the same compute
        ("b@2", 0.2): {Why.LOSS_OPTIMAL},
        ("c@1", 0.2): {Why.LARGER_MODEL},  # of b@2: next rung up, fewer epochs, the same compute
        ("a@4", 0.2): {Why.SMALLER_MODEL},  # of b@2
        ("c@2", 0.2): {Why.LOSS_OPTIMAL},
        ("b@4", 0.2): {Why.SMALLER_MODEL},  # of c@2
        ("c@4", 0.2): {Why.LOSS_OPTIMAL},
    }
    assert [c.compute for c in sel.choices] == sorted(c.compute for c in sel.choices)  # cheapest first
    c1 = next(c for c in sel.choices if c.cell == "c@1")
    assert "larger-model neighbour of frontier point b@2" in c1.why() and c1.reasons[0].point == "b@2"
    # the neighbours that do not exist are said in words, not raised
    assert "no larger-model neighbour of a@1: b finished no budget below 1 epochs" in sel.missing
    assert "no smaller-model neighbour of a@1: a is the smallest rung that finished" in sel.missing
    assert "no larger-model neighbour of c@4: c is the largest rung that finished" in sel.missing
    assert "no smaller-model neighbour of c@4: b finished no budget above 4 epochs" in sel.missing


def test_a_cell_chosen_twice_is_one_choice_with_both_reasons() -> None:
    # a@2 (compute 200, loss 2.6) and b@1 (compute 250, loss 2.5) are both frontier points, and each
    # is the other's neighbour at about the same compute
    runs = [trial("a", 2, 0.2, 2.6), trial("b", 1, 0.2, 2.5, flops=250.0)]
    sel = select(runs)
    assert sel.frontier == ("a@2", "b@1")
    assert by_cell(sel) == {("a@2", 0.2): {Why.LOSS_OPTIMAL, Why.SMALLER_MODEL},
                            ("b@1", 0.2): {Why.LOSS_OPTIMAL, Why.LARGER_MODEL}}
    b1 = sel.choices[1]
    assert [r.point for r in b1.reasons] == ["b@1", "a@2"] and b1.why().count(";") == 1


def test_a_frontier_of_one_point_picks_that_point_and_says_both_neighbours_are_missing() -> None:
    sel = select([trial("a", 1, 0.1, 2.0), trial("a", 1, 0.2, 1.9)])
    assert [(c.cell, c.lr) for c in sel.choices] == [("a@1", 0.2)]
    assert sel.frontier == ("a@1",)
    assert len(sel.missing) == 2


def test_a_neighbour_too_far_in_compute_is_left_out_with_the_reason() -> None:
    runs = [trial("a", 1, 0.2, 2.0), trial("b", 0.1, 0.2, 2.5)]  # b@0.1 costs 20 against a@1's 100
    sel = select(runs, SelectRule(within=4.0))
    assert [c.cell for c in sel.choices] == ["b@0.1", "a@1"]  # b@0.1 is a frontier point (cheapest)
    assert any("the nearest, b@0.1, costs 0.2x its compute" in m for m in sel.missing)
    assert "b@0.1" in {c.cell for c in select(runs, SelectRule(within=10.0)).choices}


def test_larger_lr_adds_the_next_larger_lr_each_frontier_point_ran() -> None:
    sel = select(lattice(), SelectRule(neighbours=False, larger_lr=True))
    assert {k for k, v in by_cell(sel).items() if Why.LARGER_LR in v} == {
        ("a@1", 0.4), ("b@1", 0.4), ("b@2", 0.4), ("c@2", 0.4), ("c@4", 0.4)}
    c = next(c for c in sel.choices if (c.cell, c.lr) == ("b@2", 0.4))
    assert c.loss == pytest.approx(2.55) and "next larger LR it ran (best 0.2)" in c.why()


def test_a_diverged_larger_lr_is_not_chosen_and_is_said_missing() -> None:
    sel = select(lattice(diverge_big_lr=True), SelectRule(neighbours=False, larger_lr=True))
    assert all(c.lr == 0.2 for c in sel.choices)
    assert "no larger LR for a@1: it ran no LR above its best (0.2) to the end" in sel.missing


def test_a_choice_holds_every_seed_that_finished() -> None:
    sel = select(lattice(seeds=3), SelectRule(neighbours=False))
    first = sel.choices[0]
    assert [t.seed for t in first.trials] == ["0", "1", "2"]
    assert first.loss == pytest.approx(3.001)


def test_named_cells_are_chosen_at_their_best_lr_and_an_unknown_one_is_a_spec_error() -> None:
    sel = select(lattice(), SelectRule(rule="cells", cells=("a@4", "c@1")))
    assert by_cell(sel) == {("a@4", 0.2): {Why.NAMED}, ("c@1", 0.2): {Why.NAMED}}
    with pytest.raises(SpecError, match=r"finetune.select.cells: expected a cell the pre-training ran .* got 'z@1'"):
        select(lattice(), SelectRule(rule="cells", cells=("z@1",)))


def test_a_select_that_picks_nothing_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="finetune.select: expected finetune.select to pick at least one"):
        select(lattice(), SelectRule(rule="cells", cells=()))
    with pytest.raises(SpecError, match="finetune.pretrained: expected finished pre-training trials"):
        select([trial("a", 1, 0.2, math.inf)])


def test_runs_without_kept_checkpoints_are_named_with_how_to_keep_them() -> None:
    runs = [trial("a", 1, 0.2, 2.0, ckpt=False), trial("a", 1, 0.2, 2.1, seed=1)]
    sel = select(runs)
    with pytest.raises(SpecError) as err:
        require_checkpoints(sel, source="experiment pre")
    msg = str(err.value)
    assert "a1-0.2-0 (a@1 lr=0.2 seed 0)" in msg and "a1-0.2-1" not in msg  # only the run without one
    assert "keeping its --results folder" in msg and "\n" not in msg
    full = select([trial("a", 1, 0.2, 2.0)])
    assert require_checkpoints(full) is full


def test_rows_from_read_trials_become_pretrained_trials() -> None:
    row = {"model": "a", "model_params": 100, "epochs": 1.0, "lr": 0.2, "seed": 3, "val_loss": 2.0, "flops": 100.0,
           "core_hours": 0.5, "run_id": "r1", "trial_key": "s|a@1|lr=0.2|attempt=0", "checkpoint": "/c",
           "checkpoint_sha256": "ff" * 32, "status": "ok"}
    (p,) = pretrained_from_rows([row])
    assert (p.cell, p.seed, p.run_id, p.checkpoint, p.checkpoint_sha256) == ("a@1", "3", "r1", "/c", "ff" * 32)
