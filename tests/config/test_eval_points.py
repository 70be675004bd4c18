"""`eval_points` (issue 16): N evenly spaced evaluations per trial on top of the epoch boundaries."""

from __future__ import annotations

import pytest

from raysweep.config import spec_from_dict
from raysweep.core.errors import SpecError

BASE = {"name": "e", "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0"]}, "epochs": [0.25]}


def test_eval_points_defaults_to_zero_and_round_trips() -> None:
    assert spec_from_dict(BASE).eval_points == 0
    spec = spec_from_dict({**BASE, "eval_points": 8})
    assert spec.eval_points == 8
    assert spec_from_dict(spec.to_dict()).eval_points == 8


@pytest.mark.parametrize("bad", [-1, 2.5, True])
def test_eval_points_must_be_a_whole_number(bad: object) -> None:
    with pytest.raises(SpecError, match="eval_points"):
        spec_from_dict({**BASE, "eval_points": bad})
