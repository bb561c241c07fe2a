"""Real redis-server processes on free loopback ports, and what the tests do with them."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator

import pytest
import redis


def wait_until(condition, timeout: float) -> bool:
    """True as soon as condition() is; False if it never was within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def free_port() -> int:
    """A loopback port nothing listens on now. Under pytest-xdist each worker takes only ports of its own class,
    so two workers never pick the same port between one's probe and its use of it. (By the port halved: Linux
    gives bind() odd ports and connect() even ones, so the parity of a probed port says nothing.)"""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    for _ in range(10_000):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if (port >> 1) % workers == index:
            return port
    raise RuntimeError(f"no free port of worker {worker}'s class in 10,000 tries")


class RedisServer:
    """A redis-server process of our own; it can be stopped and started again on the same port."""

    def __init__(self, *extra: str, binary: str = "redis-server") -> None:
        if not shutil.which(binary):
            pytest.fail(f"{binary} is not installed: run the README's test command (tests/run)")
        self.binary = binary  # or Valkey's valkey-server, which takes the same flags
        self.port = free_port()
        self.extra = extra
        self.dir = tempfile.mkdtemp(prefix="redis-test-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kw: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, **kw)

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir, *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                self.client().ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def reader(server: RedisServer, **kw: object):
    """Our own reader on its own connection to `server`."""
    from sidekiq_metrics.redis.resp import Connection
    from sidekiq_metrics.redis.target import parse_redis_url
    from sidekiq_metrics.sidekiq.reader import SidekiqReader

    return SidekiqReader(Connection(parse_redis_url(server.url, "url"), timeout=5), **kw)


@contextlib.contextmanager
def monitored(server: RedisServer) -> Iterator[list[str]]:
    """Every command `server` receives meanwhile, as MONITOR shows them."""
    seen: list[str] = []
    ready = threading.Event()

    def watch():
        with server.client().monitor() as m:
            ready.set()
            for event in m.listen():
                if "STOP-MONITOR" in event["command"]:
                    return
                seen.append(event["command"])

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    ready.wait(5)
    time.sleep(0.1)
    try:
        yield seen
    finally:
        # protocol 2 and no library name: no HELLO nor CLIENT SETINFO of its own in the record (Valkey 8 shows those)
        server.client(protocol=2, driver_info=None).echo("STOP-MONITOR")
        thread.join(5)
