"""The analysis of a fine-tuning sweep (`raysweep finetune`): the paper's Figure 1 and finding 4.

From the finished fine-tuning trials (`raysweep.results.FinetuneRow`, several seeds per
(checkpoint, fine-tuning LR, k), k = repeated augmentation's copies per image):

- each (checkpoint, k) at its **best fine-tuning LR**: the LR with the highest mean top-1 over seeds;
- a **power law** of downstream top-1 error against the source's pre-training FLOPs, error = a C^b,
  fitted in log-log (least squares) on the loss-optimal checkpoints (k = 1 where there is one, else
  the smallest k), with a 95% bootstrap interval for b (seeds resampled within each checkpoint and
  LR, the best LR settled again; with one seed each, the points themselves are resampled);
- the **finding-4 table**: at each compute level of the pre-training frontier and each k, the
  loss-optimal checkpoint against its larger-model, larger-LR and smaller-model neighbours, each at
  its own best fine-tuning LR, with a paired t-test over the seeds both ran (scipy's `ttest_rel`);
- the gain over the from-scratch baseline (the same rung, the same k).

Rows that did not end ok (failed, diverged, stopped) are counted and left out. Every gap (a
frontier of one point, a neighbour that was not fine-tuned, only baselines, a single seed) is
said in words, never raised. The figure is `finetune_figure`; this module writes the rest.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from raysweep.analysis.stats import (
    BOOTSTRAP_REPLICATES,
    NO_INTERVAL,
    FitStatus,
    Interval,
    fit_line,
    percentile_interval,
)
from raysweep.core.records import TrialStatus
from raysweep.results.rows import FinetuneRow

# Why a checkpoint was chosen: the values of `raysweep.finetune.select.Why` (analysis may not import
# finetune; tests/analysis/test_finetune_analysis.py checks that the two agree)
LOSS_OPTIMAL: Final = "loss_optimal"
LARGER_MODEL: Final = "larger_model"
SMALLER_MODEL: Final = "smaller_model"
LARGER_LR: Final = "larger_lr"
NEIGHBOURS: Final = (LARGER_MODEL, LARGER_LR, SMALLER_MODEL)  # the table's comparisons, in its order
NEIGHBOUR_WORDS: Final = {LARGER_MODEL: "larger-model", LARGER_LR: "larger-LR", SMALLER_MODEL: "smaller-model"}

MIN_FIT_POINTS: Final = 3  # a line through two points has no residual: R^2 and its interval say nothing
ALPHA: Final = 0.05  # "significant" in the verdict: a two-sided paired test below this
GOOD_R2: Final = 0.9  # "a power law fits well" in the verdict: at least this much of the log error's variance
SPREAD_EPS: Final = 1e-12  # paired differences closer than this are identical (float noise), and t undefined
NOT_ENOUGH: Final = "not enough frontier points to fit"

CSV_NAME: Final = "finetune.csv"
REPORT_NAME: Final = "finetune_report.md"
CSV_COLUMNS: Final = ("checkpoint", "model", "source_cell", "source_lr", "baseline", "repeats", "lr", "n",
                      "top1_mean", "top1_sd", "error_mean", "pretrain_flops", "best_lr", "reasons")


@dataclass(frozen=True)
class Group:
    """One (checkpoint, k, fine-tuning LR), aggregated over its seeds."""

    checkpoint: str  # FinetuneRow.source: `cell lr=X`, or `<rung> from scratch`
    model: str
    baseline: bool
    repeats: int
    lr: float
    top1: Mapping[int, float]  # seed -> top-1 (the mean, should a seed appear twice)
    pretrain_flops: float
    source_cell: str = ""
    source_lr: float = math.nan
    reasons: tuple[tuple[str, str], ...] = ()

    @property
    def n(self) -> int:
        return len(self.top1)

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.top1.values())))

    @property
    def sd(self) -> float:
        """The sample standard deviation over seeds; NaN with one seed."""
        return float(np.std(list(self.top1.values()), ddof=1)) if self.n > 1 else math.nan

    @property
    def error(self) -> float:
        return 1.0 - self.mean


@dataclass(frozen=True)
class FitResult:
    """error = a * C^b over the loss-optimal checkpoints at one k (C: pre-training FLOPs)."""

    status: FitStatus
    repeats: int  # the k the points are taken at (0: no loss-optimal point at all)
    n: int
    a: float = math.nan
    b: float = math.nan
    b_ci: Interval = NO_INTERVAL
    r2: float = math.nan
    bootstrap: str = ""  # what the bootstrap resampled: "seeds" or "points"
    points: tuple[tuple[float, float], ...] = ()  # (compute, error) fitted

    @property
    def ok(self) -> bool:
        return self.status is FitStatus.OK

    def predict(self, compute: float) -> float:
        return self.a * compute**self.b

    def words(self) -> str:
        """The fit in one line, or why there is none."""
        if self.status is FitStatus.TOO_FEW_POINTS:
            return f"{NOT_ENOUGH} ({self.n} loss-optimal point{'s' if self.n != 1 else ''}, {MIN_FIT_POINTS} needed)"
        if self.status is FitStatus.DEGENERATE:
            return f"no fit: the {self.n} loss-optimal points do not spread in compute (or an error is 0)"
        ci = f"95% interval [{self.b_ci.lo:.3f}, {self.b_ci.hi:.3f}] (bootstrap over {self.bootstrap})" \
            if math.isfinite(self.b_ci.lo) else "no interval (too few usable bootstrap replicates)"
        return (f"error = {self.a:.4g} * C^{self.b:.4g}, exponent b {ci}, R^2 = {self.r2:.3f}, "
                f"{self.n} loss-optimal points at k={self.repeats}")


@dataclass(frozen=True)
class Comparison:
    """One row of the finding-4 table: a neighbour against the loss-optimal checkpoint at one level and k."""

    point: str  # the frontier cell (compute level)
    repeats: int
    why: str  # LARGER_MODEL, LARGER_LR or SMALLER_MODEL
    optimal: Group  # the loss-optimal checkpoint at its best fine-tuning LR
    neighbour: Group  # the neighbour at its own best fine-tuning LR
    diff_pp: float  # neighbour minus optimal, percentage points (mean over paired seeds; of means if none)
    n_pairs: int
    p: float  # two-sided paired t-test p; NaN with fewer than 2 pairs (or no spread in the differences)
    optimal_gain_pp: float  # over the from-scratch baseline of its rung at the same k; NaN without one
    neighbour_gain_pp: float

    @property
    def significant(self) -> bool:
        return math.isfinite(self.p) and self.p < ALPHA


@dataclass(frozen=True)
class FinetuneAnalysis:
    """Everything `write_finetune_analysis` found and wrote."""

    fit: FitResult
    comparisons: tuple[Comparison, ...]
    missing: tuple[str, ...]  # comparisons that could not be made, in words
    finding4: str  # the verdict on finding 4, in words
    finding1: str  # whether downstream error falls as a power law in pre-training compute
    gain: str  # the best fine-tuned top-1 against the best from-scratch baseline
    left_out: tuple[tuple[str, int], ...]  # (status, rows) not ok, left out
    groups: tuple[Group, ...]
    report: str  # finetune_report.md's text
    figure: Path
    report_path: Path
    csv_path: Path


# Aggregation ----------------------------------------------------------------------------------

def ok_rows(rows: Sequence[FinetuneRow]) -> tuple[list[FinetuneRow], tuple[tuple[str, int], ...]]:
    """The rows that ended ok with a finite top-1, and the count of the others by status."""
    ok = [r for r in rows if TrialStatus.parse(r.status) is TrialStatus.OK and math.isfinite(r.top1)]
    kept = {id(r) for r in ok}
    left = Counter(str(r.status) if TrialStatus.parse(r.status) is not TrialStatus.OK else "ok but top-1 not finite"
                   for r in rows if id(r) not in kept)
    return ok, tuple(sorted(left.items()))


def aggregate(rows: Sequence[FinetuneRow]) -> list[Group]:
    """One `Group` per (checkpoint, k, fine-tuning LR) of the (ok) rows, in a stable order."""
    by: dict[tuple[str, int, float], list[FinetuneRow]] = defaultdict(list)
    for r in rows:
        by[(r.source, r.repeats, r.lr)].append(r)
    out = []
    for (source, k, lr), rs in sorted(by.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        seeds: dict[int, list[float]] = defaultdict(list)
        for r in rs:
            seeds[r.seed].append(r.top1)
        reasons = tuple(sorted({x for r in rs for x in r.reasons}))
        out.append(Group(checkpoint=source, model=rs[0].model, baseline=rs[0].baseline, repeats=k, lr=lr,
                         top1={s: float(np.mean(v)) for s, v in sorted(seeds.items())},
                         pretrain_flops=float(np.mean([r.pretrain_flops for r in rs])),
                         source_cell=rs[0].source_cell, source_lr=rs[0].source_lr, reasons=reasons))
    return out


def best_lr(groups: Sequence[Group]) -> dict[tuple[str, int], Group]:
    """(checkpoint, k) -> its group at the fine-tuning LR of highest mean top-1 (ties: the smaller LR)."""
    out: dict[tuple[str, int], Group] = {}
    for g in groups:
        key = (g.checkpoint, g.repeats)
        cur = out.get(key)
        if cur is None or g.mean > cur.mean or (g.mean == cur.mean and g.lr < cur.lr):
            out[key] = g
    return out


def has_reason(g: Group, why: str, point: str | None = None) -> bool:
    return any(w == why and (point is None or p == point) for w, p in g.reasons)


# The power law --------------------------------------------------------------------------------

def fit_power_law(groups: Sequence[Group], replicates: int = BOOTSTRAP_REPLICATES, seed: int = 0) -> FitResult:
    """error = a C^b in log-log over the loss-optimal checkpoints' best points at k=1 (else the smallest k)."""
    optimal = [g for g in groups if not g.baseline and has_reason(g, LOSS_OPTIMAL)]
    if not optimal:
        return FitResult(FitStatus.TOO_FEW_POINTS, repeats=0, n=0)
    k = 1 if any(g.repeats == 1 for g in optimal) else min(g.repeats for g in optimal)
    at_k = [g for g in optimal if g.repeats == k]
    best = sorted(best_lr(at_k).values(), key=lambda g: g.pretrain_flops)
    points = tuple((g.pretrain_flops, g.error) for g in best)
    if len(points) < MIN_FIT_POINTS:
        return FitResult(FitStatus.TOO_FEW_POINTS, repeats=k, n=len(points), points=points)
    line = _log_line(points)
    if line is None:
        return FitResult(FitStatus.DEGENERATE, repeats=k, n=len(points), points=points)
    by_seeds = all(g.n > 1 for g in at_k)
    draws = _seed_draws(at_k, replicates, seed) if by_seeds else _point_draws(points, replicates, seed)
    slopes = [fit.slope for pts in draws if (fit := _log_line(pts)) is not None]
    return FitResult(FitStatus.OK, repeats=k, n=len(points), a=10**line.intercept, b=line.slope,
                     b_ci=percentile_interval(slopes), r2=line.r2, bootstrap="seeds" if by_seeds else "points",
                     points=points)


