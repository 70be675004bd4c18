"""Benchmarks that replay searchers against recorded results tables; no Ray cluster, no MLflow. The
peers (`bench.peers`: Tune's schedulers, Optuna's pruners) load Ray Tune's scheduler classes and
Optuna only when one is replayed.

May import: `raysweep.core`, `config`, `results`, `analysis` and `search` (through its door).
"""

from raysweep.bench.engine import run_replay
from raysweep.bench.replay import main
from raysweep.bench.report import format_table
from raysweep.bench.table import Table, load_table

__all__ = ["Table", "format_table", "load_table", "main", "run_replay"]
