"""Which running jobs a scale-down would interrupt, from the `<identity>:work` hashes Sidekiq keeps.

When Heroku stops a dyno, Sidekiq takes no new jobs and gives the running ones its shutdown
timeout (25 s by default; Heroku sends SIGKILL at 30 s); what still runs then is pushed back and
starts again later. A job's run time is known only once it ends, so a running job counts as at
risk once it has run SHUTDOWN seconds: short jobs never hold a scale-down, and a long one holds it
from its 25th second until it ends. The job this misses is a long one within its first 25
seconds. Remembering the classes seen running long would catch it, but a class of short jobs with
a rare slow run would then hold every scale-down: benchmarks/autoscale_sim.py measured that cost.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from sidekiq_metrics.sidekiq.running import UNREADABLE, parse_record

SHUTDOWN = 25.0  # seconds: Sidekiq's default shutdown timeout (`-t`), within Heroku's 30 s before SIGKILL


class RunningJob(NamedTuple):
    dyno: str  # the process's hostname part of its identity: `worker.2`
    job_class: str  # ActiveJob's wrapped class, else the worker class; "a job" when unreadable
    queue: str
    since: float | None  # epoch seconds it started (`run_at`); None when unreadable

    def describe(self, now: float) -> str:
        """`worker.2: Billing::MonthEndJob (default, 1210s)`."""
        running = f", {max(0.0, now - self.since):.0f}s" if self.since is not None else ""
        return f"{self.dyno}: {self.job_class} ({self.queue}{running})"


def running_job(identity: str, raw: object) -> RunningJob:
    """One value of `<identity>:work` (`:workers` up to 6.4.1), read as the poll reads it (sidekiq/running.py): its
    class as Sidekiq shows it, its queue, its start. Whatever is unreadable is said to be so, never an exception."""
    dyno = identity.split(":")[0][:64]
    record = parse_record(raw) if isinstance(raw, bytes) else UNREADABLE
    if record == UNREADABLE:
        return RunningJob(dyno, "a job that could not be read", "?", None)
    return RunningJob(dyno, (record.job_class or "a job")[:80], (record.queue or "?")[:40], record.since)


def at_risk(jobs: Iterable[RunningJob], now: float, shutdown: float = SHUTDOWN) -> list[RunningJob]:
    """The jobs that have run `shutdown` seconds or more, and those whose start cannot be read (they may have
    run for hours)."""
    return [job for job in jobs if job.since is None or now - job.since >= shutdown]
