"""The loop: poll on a steady schedule, write each poll's lines, survive every Redis fault, stop on a signal."""

from __future__ import annotations

import contextlib
import gc
import math
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, TextIO

from sidekiq_metrics.catalogue import FAILED, PROCESSED
from sidekiq_metrics.config import Settings
from sidekiq_metrics.connection import connect
from sidekiq_metrics.errors import EXIT_OUTPUT, OutputFailed, OutputUnavailable, StopRequested
from sidekiq_metrics.lease import Lease
from sidekiq_metrics.line_writer import LineWriter, Stream
from sidekiq_metrics.metrics import (
    Counts,
    Measurements,
    Sample,
    heartbeat,
    increases,
    job_samples,
    queue_series,
    total_samples,
)
from sidekiq_metrics.outputs import Flushing, build_outputs
from sidekiq_metrics.redact import describe_error, redact
from sidekiq_metrics.resp import RedisError
from sidekiq_metrics.sidekiq_keys import key_prefix
from sidekiq_metrics.sidekiq_reader import SidekiqReader, job_reader

if TYPE_CHECKING:
    from sidekiq_metrics.autoscale import Autoscaler

LOG_PREFIX = "sidekiq-metrics:"
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


class Poller:
    """One poll: read a snapshot, derive samples, render, write. Never raises for a Redis fault."""

    def __init__(self, settings: Settings, out: Stream, err: Stream, shutdown: Shutdown | None = None,
                 autoscaler: Autoscaler | None = None) -> None:
        self.settings = settings
        self.autoscaler = autoscaler
        self.log = line_logger(err, settings.secrets)
        self.reader = SidekiqReader(connect(settings), namespace=settings.namespace, log=self.log,
                                    jobs=job_reader(settings))
        self.out = out
        self.shutdown = shutdown or Shutdown()
        self.outputs = build_outputs(settings, self.write_lines, self.log)
        self.counts = Counts(time.time())  # Sidekiq's totals, for their increases
        self._last_warning: str | None = None
        self._said_no_metrics = False

    def poll(self) -> bool:
        """True when Redis answered every read the poll needs. Output errors (a closed stdout) propagate."""
        # A poll of 10,000 queues makes some 100,000 short-lived objects, all freed by reference
        # counting; letting the cycle collector walk them on the way costs ~10 ms for nothing.
        gc.disable()
        try:
            return self._poll()
        finally:
            gc.enable()

    def _poll(self) -> bool:
        try:
            with self.shutdown.interruptible():
                snapshot = self.reader.read(self.settings.queues, totals=self.settings.stats)
        except (RedisError, OSError) as exc:
            self.log(f"poll failed: {describe_error(exc, self.settings.secrets)}")
            if self.autoscaler:
                self.autoscaler.observe(None)
                self.emit(Measurements(samples=heartbeat(up=False) + self.autoscaler.samples()))
            else:
                self.emit(Measurements(samples=heartbeat(up=False)))
            return False
        series, problems = queue_series(snapshot)
        samples = []
        if snapshot.totals:
            totals = snapshot.totals
            samples += total_samples(totals, series, snapshot.read_at)
            known = [Sample(metric, value) for metric, value in ((PROCESSED, totals.processed),
                                                                 (FAILED, totals.failed)) if value is not None]
            samples += increases(self.counts.update(known, snapshot.read_at))
        if snapshot.jobs:
            samples += job_samples(snapshot.jobs)
        if self.reader.jobs and snapshot.totals and snapshot.totals.live and not self._said_no_metrics:
            if all(_before_7(p.version) for p in snapshot.totals.live):
                self._said_no_metrics = True
                self.log("Sidekiq 6 and earlier write no execution metrics (they came with 7.0): nothing is "
                         "reported per job class")
        if self.autoscaler:
            if snapshot.complete:  # types whose queues were all read may act
                self.autoscaler.observe(series, snapshot.totals, {p.queue for p in problems})
            else:  # the queue list or the processes are unknown: every type holds still, as after a failed poll
                self.autoscaler.observe(None)
            samples += self.autoscaler.samples()
        self.emit(Measurements(series, samples + heartbeat(up=snapshot.complete)))
        self._warn_once([f"queue {ascii(p.queue)[:80]}: {p.reason}" for p in problems] + list(snapshot.problems))
        return snapshot.complete

    def flush(self) -> None:
        """Wait for the outputs that send in the background to send what they hold (`run --once`)."""
        for output in self.outputs:
            if isinstance(output, Flushing) and self.settings.otlp and not output.flush(self.settings.otlp.timeout):
                self.log("otlp: the export was not sent before the timeout (OTEL_EXPORTER_OTLP_TIMEOUT)")

    def emit(self, measurements: Measurements) -> None:
        at = time.time()
        for output in self.outputs:
            output.emit(measurements, at)

    def write_lines(self, lines: list[str]) -> None:
        """Lines to stdout, flushed. Interruptible: a log reader that stopped reading blocks a plain stream's
        write, and SIGTERM must still end us within a second (a line cut short then is the lesser harm). `run`
        writes through a LineWriter, which never blocks and raises here what its last write met."""
        with self.shutdown.interruptible():
            try:
                if lines:
                    self.out.write("\n".join(lines) + "\n")
                self.out.flush()
            except BrokenPipeError:
                raise
            except OSError as exc:
                raise OutputFailed(f"cannot write the metrics to stdout: {exc.strerror or exc}") from None

    def _warn_once(self, warnings: list[str]) -> None:
        """Say what cannot be read when it changes, not every poll."""
        text = "; ".join(warnings[:3]) + (f"; and {len(warnings) - 3} more" if len(warnings) > 3 else "")
        if text and text != self._last_warning:
            self.log(f"warning: {text}")
        self._last_warning = text



