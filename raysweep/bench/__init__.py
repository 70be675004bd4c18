"""Benchmarks that replay searchers against recorded results; no Ray, no MLflow."""

from raysweep.bench.replay import format_table, main, run_replay
from raysweep.bench.table import Table, load_table

__all__ = ["Table", "format_table", "load_table", "main", "run_replay"]