def _log_line(points: Sequence[tuple[float, float]]):  # type: ignore[no-untyped-def]
    """log10 error against log10 compute; None where a value is not positive or compute does not vary."""
    if any(c <= 0 or e <= 0 or not math.isfinite(e) for c, e in points):
        return None
    return fit_line([math.log10(c) for c, _ in points], [math.log10(e) for _, e in points])


def _seed_draws(groups: Sequence[Group], replicates: int, seed: int) -> Iterator[list[tuple[float, float]]]:
    """Bootstrap replicates: each group's seeds drawn with replacement, each checkpoint's best LR settled again."""
    rng = np.random.default_rng(seed)
    by: dict[str, list[Group]] = defaultdict(list)
    for g in groups:
        by[g.checkpoint].append(g)
    for _ in range(replicates):
        pts = []
        for gs in by.values():
            means = [float(np.mean(v[rng.integers(0, len(v), len(v))])) for v in
                     (np.array(list(g.top1.values())) for g in gs)]
            pts.append((gs[0].pretrain_flops, 1.0 - max(means)))
        yield pts


def _point_draws(points: Sequence[tuple[float, float]], replicates: int, seed: int) -> Iterator[list[tuple[float, float]]]:
    rng = np.random.default_rng(seed)
    for _ in range(replicates):
        yield [points[i] for i in rng.integers(0, len(points), len(points))]


