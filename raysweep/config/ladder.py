"""The ladder a sweep climbs: a registered family and its rungs, or rungs written in the file as timm
models. Only what the file itself can tell is checked here (names, order, distinct rungs); that a
family or a timm model exists and that the rungs build and grow is `raysweep.cli.preflight`'s."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from raysweep.config._checks import _check_name
from raysweep.core.errors import SpecError


@dataclass(frozen=True)
class TimmRungSpec:
    """One rung of a ladder written in the search-space file: a timm model and its arguments."""

    name: str  # the rung's name in the lattice, MLflow and tables, e.g. resnet_s
    model: str  # a timm model name (timm.list_models()), built from scratch with no pretrained weights
    # keyword arguments for timm.create_model (JSON-like values); num_classes, in_chans and img_size
    # come from the data and are refused here. Not hashed: a dict is not hashable (eq still compares it).
    kwargs: dict[str, Any] = field(default_factory=dict, hash=False)

    def validate(self) -> None:
        _check_name(self.name, "name")


@dataclass(frozen=True)
class LadderSpec:
    # a key of raysweep.models.LADDERS ("nfnet_cpu", "nfnet_paper", "vit_cpu", "vit_paper"), or, with
    # `timm`, a new name for the ladder this file defines (MLflow records it as the `family` param)
    family: str
    # the rungs to sweep, ascending in size; with `timm`, empty means every rung defined there, in order
    rungs: tuple[str, ...] = ()
    # rungs defined in this file, smallest first (checked by measuring their parameters): any timm model
    timm: tuple[TimmRungSpec, ...] = ()

    def __post_init__(self) -> None:
        if not self.rungs and self.timm:  # frozen: the one place a default is derived from another field
            object.__setattr__(self, "rungs", tuple(r.name for r in self.timm))

    def validate(self) -> None:
        if not self.timm:
            if not self.rungs:  # the family's rungs are named in the error by preflight's check
                return
            self.check_order(self.rungs)
            return
        _check_name(self.family, "family")
        known = tuple(r.name for r in self.timm)
        seen: set[str] = set()
        for i, name in enumerate(known):
            if name in seen:
                raise SpecError(f"expected distinct rung names, got {name!r} twice", key=f"timm[{i}].name")
            seen.add(name)
        for i, rung in enumerate(self.rungs):
            if rung not in known:
                raise SpecError(f"expected a rung defined under ladder.timm {list(known)}, got {rung!r}",
                                key=f"rungs[{i}]")
        self.check_order(known)

    def check_order(self, known: tuple[str, ...]) -> None:
        """Distinct rungs in the ladder's own order: the lattice and the monotone prior assume ascending size."""
        if len(set(self.rungs)) != len(self.rungs):
            raise SpecError(f"expected distinct rungs, got {list(self.rungs)}", key="rungs")
        order = [known.index(r) for r in self.rungs if r in known]
        if order != sorted(order):
            ascending = [r for r in known if r in self.rungs]
            raise SpecError(f"expected rungs in ascending size {ascending}, got {list(self.rungs)}", key="rungs")
