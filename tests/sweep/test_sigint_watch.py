"""`_sigint_watch`: tells a Ctrl-C-stopped `tuner.fit()` from a finished one, with Tune's handler
swapping imitated as `ray.tune.tune._setup_signal_catching` does it (no Ray started)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator

import pytest

from raysweep.sweep.runner import _sigint_watch


def mine(sig: int, frame: object) -> None:  # the handler in place before the sweep
    raise AssertionError("not called")


@pytest.fixture(autouse=True)
def own_handler() -> Iterator[None]:
    old = signal.signal(signal.SIGINT, mine)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def tune_installs() -> None:
    """What Tune does at the start of a run: its own handler for SIGINT and SIGUSR1."""
    original = signal.getsignal(signal.SIGINT)

    def tune_handler(sig: int, frame: object) -> None:
        signal.signal(signal.SIGINT, original)  # the first Ctrl-C puts the original back

    signal.signal(signal.SIGINT, tune_handler)
    signal.signal(signal.SIGUSR1, tune_handler)


def test_a_run_that_finished_is_not_interrupted_and_handlers_come_back() -> None:
    usr1 = signal.getsignal(signal.SIGUSR1)
    with _sigint_watch() as watch:
        tune_installs()
    assert not watch.fired
    assert signal.getsignal(signal.SIGINT) is mine
    assert signal.getsignal(signal.SIGUSR1) is usr1


def test_ctrl_c_during_the_run_is_seen() -> None:
    with _sigint_watch() as watch:
        tune_installs()
        signal.raise_signal(signal.SIGINT)  # Tune's handler runs and restores ours
    assert watch.fired
    assert signal.getsignal(signal.SIGINT) is mine


def test_no_false_alarm_where_tune_installs_no_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNE_DISABLE_SIGINT_HANDLER", "1")
    with _sigint_watch() as watch:
        pass  # Tune leaves the handler alone: it looks like a restored one, but is not
    assert not watch.fired


def test_no_false_alarm_as_a_ray_client(monkeypatch: pytest.MonkeyPatch) -> None:
    from ray.util.client import ray as client

    monkeypatch.setattr(client, "is_connected", lambda: True)  # fit() runs on the cluster
    with _sigint_watch() as watch:
        pass
    assert not watch.fired


def test_outside_the_main_thread_nothing_is_watched() -> None:
    seen: list[bool] = []

    def body() -> None:
        with _sigint_watch() as watch:
            pass
        seen.append(watch.fired)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen == [False]