# Finding 4 ------------------------------------------------------------------------------------

def paired(optimal: Group, neighbour: Group) -> tuple[float, int, float]:
    """(neighbour minus optimal in percentage points, pairs, two-sided paired t-test p) over shared seeds."""
    seeds = sorted(set(optimal.top1) & set(neighbour.top1))
    if not seeds:
        return 100 * (neighbour.mean - optimal.mean), 0, math.nan
    a = np.array([optimal.top1[s] for s in seeds])
    b = np.array([neighbour.top1[s] for s in seeds])
    diff = 100 * float(np.mean(b - a))
    if len(seeds) < 2 or np.ptp(b - a) < SPREAD_EPS:  # identical differences: t is undefined
        return diff, len(seeds), math.nan
    from scipy.stats import ttest_rel  # on use: scipy.stats takes seconds to import

    return diff, len(seeds), float(ttest_rel(b, a).pvalue)


def compare(groups: Sequence[Group]) -> tuple[list[Comparison], list[str]]:
    """The finding-4 table's rows, and each comparison that could not be made, in words."""
    best = best_lr(groups)
    scratch = {(g.model, g.repeats): g for (_, _), g in best.items() if g.baseline}
    rows, missing = [], []
    optimal = sorted((g for g in best.values() if not g.baseline and has_reason(g, LOSS_OPTIMAL)),
                     key=lambda g: (g.pretrain_flops, g.repeats))
    for opt in optimal:
        for point in sorted({p for w, p in opt.reasons if w == LOSS_OPTIMAL}):
            for why in NEIGHBOURS:
                nbs = [g for g in best.values() if g.repeats == opt.repeats and not g.baseline
                       and g.checkpoint != opt.checkpoint and has_reason(g, why, point)]
                if not nbs:
                    missing.append(f"{point} (k={opt.repeats}): no {NEIGHBOUR_WORDS[why]} neighbour was fine-tuned "
                                   "(none exists, or its runs did not end ok)")
                for nb in nbs:
                    diff, n, p = paired(opt, nb)
                    rows.append(Comparison(point, opt.repeats, why, opt, nb, diff, n, p,
                                           _gain(opt, scratch), _gain(nb, scratch)))
    return rows, _orphans(best.values(), optimal) + missing


