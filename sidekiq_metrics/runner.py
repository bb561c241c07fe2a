"""The loop: poll on a steady schedule, write each poll's lines, survive every Redis fault, stop on a signal."""

from __future__ import annotations

import contextlib
import gc
import math
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import FrameType
from typing import TYPE_CHECKING, TextIO

from sidekiq_metrics.catalogue import FAILED, PROCESSED, REDIS_EVICTED, REDIS_EVICTIONS
from sidekiq_metrics.connection import connect
from sidekiq_metrics.errors import EXIT_OUTPUT, ConfigError, OutputFailed, OutputUnavailable, StopRequested
from sidekiq_metrics.lease import Lease, printable, unique_owner
from sidekiq_metrics.line_writer import LineWriter, Stream
from sidekiq_metrics.metrics import (
    SHARD,
    SHARDS_TOTAL,
    Counts,
    Measurements,
    QueueSeries,
    Sample,
    health_samples,
    heartbeat,
    increases,
    job_samples,
    queue_series,
    total_samples,
    with_shard,
)
from sidekiq_metrics.outputs import Flushing, StandingBy, build_outputs
from sidekiq_metrics.parsing import MAX_SECONDS, NUMBER, parse_bool, quote
from sidekiq_metrics.readings import Snapshot, Totals
from sidekiq_metrics.redact import describe_error, redact
from sidekiq_metrics.redis_health import SAFE_POLICY, refusal
from sidekiq_metrics.resp import RedisError
from sidekiq_metrics.server_identity import ServerIdentities, same_redis
from sidekiq_metrics.setting import Setting
from sidekiq_metrics.sidekiq_keys import key_prefix
from sidekiq_metrics.sidekiq_reader import SidekiqReader, job_reader

if TYPE_CHECKING:  # (config.py assembles this module's section: it imports this one)
    from sidekiq_metrics.autoscale import Autoscaler
    from sidekiq_metrics.config import Settings

LOG_PREFIX = "sidekiq-metrics:"
DEFAULT_INTERVAL = 30.0
MAX_INTERVAL = MAX_SECONDS


def parse_interval(raw: str, label: str) -> float:
    if NUMBER.fullmatch(raw):
        value = float(raw)
        if 0 < value <= MAX_INTERVAL and math.isfinite(value):
            return value
    raise ConfigError(label, f"must be a number of seconds above 0 and at most {MAX_INTERVAL:.0f}, "
                             f"e.g. 30, got {quote(raw)}")


# The loop's section: how often it polls, and whether only while elected.
LOOP_SETTINGS = (
    Setting("interval", ("SIDEKIQ_METRICS_INTERVAL",), DEFAULT_INTERVAL,
            f"seconds between polls; any number above 0, at most {MAX_INTERVAL:.0f} (below about 0.05, half an "
            "interval leaves Redis too little time to answer: polls fail, and a lease changes hands)", parse_interval,
            flag="--interval"),
    Setting("lease", ("SIDEKIQ_METRICS_LEASE",), False,
            "poll only while holding a lease in Redis (`sidekiq-metrics:lease`), so that of several emitters one "
            "is active and another takes over within two intervals when it stops; on by itself in the Cloud "
            "Native Buildpack's process and `sidecar`, and with SIDEKIQ_METRICS_DYNO naming a process type",
            parse_bool, flag="--lease"),
)
READ_SHARE_OF_TERM = 0.9  # of the time a term has left: a poll's reads end within it, leaving time to print
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


@dataclass(frozen=True)
class _ShardReader:
    name: str
    label: str | None  # the shard label of its readings: None for the default one (today's names)
    reader: SidekiqReader


