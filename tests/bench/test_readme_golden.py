"""Golden: the README's searcher table, replayed from the committed tables with `raysweep bench searcher`.

The README states, per searcher and dataset, trials per cell, hit rate, hit~noise and mean
regret, replayed over `benchmarks/*_grid_agc0.16.csv`. This test reads those rows from the README
and replays the deterministic searchers (grid, monotone, bracket, verify, trend: the same trials
every repetition) through the CLI, so the table cannot drift from what the code and the recorded
data give. tpe and random are randomised over 20 repetitions and left to the benchmark itself.
No Ray; a few seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raysweep.cli import main

REPO = Path(__file__).resolve().parents[2]
TABLES = {"mnist5k": REPO / "benchmarks" / "mnist5k_grid_agc0.16.csv",
          "fashion": REPO / "benchmarks" / "fashion_grid_agc0.16.csv"}
DETERMINISTIC = ("grid", "monotone", "bracket", "verify", "trend")


def readme_rows() -> dict[str, dict[str, tuple[str, str, str, str]]]:
    """{searcher: {dataset: (trials/cell, hit rate, hit~noise, mean regret)}} as the README prints them."""
    text = (REPO / "README.md").read_text()
    header = next((line for line in text.splitlines() if line.startswith("| searcher | MNIST-5k")), None)
    assert header is not None, "the README's searcher table (| searcher | MNIST-5k ...) is gone"
    rows: dict[str, dict[str, tuple[str, str, str, str]]] = {}
    for line in text[text.index(header):].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip().replace("*", "") for c in line.strip("|").split("|")]
        name = cells[0].split()[0]
        rows[name] = {"mnist5k": tuple(cells[1:5]), "fashion": tuple(cells[5:9])}  # type: ignore[dict-item]
    return rows


def pct(text: str) -> float:
    """'0.13%' -> 0.0013, '0' -> 0."""
    return float(text.rstrip("%")) / 100 if text.endswith("%") else float(text)


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    out = {}
    for name, table in TABLES.items():
        path = tmp_path_factory.mktemp("golden") / f"{name}.json"
        assert main(["bench", "searcher", "--table", str(table), "--searchers", ",".join(DETERMINISTIC),
                     "--repetitions", "1", "--json", str(path)]) == 0
        out[name] = json.loads(path.read_text())["searchers"]
    return out


@pytest.mark.parametrize("dataset", sorted(TABLES))
@pytest.mark.parametrize("searcher", DETERMINISTIC)
def test_readme_searcher_row_is_what_the_committed_table_replays_to(replayed: dict, searcher: str,
                                                                    dataset: str) -> None:
    trials, hit, hit_noise, regret = readme_rows()[searcher][dataset]
    got = replayed[dataset][searcher]
    assert f"{got['mean_trials_per_cell']:.2f}" == trials
    assert f"{got['hit_rate']:.3f}" == hit
    assert f"{got['hit_rate_within_noise']:.3f}" == hit_noise
    # the README rounds regret to 2 decimals of a percent (and writes an exact 0 as 0)
    assert got["mean_regret"] == pytest.approx(pct(regret), abs=0.00005)
    assert (got["mean_regret"] == 0) == (regret == "0")