def _orphans(best: Iterable[Group], optimal: Sequence[Group]) -> list[str]:
    """The levels (point, k) that a neighbour ran at but whose loss-optimal checkpoint has no ok run, in words."""
    have = {(p, g.repeats) for g in optimal for w, p in g.reasons if w == LOSS_OPTIMAL}
    named = {(p, g.repeats) for g in best if not g.baseline for w, p in g.reasons if w in NEIGHBOURS}
    return [f"{p} (k={k}): its neighbours ran but the loss-optimal checkpoint has no ok run, so they are not compared"
            for p, k in sorted(named - have)]


def _gain(g: Group, scratch: Mapping[tuple[str, int], Group]) -> float:
    base = scratch.get((g.model, g.repeats))
    return 100 * (g.mean - base.mean) if base is not None else math.nan


# Words ----------------------------------------------------------------------------------------

def finding4_verdict(comparisons: Sequence[Comparison]) -> str:
    """Whether fine-tuning favours the larger-model (and larger-LR) neighbour over the loss-optimal
    checkpoint, per k, in plain sentences, whichever way it goes."""
    lines = []
    large = [c for c in comparisons if c.why == LARGER_MODEL]
    if not large:
        lines.append("Finding 4 cannot be judged here: no loss-optimal checkpoint has a larger-model neighbour "
                     "that was fine-tuned.")
    else:
        better = sum(c.diff_pp > 0 for c in large)
        worse = sum(c.diff_pp < 0 for c in large)
        head = ("Finding 4 shows here" if better > worse else "Finding 4 does not show here" if worse > better
                else "Finding 4 is mixed here")
        lines.append(f"{head}: " + "; ".join(_count_sentence(cs, "larger-model") for cs in _by_k(large)) + ".")
    lr = [c for c in comparisons if c.why == LARGER_LR]
    if lr:
        lines.append("Larger pre-training LR: " + "; ".join(_count_sentence(cs, "larger-LR") for cs in _by_k(lr)) + ".")
    return " ".join(lines)


def _by_k(comparisons: Sequence[Comparison]) -> list[list[Comparison]]:
    ks = sorted({c.repeats for c in comparisons})
    return [[c for c in comparisons if c.repeats == k] for k in ks]


