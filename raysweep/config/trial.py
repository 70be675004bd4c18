"""One trial's configuration: the sweep spec plus the (model, epochs, lr) point and why it was chosen.

It crosses process boundaries (driver -> Tune trial -> Train workers) as a plain dict and is
rebuilt into typed objects on the other side, so nothing pickles project classes through Ray.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from raysweep.config.load import spec_from_dict
from raysweep.config.spec import SweepSpec
from raysweep.core.records import TrialKey, cell_name


@dataclass(frozen=True)
class TrialConfig:
    spec: SweepSpec
    model: str  # rung name within spec.ladder.family
    epochs: float  # the epoch budget
    lr: float  # peak learning rate
    reason: str = ""  # why the searcher chose it (MLflow tag raysweep.reason)
    study: str = ""  # the searcher's study: with (cell, lr, attempt) the trial's durable key
    attempt: int = 0  # 0 first run of (cell, lr); k its k-th retry after a failure

    @property
    def key(self) -> TrialKey:
        return TrialKey(study=self.study or self.spec.name, model=self.model, epochs=self.epochs, lr=self.lr,
                        attempt=self.attempt)

    @property
    def cell(self) -> str:
        return cell_name(self.model, self.epochs)

    @property
    def seed(self) -> int:
        return self.spec.seed

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec.to_dict(), "model": self.model, "epochs": self.epochs, "lr": self.lr,
                "reason": self.reason, "study": self.study, "attempt": self.attempt}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrialConfig:
        return cls(spec=spec_from_dict(d["spec"], file="<trial config>"), model=d["model"],
                   epochs=float(d["epochs"]), lr=float(d["lr"]), reason=d.get("reason", ""),
                   study=str(d.get("study", "")), attempt=int(d.get("attempt", 0)))
