"""Shared fixtures: keep Ray, MLflow and torch from writing into the repository or fighting for cores."""

from __future__ import annotations

import os

os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

import pytest

# the real S3 server and GCS emulator fixtures (s3_server, s3, emulator, gcs), started only when asked for
pytest_plugins = ("tests.object_stores",)

# Time limits per test (pytest-timeout): pyproject's `timeout` for every test; the tests that start
# Ray clusters, servers or kill processes (marked slow, or under faults/ and integration/) get
# LONG_TIMEOUT_S, past which a hang is a failure with a stack dump, not a stuck CI run.
LONG_TIMEOUT_S = 900
SLOW_DIRS = ("faults", "integration")
# Modules outside those folders that start real servers or stores (an MLflow server, moto S3, a
# GCS emulator, SQLite MLflow stores per case) or dry-run the paper's ladder: slow too, so that
# `make test-fast` stays the quick loop
SLOW_FILES = ("test_journal_replay.py", "test_shards_s3.py", "test_shards_gcs.py", "test_checkpoints_in_buckets.py",
              "test_analyze_mlflow.py", "test_dry_run.py", "test_cost.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        slow_place = any(part in SLOW_DIRS for part in item.path.parts) or item.path.name in SLOW_FILES
        if slow_place and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("slow") is not None and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(LONG_TIMEOUT_S))
