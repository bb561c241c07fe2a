"""The steady schedule of the loop, and how it stops: on a signal, within a second, quietly when stdout is gone."""

from __future__ import annotations

import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from sidekiq_metrics.errors import StopRequested

LAST_WORDS = 0.25  # seconds a stopping run gives its queued lines to be written (SIGTERM ends us within a second)


class Shutdown:
    """SIGTERM/SIGINT/SIGHUP handling.

    Heroku sends SIGTERM to every process of a dyno and SIGKILLs 30 s later. SIGHUP
    (the session that started us is gone) stops us the same way, as it stops the
    supervisor: never an emitter left running without one. A
    signal that arrives while we sleep, wait on Redis or write raises
    StopRequested at once (a hung socket read or a blocked stdout would otherwise
    outlive it); one that arrives while we compute only sets a flag, which the
    next wait sees.
    """

    def __init__(self) -> None:
        self.requested = False
        self._interruptible = False

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        if self._interruptible:
            raise StopRequested

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        # Open the window before looking at the flag: a signal in between is then seen either way.
        self._interruptible = True
        try:
            if self.requested:
                raise StopRequested
            yield
        finally:
            self._interruptible = False


def run_forever(poll: Callable[[], object], interval: float, shutdown: Shutdown,
                clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
    """Call `poll` at start + k * interval. A slow poll skips the ticks it missed and never shifts later ones."""
    next_at = clock()
    while True:
        poll()
        next_at += interval
        now = clock()
        if next_at <= now:
            next_at += math.ceil((now - next_at) / interval) * interval
        with shutdown.interruptible():
            sleep(max(0.0, next_at - now))


def silence_stdout() -> None:
    """The log reader went away: nothing to say, and nowhere to say it. Keep the exit quiet."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass
