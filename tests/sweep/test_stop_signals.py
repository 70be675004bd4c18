"""`interrupt_watch` tells a Ctrl-C-stopped `tuner.fit()` from a finished one, and
`sigterm_as_interrupt` makes SIGTERM stop it the same way, against Tune's own handler swap: the
private `ray.tune.tune._setup_signal_catching` that `tuner.fit()` calls, called here as it is (no Ray
started), so that a change in Ray fails this fast test, not only the slow Ctrl-C one."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator

import pytest

from raysweep.sweep.stop_signals import (
    Terminated,
    Watch,
    exit_code,
    interrupt_watch,
    interrupted_by,
    interrupted_line,
    sigterm_as_interrupt,
)


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
    """What Tune does at the start of a run: its own handler for SIGINT and SIGUSR1, which puts the
    original SIGINT handler back on the first Ctrl-C (Ray 2.60's `_setup_signal_catching`)."""
    from ray.tune.tune import _setup_signal_catching

    _setup_signal_catching()


def test_a_run_that_finished_is_not_interrupted_and_handlers_come_back() -> None:
    usr1 = signal.getsignal(signal.SIGUSR1)
    with interrupt_watch() as watch:
        tune_installs()
    assert not watch.fired
    assert signal.getsignal(signal.SIGINT) is mine
    assert signal.getsignal(signal.SIGUSR1) is usr1


def test_ctrl_c_during_the_run_is_seen() -> None:
    with interrupt_watch() as watch:
        tune_installs()
        signal.raise_signal(signal.SIGINT)  # Tune's handler runs and restores ours
    assert watch.fired
    assert signal.getsignal(signal.SIGINT) is mine


def test_no_false_alarm_where_tune_installs_no_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNE_DISABLE_SIGINT_HANDLER", "1")
    with interrupt_watch() as watch:
        pass  # Tune leaves the handler alone: it looks like a restored one, but is not
    assert not watch.fired


def test_no_false_alarm_as_a_ray_client(monkeypatch: pytest.MonkeyPatch) -> None:
    from ray.util.client import ray as client

    monkeypatch.setattr(client, "is_connected", lambda: True)  # fit() runs on the cluster
    with interrupt_watch() as watch:
        pass
    assert not watch.fired


def test_outside_the_main_thread_nothing_is_watched() -> None:
    seen: list[bool] = []

    def body() -> None:
        with interrupt_watch() as watch:
            pass
        seen.append(watch.fired)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen == [False]


# --- SIGTERM: what `ray job stop` and a Kubernetes eviction send ----------------------------------


def test_sigterm_during_the_run_stops_it_as_ctrl_c_does_and_is_told_apart() -> None:
    term = signal.getsignal(signal.SIGTERM)
    stop = Watch()
    with sigterm_as_interrupt(stop):
        with interrupt_watch(stop):
            tune_installs()
            signal.raise_signal(signal.SIGTERM)  # Tune's SIGINT handler runs and restores ours
        assert stop.fired and stop.signum == signal.SIGTERM
        assert signal.getsignal(signal.SIGINT) is mine
    assert signal.getsignal(signal.SIGTERM) is term  # the handler before the sweep is back
    assert exit_code(stop.signum) == 143 and interrupted_line(stop.signum) == "raysweep: interrupted by SIGTERM"


def test_sigterm_works_where_sigint_is_blocked_as_in_a_ray_job_driver() -> None:
    stop = Watch()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # Ray blocks SIGINT in a job's driver
    try:
        with sigterm_as_interrupt(stop), interrupt_watch(stop):
            tune_installs()
            signal.raise_signal(signal.SIGTERM)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    assert stop.fired and stop.signum == signal.SIGTERM


def test_sigterm_outside_the_run_unwinds_with_its_own_exit_code() -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's own, as outside tuner.fit()
    stop = Watch()
    with pytest.raises(KeyboardInterrupt) as caught, sigterm_as_interrupt(stop):
        signal.raise_signal(signal.SIGTERM)
    assert isinstance(caught.value, Terminated)
    assert exit_code(interrupted_by(caught.value)) == 143
    assert exit_code(interrupted_by(KeyboardInterrupt())) == 130  # Ctrl-C's code is unchanged


def test_a_finished_run_is_not_interrupted_by_sigterm_handling() -> None:
    stop = Watch()
    with sigterm_as_interrupt(stop), interrupt_watch(stop):
        tune_installs()
    assert not stop.fired and stop.signum == signal.SIGINT
