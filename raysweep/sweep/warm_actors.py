"""Keep finished trial actors warm for the next trials of an adaptive sweep.

Ray Tune (2.60) caches a finished trial's actor for reuse only when a pending trial already needs
it, plus at most one spare. An adaptive searcher often has nothing pending at that moment (a cell
waits for both of its trials), so with 2 trials in flight one actor is torn down after every pair
and the next trial pays a fresh worker process and about 3-4 s of imports (torch, timm, Ray Train)
on a small machine. Raising the spare count to the number of concurrent trials removes that gap;
the cached actors hold exactly the slots the next trials will take, and Tune still evicts them all
when the searcher is finished.

This patches a private Ray class, so it checks the shape it expects and otherwise does nothing.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def keep_actors_warm(spares: int) -> bool:
    """Let Tune's actor cache keep up to `spares` idle trial actors; True if the patch applied."""
    try:
        from ray.tune.utils import object_cache
    except ImportError:
        return False
    cls: Any = object_cache._ObjectCache
    needed = ("cache_object", "flush_cached_objects", "_may_keep_one", "_num_cached_objects", "_cached_objects")
    probe = cls(may_keep_one=True)
    if not all(hasattr(cls, n) or hasattr(probe, n) for n in needed):
        log.warning("raysweep: Ray Tune's actor cache changed shape; trial actors are not kept warm")
        return False
    if getattr(cls, "_raysweep_spares", None) is None:
        original_cache = cls.cache_object
        original_flush = cls.flush_cached_objects

        def cache_object(self: Any, key: Any, obj: Any) -> bool:
            if self._may_keep_one and self._num_cached_objects < cls._raysweep_spares:
                self._cached_objects[key].append(obj)
                self._num_cached_objects += 1
                return True
            return bool(original_cache(self, key, obj))

        def flush_cached_objects(self: Any, force_all: bool = False) -> Any:
            if not force_all and self._may_keep_one and self._num_cached_objects <= cls._raysweep_spares:
                return iter(())
            return original_flush(self, force_all)

        cls.cache_object = cache_object
        cls.flush_cached_objects = flush_cached_objects
    cls._raysweep_spares = max(1, spares)
    return True
