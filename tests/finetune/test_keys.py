"""A fine-tuning trial's durable key: made from what the searcher decided, round-trips, names its folder."""

from __future__ import annotations

import pytest

from raysweep.core.records import FinetuneKey, TrialKey

SOURCE = TrialKey("pre|study", "nfnet_t1", 0.5, 0.2, attempt=1)


def test_a_key_round_trips_and_carries_its_source_trial_key() -> None:
    key = FinetuneKey("ft-study", SOURCE.token(), lr=0.05, seed=2)
    assert FinetuneKey.from_token(key.token()) == key
    assert key.source_key() == SOURCE and key.model == "nfnet_t1" and not key.baseline
    assert key.token() == "ft-study|ft|pre|study|nfnet_t1@0.5|lr=0.2|attempt=1|lr=0.05|seed=2|attempt=0"
    assert key.run_name() == "from nfnet_t1@0.5 lr=0.2 | ft lr=0.05 seed 2"


def test_the_baseline_has_a_scratch_source() -> None:
    key = FinetuneKey.scratch("ft", "nfnet_t0", 0.1, seed=1, attempt=2)
    assert key.baseline and key.model == "nfnet_t0" and key.source_key() is None
    assert FinetuneKey.from_token(key.token()) == key
    assert key.run_name() == "nfnet_t0 from scratch | ft lr=0.1 seed 1 attempt 2"


def test_the_same_key_always_names_the_same_folder_and_different_keys_different_ones() -> None:
    a = FinetuneKey("ft", SOURCE.token(), 0.05, seed=0)
    assert a.train_run_name() == FinetuneKey("ft", SOURCE.token(), 0.05, seed=0).train_run_name()
    others = {FinetuneKey("ft", SOURCE.token(), 0.05, seed=1), FinetuneKey("ft", SOURCE.token(), 0.1, seed=0),
              FinetuneKey.scratch("ft", "nfnet_t1", 0.05), FinetuneKey("ft", SOURCE.token(), 0.05, attempt=1)}
    names = {k.train_run_name() for k in others} | {a.train_run_name()}
    assert len(names) == 5 and all("|" not in n and " " not in n for n in names)


def test_a_malformed_token_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="expected a fine-tuning key"):
        FinetuneKey.from_token("study|nfnet_t0@1|lr=0.1|attempt=0")
