"""`raysweep run --dry-run`: the cells, steps, FLOPs and (on a TPU slice) core-hours of a sweep,
computed before anything starts.

The data's shape comes from the data itself where it can be read here, else from the search
space's `data.assume` (the paper's JFT-4B lives only on the cluster). FLOPs per example are
measured from the model on the meta device; core-hours follow from them in `raysweep.core.cost`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from raysweep.config import SweepSpec
from raysweep.core import cost
from raysweep.core.records import cell_name
from raysweep.data.shape import DataShape

if TYPE_CHECKING:
    from raysweep.core.warm import WarmPlan

def trials_per_cell(spec: SweepSpec) -> int:
    """Trials the sweep's searcher spends per cell, for the estimate (the searcher table's row)."""
    from raysweep.search import searcher_row

    return searcher_row(spec.search.searcher).trials_per_cell(n_lrs=len(spec.lr_grid()),
                                                              budget=spec.search.trials_per_cell)


def report(spec: SweepSpec, shape: DataShape, warm: WarmPlan | None = None) -> str:
    from raysweep.core.space import format_epochs
    from raysweep.models import flops_per_example, ladder_of, param_count
    from raysweep.train import kept
    from raysweep.train.recipe import plan_steps

    grid = spec.lr_grid()
    per_cell = trials_per_cell(spec)
    kw = {"num_classes": shape.num_classes, "in_chans": shape.in_chans, "image_size": shape.image_size}
    if shape.assumed:
        data = (f"dataset {spec.data.dataset} ASSUMED from data.assume, not read: {shape.n_train:,} train examples, "
                f"{shape.num_classes:,} classes, {shape.in_chans} channels at {shape.image_size}px")
    else:
        data = (f"dataset {spec.data.dataset} ({shape.n_train} train / {shape.n_val} val, "
                f"{shape.num_classes} classes)")
    tpu = spec.resources.tpu
    lines = [f"sweep {spec.name}: {data}, batch {spec.batch_size}",
             f"LR grid ({len(grid)}): {', '.join(f'{g:g}' for g in grid)}",
             f"searcher {spec.search.searcher}: about {per_cell} trials per cell"]
    # days on the slice only where the slice is the v4 the core-hours are counted in
    slice_cores = tpu.chips() * cost.TPU_V4.cores if tpu is not None and tpu.accelerator_type == "TPU-V4" else 0
    if tpu is not None:
        lines.append(f"a trial holds one {tpu.pod_type()} slice ({tpu.accelerator_type} {tpu.topology}: "
                     f"{tpu.chips()} chips, {tpu.hosts()} hosts)")
    header = f"{'cell':<24} {'params':>12} {'steps':>9} {'examples':>15} {'FLOPs/trial':>12}"
    if warm is not None:
        header += f" {'first LR':>9}"
    if tpu is not None:
        header += f" {'v4 core-h/trial':>15}" + (f" {'days on slice':>13}" if slice_cores else "")
    lines += ["", header]
    flops_cells: list[float] = []
    kept_bytes = 0  # every trial keeps its newest checkpoints: fine-tuning starts from the final one
    for model in spec.ladder.rungs:
        fpe = flops_per_example(ladder_of(spec.ladder), model, **kw)
        n = param_count(ladder_of(spec.ladder), model, **kw)
        kept_bytes += kept.state_bytes(n, spec.optim.name) * kept.KEPT_COPIES * per_cell * len(spec.epochs)
        for e in spec.epochs:
            plan = plan_steps(n_train=shape.n_train, batch_size=spec.batch_size, epochs=e,
                              warmup_fraction=spec.optim.warmup_fraction)
            flops = fpe * plan.examples
            flops_cells.append(flops)
            row = (f"{model + '@' + format_epochs(e):<24} {n:>12,} {plan.total_steps:>9,} {plan.examples:>15,} "
                   f"{flops:>12.3g}")
            if warm is not None:  # the warm start's forecast; the cell opens at the grid point(s) nearest it
                row += f" {warm.lrs[cell_name(model, e)]:>9.3g}"
            if tpu is not None:
                hours = cost.core_hours(flops)
                row += f" {cost.format_hours(hours):>15}" + (f" {hours / slice_cores / 24:>13.3g}" if slice_cores else "")
            lines.append(row)
    cells = len(flops_cells)
    total = sum(flops_cells) * per_cell
    trials = cells * per_cell
    lines += ["", (f"{cells} cells, about {trials} trials, about {total:.3g} training FLOPs "
                  f"({total / max(trials, 1):.3g} per trial on average)")]
    if not math.isfinite(total):
        lines.append("(FLOPs could not be estimated)")
    lines.append(f"kept checkpoints: about {kept.format_bytes(kept_bytes)} of disk under the results folder "
                 f"({kept.KEPT_COPIES} per trial: fp32 weights and {spec.optim.name} state; a local-mode "
                 f"trial keeps one more under tune/)")
    if tpu is not None:
        lines += ["", f"cost in TPU-v4 core-hours: {cost.assumptions()}; training only (no evaluation)"]
        from raysweep.search import MONOTONE_PER_CELL

        for name, k in (("grid", len(grid)), ("monotone", MONOTONE_PER_CELL)):
            hours = cost.core_hours(sum(flops_cells) * k)
            days = f", {hours / slice_cores / 24:,.0f} {tpu.pod_type()}-slice-days" if slice_cores else ""
            lines.append(f"  {name:<9} {k} trials per cell, {cells * k:>4} trials: {cost.format_hours(hours):>7} "
                         f"core-hours ({cost.format_hours(hours / (cells * k))} per trial on average){days}")
    return "\n".join(lines)
