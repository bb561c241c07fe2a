"""Real parts for the tests: redis-server on a free loopback port, real Sidekiq, the real CLI in a subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent
SIDEKIQ_REF = ROOT / "tests" / "support" / "sidekiq_ref.rb"


def wait_until(condition, timeout: float) -> bool:
    """True as soon as condition() is; False if it never was within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server process of our own; it can be stopped and started again on the same port."""

    def __init__(self, *extra: str) -> None:
        if not shutil.which("redis-server"):
            pytest.fail("redis-server is not installed: run the README's test command (tests/run)")
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
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
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


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture
def r(redis_server):
    """An empty database on the shared server."""
    client = redis_server.client()
    client.flushall()
    yield client
    client.flushall()


@pytest.fixture
def own_redis():
    """A server this test alone may stop, pause and restart."""
    server = RedisServer().start()
    yield server
    server.cleanup()


def reader(server: RedisServer, **kw: object):
    """Our own reader on its own connection to `server`."""
    from sidekiq_metrics.config import parse_redis_url
    from sidekiq_metrics.resp import Connection
    from sidekiq_metrics.snapshot import SidekiqReader

    return SidekiqReader(Connection(parse_redis_url(server.url, "url"), timeout=5), **kw)


def sidekiq(url: str, commands: list[dict], namespace: str | None = None) -> dict:
    """Run commands through real Sidekiq (tests/support/sidekiq_ref.rb) and return its JSON answer."""
    if not shutil.which("ruby"):
        pytest.fail("ruby-sidekiq is not installed: run the README's test command (tests/run)")
    env = {**os.environ, "REDIS_URL": url}
    if namespace:
        env["SIDEKIQ_NAMESPACE"] = namespace
    out = subprocess.run(["ruby", str(SIDEKIQ_REF)], input=json.dumps(commands), env=env, capture_output=True,
                         text=True, timeout=60, check=True)
    return json.loads(out.stdout)


REFERENCE_SIDEKIQ = ROOT.parent / "shared" / "reference-sidekiq"


@pytest.fixture(scope="session")
def sidekiq7(tmp_path_factory) -> list[str]:
    """The command that runs Ruby with real Sidekiq 7.3 and its redis-client loaded (../shared/reference-sidekiq)."""
    if not (REFERENCE_SIDEKIQ / "setup.sh").exists():
        pytest.fail(f"{REFERENCE_SIDEKIQ} is missing: the tests need ../shared beside the checkout")
    target = tmp_path_factory.mktemp("reference-sidekiq")
    subprocess.run(["bash", str(REFERENCE_SIDEKIQ / "setup.sh"), str(target)], check=True, capture_output=True,
                   timeout=300)
    values = dict(line.split("=", 1) for line in (target / "env.sh").read_text().splitlines()
                  if "=" in line and not line.startswith("#"))
    return [values["SK7_RUBY"].strip('"'), *values["SK7_I"].strip('"').split()]


def cli_env(**env: str) -> dict[str, str]:
    """The environment of a dyno: ours, minus any Redis or SIDEKIQ_METRICS_ variable, plus `env`."""
    base = {k: v for k, v in os.environ.items()
            if not (k.startswith("SIDEKIQ_METRICS_") or k.startswith("REDIS") or k.endswith("_URL"))}
    return {**base, **env}


def console_script() -> str:
    """The installed `sidekiq-metrics` command, run from outside the checkout, as a user runs it."""
    script = Path(sys.executable).parent / "sidekiq-metrics"
    if not script.exists():
        pytest.fail(f"{script} is missing: install the package first (tests/run does)")
    return str(script)


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """`sidekiq-metrics ARGS` in its own process."""
    return subprocess.run([console_script(), *args], env=cli_env(**(env or {})), capture_output=True, text=True,
                          timeout=timeout, cwd=tempfile.gettempdir())


def spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([console_script(), *args], env=cli_env(**(env or {})), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tempfile.gettempdir())


def parse_l2met(lines: str) -> dict[str, str]:
    """Every `type#name=value` measurement on the lines, as an l2met reader splits logfmt."""
    found: dict[str, str] = {}
    for line in lines.splitlines():
        for token in line.split(" "):
            key, _, value = token.partition("=")
            if "#" in key:
                assert key not in found, f"{key} measured twice"
                found[key] = value
    return found


def read_lines_until(proc, pattern: str, timeout: float) -> list[tuple[float, str]]:
    """Lines from the process's stdout, with arrival times, until one matches `pattern`."""
    got: list[tuple[float, str]] = []
    done = threading.Event()

    def reader():
        for line in proc.stdout:
            got.append((time.monotonic(), line.rstrip("\n")))
            if re.search(pattern, line):
                done.set()
                return

    threading.Thread(target=reader, daemon=True).start()
    done.wait(timeout)
    return got


@contextlib.contextmanager
def monitored(server: RedisServer):
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
        server.client(protocol=2).echo("STOP-MONITOR")  # protocol 2: no HELLO of its own in the record
        thread.join(5)
