"""How a running sweep is stopped from outside: Ctrl-C (SIGINT), and SIGTERM treated the same way.

SIGTERM is what `ray job stop` and a Kubernetes eviction send to the driver. Left to Ray, it ends
the driver at once: `ray.init` installs a Python handler that calls `sys.exit`, and the driver's
core worker then puts absl's failure-signal handler in front of it, which dumps a C++ stack and
aborts (exit 134), with the parent run left FAILED and the trials unclosed. While a sweep holds
Ray, `sigterm_as_interrupt` puts raysweep's own handler in front of both: SIGTERM becomes the
Ctrl-C that Tune already stops gracefully on, so the running trials are closed `stopped`, the
journal is flushed, the parent run is closed and the summary is printed, as after Ctrl-C.

Exit codes follow the shell: 128 + the signal's number, so 130 after Ctrl-C and 143 after SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived where no graceful stop was under way (before the run, or a second SIGTERM):
    the sweep unwinds as after a Ctrl-C there, but exits with SIGTERM's code."""

    signum = signal.SIGTERM


def exit_code(signum: int) -> int:
    """The shell's exit code for a command ended by `signum` (130: SIGINT, 143: SIGTERM)."""
    return 128 + int(signum)


def interrupted_line(signum: int) -> str:
    """What the command prints last when a signal stopped it."""
    return "raysweep: interrupted" + ("" if signum == signal.SIGINT else f" by {signal.Signals(signum).name}")


def interrupted_by(err: KeyboardInterrupt) -> int:
    """The signal behind a KeyboardInterrupt: SIGTERM for `Terminated`, else SIGINT."""
    return int(getattr(err, "signum", signal.SIGINT))


@dataclass
class Watch:
    fired: bool = False  # a signal stopped `tuner.fit()` early
    signum: int = signal.SIGINT  # which one: SIGINT unless SIGTERM arrived


def tune_catches_sigint() -> bool:
    """Whether `tuner.fit()`, called from the main thread, installs Tune's SIGINT handler in this
    process: unless TUNE_DISABLE_SIGINT_HANDLER is set, or as a Ray client (`ray://`), whose fit
    runs on the cluster (`ray.tune.tune._setup_signal_catching`, `ray.tune.tuner.Tuner.fit`)."""
    if int(os.environ.get("TUNE_DISABLE_SIGINT_HANDLER", "0") or 0):
        return False
    try:
        from ray.util.client import ray as client

        return not client.is_connected()
    except ImportError:  # pragma: no cover - Ray without its client
        return True


_NOTICE = (b"raysweep: SIGTERM: stopping the sweep as after Ctrl-C (running trials closed as stopped, "
           b"then the summary)\n")


@contextlib.contextmanager
def sigterm_as_interrupt(watch: Watch) -> Iterator[Watch]:
    """While the block runs, SIGTERM acts as Ctrl-C: it calls the SIGINT handler in place (Tune's
    during `tuner.fit()`, which stops the run gracefully), and records SIGTERM in `watch`.

    The SIGINT handler is called directly rather than SIGINT raised: a `ray job` driver starts
    with SIGINT blocked. Where the handler in place is Python's default (outside `tuner.fit()`, or
    after Tune's handler has put it back on a first signal), SIGTERM raises `Terminated`. Enter
    the block after `ray.init`, whose handlers it overrides; the previous handler is put back.
    """
    if threading.current_thread() is not threading.main_thread():
        yield watch  # signal handlers belong to the main thread
        return

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        watch.signum = signal.SIGTERM
        os.write(2, _NOTICE)  # unbuffered: print() could re-enter a write the signal interrupted
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler) and handler is not signal.default_int_handler:
            handler(signal.SIGINT, frame)
        else:
            raise Terminated()

    saved = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield watch
    finally:
        signal.signal(signal.SIGTERM, saved if saved is not None else signal.SIG_DFL)


@contextlib.contextmanager
def interrupt_watch(watch: Watch | None = None) -> Iterator[Watch]:
    """Tell whether Ctrl-C (or SIGTERM, through `sigterm_as_interrupt`) stopped `tuner.fit()`
    early, which Tune does not report.

    Tune swaps in its own SIGINT handler for the run and puts the previous one back when the first
    Ctrl-C (or SIGUSR1) arrives, ending the run gracefully. So, where Tune installs its handler at
    all, the previous handler back in place after the run means the run was stopped by a signal.
    The previous SIGINT and SIGUSR1 handlers are restored either way.
    """
    watch = watch if watch is not None else Watch()
    if threading.current_thread() is not threading.main_thread():
        yield watch  # signal handlers belong to the main thread: nothing to watch or restore
        return
    catching = tune_catches_sigint()
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, getattr(signal, "SIGUSR1", None)) if sig}
    try:
        yield watch
    finally:
        watch.fired = catching and signal.getsignal(signal.SIGINT) is saved[signal.SIGINT]
        for sig, handler in saved.items():
            if handler is not None:  # None: a handler not set from Python, which cannot be put back
                signal.signal(sig, handler)