def _count_sentence(cs: Sequence[Comparison], words: str) -> str:
    levels = sorted({c.point for c in cs})
    better = sorted({c.point for c in cs if c.diff_pp > 0})
    sig_better = sorted({c.point for c in cs if c.diff_pp > 0 and c.significant})
    sig_worse = sorted({c.point for c in cs if c.diff_pp < 0 and c.significant})
    tested = any(math.isfinite(c.p) for c in cs)
    worse = f"; significantly worse at {len(sig_worse)}" if sig_worse else ""
    sig = (f" (significant at p<{ALPHA:g} at {len(sig_better)}{worse})" if tested
           else " (no paired test: fewer than 2 shared seeds)")
    k = cs[0].repeats
    aug = "without repeated augmentation (k=1)" if k == 1 else f"with repeated augmentation (k={k})"
    return (f"{aug}, at {len(better)} of {len(levels)} compute level{'s' if len(levels) != 1 else ''} the {words} "
            f"neighbour fine-tunes better than the loss-optimal checkpoint{sig}")


def finding1_verdict(fit: FitResult) -> str:
    """Whether downstream error falls as a power law in pre-training compute."""
    if not fit.ok:
        return f"Finding 1 (downstream error falls as a power law in pre-training compute) cannot be judged: {fit.words()}."
    ci = fit.b_ci
    if fit.b >= -SPREAD_EPS:  # flat points give a slope of float noise either side of 0
        how = "does not fall with pre-training compute"
    elif math.isfinite(ci.hi) and ci.hi >= 0:
        how = "falls with pre-training compute, but the exponent's 95% interval includes 0, so the fall is not established"
    else:
        how = "falls with pre-training compute" + (" (the exponent's 95% interval lies below 0)" if math.isfinite(ci.hi) else "")
    shape = "a power law fits well" if fit.r2 >= GOOD_R2 else "a power law fits poorly"
    return (f"Finding 1: downstream error {how}: error ~ C^{fit.b:.3g}; {shape} "
            f"(R^2 = {fit.r2:.3f} over {fit.n} loss-optimal points at k={fit.repeats}).")


def gain_verdict(groups: Sequence[Group]) -> str:
    """The best fine-tuned top-1 against the best from-scratch baseline."""
    best = best_lr(groups).values()
    tuned = [g for g in best if not g.baseline]
    base = [g for g in best if g.baseline]
    if not tuned and not base:
        return "No run ended ok: nothing to compare."
    if not tuned:
        b = max(base, key=lambda g: g.mean)
        return (f"Only from-scratch baselines ended ok (best {100 * b.mean:.2f}% top-1, {b.checkpoint}, k={b.repeats}): "
                "no fine-tuned checkpoint to compare, so the gain from pre-training is unknown.")
    t = max(tuned, key=lambda g: g.mean)
    if not base:
        return (f"The best fine-tuned checkpoint ({t.checkpoint}, k={t.repeats}) reaches {100 * t.mean:.2f}% top-1; "
                "no from-scratch baseline ended ok, so the gain from pre-training is unknown.")
    b = max(base, key=lambda g: g.mean)
    return (f"Gain from pre-training: the best fine-tuned checkpoint ({t.checkpoint}, k={t.repeats}) reaches "
            f"{100 * t.mean:.2f}% top-1 against {100 * b.mean:.2f}% for the best from-scratch baseline "
            f"({b.checkpoint}, k={b.repeats}): {100 * (t.mean - b.mean):+.2f} points.")


# Files ----------------------------------------------------------------------------------------

def write_csv(groups: Sequence[Group], path: Path) -> Path:
    """One line per (checkpoint, k, fine-tuning LR), seeds aggregated, baselines included."""
    best = {id(g) for g in best_lr(groups).values()}
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for g in groups:
            w.writerow([g.checkpoint, g.model, g.source_cell, "" if g.baseline else f"{g.source_lr:g}",
                        int(g.baseline), g.repeats, f"{g.lr:g}", g.n, f"{g.mean:.6g}", _f(g.sd, ".6g"),
                        f"{g.error:.6g}", f"{g.pretrain_flops:.6g}", int(id(g) in best),
                        ";".join(f"{w}:{p}" for w, p in g.reasons)])
    return path


def _f(x: float, fmt: str = ".2f") -> str:
    return format(x, fmt) if math.isfinite(x) else "n/a"


