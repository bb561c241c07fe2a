"""The `run` command's wiring: the one place that turns the settings into parts (connections, readers, outputs,
the autoscaler, the election), each handed only its own section or plain values; then the loop runs them.

Below this module, nothing knows the assembled Settings: the loop is given its parts, the Redis connection its
target, the reader its section, the outputs theirs, the autoscaler its settings (docs/design.md, "The layers").
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from dataclasses import fields
from typing import TYPE_CHECKING, TextIO

from sidekiq_metrics.config import Settings
from sidekiq_metrics.errors import EXIT_OUTPUT, OutputFailed, OutputUnavailable, StopRequested
from sidekiq_metrics.loop.poll import Poller, ShardReader, line_logger
from sidekiq_metrics.loop.schedule import LAST_WORDS, Shutdown, run_forever, silence_stdout
from sidekiq_metrics.outputs.choice import Output, OutputSettings, Write, build_outputs
from sidekiq_metrics.outputs.line_writer import LineWriter, Stream
from sidekiq_metrics.redis.connection import connect
from sidekiq_metrics.redis.lease import Lease, printable, unique_owner
from sidekiq_metrics.redis.resp import Connection
from sidekiq_metrics.redis.target import RedisTarget
from sidekiq_metrics.sidekiq.breakdown import Breakdowns
from sidekiq_metrics.sidekiq.job_metrics import JobMetricsReader
from sidekiq_metrics.sidekiq.keys import key_prefix
from sidekiq_metrics.sidekiq.reader import SidekiqReader

if TYPE_CHECKING:  # (imported where a lease is used: `run --once` and most emitters never need it)
    from sidekiq_metrics.loop.election import Election

if TYPE_CHECKING:
    from sidekiq_metrics.autoscale.scaler import Autoscaler, ScalingLock
    from sidekiq_metrics.autoscale.settings import AutoscaleSettings


def redis_connection(settings: Settings, target: RedisTarget | None = None) -> Connection:
    """A connection to the default Redis, or to a shard's (`target`), with the timeouts of the interval."""
    return connect(target or settings.redis, settings.interval)


def job_reader(settings: Settings) -> JobMetricsReader | None:
    """What reads Sidekiq's execution metrics for these settings; None when they are off."""
    if not settings.job_metrics:
        return None
    return JobMetricsReader(key_prefix(settings.namespace), settings.job_classes, settings.job_classes_top)


def breakdowns(settings: Settings) -> Breakdowns | None:
    """What tallies the sets and queues by job class for these settings (one per shard); None when all are off, or
    with the whole-Sidekiq metrics off (SIDEKIQ_METRICS_STATS=false: the original buildpack's lines only)."""
    if not settings.breakdowns or not settings.stats:
        return None
    return Breakdowns(key_prefix(settings.namespace), settings.breakdowns, settings.breakdown_max_size,
                      settings.breakdown_queues, settings.job_classes_top, settings.job_classes)


def output_settings(settings: Settings) -> OutputSettings:
    """The outputs' section: the fields of OutputSettings, taken by name."""
    return OutputSettings(**{f.name: getattr(settings, f.name) for f in fields(OutputSettings)})


def build_poller(settings: Settings, out: Stream, err: Stream, shutdown: Shutdown | None = None,
                 autoscaler: Autoscaler | None = None) -> Poller:
    """The poll of every shard, with a reader and connection each, and the chosen outputs (OutputUnavailable
    when none could start)."""
    log = line_logger(err, settings.secrets)
    sharded = len(settings.shards) > 1

    def log_of(shard: str) -> Callable[[str], None]:
        return (lambda line: log(f"shard {shard}: {line}")) if sharded else log

    shards = [ShardReader(shard.name, shard.name if n else None, SidekiqReader(
        redis_connection(settings, shard.target), namespace=settings.namespace, log=log_of(shard.name),
        jobs=job_reader(settings), breakdowns=breakdowns(settings))) for n, shard in enumerate(settings.shards)]
    section = output_settings(settings)

    def outputs(write: Write) -> list[Output]:
        return build_outputs(section, write, log)

    return Poller(shards, outputs, out, log, queues=settings.queues, stats=settings.stats, secrets=settings.secrets,
                  flush_timeout=settings.otlp.timeout if settings.otlp else None, shutdown=shutdown,
                  autoscaler=autoscaler)


def build_election(settings: Settings, log: Callable[[str], None]) -> Election:
    from sidekiq_metrics.loop.election import LEASE_KEY, Election

    name = printable(os.environ.get("DYNO") or socket.gethostname())
    lease = Lease(redis_connection(settings), key_prefix(settings.namespace) + LEASE_KEY, unique_owner(name))
    return Election(name, lease, settings.interval, log, settings.secrets)


def scaling_lock(settings: Settings, owner: str) -> ScalingLock:
    from sidekiq_metrics.autoscale.scaler import ScalingLock  # its HTTP client costs memory: only when used

    # our own connection: the poll's belongs to the poll thread; the lock is kept under Sidekiq's namespace too
    return ScalingLock(redis_connection(settings), settings.namespace, owner)


def build_autoscaler(settings: Settings, config: AutoscaleSettings, log: Callable[[str], None]) -> Autoscaler:
    from sidekiq_metrics.autoscale.scaler import Autoscaler  # its HTTP client costs memory: only when used

    owner = unique_owner(os.environ.get("DYNO", "local"))
    return Autoscaler(config, scaling_lock(settings, owner), log, settings.secrets)


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
        autoscaler = build_autoscaler(settings, settings.autoscale, log)
    try:
        poller = build_poller(settings, lines, errors, shutdown, autoscaler)
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
            from sidekiq_metrics.loop.election import run_elected

            run_elected(poller, build_election(settings, poller.log), settings.interval, shutdown)
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
