"""Shared fixtures: keep Ray, MLflow and torch from writing into the repository or fighting for cores."""

from __future__ import annotations

import os

os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
