"""Emitter processes that share one Redis lease, with every line each prints and when it came."""

from __future__ import annotations

import subprocess
import threading
import time

from support.commands import cli_env, console_script


class Candidate:
    """One process (`sidekiq-metrics run --lease`, or any command), its stdout and stderr read as they come."""

    def __init__(self, name: str, proc: subprocess.Popen[str]) -> None:
        """`proc`: started with stdout and stderr piped, text mode, in a session of its own."""
        self.name = name
        self.lines: list[tuple[float, str, str]] = []  # (monotonic time, "out" or "err", line)
        self.proc = proc
        for stream, kind in ((proc.stdout, "out"), (proc.stderr, "err")):
            threading.Thread(target=self._read, args=(stream, kind), daemon=True).start()

    @classmethod
    def emitter(cls, name: str, **env: str) -> Candidate:
        return cls(name, subprocess.Popen([console_script(), "run", "--lease"], env=cli_env(DYNO=name, **env),
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                          start_new_session=True))

    def _read(self, stream, kind: str) -> None:  # noqa: ANN001
        for line in stream:
            self.lines.append((time.monotonic(), kind, line.rstrip("\n")))

    def polls(self, since: float = 0.0, until: float = float("inf")) -> list[float]:
        """When each of its polls was printed (a poll ends with its metrics.up measurement)."""
        return [at for at, kind, line in self.lines if kind == "out" and "metrics.up=" in line and since <= at < until]

    def said(self, text: str) -> list[float]:
        return [at for at, kind, line in self.lines if kind == "err" and text in line]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def processed_reported(*emitters: Candidate) -> int:
    """The sum of every `count#sidekiq.jobs.processed` the emitters printed."""
    total = 0
    for emitter in emitters:
        for _, kind, line in emitter.lines:
            for token in line.split(" ") if kind == "out" else ():
                if token.startswith("count#sidekiq.jobs.processed="):
                    total += int(float(token.split("=", 1)[1]))
    return total
