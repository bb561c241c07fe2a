"""`sidekiq-metrics watch`: queue health live in a terminal, worst queue first.

Plain ANSI escapes on the terminal's alternate screen, no terminal library: the
footprint stays the emitter's. When stdout is not a terminal it prints the same
table again every refresh. Ctrl-C (or SIGTERM) restores the screen and exits 0.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import select
import shutil
import signal
import sys
import termios
import time
import tty as terminal
from types import FrameType
from typing import Any, TextIO

from sidekiq_metrics.catalogue import QUEUE_LATENCY, QUEUE_RUNNING_LONGEST
from sidekiq_metrics.config import Settings
from sidekiq_metrics.errors import EXIT_OUTPUT
from sidekiq_metrics.loop.schedule import silence_stdout
from sidekiq_metrics.metrics.samples import queue_series
from sidekiq_metrics.redact import describe_error
from sidekiq_metrics.redis.connection import connect
from sidekiq_metrics.redis.resp import RedisError
from sidekiq_metrics.sidekiq.job_metrics import JobMetricsReader, percentile
from sidekiq_metrics.sidekiq.keys import key_prefix
from sidekiq_metrics.sidekiq.reader import SidekiqReader
from sidekiq_metrics.sidekiq.readings import JobMinutes, Snapshot

SPARKS = "▁▂▃▄▅▆▇█"
ASCII_SPARKS = "_.-=+*#@"  # for a terminal whose encoding has no block characters
TREND_POINTS = 60  # latencies kept per queue: two minutes at the default refresh of 2 s
ENTER, LEAVE, HOME_CLEAR = "\x1b[?1049h\x1b[?25l", "\x1b[?25h\x1b[?1049l", "\x1b[H\x1b[2J"
BOLD, REVERSE, RESET = "\x1b[1m", "\x1b[7m", "\x1b[0m"


class Redraw(Exception):  # noqa: N818 - a signal to redraw, not an error
    """The terminal was resized while we waited: draw again at once."""


def sparkline(values: list[float], marks: str = SPARKS) -> str:
    if not values:
        return ""
    top = max(values) or 1.0
    return "".join(marks[min(len(marks) - 1, int(v / top * (len(marks) - 1)))] for v in values)


def spark_marks(out: TextIO) -> str:
    try:
        SPARKS.encode(getattr(out, "encoding", None) or "utf-8")
        return SPARKS
    except (UnicodeEncodeError, LookupError):
        return ASCII_SPARKS


def clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def _rate(before: int | None, after: int | None, minutes: float) -> float | None:
    """Jobs a minute; None when unknown, or when the total went down (a reset of Sidekiq's stats)."""
    return (after - before) / minutes if before is not None and after is not None and after >= before else None


@dataclasses.dataclass
class View:
    """What the screen shows, kept between reads: trends, rates, and when the last good read was."""

    threshold: float
    trends: dict[str, collections.deque[float]] = dataclasses.field(default_factory=dict)
    last: Snapshot | None = None
    last_ok: float | None = None
    stale_since: float | None = None
    error: str = ""
    rates: tuple[float | None, float | None] = (None, None)  # processed, failed per minute
    rows: list[tuple[float, int, str]] = dataclasses.field(default_factory=list)  # latency (-1: unknown), size, name
    marks: str = SPARKS  # the trend's characters: ASCII_SPARKS where the terminal cannot show SPARKS
    jobs: JobMinutes | None = None  # the latest complete minute(s) of Sidekiq's execution metrics
    show_jobs: bool = False  # the job classes instead of the queues (the `j` key)
    running: dict[str, float] = dataclasses.field(default_factory=dict)  # queue: its longest-running job, seconds

    def update(self, snapshot: Snapshot) -> None:
        if self.last and self.last.totals and snapshot.totals:
            minutes = max(1e-6, (snapshot.read_at - self.last.read_at) / 60)
            old, new = self.last.totals, snapshot.totals
            self.rates = (_rate(old.processed, new.processed, minutes), _rate(old.failed, new.failed, minutes))
        series, _ = queue_series(snapshot)  # the emitter's own derivation: the same numbers it prints
        waits = {q: v for s in series if s.metric is QUEUE_LATENCY for q, v in zip(s.queues, s.values, strict=True)}
        for q in snapshot.queues:
            self.trends.setdefault(q.name, collections.deque(maxlen=TREND_POINTS)).append(waits.get(q.name, 0.0))
        self.rows = sorted(((waits.get(q.name, -1.0), q.size or 0, q.name) for q in snapshot.queues),
                           key=lambda row: (-row[0], -row[1], row[2]))  # worst first
        self.running = {q: v for s in series if s.metric is QUEUE_RUNNING_LONGEST
                        for q, v in zip(s.queues, s.values, strict=True)}
        self.last, self.last_ok, self.stale_since, self.error = snapshot, snapshot.read_at, None, ""
        self.jobs = snapshot.jobs or self.jobs

    def failed(self, error: str, at: float) -> None:
        self.stale_since = self.stale_since or at
        self.error = error

    def lines(self, title: str, width: int, height: int, color: bool) -> list[str]:
        bold, rev, reset = (BOLD, REVERSE, RESET) if color else ("", "", "")
        head = f"last read {clock(self.last_ok) if self.last_ok else 'never'}  {title}"
        out = [bold + head[:width] + reset]
        if self.stale_since:  # a line of its own, first thing under the header: it must never be cut off
            out.append(rev + f"STALE since {clock(self.stale_since)}: {self.error}"[:width] + reset)
        snapshot = self.last
        if snapshot is None:
            return out + ["waiting for a first read of Redis..."]
        if snapshot.totals:
            t = snapshot.totals
            per_min = [f"{r:.0f}/min" if r is not None else "-" for r in self.rates]
            # Paused beside enqueued (their jobs are among them), before what an 80-column terminal may cut off.
            pauses = f"  paused {len(snapshot.paused)}" if snapshot.paused else ""
            out.append((f"busy {t.busy}/{t.concurrency}  processed {per_min[0]}  failed {per_min[1]}  "
                        f"enqueued {_shown(t.enqueued)}{pauses}  scheduled {_shown(t.scheduled)}  "
                        f"retries {_shown(t.retries)}  dead {_shown(t.dead)}")[:width])
        if self.show_jobs:
            return out + self._job_lines(width, height - len(out))
        rows = self.rows
        name_width = max(10, min(40, width - 50))  # the columns after the name take 34, and a short trend
        out.append(f"  {'QUEUE':<{name_width}} {'SIZE':>9} {'LATENCY':>10} {'RUNNING':>9}  TREND"[:width])
        room = max(1, height - len(out) - 1)
        paused = snapshot.paused or frozenset()
        for wait, size, name in rows[:room]:
            # P: Sidekiq Pro holds it paused, so its latency grows by design; !: latency above the threshold.
            held = name in paused
            over = wait > self.threshold and not held
            shown = ascii(name)[1:-1] if not name.isprintable() else name
            ran = self.running.get(name)
            text = (f"{'P' if held else '!' if over else ' '} {shown[:name_width]:<{name_width}} {size:>9} "
                    f"{(f'{wait:.1f}s' if wait >= 0 else '?'):>10} {(f'{ran:.0f}s' if ran is not None else '-'):>9}  ")
            room_for_trend = max(0, width - len(text))  # the newest points that fit
            if room_for_trend:
                text += sparkline(list(self.trends.get(name, ()))[-room_for_trend:], self.marks)
            text = text[:width]
            out.append(rev + text + reset if over and color else text)
        if len(rows) > room:
            out.append(f"  ... {len(rows) - room} more queue(s)")
        return out

    def _job_lines(self, width: int, height: int) -> list[str]:
        """The job classes of the latest complete minute(s) Sidekiq's execution metrics hold, busiest first."""
        jobs = self.jobs
        if jobs is None:
            return ["no complete minute of Sidekiq's execution metrics yet (Sidekiq 7+ writes them; a minute "[:width],
                    "is read 10 s after it ends)"[:width]]
        minutes = max(1.0, (jobs.end - jobs.start) / 60)
        name_width = max(10, min(40, width - 46))
        out = [f"  {'JOB CLASS':<{name_width}} {'RUNS/MIN':>9} {'FAILED':>7} {'MEAN':>9} {'P95':>9}"
               f"   {clock(jobs.start)}-{clock(jobs.end)}"[:width]]
        ranked = sorted(jobs.classes, key=lambda j: (-j.runs, j.name))
        room = max(1, height - 2)
        for job in ranked[:room]:
            done = job.runs - job.failures
            mean = f"{job.ms / done / 1000:.3f}s" if done > 0 else "-"
            p95 = percentile(job.histogram, 0.95) if job.histogram else None
            shown = ascii(job.name)[1:-1] if not job.name.isprintable() else job.name
            out.append(f"  {shown[:name_width]:<{name_width}} {job.runs / minutes:>9.0f} {job.failures:>7} "
                       f"{mean:>9} {(f'{p95:g}s' if p95 is not None else '-'):>9}"[:width])
        if len(ranked) > room:
            out.append(f"  ... {len(ranked) - room} more class(es)")
        return out


def run_watch(settings: Settings, every: float, threshold: float, out: TextIO | None = None) -> int:
    """The `watch` command; `out`: stdout as it is when called (the CLI may have replaced a closed one)."""
    out = out or sys.stdout
    # The latest complete minute at once (watch only shows what it reads: no minute can be counted twice).
    jobs = JobMetricsReader(key_prefix(settings.namespace), settings.job_classes, settings.job_classes_top,
                            backfill=1) if settings.job_metrics else None
    reader = SidekiqReader(connect(settings.redis, every), namespace=settings.namespace,
                           jobs=jobs)
    view = View(threshold, marks=spark_marks(out))
    tty = out.isatty()
    keys = _Keys(tty)
    sleeping = False

    def on_resize(signum: int, frame: FrameType | None) -> None:
        if sleeping:
            raise Redraw

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    if tty:
        signal.signal(signal.SIGWINCH, on_resize)
        out.write(ENTER)
    hint = "; j: job classes" if keys.fd is not None else ""
    title = f"every {every:g}s  {settings.redis.display}  (sidekiq-metrics watch{hint})"
    try:
        next_read = time.monotonic()
        while True:
            if time.monotonic() >= next_read:
                next_read = time.monotonic() + every
                try:
                    view.update(reader.read(settings.queues, totals=True))
                except (RedisError, OSError) as exc:
                    view.failed(describe_error(exc, settings.secrets), time.time())
            # The terminal's own size (not $COLUMNS, which a shell may have set before a resize).
            columns, rows = os.get_terminal_size(out.fileno()) if tty else (shutil.get_terminal_size().columns, 10_000)
            lines = view.lines(title, columns, rows, color=tty)
            out.write((HOME_CLEAR + "\n".join(lines)) if tty else "\n".join(lines) + "\n\n")
            out.flush()
            try:
                sleeping = True
                key = keys.wait(max(0.0, next_read - time.monotonic()))
                if key in ("j", "J"):
                    view.show_jobs = not view.show_jobs
                elif key in ("q", "Q"):
                    break
            except Redraw:
                pass
            finally:
                sleeping = False
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # the reader went away (`watch | head`): nothing to say, nowhere to say it
        silence_stdout()
        return 0
    except OSError as exc:
        sys.stderr.write(f"sidekiq-metrics: cannot write to stdout: {exc.strerror or exc}\n")
        return EXIT_OUTPUT
    finally:
        keys.restore()
        if tty:
            with contextlib.suppress(OSError):
                out.write(LEAVE)
                out.flush()
    return 0


class _Keys:
    """Single key presses from a terminal on stdin (cbreak: no Enter, no echo), restored on the way out.
    Without a terminal on both sides it only waits."""

    def __init__(self, tty: bool) -> None:
        self.fd: int | None = None
        self.saved: list[Any] | None = None
        if tty and sys.stdin is not None and sys.stdin.isatty():
            self.fd = sys.stdin.fileno()
            self.saved = termios.tcgetattr(self.fd)
            terminal.setcbreak(self.fd)

    def wait(self, seconds: float) -> str | None:
        """A key pressed within `seconds`, else None after them."""
        if self.fd is None:
            time.sleep(seconds)
            return None
        ready, _, _ = select.select([self.fd], [], [], seconds)
        return os.read(self.fd, 1).decode("ascii", "replace") if ready else None

    def restore(self) -> None:
        if self.fd is not None and self.saved is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)


def _shown(count: int | None) -> str:
    return "?" if count is None else str(count)
