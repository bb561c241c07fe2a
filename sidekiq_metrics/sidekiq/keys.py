"""Sidekiq's keys in Redis, as Sidekiq 6.4 to 8.1 write them: the one module that knows their names.

With an optional redis-namespace prefix `<ns>:` (Sidekiq 6 with redis-namespace):
  queues                    SET of queue names (the only place queues are listed; never KEYS/SCAN,
                            which would also find Sidekiq Pro's private `queue:sq|...` lists)
  queue:<name>              LIST of JSON jobs, pushed on the left, so the oldest is at index -1
  stat:processed, :failed   STRING counters, flushed by each process's heartbeat
  schedule, retry, dead     ZSETs, scored by when a job is due (or died)
  processes                 SET of process identities; each identity's HASH (busy, concurrency,
                            info JSON, ...) expires 60 s after its last heartbeat
  <identity>:work           HASH of what its threads run (`:workers` up to 6.4.1)
  paused                    SET of the queues Sidekiq Pro/Enterprise holds paused (`Queue#pause!`);
                            Sidekiq 8.1.1+'s own API reads it (`Stats#queue_summaries`: SISMEMBER
                            paused <queue>); absent where nothing is paused, or without Pro

Sidekiq's execution metrics (7.0+) have keys of their own, read by job_metrics.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# What each process hash gives us: Sidekiq writes these on every heartbeat (rss in KB, rtt_us in
# microseconds, quiet "true" once the process stops taking jobs, info a JSON object with its hostname).
PROCESS_FIELDS = ("busy", "concurrency", "info", "rss", "rtt_us", "quiet")


# Sidekiq keys that give a redis-namespace away when they are found under a prefix (`doctor`'s guess).
NAMESPACED = re.compile(rb"^(.+?):(queues|processes|schedule|retry|dead|stat:processed|queue:.+)$")


def encode(name: str) -> bytes:
    # surrogateescape round-trips names that are not valid UTF-8.
    return name.encode("utf-8", "surrogateescape")


def decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def key_prefix(namespace: str | None) -> bytes:
    return encode(namespace) + b":" if namespace else b""


@dataclass(frozen=True)
class SidekiqKeys:
    """The keys of one Sidekiq, under its namespace's prefix (b"" without one)."""

    prefix: bytes = b""

    @classmethod
    def under(cls, namespace: str | None) -> SidekiqKeys:
        return cls(key_prefix(namespace))

    @property
    def queues(self) -> bytes:
        return self.prefix + b"queues"

    @property
    def processes(self) -> bytes:
        return self.prefix + b"processes"

    @property
    def processed(self) -> bytes:
        return self.prefix + b"stat:processed"

    @property
    def failed(self) -> bytes:
        return self.prefix + b"stat:failed"

    @property
    def paused(self) -> bytes:
        return self.prefix + b"paused"

    @property
    def schedule(self) -> bytes:
        return self.prefix + b"schedule"

    @property
    def retry(self) -> bytes:
        return self.prefix + b"retry"

    @property
    def dead(self) -> bytes:
        return self.prefix + b"dead"

    def queue(self, name: str | bytes) -> bytes:
        """A queue's list: `queue:<name>`."""
        return self.prefix + b"queue:" + (encode(name) if isinstance(name, str) else name)

    def process(self, identity: str | bytes) -> bytes:
        """A process's heartbeat hash: its identity, as the processes set lists it."""
        return self.prefix + (encode(identity) if isinstance(identity, str) else identity)

    def work(self, identity: str) -> tuple[bytes, bytes]:
        """What a process runs: `<identity>:work`, and `<identity>:workers` as Sidekiq up to 6.4.1 wrote it."""
        return self.process(identity) + b":work", self.process(identity) + b":workers"
