"""The Optuna study's URL from the environment (`RAYSWEEP_OPTUNA_STORAGE`, as the cluster files set
it): used when the search space names none, and never shown in an error, since it holds a password."""

from __future__ import annotations

from pathlib import Path

import pytest

from raysweep.config import spec_from_dict
from raysweep.core.errors import SpecError
from raysweep.sweep.runner import lattice_of, open_searcher

SPEC = {"name": "env", "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0"]}, "epochs": [1],
        "lr": {"base": 0.4, "low": 0.2, "high": 0.4}, "search": {"searcher": "monotone"}}


def test_the_environment_names_the_study_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "elsewhere.db"
    monkeypatch.setenv("RAYSWEEP_OPTUNA_STORAGE", f"sqlite:///{db}")
    spec = spec_from_dict(SPEC)
    open_searcher(spec, lattice_of(spec), tmp_path / "sweep", resume=False)
    assert db.exists() and not (tmp_path / "sweep" / "optuna.db").exists()


def test_a_bad_url_from_the_environment_is_named_not_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYSWEEP_OPTUNA_STORAGE", "postgresql+psycopg://raysweep:s3cr3t-pw@127.0.0.1:1/optuna")
    spec = spec_from_dict(SPEC)
    with pytest.raises(SpecError) as info:
        open_searcher(spec, lattice_of(spec), tmp_path / "sweep", resume=False)
    msg = str(info.value)
    assert "search.storage" in msg and "$RAYSWEEP_OPTUNA_STORAGE" in msg and "s3cr3t" not in msg, msg