class Poller:
    """One poll: read a snapshot of each shard, derive samples, render, write. Never raises for a Redis fault."""

    def __init__(self, settings: Settings, out: Stream, err: Stream, shutdown: Shutdown | None = None,
                 autoscaler: Autoscaler | None = None) -> None:
        self.settings = settings
        self.autoscaler = autoscaler
        self.log = line_logger(err, settings.secrets)
        self.sharded = len(settings.shards) > 1
        self.shards = [_ShardReader(shard.name, shard.name if n else None, SidekiqReader(
            connect(settings, shard.target), namespace=settings.namespace, log=self._log_of(shard.name),
            jobs=job_reader(settings))) for n, shard in enumerate(settings.shards)]
        self.reader = self.shards[0].reader  # the default shard's (`doctor` reads through it)
        self.identities = ServerIdentities(self.log)  # which server each shard reached (with shards only)
        self.out = out
        self.shutdown = shutdown or Shutdown()
        self.outputs = build_outputs(settings, self.write_lines, self.log)
        self.counts = Counts(time.time())  # Sidekiq's totals, for their increases
        # run --lease: seconds this emitter may still act for. A poll's reads end within them (cut off from Redis,
        # its `up=0` is printed while the term lasts, not dropped after it) and its readings are printed only then.
        self.term_left: Callable[[], float] = lambda: math.inf
        self._said_term_ended = False
        self._last_warning: str | None = None
        self._said_no_metrics = False
        self._said_health: set[str] = set()  # the shards whose INFO has been judged

    def _log_of(self, shard: str) -> Callable[[str], None]:
        if not self.sharded:
            return self.log
        return lambda line: self.log(f"shard {shard}: {line}")

    def poll(self) -> bool:
        """True when Redis answered every read the poll needs. Output errors (a closed stdout) propagate."""
        # A poll of 10,000 queues makes some 100,000 short-lived objects, all freed by reference
        # counting; letting the cycle collector walk them on the way costs ~10 ms for nothing.
        gc.disable()
        try:
            return self._poll()
        finally:
            gc.enable()

    def _read(self, shard: _ShardReader) -> Snapshot | RedisError | OSError:
        try:
            with shard.reader.connection.within(self.term_left() * READ_SHARE_OF_TERM):
                snapshot = shard.reader.read(self.settings.queues, totals=self.settings.stats)
            if self.sharded:
                self.identities.learn(shard.name, shard.reader.connection)
            return snapshot
        except (RedisError, OSError) as exc:
            return exc

    def _read_shards(self) -> list[Snapshot | RedisError | OSError]:
        """Every shard's snapshot, or what stopped it. Several are read at once, one thread and connection each,
        so a slow or dead shard costs the others nothing but the wait for it, which the poll's one deadline
        bounds (each read ends within the connection's timeout). The threads are daemons: SIGTERM never waits."""
        if not self.sharded:
            with self.shutdown.interruptible():
                return [self._read(self.shards[0])]
        results: list[Snapshot | RedisError | OSError] = [OSError("not read")] * len(self.shards)

        def read(n: int) -> None:
            try:
                results[n] = self._read(self.shards[n])
            except Exception as exc:  # noqa: BLE001 - a fault of ours in one shard's thread: that shard failed, loudly
                results[n] = OSError(f"an internal error reading it ({type(exc).__name__}); please report it")

        threads = [threading.Thread(target=read, args=(n,), name=f"shard-{s.name}", daemon=True)
                   for n, s in enumerate(self.shards)]
        for thread in threads:
            thread.start()
        with self.shutdown.interruptible():
            for thread in threads:
                thread.join()
        return results

    def _poll(self) -> bool:
        results = self._read_shards()
        if self.sharded:  # one Redis read under two shards' names: the later one is not read
            same = self.identities.same_as([(shard.name, shard.reader.connection.target.db)
                                            for shard, result in zip(self.shards, results, strict=True)
                                            if isinstance(result, Snapshot)])
            results = [same_redis(same[shard.name], shard.reader.connection.target.db) if shard.name in same
                       else result for shard, result in zip(self.shards, results, strict=True)]
        read: list[tuple[_ShardReader, Snapshot]] = []
        for shard, result in zip(self.shards, results, strict=True):
            if isinstance(result, Snapshot):
                read.append((shard, result))
            else:
                where = f" (shard {shard.name})" if self.sharded else ""
                self.log(f"poll failed{where}: {describe_error(result, self.settings.secrets)}")
        beats = self._shard_heartbeats(results)
        if not read:
            down = heartbeat(up=False) + beats
            if self.autoscaler:
                self.autoscaler.observe(None)
                down += self.autoscaler.samples()
            self.emit(Measurements(samples=down))
            return False
        series: list[QueueSeries] = []
        samples: list[Sample] = []
        warnings: list[str] = []
        unknown: set[str] = set()  # queues whose size or latency is unknown, as the autoscaler names them
        for shard, snapshot in read:
            shard_series, problems = queue_series(snapshot)
            if shard.label:
                shard_series = [replace(s, labels=((SHARD, shard.label),)) for s in shard_series]
            series += shard_series
            samples += self._samples(shard.label, snapshot, shard_series)
            where = f"shard {shard.name}: " if self.sharded else ""
            warnings += [f"{where}queue {ascii(p.queue)[:80]}: {p.reason}" for p in problems]
            warnings += [f"{where}{problem}" for problem in snapshot.problems]
            self._say_health(shard.name, snapshot)
            unknown |= {_qualified(shard.label, p.queue) for p in problems}
        complete = len(read) == len(self.shards) and all(snapshot.complete for _, snapshot in read)
        totals = [snapshot.totals for _, snapshot in read if snapshot.totals]
        # Sums only when every shard was wholly read: one that answered but was refused a needed read (its queue
        # list, say) has a part missing, and a sum over part of the shards would look like calm.
        merged = Totals.merged(totals) if complete and totals and len(totals) == len(self.shards) else None
        if self.sharded and merged is not None:  # every shard read: their sums (never a sum over part of them)
            samples += self._samples(SHARDS_TOTAL, Snapshot((), read[0][1].read_at, merged), series)
        self._say_no_metrics(totals)
        if self.autoscaler:
            if complete:  # types whose queues were all read may act
                self.autoscaler.observe([replace(s, queues=[_qualified(s.shard, q) for q in s.queues], labels=())
                                         for s in series], merged, unknown)
            else:  # a queue list or the processes are unknown: every type holds still, as after a failed poll
                self.autoscaler.observe(None)
            samples += self.autoscaler.samples()
        self.emit(Measurements(series, samples + heartbeat(up=complete) + beats))
        self._warn_once(warnings)
        return complete

    def _samples(self, shard: str | None, snapshot: Snapshot, series: list[QueueSeries]) -> list[Sample]:
        """A shard's whole-Sidekiq samples (the default one's: shard None), labelled with it."""
        samples = []
        if totals := snapshot.totals:
            samples += with_shard(total_samples(totals, series, snapshot.read_at), shard)
            known = [Sample(metric, value) for metric, value in ((PROCESSED, totals.processed),
                                                                 (FAILED, totals.failed)) if value is not None]
            # The Redis's own health, once per shard (the sums over shards have none), after the lines' old
            # measurements: a parser that reads them by position keeps finding them where they were.
            health = health_samples(snapshot.health) if snapshot.health else []
            known += [s for s in health if s.metric is REDIS_EVICTED]
            grown = increases(self.counts.update(with_shard(known, shard), snapshot.read_at))
            samples += [s for s in grown if s.metric is not REDIS_EVICTIONS]
            samples += with_shard(health, shard) + [s for s in grown if s.metric is REDIS_EVICTIONS]
        if snapshot.jobs:
            samples += with_shard(job_samples(snapshot.jobs), shard)
        return samples

    def _shard_heartbeats(self, results: list[Snapshot | RedisError | OSError]) -> list[Sample]:
        """With several shards, each one's own `metrics.up` (the default one's too, by its name), beside the
        overall one that is 1 only when every shard was read."""
        if not self.sharded:
            return []
        return [sample for shard, result in zip(self.shards, results, strict=True)
                for sample in with_shard(heartbeat(isinstance(result, Snapshot) and result.complete), shard.name)]

    def _say_health(self, shard: str, snapshot: Snapshot) -> None:
        """Once per shard and process start: a Redis that may evict Sidekiq's jobs, or one that refuses INFO."""
        if shard in self._said_health:
            return
        where = f" (shard {shard})" if self.sharded else ""
        if snapshot.health_refused:
            self._said_health.add(shard)
            self.log(f"Redis{where} refuses INFO ({snapshot.health_refused[:20]}): the redis.* metrics of its "
                     "memory, clients, evictions and load are left out")
        elif snapshot.health and (snapshot.health.policy or snapshot.health.refused):
            self._said_health.add(shard)
            if refused := refusal(snapshot.health):  # some sections only: the others' metrics are reported
                self.log(f"Redis{where} refuses {refused}")
            if snapshot.health.policy and snapshot.health.policy != SAFE_POLICY:
                self.log(f"warning: Redis{where} has maxmemory-policy {snapshot.health.policy}: when its memory "
                         "is full it deletes keys, and Sidekiq's queued jobs with them; set it to noeviction (on "
                         "Heroku Key-Value Store: heroku redis:maxmemory --policy noeviction)")

    def _say_no_metrics(self, totals: list[Totals]) -> None:
        if self.reader.jobs and not self._said_no_metrics:
            live = [p for t in totals for p in t.live or ()]
            if live and all(_before_7(p.version) for p in live):
                self._said_no_metrics = True
                self.log("Sidekiq 6 and earlier write no execution metrics (they came with 7.0): nothing is "
                         "reported per job class")

    def start_term(self) -> None:
        """This emitter became the active one (run --lease). Its increases start afresh: what happened since its
        last poll of an earlier term was another holder's to report, and no increase is reported twice. Its
        connections start afresh too: idle while it stood by, they may have been dropped without a word (a NAT
        that forgot them answers the next command with a reset), which would fail a healthy first poll."""
        self.end_term()
        if self.autoscaler:  # it saw nothing while another held the lease: that was no calm, nor a backlog
            self.autoscaler.observe(None)
        self.counts = Counts(time.time())
        for shard in self.shards:
            if shard.reader.jobs:
                shard.reader.jobs.restart()
        self._said_term_ended = False

    def end_term(self) -> None:
        """Another emitter is (or may be) the active one: hold no idle connection to the customer's Redis, and
        show no reading of ours as if it were current."""
        for shard in self.shards:
            shard.reader.connection.close()
        for output in self.outputs:
            if isinstance(output, StandingBy):
                output.stand_by()

    def lease_terms(self, term_left: Callable[[], float]) -> None:
        """From now on this emitter acts only within terms of holding the lease (run_elected): before the first,
        it stands by; an output that serves readings to others serves them only while a term lasts, even when
        nobody has noticed yet that it ended (a holder whose ask for the lease is still waiting on Redis)."""
        self.term_left = term_left
        for output in self.outputs:
            if isinstance(output, StandingBy):
                output.serve_while(lambda: term_left() > 0)
        self.end_term()

    def flush(self) -> None:
        """Wait for the outputs that send in the background to send what they hold (`run --once`)."""
        for output in self.outputs:
            if isinstance(output, Flushing) and self.settings.otlp and not output.flush(self.settings.otlp.timeout):
                self.log("otlp: the export was not sent before the timeout (OTEL_EXPORTER_OTLP_TIMEOUT)")

    def emit(self, measurements: Measurements) -> None:
        if self.term_left() <= 0:  # paused or cut off during the poll: another may hold the lease by now
            if not self._said_term_ended:
                self._said_term_ended = True
                self.log("the lease may have passed to another emitter during this poll: its readings are dropped")
            return
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



