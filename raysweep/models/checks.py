"""Checks of a search space's `ladder:` section that need the model registry or a built model:
the family and its rungs exist, a timm rung names a real timm model with usable arguments, and the
rungs build at the data's shape and grow in measured parameters. Run once, by the CLI's preflight,
before anything launches; errors carry keys relative to the `ladder` section."""

from __future__ import annotations

from typing import Any

from raysweep.core.errors import SpecError
from raysweep.models.ladder import LADDERS, ladder_of, param_count
from raysweep.models.timm_rungs import check_builds, check_kwargs, check_model_name


def check_ladder(spec: Any) -> None:
    """A `raysweep.config.LadderSpec` names what the registry or timm has."""
    if spec.timm:
        if spec.family in LADDERS:
            raise SpecError(f"expected a new family name for the rungs under ladder.timm, got {spec.family!r}, "
                            "a built-in ladder", key="family")
        for i, rung in enumerate(spec.timm):
            for key, check, value in (("model", check_model_name, rung.model), ("kwargs", check_kwargs, rung.kwargs)):
                try:
                    check(value)
                except SpecError as err:
                    raise err.located(key_prefix=f"timm[{i}].{key}") from None
        return
    if spec.family not in LADDERS:
        raise SpecError(f"expected one of {sorted(LADDERS)}, or rungs defined under ladder.timm, "
                        f"got {spec.family!r}", key="family")
    known = LADDERS[spec.family].rung_names()
    if not spec.rungs:
        raise SpecError(f"expected a non-empty list of rungs of {spec.family} {list(known)}, got []", key="rungs")
    for i, rung in enumerate(spec.rungs):
        if rung not in known:
            raise SpecError(f"expected a rung of {spec.family} {list(known)}, got {rung!r}", key=f"rungs[{i}]")
    spec.check_order(known)


def check_models(spec: Any, *, num_classes: int, in_chans: int, image_size: int) -> None:
    """For a ladder defined in the file: every rung builds and runs at this data shape, and the
    parameter counts measured from the built models rise along the ladder. Keys are full paths."""
    if not spec.timm:
        return  # the registered ladders are checked by their own tests
    ref = ladder_of(spec)
    shape = {"num_classes": num_classes, "in_chans": in_chans, "image_size": image_size}
    counts: list[int] = []
    for i, rung in enumerate(spec.timm):
        try:
            check_builds(ref.rung(rung.name).cfg, **shape)  # type: ignore[union-attr, arg-type]
        except SpecError as err:
            raise err.located(key_prefix=f"ladder.timm[{i}]") from None
        counts.append(param_count(ref, rung.name, **shape))
        if i and counts[i] <= counts[i - 1]:
            sizes = ", ".join(f"{r.name} {n:,}" for r, n in zip(spec.timm, counts, strict=False))
            raise SpecError(f"expected rungs ascending in measured parameter count, got {sizes} "
                            f"(at {image_size}x{image_size}, {in_chans} channels, {num_classes} classes)",
                            key=f"ladder.timm[{i}]")
