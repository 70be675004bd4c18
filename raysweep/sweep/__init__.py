"""The Ray edge of raysweep: Tune experiment, trial trainable, searcher adapter, MLflow callback.

Nothing outside this package (and `raysweep.train.worker`) imports Ray.
"""
