"""Host names looked up off the poll's path, with a deadline.

getaddrinfo() takes no timeout. Against a name server that never answers it waits for
resolv.conf's timeout times its attempts (10 s by default) and the calling thread waits with
it: the poll stalls, and a SIGTERM is handled only when the C call returns. So each lookup
runs in a daemon thread of its own, and a caller waits for it only as long as it can afford,
interruptibly. One lookup per name at a time, however often it is asked for; an answer is
kept for TTL seconds and, once older, still served while a fresh one is looked up.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

TTL = 60.0  # seconds; DNS answers for Heroku add-ons change rarely, and never mid-poll
Address = tuple[int, tuple[Any, ...]]  # (family, sockaddr), as socket.connect and sendto take them


class ResolveError(OSError):
    """No address for a name (yet). The message names the host, never anything else of a URL."""


class _Lookup:
    def __init__(self, host: str, port: int, kind: int) -> None:
        self.done = threading.Event()
        self.addresses: list[Address] = []
        self.error: str | None = None
        self.finished_at = 0.0
        threading.Thread(target=self._run, args=(host, port, kind), name=f"resolve {host}", daemon=True).start()

    def _run(self, host: str, port: int, kind: int) -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=kind)
            self.addresses = [(family, sockaddr) for family, _, _, _, sockaddr in infos]
        except OSError as exc:
            self.error = exc.strerror or str(exc) or type(exc).__name__
        self.finished_at = time.monotonic()
        self.done.set()


class Resolver:
    def __init__(self, ttl: float = TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._lookups: dict[tuple[str, int, int], _Lookup] = {}
        self._lock = threading.Lock()

    def lookup(self, host: str, port: int, wait: float, kind: int = socket.SOCK_STREAM) -> list[Address]:
        """The addresses of host:port. Waits at most `wait` seconds (0: never) for a name server;
        raises ResolveError when there is no answer by then, or the answer was "no such name"."""
        numeric = _numeric(host, port, kind)
        if numeric:
            return numeric
        key = (host, port, kind)
        with self._lock:
            current = self._lookups.get(key)
            if current is None or (current.done.is_set() and (
                    current.error or self.clock() - current.finished_at >= self.ttl)):
                previous, current = current, _Lookup(host, port, kind)
                self._lookups[key] = current
                if previous is not None and previous.addresses:
                    return previous.addresses  # stale, but an answer: the fresh one comes in the background
        if not current.done.wait(wait):
            raise ResolveError(f"no answer from the name server for {host} within {wait:.2g}s")
        if current.error:
            raise ResolveError(f"cannot resolve {host}: {current.error}")
        return current.addresses


def _numeric(host: str, port: int, kind: int) -> list[Address]:
    """An IP address needs no name server (getaddrinfo with AI_NUMERICHOST never asks one)."""
    try:
        infos = socket.getaddrinfo(host, port, type=kind, flags=socket.AI_NUMERICHOST)
    except OSError:
        return []
    return [(family, sockaddr) for family, _, _, _, sockaddr in infos]


RESOLVER = Resolver()  # one per process: every output and connection shares its answers
