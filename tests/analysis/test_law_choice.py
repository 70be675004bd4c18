"""`plan --law auto` (raysweep.analysis.law_choice): on planted surfaces the law chosen by held-out
error is one with a repetition penalty where the surface overfits and L(N, D) where it does not; too
few cells above the compute cut fall back to L(N, D) and say why; `raysweep plan` prints the choice."""

from __future__ import annotations

import json
import math
from pathlib import Path

from raysweep.analysis.law_choice import MIN_HELD_OUT, choose_law
from raysweep.analysis.runs import CellBest
from raysweep.cli import main
from tests.analysis.test_repeated_law import P, cells


def test_an_overfitting_surface_chooses_a_law_that_turns_over() -> None:
    choice = choose_law(cells(penalty=P))
    assert choice.form in ("overfit", "data_constrained_overfit"), choice
    assert choice.errors["chinchilla"] is not None and choice.errors[choice.form] is not None
    assert choice.errors[choice.form] < choice.errors["chinchilla"] / 2, choice.errors  # far better out of sample
    assert choice.fitted + choice.held_out == len(cells()) and choice.held_out >= MIN_HELD_OUT
    assert "--law auto: lowest error predicting" in choice.line() and choice.form in choice.line()


def test_a_surface_without_overfitting_keeps_l_n_d() -> None:
    choice = choose_law(cells())
    assert choice.form == "chinchilla", choice.errors  # the penalty's extra terms do not buy a better forecast
    assert choice.errors["chinchilla"] < 0.03


def test_too_few_cells_above_the_cut_fall_back_to_l_n_d_and_say_why() -> None:
    # the small corner of the lattice and one run 80x its compute: only that one lies above the cut
    few = [c for c in cells() if c.params <= 1e5 and c.epochs <= 4] + [max(cells(), key=lambda c: c.compute)]
    choice = choose_law(few)
    assert choice.form == "chinchilla" and "needed to compare laws" in choice.fallback, choice
    assert choose_law([]).fallback and choose_law([CellBest("m", 10, 1.0, 0.1, math.nan, math.nan, 1, 60, False)]).fallback


def test_plan_prints_the_choice_and_puts_it_in_the_json(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    table = tmp_path / "study.csv"
    table.write_text("model,model_params,epochs,lr,seed,val_loss,flops,core_hours\n" + "".join(
        f"{c.model},{c.params},{c.epochs:g},0.1,0,{c.loss:.6f},{c.compute:.6g},{c.compute / 1e12:.6g}\n"
        for c in cells(penalty=P)))
    main(["plan", "--table", str(table), "--budget", "1e6", "--law", "auto", "--bootstrap", "0"])
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("law: overfit (--law auto") or out.startswith("law: data_constrained_overfit")
    main(["plan", "--table", str(table), "--budget", "1e6", "--law", "auto", "--bootstrap", "0", "--json"])
    got = json.loads(capsys.readouterr().out)
    assert got["law_choice"]["form"] in ("overfit", "data_constrained_overfit") and got["law_choice"]["held_out"] >= 2
