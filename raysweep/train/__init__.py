"""The worker side of a trial: the training recipe (`recipe`: optimiser, AGC, schedule, the one
conversion of durations into steps) and loop (`loop`), pure torch, and the Ray Train entry (`worker`).

May import: `raysweep.core`, `config`, `models`, `data`, `devices`; Ray only in `worker`; no MLflow
or Optuna (results reach MLflow through the driver's callback).
"""
