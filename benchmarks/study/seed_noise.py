"""How much do seeds move a study's answers? The spread of the cells run with several seeds, the
pooled seed noise, whether the study's best cell is told apart from its rivals, and a forecast's
misses in units of that noise.

A study of one seed a cell ranks its top cells by single runs; where they lie within a percent of
each other, "the measured optimal rung" and "a forecast within 3%" are statements about seed noise
as much as about the law. This script reads a results table where some (model, budget, LR) were run
with two or more seeds (benchmarks/study/record_seeds.sh adds seeds 1 and 2 to the extended NFNet
study's top cells) and prints:
- every replicated (model, budget, LR): its losses by seed, mean, standard deviation (relative);
- the pooled relative seed noise (the standard deviation of log loss, pooled over the groups within
  10% of their cell's best: an LR at the edge of divergence spreads by orders of magnitude);
- the cells nearest the best (cells at their seed-mean best LR): each one's difference from the
  best in units of its standard error (a single-seed cell's error from the pooled noise), and how
  often each is the best when seeds are drawn again (replicated groups: their seeds drawn with
  replacement; single-seed groups: their loss times the pooled noise, log-normal);
- with --forecast (a validate_forecast.py --json of the same table), each held-out frontier point's
  error in units of the pooled noise.

    PYTHONPATH=. .venv/bin/python benchmarks/study/seed_noise.py benchmarks/study/nfnet_extended_seeds.csv \
        --forecast benchmarks/study/forecast_seeds_chinchilla.json --json benchmarks/study/seed_noise.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from raysweep.analysis.runs import CellBest, ComputeAxis, Runs, load_csv
from raysweep.core.errors import SpecError

DRAWS = 2000
NEAR = 0.03  # cells within 3% of the best are its rivals
POOL = 0.10  # groups within 10% of their cell's best seed-mean loss make the pooled noise (not an LR that diverges)


@dataclass(frozen=True)
class Group:
    """One (model, budget, LR) run with two or more seeds."""

    model: str
    epochs: float
    lr: float
    seeds: tuple[str, ...]
    losses: tuple[float, ...]

    @property
    def mean(self) -> float:
        return float(np.mean(self.losses))

    @property
    def rel_sd(self) -> float:
        """The standard deviation of log loss (a relative spread: 0.01 is 1%)."""
        return float(np.std(np.log(self.losses), ddof=1))


def replicated(runs: Runs) -> list[Group]:
    out = []
    for (model, epochs, lr), rs in runs.groups().items():
        rs = sorted(rs, key=lambda r: r.seed)
        if len(rs) >= 2 and all(math.isfinite(r.val_loss) for r in rs):
            out.append(Group(model, epochs, lr, tuple(r.seed for r in rs), tuple(r.val_loss for r in rs)))
    return sorted(out, key=lambda g: (runs.rung_params[g.model], g.epochs, g.lr))


def near_best(runs: Runs, groups: list[Group]) -> list[Group]:
    """The groups whose seed-mean loss lies within POOL of their cell's best: the noise of the LRs that
    decide a cell (an LR at the edge of divergence spreads by orders of magnitude and says nothing of it)."""
    best = {(c.model, c.epochs): c.loss for c in runs.cells(ComputeAxis.FLOPS)}
    return [g for g in groups if g.mean <= best[(g.model, g.epochs)] * (1 + POOL)]


def pooled_rel_sd(groups: list[Group]) -> float:
    """The pooled standard deviation of log loss over the groups (nan without a replicated group)."""
    dof = sum(len(g.losses) - 1 for g in groups)
    if dof == 0:
        return math.nan
    return math.sqrt(sum((len(g.losses) - 1) * g.rel_sd**2 for g in groups) / dof)


@dataclass(frozen=True)
class Rival:
    cell: str
    loss: float
    seeds: int
    diff: float  # relative to the best cell's loss
    z: float  # diff over its standard error
    best_share: float  # how often the cell is the best when seeds are drawn again


def rivals(runs: Runs, noise: float, *, draws: int = DRAWS, seed: int = 0) -> list[Rival]:
    """The best cell and every cell within NEAR of it, best first."""
    cells = runs.cells(ComputeAxis.FLOPS)
    best = min(cells, key=lambda c: c.loss)
    near = [c for c in cells if c.loss <= best.loss * (1 + NEAR)]
    wins = Counter(c.name for c in _redraws(runs, noise, draws, seed))

    def se(c: CellBest) -> float:  # of log loss
        return c.loss_se / c.loss if c.seeds >= 2 else noise

    out = []
    for c in sorted(near, key=lambda c: c.loss):
        diff = c.loss / best.loss - 1
        err = math.hypot(se(c), se(best)) if c is not best else math.nan
        out.append(Rival(c.name, c.loss, c.seeds, diff, diff / err if c is not best else math.nan,
                         wins[c.name] / draws))
    return out


def _redraws(runs: Runs, noise: float, draws: int, seed: int) -> list[CellBest]:
    """The best cell of each redraw of the seeds."""
    rng = np.random.default_rng(seed)
    groups = {k: np.array([r.val_loss for r in v]) for k, v in runs.groups().items()}
    out = []
    for _ in range(draws):
        drawn = {k: v[rng.integers(0, len(v), len(v))] if len(v) >= 2 else v * math.exp(rng.normal(0, noise))
                 for k, v in groups.items()}
        out.append(min(runs.cells(ComputeAxis.FLOPS, losses=drawn), key=lambda c: c.loss))
    return out


def forecast_in_noise(path: Path, noise: float) -> list[dict[str, object]]:
    """Each held-out frontier point of a validate_forecast.py --json: its errors over the pooled noise."""
    out = []
    for table in json.loads(path.read_text()):
        for p in table["predictions"]:
            err = p["parametric_err"]
            law = f"auto:{table['law']}" if table.get("law_auto") else table["law"]  # what --law auto chose
            out.append({"table": table["table"], "law": law, "cell": p["cell"], "err": err,
                        "err_in_noise": math.log1p(err) / noise if err is not None else None,
                        "rung_right": p["rung_off"] == 0})
    return out


def report(path: str, forecasts: list[Path], draws: int) -> tuple[list[str], dict[str, object]]:
    runs = load_csv(path)
    groups = replicated(runs)
    if not groups:
        raise SpecError("expected some (model, epochs, lr) run with two or more seeds, got one seed each",
                        file=path, key="column seed")
    pooled = near_best(runs, groups)
    noise = pooled_rel_sd(pooled)
    lines = [f"{path}: {len(groups)} of {len(runs.groups())} (model, budget, LR) run with 2+ seeds",
             f"{'cell':<18} {'LR':>6}  {'seeds':<8} {'losses by seed':<32} {'mean':>7} {'sd':>6}  pooled"]
    for g in groups:
        losses = " ".join(f"{x:.4f}" for x in g.losses)
        lines.append(f"{g.model + '@' + format(g.epochs, 'g'):<18} {g.lr:>6g}  {','.join(g.seeds):<8} "
                     f"{losses:<32} {g.mean:>7.4f} {g.rel_sd:>6.2%}  {'yes' if g in pooled else ''}")
    dof = sum(len(g.losses) - 1 for g in pooled)
    lines.append(f"pooled seed noise: {noise:.2%} of the loss (sd of log loss over the {len(pooled)} groups within "
                 f"{POOL:.0%} of their cell's best, {dof} degrees of freedom)")
    rs = rivals(runs, noise, draws=draws)
    lines += ["", (f"the best cell and its rivals within {NEAR:.0%} (cells at their seed-mean best LR; "
                   f"best share over {draws} redraws of the seeds)"),
              f"{'cell':<18} {'loss':>7} {'seeds':>5} {'vs best':>8} {'z':>6} {'best share':>10}"]
    for r in rs:
        z = "" if math.isnan(r.z) else f"{r.z:.1f}"
        lines.append(f"{r.cell:<18} {r.loss:>7.4f} {r.seeds:>5} {r.diff:>+8.2%} {z:>6} {r.best_share:>10.1%}")
    elsewhere = 1 - sum(r.best_share for r in rs)
    if elsewhere > 0:
        lines.append(f"best elsewhere (a cell beyond {NEAR:.0%}, or one run once at another LR): {elsewhere:.1%}")
    misses = [m for f in forecasts for m in forecast_in_noise(f, noise)]
    if misses:
        lines += ["", "forecast misses at the held-out frontier points, in units of the pooled seed noise"]
        for m in misses:
            lines.append(f"{m['table']} {m['law']:<16} {m['cell']:<16} {m['err']:+.1%} = "
                         f"{m['err_in_noise']:+.1f} sd  rung {'right' if m['rung_right'] else 'wrong'}")
    out = {"table": path, "groups": [asdict(g) | {"mean": g.mean, "rel_sd": g.rel_sd, "pooled": g in pooled} for g in groups],
           "pooled_rel_sd": noise, "dof": dof, "rivals": [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in asdict(r).items()} for r in rs],
           "forecast": misses}
    return lines, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("table", help="a results table with some cells run with two or more seeds")
    ap.add_argument("--forecast", type=Path, action="append", default=[],
                    help="a validate_forecast.py --json of the same table (repeatable)")
    ap.add_argument("--draws", type=int, default=DRAWS, help="redraws of the seeds (default: %(default)s)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    for f in args.forecast:
        if not f.is_file():
            print(f"seed_noise.py: --forecast {f}: expected a validate_forecast.py --json file, found none", file=sys.stderr)
            return 2
    try:
        lines, out = report(args.table, args.forecast, args.draws)
    except SpecError as e:
        print(f"seed_noise.py: {e}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