def _p(p: float) -> str:
    return "n/a" if not math.isfinite(p) else f"{p:.3g}"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(str(x) for x in r) + " |" for r in rows] + [""]


def report_text(a: FinetuneAnalysis, title: str, figure_name: str) -> str:
    """finetune_report.md: the verdicts, the fit, the finding-4 table, what is missing, what was left out."""
    lines = [f"# {title or 'Fine-tuning'}: downstream top-1 against pre-training compute", ""]
    lines += [a.finding1, "", a.gain, "", a.finding4, ""]
    if a.left_out:
        lines += ["Left out (did not end ok): " + ", ".join(f"{n} {s}" for s, n in a.left_out) + ".", ""]
    lines += [f"## Error against compute (`{figure_name}`, the paper's Figure 1)", "",
              ("Each point is a checkpoint at its best fine-tuning LR (highest mean top-1 over seeds), mean error "
               "over seeds, error bars min to max over seeds; circles k=1, other markers k>1; dashed lines the "
               "from-scratch baselines."), "",
              f"Power law on the loss-optimal checkpoints: {a.fit.words()}.", ""]
    lines += ["## Finding 4: the loss-optimal checkpoint against its neighbours after fine-tuning", "",
              ("Each checkpoint at its own best fine-tuning LR; difference = neighbour minus optimal in percentage "
               "points (mean over seeds both ran); p: two-sided paired t-test over those seeds; gain: over the "
               "from-scratch baseline of the same rung and k."), ""]
    if a.comparisons:
        lines += _table(
            ["compute level", "k", "neighbour", "optimal (top-1 %)", "neighbour (top-1 %)", "diff (pp)", "pairs", "p",
             "optimal gain (pp)", "neighbour gain (pp)"],
            [[c.point, c.repeats, NEIGHBOUR_WORDS[c.why],
              f"{c.optimal.checkpoint} (ft lr {c.optimal.lr:g}): {100 * c.optimal.mean:.2f}",
              f"{c.neighbour.checkpoint} (ft lr {c.neighbour.lr:g}): {100 * c.neighbour.mean:.2f}",
              f"{c.diff_pp:+.2f}", c.n_pairs, _p(c.p), _f(c.optimal_gain_pp, "+.2f"), _f(c.neighbour_gain_pp, "+.2f")]
             for c in a.comparisons])
    else:
        lines += ["No comparison could be made.", ""]
    if a.missing:
        lines += ["Comparisons that could not be made:", ""] + [f"- {m}" for m in a.missing] + [""]
    lines += ["## Files", "", f"- `{figure_name}`, `{CSV_NAME}` (one line per checkpoint, k and fine-tuning LR).", ""]
    return "\n".join(lines)


def write_finetune_analysis(rows: Sequence[FinetuneRow], out: Path, *, title: str = "") -> FinetuneAnalysis:
    """Analyse a fine-tuning sweep's rows and write `top1_vs_compute.png`, `finetune_report.md` and
    `finetune.csv` into `out` (made if absent). Never raises on thin data: gaps are said in words."""
    from raysweep.analysis.finetune_figure import (  # matplotlib on use only
        TOP1_VS_COMPUTE,
        plot_top1_vs_compute,
    )

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ok, left_out = ok_rows(rows)
    groups = aggregate(ok)
    fit = fit_power_law(groups)
    comparisons, missing = compare(groups)
    if not any(has_reason(g, LOSS_OPTIMAL) for g in groups):
        missing.insert(0, "no loss-optimal checkpoint ended ok: there is no compute level to compare at")
    figure = plot_top1_vs_compute(list(best_lr(groups).values()), fit, out / TOP1_VS_COMPUTE, title=title)
    partial = FinetuneAnalysis(fit=fit, comparisons=tuple(comparisons), missing=tuple(missing),
                               finding4=finding4_verdict(comparisons), finding1=finding1_verdict(fit),
                               gain=gain_verdict(groups), left_out=left_out, groups=tuple(groups), report="",
                               figure=figure, report_path=out / REPORT_NAME, csv_path=write_csv(groups, out / CSV_NAME))
    text = report_text(partial, title, TOP1_VS_COMPUTE)
    partial.report_path.write_text(text)
    return dataclasses.replace(partial, report=text)
