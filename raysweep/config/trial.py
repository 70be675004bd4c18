"""One trial's configuration: the sweep spec plus the (model, epochs, lr) point and why it was chosen.

It crosses process boundaries (driver -> Tune trial -> Train workers) as a plain dict and is
rebuilt into typed objects on the other side, so nothing pickles project classes through Ray.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from raysweep.config.load import spec_from_dict
from raysweep.config.spec import SweepSpec
from raysweep.core.records import FinetuneKey, TrialKey, cell_name


@dataclass(frozen=True)
class TrialConfig:
    spec: SweepSpec
    model: str  # rung name within spec.ladder.family
    epochs: float  # the epoch budget
    lr: float  # peak learning rate
    reason: str = ""  # why the searcher chose it (MLflow tag raysweep.reason)
    study: str = ""  # the searcher's study: with (cell, lr, attempt) the trial's durable key
    attempt: int = 0  # 0 first run of (cell, lr); k its k-th retry after a failure
    # A fine-tuning trial: `model` names its unit (checkpoint, seed, k) in the searcher's lattice and
    # this holds the unit as plain data (`raysweep.finetune.units.Unit.to_dict`); None: pre-training
    finetune: Mapping[str, Any] | None = None

    @property
    def rung(self) -> str:
        """The ladder rung the trial trains (a fine-tuning unit's source rung)."""
        return str(self.finetune["model"]) if self.finetune else self.model

    @property
    def finetune_key(self) -> FinetuneKey | None:
        """A fine-tuning trial's durable key, which holds its source trial's key; None in pre-training."""
        if not self.finetune:
            return None
        u = self.finetune
        source = str(u["source_trial_key"]) or f"scratch:{u['model']}"
        return FinetuneKey(self.study or self.spec.name, source, self.lr, int(u["seed"]), self.attempt,
                           int(u["repeats"]))

    def train_run_name(self) -> str:
        """The Ray Train run's folder: the same key, the same folder, so a re-run resumes."""
        ft = self.finetune_key
        return ft.train_run_name() if ft is not None else self.key.train_run_name()

    def run_name(self) -> str:
        """The MLflow child run's name."""
        ft = self.finetune_key
        return ft.run_name() if ft is not None else self.key.run_name()

    @property
    def key(self) -> TrialKey:
        return TrialKey(study=self.study or self.spec.name, model=self.model, epochs=self.epochs, lr=self.lr,
                        attempt=self.attempt)

    @property
    def cell(self) -> str:
        return cell_name(self.model, self.epochs)

    @property
    def seed(self) -> int:
        return int(self.finetune["seed"]) if self.finetune else self.spec.seed

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec.to_dict(), "model": self.model, "epochs": self.epochs, "lr": self.lr,
                "reason": self.reason, "study": self.study, "attempt": self.attempt,
                **({"finetune": dict(self.finetune)} if self.finetune else {})}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrialConfig:
        return cls(spec=spec_from_dict(d["spec"], file="<trial config>"), model=d["model"],
                   epochs=float(d["epochs"]), lr=float(d["lr"]), reason=d.get("reason", ""),
                   study=str(d.get("study", "")), attempt=int(d.get("attempt", 0)), finetune=d.get("finetune"))
