"""Two or more studies at matched compute: the paper's ConvNet-versus-ViT comparison.

At compute levels spread evenly (in log) over the range every study covers, each study's loss is
read twice: the frontier's envelope (the lowest loss any of its cells reached for at most that
compute, which is measured) and its power law (smoothed, with its bootstrap interval).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from raysweep.analysis.frontier import envelope_at
from raysweep.analysis.stats import NO_INTERVAL, Interval
from raysweep.analysis.study import StudyFit

LEVELS = 5


@dataclass(frozen=True)
class Matched:
    compute: float
    envelope: dict[str, float]  # study -> measured lower envelope at this compute
    power_law: dict[str, float]  # study -> power-law loss
    power_law_ci: dict[str, Interval]

    def to_json(self) -> dict[str, object]:
        return {"compute": self.compute, "envelope": {k: _num(v) for k, v in self.envelope.items()},
                "power_law": {k: _num(v) for k, v in self.power_law.items()},
                "power_law_ci": {k: v.to_json() for k, v in self.power_law_ci.items()}}


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def matched_compute(fits: Sequence[StudyFit], levels: int = LEVELS) -> list[Matched]:
    """Empty when the studies' compute ranges do not overlap (or axes differ)."""
    lo = max(min(c.compute for c in f.frontier) for f in fits)
    hi = min(max(c.compute for c in f.cells) for f in fits)
    if not lo < hi:
        return []
    out = []
    for c in np.geomspace(lo, hi, levels):
        c = float(c)
        out.append(Matched(
            compute=c,
            envelope={f.name: envelope_at(f.cells, c) for f in fits},
            power_law={f.name: f.power_law.predict(c) if f.power_law.ok else math.nan for f in fits},
            power_law_ci={f.name: f.power_law.predict_interval(c) if f.power_law.ok else NO_INTERVAL for f in fits},
        ))
    return out
