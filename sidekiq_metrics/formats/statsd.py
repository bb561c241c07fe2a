"""DogStatsD datagrams over UDP to the Datadog agent (the Datadog Heroku buildpack runs one on each dyno).

    sidekiq.queue.size:3|g|#queue:default
    sidekiq.queue.latency:12.345|g|#queue:default
    sidekiq.enqueued:3|g
    sidekiq.jobs.processed:30|c

Metrics are joined by newlines into datagrams of at most MAX_DATAGRAM bytes, under
the usual safe UDP payload. UDP never waits: with no agent listening, the
datagrams are simply lost and the poll goes on.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable

from sidekiq_metrics.metrics import Measurements, Sample

MAX_DATAGRAM = 1432
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_.:/-]")  # what Datadog keeps in a tag; the rest become "_"


class StatsdOutput:
    def __init__(self, prefix: str, host: str, port: int) -> None:
        self.prefix = prefix
        self.address = (host, port)
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)

    def emit(self, measurements: Measurements, at: float) -> None:
        self.send(self.datagrams(self.lines(measurements)))

    def lines(self, samples: Iterable[Sample]) -> list[str]:
        out = []
        for name, value, queue, counter in samples:
            number = str(value) if value.__class__ is int else f"{value:.3f}"
            if queue is None:
                out.append(f"{self.prefix}.{name}:{number}|{'c' if counter else 'g'}")
            else:
                tag = _TAG_UNSAFE.sub("_", queue)[:190] or "_"
                out.append(f"{self.prefix}.queue.{name}:{number}|g|#queue:{tag}")
        return out

    @staticmethod
    def datagrams(lines: list[str]) -> list[bytes]:
        grams, current = [], b""
        for line in lines:
            data = line.encode()
            if current and len(current) + 1 + len(data) > MAX_DATAGRAM:
                grams.append(current)
                current = b""
            current = current + b"\n" + data if current else data
        return grams + ([current] if current else [])

    def send(self, grams: list[bytes]) -> None:
        for gram in grams:
            try:
                self.sock.sendto(gram, self.address)
            except OSError:  # no agent, a full socket buffer, no route: a metric lost, never a poll
                pass