def line_logger(err: Stream, secrets: tuple[str, ...]) -> Callable[[str], None]:
    """Writes one line to stderr, with the credentials scrubbed out whoever wrote the message (a NOPERM
    reply names the user, say). Never raises: the metrics matter more than our remarks."""
    def log(message: str) -> None:
        try:
            err.write(f"{LOG_PREFIX} {redact(message, secrets)}\n")
            err.flush()
        except (OSError, ValueError):  # stderr gone or full
            pass
    return log


def _before_7(version: str | None) -> bool:
    """Sidekiq puts its version in the heartbeat from 7.0 on: none there is 6 or earlier."""
    head = (version or "").split(".")[0]
    return version is None or (head.isdigit() and len(head) < 4 and int(head) < 7)


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


LEASE_KEY = b"sidekiq-metrics:lease"


class Election:
    """Whether this emitter is the active one, among all that share the Redis lease (lease.py).

    The lease lives 1.5 intervals and is asked for every half interval: the holder renews it long before it
    ends, and when the holder dies without a word (SIGKILL, a lost dyno) another takes it within two
    intervals of its last renewal. A holder that stops gives it up at once. Each change is one line.
    """

    def __init__(self, settings: Settings, log: Callable[[str], None]) -> None:
        self.name = os.environ.get("DYNO") or socket.gethostname()
        owner = f"{self.name}:{os.getpid()}:{secrets.token_hex(4)}"
        self.lease = Lease(connect(settings), key_prefix(settings.namespace) + LEASE_KEY, owner)
        self.ttl = 1.5 * settings.interval
        self.log = log
        self.secrets = settings.secrets
        self.holding = False
        self._unreachable = False

    def check(self) -> bool:
        """Take or renew the lease; True while this emitter holds it. When Redis cannot be asked, a holder goes
        on (its polls then say that Redis is down: silence is not calm) and the others wait."""
        try:
            held = self.lease.hold(self.ttl)
        except (RedisError, OSError) as exc:
            if not self._unreachable:
                self._unreachable = True
                self.log(f"cannot ask Redis for the lease: {describe_error(exc, self.secrets)}; "
                         + ("polling on" if self.holding else "waiting"))
            return self.holding
        self._unreachable = False
        if held and not self.holding:
            self.log(f"{self.name} took the lease: it is the active emitter now")
        elif self.holding and not held:
            holder = (self.lease.holder() or "another emitter").rsplit(":", 2)[0]
            self.log(f"{self.name} lost the lease to {holder}: it stops polling")
        self.holding = held
        return held

    def resign(self) -> None:
        if self.holding:
            with contextlib.suppress(RedisError, OSError), self.lease.connection.within(LAST_WORDS):
                self.lease.release()
            self.holding = False


def run_elected(poll: Callable[[], object], election: Election, interval: float, shutdown: Shutdown,
                clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
    """Poll on the steady schedule of run_forever while the election says so; ask it every half interval."""
    next_poll = clock()
    try:
        while True:
            with shutdown.interruptible():
                active = election.check()
            now = clock()
            if active and next_poll <= now:
                poll()
                next_poll += interval
                now = clock()
                if next_poll <= now:
                    next_poll += math.ceil((now - next_poll) / interval) * interval
            elif not active:
                next_poll = now  # the first poll comes at once once elected
            with shutdown.interruptible():
                sleep(max(0.0, min(next_poll, now + interval / 2) - now))
    finally:
        election.resign()


def run(settings: Settings, *, once: bool, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """The `run` command. Exit status: 0, or 1 when --once could not read Redis."""
    shutdown = Shutdown()
    shutdown.install()
    errors = LineWriter(err)  # a log reader that lags never holds up a poll (line_writer.py)
    log = line_logger(errors, settings.secrets)
    lines = LineWriter(out, report=log)
    try:
        return _run(settings, once, shutdown, lines, errors, log)
    finally:
        for stream in (lines, errors):
            stream.drain(LAST_WORDS)


def _run(settings: Settings, once: bool, shutdown: Shutdown, lines: LineWriter, errors: LineWriter,
         log: Callable[[str], None]) -> int:
    autoscaler = None
    if settings.autoscale and not once:  # never for --once: one poll is no basis for scaling
        from sidekiq_metrics.autoscale import Autoscaler  # its HTTP client costs memory: only when used

        autoscaler = Autoscaler.from_settings(settings.autoscale, settings, log)
    try:
        poller = Poller(settings, lines, errors, shutdown, autoscaler)
    except OutputUnavailable as exc:  # no chosen output could start
        log(f"cannot start: {exc}")
        return 1
    try:
        if once:
            read = poller.poll()
            with shutdown.interruptible():
                poller.flush()
                lines.drain(None)  # --once waits for its reader, as any command does; SIGTERM still ends it
            poller.write_lines([])  # what writing met
            return 0 if read else 1
        poller.log(f"polling {settings.redis.display} every {settings.interval:g}s"
                   + (" while this process holds the lease (SIDEKIQ_METRICS_LEASE)" if settings.lease else ""))
        if autoscaler:
            autoscaler.start()
        if settings.lease:
            run_elected(poller.poll, Election(settings, poller.log), settings.interval, shutdown)
        else:
            run_forever(poller.poll, settings.interval, shutdown)
    except StopRequested:
        pass
    except BrokenPipeError:
        silence_stdout()
    except OutputFailed as exc:
        poller.log(str(exc))
        return EXIT_OUTPUT
    return 0


def silence_stdout() -> None:
    """The log reader went away: nothing to say, and nowhere to say it. Keep the exit quiet."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass
