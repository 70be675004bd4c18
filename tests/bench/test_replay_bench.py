"""The replay benchmark: synthetic tables in, scores and errors out."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from raysweep.bench import format_table, load_table, main, run_replay
from raysweep.bench.synthetic import write_table
from raysweep.core.errors import SpecError

ENTRY_KEYS = {
    "mean_trials_per_cell",
    "hit_rate",
    "mean_regret",
    "total_flops",
    "cells",
    "misses",
    "prior_violations",
}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("tables") / "small.csv")
    write_table(path, n_models=3, epochs=(0.25, 0.5, 1.0, 2.0, 4.0))
    return path


def test_monotone_hits_every_cell_of_a_table_that_obeys_the_prior(small: str) -> None:
    result = run_replay(small, repetitions=2)
    mono = result["searchers"]["monotone"]
    assert mono["hit_rate"] == 1.0
    assert mono["mean_regret"] == 0.0
    assert mono["misses"] == [] and result["prior_violations"] == []
    assert mono["mean_trials_per_cell"] == pytest.approx((3 + 2 * 14) / 15)
    assert result["searchers"]["grid"]["mean_trials_per_cell"] == 8
    assert result["searchers"]["grid"]["hit_rate"] == 1.0


def test_result_shape_and_json(small: str) -> None:
    result = run_replay(small, repetitions=2)
    assert set(result["searchers"]) == {"grid", "monotone", "bracket", "verify", "trend", "tpe", "random"}
    for entry in result["searchers"].values():
        assert ENTRY_KEYS <= set(entry)
        assert entry["cells"] == 15
        assert entry["total_flops"] > 0
    assert set(result["trend"]) >= {"mean_trials_per_cell", "hit_rate", "meets_target"}
    # tpe and random get monotone's budget rounded up: 31 trials / 15 cells -> 3
    assert result["settings"]["trials_per_cell"] == 3
    assert result["searchers"]["tpe"]["mean_trials_per_cell"] == 3
    json.dumps(result, allow_nan=False)
    text = format_table(result)
    assert "monotone" in text and "trend:" in text


def test_trend_meets_its_target_on_a_paper_shaped_table(tmp_path: Path) -> None:
    path = str(tmp_path / "paper.csv")
    write_table(path)  # 6 rungs x 6 budgets
    trend = run_replay(path, searchers=("monotone", "trend"), repetitions=1)["trend"]
    assert trend["hit_rate"] == 1.0
    assert trend["mean_trials_per_cell"] <= 1.6
    assert trend["meets_target"]


def test_sampled_seeds_vary_across_repetitions(tmp_path: Path) -> None:
    path = str(tmp_path / "noisy.csv")
    write_table(path, n_models=2, epochs=(0.25, 0.5, 1.0), seeds=3, noise=0.01, seed=1)
    result = run_replay(path, searchers=("monotone",), repetitions=4, sample_seeds=True)
    assert result["searchers"]["monotone"]["repetitions"] == 4


def test_missing_runs_fail_and_are_counted(small: str, tmp_path: Path) -> None:
    with open(small, newline="") as f:
        rows = list(csv.DictReader(f))
    kept = [r for r in rows if not (r["model"] == "r0" and r["epochs"] == "0.5" and r["lr"] == "0.8")]
    path = tmp_path / "holes.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(kept)
    mono = run_replay(str(path), searchers=("monotone",), repetitions=1)["searchers"]["monotone"]
    assert mono["missing_trials"] == 1
    assert mono["hit_rate"] == 1.0  # 1.6 still wins that cell


def test_prior_violations_are_listed(tmp_path: Path) -> None:
    path = str(tmp_path / "rising.csv")
    write_table(path, n_models=3, epochs=(0.25, 0.5), optimum=lambda m, e: math.log2(0.4) + m)
    result = run_replay(path, searchers=("monotone", "verify"), repetitions=1)
    rises = {(v["cell"], v["predecessor"]) for v in result["prior_violations"]}
    assert rises == {
        ("r1@0.25", "r0@0.25"),
        ("r1@0.5", "r0@0.5"),
        ("r2@0.25", "r1@0.25"),
        ("r2@0.5", "r1@0.5"),
    }
    assert result["searchers"]["monotone"]["hit_rate"] == pytest.approx(2 / 6)
    assert result["searchers"]["verify"]["hit_rate"] == 1.0


def test_model_order_follows_model_params(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "model,model_params,epochs,lr,val_loss\nbig,200,1,0.1,2.0\nsmall,10,1,0.1,3.0\n"
        "big,200,2,0.1,inf\nsmall,10,2,0.2,\n"
    )
    table = load_table(str(path))
    assert table.lattice.models == ("small", "big")
    assert table.lattice.lrs == (0.1, 0.2)
    assert table.mean_loss(table.lattice.cell_of("big", 2), 0) == math.inf


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("model,epochs,lr\nm,1,0.1\n", r"bad\.csv: header: missing column val_loss"),
        (
            "model,epochs,lr,val_loss\nm,1,0.1,2.0\nm,1,fast,2.0\n",
            r"bad\.csv: line 3, column lr: expected a positive number, got 'fast'",
        ),
        ("model,epochs,lr,val_loss\nm,-1,0.1,2.0\n", r"line 2, column epochs: expected a positive number"),
        ("model,epochs,lr,val_loss\nm,1,0.1,low\n", r"line 2, column val_loss: expected a number"),
        (
            "model,epochs,lr,val_loss,flops\nm,1,0.1,2.0,many\n",
            r"line 2, column flops: expected a finite number",
        ),
        ("model,model_params,epochs,lr,val_loss\nm,,1,0.1,2.0\n", r"column model_params: expected a number"),
        ("model,epochs,lr,val_loss\n", r"expected at least one data row"),
    ],
)
def test_csv_errors_name_file_line_column_and_expectation(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(SpecError, match=match):
        load_table(str(path))


def test_cli_main_writes_json(small: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    code = main(["--table", small, "--json", str(out), "--repetitions", "1", "--searchers", "monotone,tpe"])
    assert code == 0
    assert "monotone" in capsys.readouterr().out
    assert set(json.loads(out.read_text())["searchers"]) == {"monotone", "tpe"}


def test_cli_help_and_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    assert "--sample-seeds" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        main(["--table", "x.csv", "--searchers", "annealing"])
    assert done.value.code == 2


def _write_rows(path: Path, rows: list[tuple[str, float, float, int, float]]) -> str:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "epochs", "lr", "seed", "val_loss"])
        w.writerows(rows)
    return str(path)


def test_gap_pairs_seeds_and_gives_a_standard_error(tmp_path: Path) -> None:
    # seed 1 is worse at both LRs; paired by seed, 0.2 is 0.1 worse than 0.4 every time
    path = _write_rows(
        tmp_path / "g.csv",
        [("m", 1, 0.4, 0, 1.0), ("m", 1, 0.4, 1, 2.0), ("m", 1, 0.2, 1, 2.1), ("m", 1, 0.2, 0, 1.1),
         ("m", 1, 0.1, 0, 1.2), ("m", 1, 0.1, 1, 1.7)],
    )
    table = load_table(path)
    cell = table.lattice.cell_of("m", 1)
    gap = table.gap(cell, 1, 2)  # 0.2 over 0.4
    assert gap is not None
    assert gap.rel == pytest.approx(0.1 / 1.5)
    assert gap.se == pytest.approx(0.0, abs=1e-12) and gap.pairs == 2 and gap.df == 1
    assert gap.within_noise() is False
    noisy = table.gap(cell, 0, 2)  # 0.1 over 0.4: +0.2 and -0.3 by seed
    assert noisy is not None and noisy.rel == pytest.approx(-0.05 / 1.5)
    assert noisy.se == pytest.approx(0.25 / 1.5) and noisy.within_noise() is True


def test_gap_without_seeds_is_unpaired_and_with_one_seed_unknown(tmp_path: Path) -> None:
    rows = "model,epochs,lr,val_loss\n" + "".join(
        f"m,1,{lr},{loss}\n" for lr, loss in ((0.2, 1.1), (0.2, 1.3), (0.2, 1.2), (0.4, 1.0), (0.4, 1.0))
    )
    (tmp_path / "w.csv").write_text(rows + "m,1,0.8,inf\nm,1,0.8,0.9\n")
    table = load_table(str(tmp_path / "w.csv"))
    cell = table.lattice.cell_of("m", 1)
    welch = table.gap(cell, 0, 1)  # 0.2 over 0.4, unpaired: (1.2 - 1.0) / 1.0, s.e. from 0.2's spread
    assert welch is not None and welch.pairs == 0
    assert welch.rel == pytest.approx(0.2) and welch.se == pytest.approx(0.1 / math.sqrt(3))
    assert welch.df == pytest.approx(2.0)
    assert welch.within_noise() is True  # t(2 df) = 4.30: 0.2 < 4.30 * 0.0577 = 0.248
    diverged = table.gap(cell, 2, 1)  # 0.8 diverged on one run
    assert diverged is not None and diverged.rel == math.inf and diverged.within_noise() is False
    assert table.gap(cell, 1, 2) is None  # the reference diverged: no gap to speak of

    one = _write_rows(tmp_path / "one.csv", [("m", 1, 0.2, 0, 1.1), ("m", 1, 0.4, 0, 1.0)])
    t1 = load_table(one)
    g = t1.gap(t1.lattice.cell_of("m", 1), 0, 1)
    assert g is not None and g.se is None and g.within_noise() is None


def test_duplicate_seed_labels_fall_back_to_unpaired(tmp_path: Path) -> None:
    path = _write_rows(
        tmp_path / "d.csv",
        [("m", 1, 0.2, 0, 1.1), ("m", 1, 0.2, 0, 1.3), ("m", 1, 0.4, 0, 1.0), ("m", 1, 0.4, 1, 1.0)],
    )
    table = load_table(path)
    gap = table.gap(table.lattice.cell_of("m", 1), 0, 1)
    assert gap is not None and gap.pairs == 0 and gap.rel == pytest.approx(0.2)


def test_misses_say_whether_the_seeds_can_tell_them_apart(tmp_path: Path) -> None:
    # two rungs at one budget. r0 settles 0.4; r1's best is 0.8, above its bound, so monotone misses:
    # by a clear margin at 1 epoch, by less than the seed spread at 2 epochs
    rows = []
    for seed, jitter in ((0, 0.0), (1, 0.05), (2, -0.05), (3, 0.02), (4, -0.02)):
        for model, epochs, losses in (
            ("r0", 1, {0.2: 1.0, 0.4: 0.8, 0.8: 0.9}),
            ("r1", 1, {0.2: 1.0, 0.4: 0.9, 0.8: 0.7}),
            ("r0", 2, {0.2: 1.0, 0.4: 0.8, 0.8: 0.9}),
        ):
            rows += [(model, epochs, lr, seed, loss + jitter) for lr, loss in losses.items()]
        # r1@2: 0.8 beats 0.4 by 0.01 on average, but the seeds disagree by +-0.1
        swing = (0.0, 0.1, -0.1, 0.05, -0.05)[seed]
        rows += [("r1", 2, 0.2, seed, 1.0), ("r1", 2, 0.4, seed, 0.71 + swing), ("r1", 2, 0.8, seed, 0.7)]
    path = _write_rows(tmp_path / "m.csv", rows)
    result = run_replay(path, searchers=("monotone",), repetitions=1, start_lr=0.4)
    mono = result["searchers"]["monotone"]
    by_cell = {m["cell"]: m for m in mono["misses"]}
    assert set(by_cell) == {"r1@1", "r1@2"}
    assert by_cell["r1@1"]["within_noise"] is False and by_cell["r1@1"]["gap"] == pytest.approx(0.2 / 0.7)
    assert by_cell["r1@2"]["within_noise"] is True and by_cell["r1@2"]["gap"] == pytest.approx(0.01 / 0.7)
    assert (by_cell["r1@1"]["verdict"], by_cell["r1@2"]["verdict"]) == ("beyond", "within")
    assert mono["hit_rate"] == pytest.approx(2 / 4)
    assert mono["hit_rate_within_noise"] == pytest.approx(3 / 4)
    rises = {v["cell"]: v["within_noise"] for v in result["prior_violations"]}
    assert rises == {"r1@1": False, "r1@2": True}
    text = format_table(result)
    lines = text.splitlines()
    r12 = next(x for x in lines if x.strip().startswith("r1@2: settled"))
    r11 = next(x for x in lines if x.strip().startswith("r1@1: settled"))
    assert r12.strip().startswith("r1@2: settled 0.4, best 0.8: 1.4% +- ")
    assert r12.endswith("(the seeds cannot tell them apart)")
    assert r11.strip() == "r1@1: settled 0.4, best 0.8: 28.6% +- 0.0% (significant over seeds)"
    lattice = text[text.index("best LR per cell") :].splitlines()
    assert lattice[3].split() == ["r1", "0.8^", "0.8~"]


def test_text_shows_the_best_lr_lattice_with_rises_marked(tmp_path: Path) -> None:
    path = str(tmp_path / "rising.csv")
    write_table(path, n_models=2, epochs=(0.25, 0.5), seeds=5, optimum=lambda m, e: math.log2(0.4) + m)
    text = format_table(run_replay(path, searchers=("monotone",), repetitions=1))
    lattice = text[text.index("best LR per cell") :].splitlines()
    assert lattice[1].split() == ["0.25", "ep", "0.5", "ep"]
    # r1's best (0.8) rises above r0's (0.4); the synthetic seeds agree exactly, so beyond noise
    assert lattice[2].split() == ["r0", "0.4", "0.4"]
    assert lattice[3].split() == ["r1", "0.8^", "0.8^"]
    # columns: every label ends where its header ends
    ends = [lattice[1].index("0.25 ep") + 7, lattice[1].index("0.5 ep") + 6]
    assert [lattice[3].index("0.8^") + 4, lattice[3].rindex("0.8^") + 4] == ends
    assert "table cells with best LR above a predecessor's: 2 (r1@0.25, r1@0.5)" in text


def test_lattice_columns_stay_apart_with_long_labels(tmp_path: Path) -> None:
    rows = [("a", e, lr, 0, 1.0 + abs(math.log2(lr / 0.003125))) for e in (0.125, 16) for lr in (0.003125, 0.00625)]
    rows += [("b", e, lr, 0, 1.0 + abs(math.log2(lr / 0.00625))) for e in (0.125, 16) for lr in (0.003125, 0.00625)]
    text = format_table(run_replay(_write_rows(tmp_path / "l.csv", rows), searchers=("monotone",), start_lr=0.003125))
    lattice = text[text.index("best LR per cell") :].splitlines()
    assert lattice[1].split() == ["0.125", "ep", "16", "ep"]
    assert lattice[2].split() == ["a", "0.003125", "0.003125"]
    assert lattice[3].split() == ["b", "0.00625?", "0.00625?"]  # one seed: no verdict


def test_too_few_seeds_give_no_verdict(tmp_path: Path) -> None:
    # 3 seeds: 0.4 beats 0.8 in r1@1 by a wide, consistent margin, but 3 seeds are too few to judge
    rows = []
    for seed, jitter in ((0, 0.0), (1, 0.05), (2, -0.05)):
        rows += [("r0", 1, lr, seed, loss + jitter) for lr, loss in ((0.2, 1.0), (0.4, 0.8), (0.8, 0.9))]
        rows += [("r1", 1, lr, seed, loss + jitter) for lr, loss in ((0.2, 1.0), (0.4, 0.9), (0.8, 0.7))]
    result = run_replay(_write_rows(tmp_path / "few.csv", rows), searchers=("monotone",), start_lr=0.4)
    mono = result["searchers"]["monotone"]
    assert [(m["cell"], m["verdict"], m["within_noise"]) for m in mono["misses"]] == [("r1@1", "unknown", None)]
    assert mono["hit_rate_within_noise"] == mono["hit_rate"] == 0.5
    assert "(no verdict: fewer than 5 seeds)" in format_table(result)
