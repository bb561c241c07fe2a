"""DogStatsD datagrams over UDP to the Datadog agent (the Datadog Heroku buildpack runs one on each dyno).

    sidekiq.queue.size:3|g|#queue:default
    sidekiq.queue.latency:12.345|g|#queue:default
    sidekiq.enqueued:3|g
    sidekiq.jobs.processed:30|c

Metrics are joined by newlines into datagrams of at most MAX_DATAGRAM bytes, under
the usual safe UDP payload. UDP never waits: with no agent listening, the
datagrams are simply lost and the poll goes on. Nor does the agent's host name:
it is looked up in the background (resolver.py), never per datagram; until a
name server has answered, the datagrams are lost the same way.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable

from sidekiq_metrics.metrics.samples import Measurements, Sample
from sidekiq_metrics.redis.resolver import RESOLVER, Address

MAX_DATAGRAM = 1432
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_.:/-]")  # what Datadog keeps in a tag; the rest become "_"


class StatsdOutput:
    def __init__(self, prefix: str, host: str, port: int) -> None:
        self.prefix = prefix.replace(":", "_")  # ":" ends a DogStatsD name: `my:app` would be read as `my`
        self.host, self.port = host, port
        self.sockets: dict[int, socket.socket] = {}  # one per address family
        self._address()  # starts the lookup now, so that the first poll finds it done

    def _address(self) -> Address | None:
        try:
            return RESOLVER.lookup(self.host, self.port, wait=0, kind=socket.SOCK_DGRAM)[0]
        except (OSError, IndexError):
            return None

    def emit(self, measurements: Measurements, at: float) -> None:
        self.send(self.datagrams(self.lines(measurements)))

    def lines(self, samples: Iterable[Sample]) -> list[str]:
        out = []
        for sample in samples:
            value = sample.value
            number = str(value) if value.__class__ is int else f"{value:.3f}"
            name, labels = sample.tagged()
            tags = ",".join(f"{label}:{_TAG_UNSAFE.sub('_', text)[:190] or '_'}" for label, text in labels)
            out.append(f"{self.prefix}.{name}:{number}|{'c' if sample.delta else 'g'}{'|#' if tags else ''}{tags}")
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
        address = self._address()
        if address is None:
            return  # the agent's name is not known (yet): lost, like datagrams nobody listens to
        family, sockaddr = address
        if family not in self.sockets:
            self.sockets[family] = socket.socket(family, socket.SOCK_DGRAM)
            self.sockets[family].setblocking(False)
        for gram in grams:
            try:
                self.sockets[family].sendto(gram, sockaddr)
            except OSError:  # no agent, a full socket buffer, no route: a metric lost, never a poll
                pass
