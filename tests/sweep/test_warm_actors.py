"""The actor-cache patch against Ray Tune's real `_ObjectCache`."""

from __future__ import annotations

from ray.tune.utils.object_cache import _ObjectCache

from raysweep.sweep.warm_actors import keep_actors_warm


def test_cache_keeps_up_to_n_spares_and_flushes_all_when_forced() -> None:
    assert keep_actors_warm(2)
    cache = _ObjectCache(may_keep_one=True)
    assert cache.cache_object("cpu1", "a") and cache.cache_object("cpu1", "b")
    assert not cache.cache_object("cpu1", "c")  # a third spare is not kept
    assert list(cache.flush_cached_objects()) == []  # ordinary flushes keep the spares
    assert cache.pop_cached_object("cpu1") == "a"
    assert sorted(cache.flush_cached_objects(force_all=True)) == ["b"]  # end of sweep: everything goes


def test_caches_without_keep_one_are_untouched() -> None:
    keep_actors_warm(2)
    cache = _ObjectCache(may_keep_one=False)
    assert not cache.cache_object("cpu1", "a")
