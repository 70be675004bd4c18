"""Every private Ray, Optuna and torch_xla API raysweep relies on, pinned: each test fails loudly,
naming the raysweep module that uses it, when an upgrade moves or changes it. (The actor-cache
patch is pinned by test_warm_actors.py, Tune's SIGINT handler by test_sigint_watch.py, the
scheduler interface the replayed peers stand in for by tests/bench/test_peers.py.)"""

from __future__ import annotations

import inspect

import optuna
import pytest


def test_tune_session_probe_used_by_train_worker() -> None:
    # raysweep/train/worker.py: tells Ray Train's local mode (the loop runs inside the Tune trial)
    # from a worker group, where ray.train.report is the reporting call
    from ray.tune.trainable.trainable_fn_utils import _in_tune_session

    assert callable(_in_tune_session) and not inspect.signature(_in_tune_session).parameters
    assert not _in_tune_session()  # outside any trial (it returns None there, though typed bool)


def test_ray_temp_dir_used_by_connect() -> None:
    # raysweep/sweep/connect.py: where a head started on this machine leaves ray_current_cluster
    from ray._common.utils import get_default_ray_temp_dir

    assert isinstance(get_default_ray_temp_dir(), str) and get_default_ray_temp_dir()


def test_rdb_storage_methods_wrapped_by_patient_storage(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # raysweep/search/_storage.py wraps these RDBStorage methods (public and private) with retries
    from raysweep.search._storage import WRAPPED

    missing = [n for n in WRAPPED if not callable(getattr(optuna.storages.RDBStorage, n, None))]
    assert not missing, f"optuna.storages.RDBStorage no longer has {missing}"
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'o.db'}")
    assert hasattr(storage, "scoped_session")  # the retry drops a cut-off session through it
    storage.engine.dispose()


def test_study_storage_and_trial_id_used_by_the_searchers() -> None:
    # raysweep/search/_study.py and _prior_sampler.py write a user attribute of a trial through the
    # study's storage by the trial's id (a running trial that another process holds)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    trial = study.ask()
    study._storage.set_trial_user_attr(trial._trial_id, "reason", "pinned")
    assert study.trials[0].user_attrs == {"reason": "pinned"}


def test_xla_cache_probe_used_by_the_xla_device() -> None:
    # raysweep/devices/_xla.py: asks whether the persistent compilation cache is already set up
    torch_xla = pytest.importorskip("torch_xla")

    assert callable(torch_xla._XLAC._xla_computation_cache_is_initialized)


def test_single_machine_switch_used_by_connect() -> None:
    # raysweep/sweep/connect.py `own_cluster_closed`: Ray's switch for single-machine clusters
    # (`ray_constants.ENABLE_RAY_CLUSTER`, read by `services` when it picks the node's address) is what
    # keeps raysweep's own cluster on loopback; tests/integration/test_own_cluster_closed.py checks the sockets
    from ray._private import ray_constants, services

    assert ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR == "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
    assert isinstance(ray_constants.ENABLE_RAY_CLUSTER, bool)
    assert "ray_constants.ENABLE_RAY_CLUSTER" in inspect.getsource(services)


def test_asha_bookkeeping_read_by_the_cell_scheduler() -> None:
    # raysweep/sweep/cell_scheduler.py: drops a finished trial from `_trial_info`, and reads the rung a
    # stopped trial was recorded at and its cut-off from `_brackets[i]._rungs` and `cutoff` (the reason)
    from ray.tune.schedulers import ASHAScheduler

    sched = ASHAScheduler(time_attr="t", metric="m", mode="min", max_t=8, grace_period=1, reduction_factor=2)
    assert isinstance(sched._trial_info, dict)
    (bracket,) = sched._brackets
    assert [m for m, recorded in bracket._rungs] == [8, 4, 2, 1] and all(r == {} for _, r in bracket._rungs)
    assert bracket.cutoff({"a": -1.0, "b": -3.0}) == pytest.approx(-2.0)
    assert bracket.cutoff({}) is None