def _qualified(shard: str | None, queue: str) -> str:
    """A queue as autoscaling names it: `orders:default` on the shard `orders`, plain on the default one."""
    return queue if shard is None else f"{shard}:{queue}"


def line_logger(err: Stream, secrets: tuple[str, ...]) -> Callable[[str], None]:
    """Writes one line to stderr, with the credentials scrubbed out whoever wrote the message (a NOPERM
    reply names the user, say), and any line break in it escaped: a name from Redis or the environment that holds
    one would otherwise start a line of its own, which a log reader could take for a metric. Never raises: the
    metrics matter more than our remarks."""
    def log(message: str) -> None:
        try:
            err.write(f"{LOG_PREFIX} {redact(message, secrets).translate(_ONE_LINE)}\n")
            err.flush()
        except (OSError, ValueError):  # stderr gone or full
            pass
    return log


_ONE_LINE = str.maketrans({"\n": "\\n", "\r": "\\r", "\v": "\\v", "\f": "\\f", "\x1c": "\\x1c", "\x1d": "\\x1d",
                           "\x1e": "\\x1e", "\x85": "\\x85", "\u2028": "\\u2028", "\u2029": "\\u2029"})


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
TERM_MARGIN = 0.1  # of the lease's TTL: a holder's own clock ends its term this much before Redis may


