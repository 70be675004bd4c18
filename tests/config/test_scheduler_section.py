"""search.scheduler: the shorthand and the mapping, Tune's defaults, a frozen spec that round-trips."""

from __future__ import annotations

import dataclasses

import pytest

from raysweep.config import SchedulerSpec, spec_from_dict
from raysweep.core.errors import SpecError

BASE = {"name": "s", "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0"]}, "epochs": [1], "eval_points": 8,
        "search": {"searcher": "grid"}}


def _spec(scheduler: object):  # type: ignore[no-untyped-def]
    return spec_from_dict({**BASE, "search": {"searcher": "grid", "scheduler": scheduler}})


def test_off_by_default_and_the_shorthand_is_tunes_defaults() -> None:
    assert spec_from_dict(BASE).search.scheduler is None and spec_from_dict(BASE).search.scheduler_spec() is None
    asha = _spec("asha").search.scheduler_spec()
    assert asha == SchedulerSpec(name="asha") and asha.rf() == 4.0 and asha.grace_period == 1


def test_the_mapping_form_round_trips_and_is_frozen() -> None:
    spec = _spec({"name": "asha", "reduction_factor": 2, "grace_period": 2})
    sched = spec.search.scheduler_spec()
    assert sched is not None and (sched.rf(), sched.grace_period) == (2.0, 2)
    assert spec_from_dict(spec.to_dict()) == spec
    with pytest.raises(dataclasses.FrozenInstanceError):
        sched.grace_period = 3  # type: ignore[misc]


@pytest.mark.parametrize(("scheduler", "key"), [
    ("ashaa", "search.scheduler"), (3, "search.scheduler"), ("hyperband", "search.scheduler.name"),
    ({"reduction_factor": 0.5}, "search.scheduler.reduction_factor"), ({"grace_period": 0}, "search.scheduler.grace_period"),
    ({"grace_period": 9}, "search.scheduler.grace_period"), ({"rf": 2}, "search.scheduler.rf"),
])
def test_bad_values_name_their_key_in_one_line(scheduler: object, key: str) -> None:
    with pytest.raises(SpecError) as err:
        _spec(scheduler)
    assert err.value.key == key and "\n" not in str(err.value)


def test_refused_where_it_cannot_compose() -> None:
    for searcher in ("monotone", "tpe", "random", "trend"):
        with pytest.raises(SpecError, match="expected searcher grid with a scheduler"):
            spec_from_dict({**BASE, "search": {"searcher": searcher, "scheduler": "asha"}})
    with pytest.raises(SpecError, match="eval_points: expected evaluation points"):
        spec_from_dict({**BASE, "eval_points": 0, "search": {"searcher": "grid", "scheduler": "asha"}})
