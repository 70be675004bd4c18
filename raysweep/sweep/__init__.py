"""The Ray edge of raysweep: the Tune experiment (`runner`), the trial trainable, the searcher
adapter, the MLflow callback, closing a sweep (`closing`) and joining or starting a cluster (`connect`).

May import: every layer below the CLI, and Ray. Ray is imported here, by the Train worker entry
(`raysweep.train.worker`) and by the device layer's Train backends (`raysweep.devices`), nowhere else.
"""
