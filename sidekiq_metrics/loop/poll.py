"""One poll: read a snapshot of each shard (several at once), derive the samples, hand them to the outputs."""

from __future__ import annotations

import gc
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from sidekiq_metrics.catalogue import FAILED, PROCESSED, REDIS_EVICTED, REDIS_EVICTIONS
from sidekiq_metrics.errors import OutputFailed
from sidekiq_metrics.loop.schedule import Shutdown
from sidekiq_metrics.metrics.samples import (
    SHARD,
    SHARDS_TOTAL,
    Counts,
    Measurements,
    QueueSeries,
    Sample,
    breakdown_samples,
    health_samples,
    heartbeat,
    increases,
    job_samples,
    queue_series,
    state_samples,
    total_samples,
    with_shard,
)
from sidekiq_metrics.outputs.choice import Flushing, Output, StandingBy, Write
from sidekiq_metrics.outputs.line_writer import Stream
from sidekiq_metrics.redact import describe_error, redact
from sidekiq_metrics.redis.resp import RedisError
from sidekiq_metrics.redis.server_identity import ServerIdentities, same_redis
from sidekiq_metrics.sidekiq.reader import SidekiqReader
from sidekiq_metrics.sidekiq.readings import Snapshot, Totals
from sidekiq_metrics.sidekiq.redis_health import SAFE_POLICY, refusal

if TYPE_CHECKING:
    from sidekiq_metrics.autoscale.scaler import Autoscaler

LOG_PREFIX = "sidekiq-metrics:"
READ_SHARE_OF_TERM = 0.9  # of the time a term has left: a poll's reads end within it, leaving time to print
LAST_WORDS = 0.25  # seconds a stopping run gives its queued lines to be written (SIGTERM ends us within a second)


@dataclass(frozen=True)
class ShardReader:
    name: str
    label: str | None  # the shard label of its readings: None for the default one (today's names)
    reader: SidekiqReader


class Poller:
    """One poll: read a snapshot of each shard, derive samples, render, write. Never raises for a Redis fault.

    It is handed built parts (wiring.py builds them from the settings): a reader per shard, the default one first,
    and `outputs`, which builds the chosen outputs around the poll's `write_lines`."""

    def __init__(self, shards: Sequence[ShardReader], outputs: Callable[[Write], list[Output]], out: Stream,
                 log: Callable[[str], None], *, queues: tuple[str, ...] | None, stats: bool, secrets: tuple[str, ...],
                 flush_timeout: float | None = None, shutdown: Shutdown | None = None,
                 autoscaler: Autoscaler | None = None) -> None:
        self.queues = queues  # None: every queue in Sidekiq's `queues` set
        self.stats = stats
        self.secrets = secrets
        self.flush_timeout = flush_timeout  # the otlp output's, when it is chosen
        self.autoscaler = autoscaler
        self.log = log
        self.shards = list(shards)
        self.sharded = len(self.shards) > 1
        self.reader = self.shards[0].reader  # the default shard's (`doctor` reads through it)
        self.identities = ServerIdentities(self.log)  # which server each shard reached (with shards only)
        self.out = out
        self.shutdown = shutdown or Shutdown()
        self.outputs = outputs(self.write_lines)
        self.counts = Counts(time.time())  # Sidekiq's totals, for their increases
        # run --lease: seconds this emitter may still act for. A poll's reads end within them (cut off from Redis,
        # its `up=0` is printed while the term lasts, not dropped after it) and its readings are printed only then.
        self.term_left: Callable[[], float] = lambda: math.inf
        self._said_term_ended = False
        self._last_warning: str | None = None
        self._said_no_metrics = False
        self._said_health: set[str] = set()  # the shards whose INFO has been judged

    def poll(self) -> bool:
        """True when Redis answered every read the poll needs. Output errors (a closed stdout) propagate."""
        # A poll of 10,000 queues makes some 100,000 short-lived objects, all freed by reference
        # counting; letting the cycle collector walk them on the way costs ~10 ms for nothing.
        gc.disable()
        try:
            return self._poll()
        finally:
            gc.enable()

    def _read(self, shard: ShardReader) -> Snapshot | RedisError | OSError:
        try:
            with shard.reader.connection.within(self.term_left() * READ_SHARE_OF_TERM):
                snapshot = shard.reader.read(self.queues, totals=self.stats)
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
        read: list[tuple[ShardReader, Snapshot]] = []
        for shard, result in zip(self.shards, results, strict=True):
            if isinstance(result, Snapshot):
                read.append((shard, result))
            else:
                where = f" (shard {shard.name})" if self.sharded else ""
                self.log(f"poll failed{where}: {describe_error(result, self.secrets)}")
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
                                         for s in series], merged, unknown,
                                        any(snapshot.paused is None for _, snapshot in read))
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
        samples += with_shard(state_samples(snapshot), shard)
        if snapshot.breakdowns:
            samples += with_shard(breakdown_samples(snapshot.breakdowns, snapshot.read_at), shard)
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
            if isinstance(output, Flushing) and self.flush_timeout is not None and not output.flush(self.flush_timeout):
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


