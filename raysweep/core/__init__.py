"""The shared words at the bottom of raysweep: the error type (`errors`), the durable trial key,
status enum, metric and tag keys (`records`), the lattice of cells (`space`), credential masking
(`redact`) and the TPU-v4 cost calibration (`cost`).

May import: nothing of raysweep outside this package, and no framework (no torch, Ray, MLflow or
Optuna): every other layer imports these.
"""