class Election:
    """Whether this emitter is the active one, among all that share the Redis lease (lease.py).

    The lease lives 1.5 intervals and is asked for every half interval, by the holder and by every standby
    alike: the holder renews it long before it ends, and when the holder dies without a word (SIGKILL, a lost
    dyno) another takes it within two intervals of its last renewal. A holder that stops gives it up at once.

    A term: from a successful take or renewal, the holder acts until its lease may have run out, by its own
    monotonic clock (the time it asked, plus the TTL, less TERM_MARGIN of it for clocks that run at slightly
    different rates). Redis starts the TTL only after the ask arrives, so a holder cut off from Redis, or paused,
    stops acting before any other can take over: never two printers at once, and never one that cannot renew
    printing `up=0` beside the new holder's readings. Each change is one line.
    """

    def __init__(self, settings: Settings, log: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = printable(os.environ.get("DYNO") or socket.gethostname())
        self.lease = Lease(connect(settings), key_prefix(settings.namespace) + LEASE_KEY, unique_owner(self.name))
        self.ttl = 1.5 * settings.interval
        self.log = log
        self.secrets = settings.secrets
        self.clock = clock
        self.term_ends: float | None = None  # by our clock; None while another holds it (as far as we know)
        self._unreachable = False

    @property
    def holding(self) -> bool:
        return self.term_ends is not None

    def in_term(self) -> bool:
        """True while this emitter may act: it holds the lease, and the lease cannot have run out yet."""
        return self.term_left() > 0

    def term_left(self) -> float:
        """Seconds this emitter may still act for (0: none, it does not hold the lease)."""
        return 0.0 if self.term_ends is None else max(0.0, self.term_ends - self.clock())

    def check(self) -> bool:
        """Take or renew the lease; True while this emitter holds it. When Redis cannot be asked, a holder goes
        on until its term may have ended (its polls say that Redis is down), then stands down; others wait."""
        asked_at = self.clock()
        try:
            held = self.lease.hold(self.ttl)
        except (RedisError, OSError) as exc:
            if not self._unreachable:
                self._unreachable = True
                self.log(f"cannot ask Redis for the lease: {describe_error(exc, self.secrets)}; "
                         + ("polling on while the lease lasts" if self.holding else "waiting"))
            if self.holding and not self.in_term():
                self.term_ends = None
                self.log(f"{self.name} could not renew the lease before it may have run out: it stops polling")
            return self.holding
        self._unreachable = False
        if held and not self.holding:
            self.log(f"{self.name} took the lease: it is the active emitter now")
        elif self.holding and not held:
            holder = (self.lease.holder() or "another emitter").rsplit(":", 2)[0]
            self.log(f"{self.name} lost the lease to {holder}: it stops polling")
        self.term_ends = asked_at + self.ttl * (1 - TERM_MARGIN) if held else None
        return held

    def resign(self) -> None:
        if self.holding:
            with contextlib.suppress(RedisError, OSError), self.lease.connection.within(LAST_WORDS):
                self.lease.release()
            self.term_ends = None


def run_elected(poller: Poller, election: Election, interval: float, shutdown: Shutdown,
                clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
    """Poll on the steady schedule of run_forever while this emitter holds the lease; ask for it every half
    interval, holding it or not, and sleep in between. Each term starts afresh (Poller.start_term)."""
    poller.lease_terms(election.term_left)
    next_poll = clock()
    holding = False
    try:
        while True:
            with shutdown.interruptible():
                active = election.check()
            if active != holding:
                holding = active
                if active:
                    poller.start_term()
                    next_poll = clock()  # a new holder polls at once
                else:
                    poller.end_term()
            now = clock()
            if active and next_poll <= now:
                poller.poll()
                next_poll += interval
                now = clock()
                if next_poll <= now:
                    next_poll += math.ceil((now - next_poll) / interval) * interval
            wake = min(next_poll, now + interval / 2) if active else now + interval / 2
            with shutdown.interruptible():
                sleep(max(0.0, wake - now))
    finally:
        election.resign()


def run(settings: Settings, *, once: bool, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """The `run` command. Exit status: 0, or 1 when --once could not read Redis. `out` and `err`: stdout and
    stderr as they are when it is called (the CLI may have replaced closed ones), never as they were at import."""
    out, err = out or sys.stdout, err or sys.stderr
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
            run_elected(poller, Election(settings, poller.log), settings.interval, shutdown)
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
