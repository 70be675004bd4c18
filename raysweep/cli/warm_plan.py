"""A sweep's warm start (`search.warm_start` / `--warm-start`): the earlier study read and fitted,
and the forecast laid over this sweep's cells. Runs on the driver before anything is launched, so
a source that cannot give a trend is a one-line error with nothing created."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from raysweep.core.errors import SpecError
from raysweep.core.records import cell_name

if TYPE_CHECKING:
    from raysweep.config import SweepSpec
    from raysweep.core.warm import WarmPlan, WarmStart
    from raysweep.data.shape import DataShape


def build_warm_plan(spec: SweepSpec, uri: str, shape: DataShape, *,
                    key: str = "search.warm_start") -> tuple[WarmPlan, WarmStart]:
    """The earlier study's trend (`spec.search.warm_start`) and each cell's forecast LR."""
    from raysweep.analysis.warm_start import WarmStartError, fit_warm_start
    from raysweep.cli.sources import load
    from raysweep.models import ladder_of, param_count

    source = spec.search.warm_start
    assert source is not None, "build_warm_plan needs search.warm_start"
    runs = load(source, uri, key=key).runs
    try:
        warm = fit_warm_start(runs, source)
    except WarmStartError as err:
        raise SpecError(f"expected an earlier study with an LR trend, got {err}", key=key) from None
    kw = {"num_classes": shape.num_classes, "in_chans": shape.in_chans, "image_size": shape.image_size}
    cells = {}
    for model in spec.ladder.rungs:
        n = param_count(ladder_of(spec.ladder), model, **kw)
        for e in spec.epochs:
            cells[cell_name(model, e)] = (float(n), e)
    return warm.plan(cells), warm


def describe(plan: WarmPlan, warm: WarmStart, grid: list[float]) -> str:
    """The line a sweep prints about its warm start."""
    lo, hi = min(plan.lrs.values()), max(plan.lrs.values())
    out = (f"raysweep: warm start: {warm.describe()}; first LRs {lo:.3g}-{hi:.3g}"
           f"{f', {len(plan.held)} cell(s) outside its sizes or budgets held at its edge' if plan.held else ''}")
    half = math.sqrt(grid[1] / grid[0]) if len(grid) > 1 else 1.0
    off = [name for name, lr in plan.lrs.items() if not grid[0] / half <= lr <= grid[-1] * half]
    if off:  # more than half a grid step beyond it
        out += (f"; {len(off)} forecast(s) fall outside the LR grid {grid[0]:g}-{grid[-1]:g} and start at its edge "
                f"(widen lr.low/lr.high to follow them)")
    return out
