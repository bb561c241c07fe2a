"""The installed `sidekiq-metrics` command, run as a user runs it, and what it prints."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


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


def l2met_polls(lines: list[str], prefix: str = "sidekiq") -> list[dict[str, str]]:
    """Each poll's measurements, from the l2met lines of a run: a poll ends with its own `metrics.up`, which comes
    after every other line of it (a shard's lines, with several, included)."""
    polls: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in lines:
        current.update(parse_l2met(line))
        if f"#{prefix}.metrics.up=" in line:
            polls.append(current)
            current = {}
    return polls


class Polling:
    """A running `sidekiq-metrics run` whose stdout is read as it comes, its polls counted as they end (an l2met
    poll with its own `metrics.up`, a JSON one with its line). Tests wait for polls, never for a time: a busy
    machine is slower, not wrong."""

    POLL_END = re.compile(r'#sidekiq\.metrics\.up=|^\{"time"')

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = spawn("run", env=env)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    @property
    def polls(self) -> int:
        return sum(1 for line in self.lines if self.POLL_END.search(line))

    def wait(self, more: int, timeout: float = 30.0) -> None:
        """Until `more` polls have ended beyond those already seen."""
        with self._changed:
            goal = self.polls + more
            assert self._changed.wait_for(lambda: self.polls >= goal, timeout), (self.lines[-5:], goal)

    def stop(self) -> tuple[list[str], str]:
        """SIGTERM, then everything it printed on stdout (by lines) and stderr."""
        self.proc.send_signal(signal.SIGTERM)
        err = self.proc.stderr.read()
        self.proc.wait(5)
        self._reader.join(5)
        return self.lines, err


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
