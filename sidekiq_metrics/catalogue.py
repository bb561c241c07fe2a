"""Every metric the emitter reports, declared once: its name, kind, unit and meaning.

The metrics module computes the values; each output spells a metric from these facts
(l2met writes a delta as `count#`, Prometheus a total as a `_total` counter, CloudWatch
takes the unit), and docs/metrics.md's table is made from this list, which a test holds
equal. Adding a metric touches this file and the code that computes it, nothing else.

Names are the part after the prefix (`sidekiq.` by default) and are a contract: the
original buildpack's `<queue>.size` and `<queue>.latency` among them.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class Kind(enum.Enum):
    GAUGE = "gauge"  # a level, as it is now
    TOTAL = "total"  # a running total that only grows (but for a reset of Sidekiq's stats)
    DELTA = "delta"  # how much a running total grew since the previous poll


class Unit(enum.Enum):
    JOBS = "jobs"
    SECONDS = "seconds"
    PROCESSES = "processes"
    RATIO = "ratio"  # 0 to 1
    BOOLEAN = "0 or 1"
    POLLS = "polls"
    DYNOS = "dynos"
    MEGABYTES = "MB"
    MILLISECONDS = "ms"
    CONNECTIONS = "connections"
    KEYS = "keys"
    PER_SECOND = "commands/s"
    QUEUES = "queues"


@dataclass(frozen=True)
class Metric:
    name: str  # after the prefix; `<type>` stands for a process type (autoscaling)
    kind: Kind
    unit: Unit
    help: str  # what it means, for docs/metrics.md
    per_queue: bool = False  # one value per queue: l2met puts the queue in the name, the others a label
    total: Metric | None = None  # of a DELTA: the running total it is the increase of (OTLP sends them as one Sum)
    label: str | None = None  # what its values are told apart by: `queue`, or the `<...>` part of its name

    def __post_init__(self) -> None:
        if self.per_queue:
            object.__setattr__(self, "label", "queue")

    @property
    def bare_name(self) -> str:
        """The name without its `<...>` part: `process.count` for `process.<type>.count`."""
        return re.sub(r"<[a-z]+>\.", "", self.name)

    def filled(self, subject: str) -> str:
        """The name with its `<...>` part filled in: `process.worker.count`. (A per-queue name has no `<...>`
        part: l2met puts the queue before it.)"""
        head, angle, rest = self.name.partition("<")
        return head + subject + rest[rest.index(">") + 1:] if angle else self.name

    @property
    def tag_name(self) -> str:
        """The name outputs that label rather than name give it: `queue.size`, `process.count`, `enqueued`.
        Each spells it in its own way (`queue_size`, `QueueSize`), never a name of its own making."""
        return "queue." + self.name if self.per_queue else self.bare_name


GAUGE, TOTAL, DELTA = Kind.GAUGE, Kind.TOTAL, Kind.DELTA

QUEUE_SIZE = Metric("size", GAUGE, Unit.JOBS, "jobs waiting in the queue (`Sidekiq::Queue#size`: `LLEN "
                    "queue:<queue>`)", per_queue=True)
QUEUE_LATENCY = Metric("latency", GAUGE, Unit.SECONDS, "seconds the oldest job has waited, to the millisecond "
                       "(`Sidekiq::Queue#latency`); 0 for an empty queue", per_queue=True)
ENQUEUED = Metric("enqueued", GAUGE, Unit.JOBS, "jobs waiting in all queues (`Sidekiq::Stats#enqueued`), "
                  "whatever `SIDEKIQ_METRICS_QUEUES` reports")
SCHEDULED = Metric("scheduled", GAUGE, Unit.JOBS, "jobs in the schedule set (`Stats#scheduled_size`)")
RETRIES = Metric("retries", GAUGE, Unit.JOBS, "jobs waiting to be retried (`Stats#retry_size`)")
DEAD = Metric("dead", GAUGE, Unit.JOBS, "jobs in the dead set (`Stats#dead_size`)")
DEAD_LAST_DEATH = Metric("dead.last_death", GAUGE, Unit.SECONDS, "seconds since the newest job of the dead set "
                         "died (its score); left out while the set is empty. Small while jobs keep dying, even with "
                         "the set at Sidekiq's `dead_max_jobs` cap, where its size stays flat")
PROCESSES = Metric("processes", GAUGE, Unit.PROCESSES, "Sidekiq processes (`Stats#processes_size`), dead ones "
                   "not yet pruned included")
BUSY = Metric("busy", GAUGE, Unit.JOBS, "jobs being worked on right now by live processes (`Stats#workers_size`)")
PROCESSED = Metric("processed", TOTAL, Unit.JOBS, "Sidekiq's running total of jobs processed (`Stats#processed`)")
FAILED = Metric("failed", TOTAL, Unit.JOBS, "Sidekiq's running total of jobs failed (`Stats#failed`)")
SCHEDULED_LAG = Metric("scheduled.lag", GAUGE, Unit.SECONDS, "seconds since the earliest job of the schedule set "
                       "became due; 0 when none is due. Growing: Sidekiq's scheduler is not moving jobs (no process "
                       "running, or its poller stuck)")
RETRIES_LAG = Metric("retries.lag", GAUGE, Unit.SECONDS, "the same for the retry set: seconds since the earliest "
                     "retry became due; 0 when none is due")
PROCESS_COUNT = Metric("process.<type>.count", GAUGE, Unit.PROCESSES, "live Sidekiq processes on dynos of this "
                       "process type (`worker.3` is of type `worker`; processes elsewhere are of type `other`)",
                       label="process_type")
PROCESS_BUSY = Metric("process.<type>.busy", GAUGE, Unit.JOBS, "jobs those processes are working on",
                      label="process_type")
PROCESS_CONCURRENCY = Metric("process.<type>.concurrency", GAUGE, Unit.JOBS, "the threads of those processes "
                             "(their `concurrency`): the jobs they can run at once", label="process_type")
PROCESS_UTILIZATION = Metric("process.<type>.utilization", GAUGE, Unit.RATIO, "busy / concurrency of those "
                             "processes; left out when none reports a concurrency", label="process_type")
PROCESS_QUIET = Metric("process.<type>.quiet", GAUGE, Unit.PROCESSES, "those of them that are quiet (take no new "
                       "jobs: TSTP sent, or shutting down)", label="process_type")
PROCESS_MEMORY_MAX = Metric("process.<type>.memory.max", GAUGE, Unit.MEGABYTES, "the largest resident memory "
                            "among them, as each process measures it (`rss`); left out when none reports it",
                            label="process_type")
PROCESS_MEMORY_TOTAL = Metric("process.<type>.memory.total", GAUGE, Unit.MEGABYTES, "their resident memory "
                              "summed", label="process_type")
PROCESS_REDIS_RTT_MAX = Metric("process.<type>.redis_rtt.max", GAUGE, Unit.MILLISECONDS, "the slowest Redis round "
                               "trip among them, as Sidekiq measures it at each heartbeat (`rtt_us`)",
                               label="process_type")
MAX_LATENCY = Metric("max_latency", GAUGE, Unit.SECONDS, "the largest latency among the reported queues; left "
                     "out when no latency is known")
UTILIZATION = Metric("utilization", GAUGE, Unit.RATIO, "busy / total concurrency of live processes; left out when "
                     "no live process reports a concurrency")
JOBS_PROCESSED = Metric("jobs.processed", DELTA, Unit.JOBS, "jobs processed since the previous poll, from the "
                        "second poll on", total=PROCESSED)
JOBS_FAILED = Metric("jobs.failed", DELTA, Unit.JOBS, "jobs failed since the previous poll, from the second "
                     "poll on", total=FAILED)
UP = Metric("metrics.up", GAUGE, Unit.BOOLEAN, "1 when Redis answered every read a poll needs (the queues set, "
            "each queue's size and oldest job, the processes), even with no queues at all; 0 after a failed poll "
            "or one where Redis refused any of those reads")
ERRORS = Metric("metrics.errors", DELTA, Unit.POLLS, "1 for each failed poll")
AUTOSCALE_CURRENT = Metric("autoscale.<type>.current", GAUGE, Unit.DYNOS, "with autoscaling on: the formation's "
                           "quantity of each scaled process type, as last read or set", label="process_type")
JOB_PROCESSED = Metric("job.<class>.processed", DELTA, Unit.JOBS, "runs of the job class in the minutes that "
                       "became complete since the previous poll, failures included (Sidekiq::Metrics' `p`)",
                       label="job_class")
JOB_FAILED = Metric("job.<class>.failed", DELTA, Unit.JOBS, "failed runs in those minutes (`f`)", label="job_class")
JOB_RUNTIME_MEAN = Metric("job.<class>.runtime.mean", GAUGE, Unit.SECONDS, "mean run time of the successful runs "
                          "in those minutes (`ms` / (`p` - `f`), Sidekiq's own average)", label="job_class")
JOB_RUNTIME_P50 = Metric("job.<class>.runtime.p50", GAUGE, Unit.SECONDS, "median run time of the successful runs, "
                         "from Sidekiq's histogram: the upper bound of the bucket that holds it", label="job_class")
JOB_RUNTIME_P95 = Metric("job.<class>.runtime.p95", GAUGE, Unit.SECONDS, "95th percentile, the same way",
                         label="job_class")
JOB_RUNTIME_P99 = Metric("job.<class>.runtime.p99", GAUGE, Unit.SECONDS, "99th percentile, the same way",
                         label="job_class")
OTLP_DROPPED = Metric("metrics.otlp.dropped", TOTAL, Unit.POLLS, "otlp output only: polls not exported, as the "
                      "backend was down for longer than the few polls kept for it")
AUTOSCALE_DESIRED = Metric("autoscale.<type>.desired", GAUGE, Unit.DYNOS, "with autoscaling on: the quantity the "
                           "policy wants, even while a cool-down holds it back", label="process_type")
AUTOSCALE_MAX = Metric("autoscale.<type>.max", GAUGE, Unit.DYNOS, "with autoscaling on: the most dynos the policy "
                       "may set now (MAX, or the time window's); at it with latency high, the ceiling is too low",
                       label="process_type")
REDIS_MEMORY_USED = Metric("redis.memory.used", GAUGE, Unit.MEGABYTES, "the memory Redis uses for its data "
                           "(INFO `used_memory`), in MiB")
REDIS_MEMORY_MAX = Metric("redis.memory.max", GAUGE, Unit.MEGABYTES, "its `maxmemory`; left out when it has no "
                          "limit")
REDIS_MEMORY_RATIO = Metric("redis.memory.ratio", GAUGE, Unit.RATIO, "used / max: at 1 a `noeviction` Redis refuses "
                            "new jobs (Sidekiq raises OOM errors), any other policy drops keys; left out with no limit")
REDIS_CLIENTS = Metric("redis.clients", GAUGE, Unit.CONNECTIONS, "connected clients (INFO `connected_clients`): "
                       "each Sidekiq process, each web dyno's pool, us; a plan's limit refuses the next")
REDIS_EVICTED = Metric("redis.evicted_keys", TOTAL, Unit.KEYS, "keys Redis has evicted since it started (INFO "
                       "`evicted_keys`); any at all under Sidekiq may be lost jobs")
REDIS_EVICTIONS = Metric("redis.evictions", DELTA, Unit.KEYS, "keys evicted since the previous poll, from the "
                         "second poll on", total=REDIS_EVICTED)
REDIS_OPS = Metric("redis.ops_per_second", GAUGE, Unit.PER_SECOND, "commands a second, as Redis measures it "
                   "(INFO `instantaneous_ops_per_sec`)")
QUEUE_RUNNING_LONGEST = Metric("running.longest", GAUGE, Unit.SECONDS, "seconds the longest-running job taken from "
                               "the queue has run, from the processes' work records (`Sidekiq::WorkSet`, its "
                               "`run_at`); left out while none of its jobs runs", per_queue=True)
JOB_RUNNING_LONGEST = Metric("job.<class>.running.longest", GAUGE, Unit.SECONDS, "the same for each job class "
                             "(`display_class`: ActiveJob's wrapped class), capped as the other job-class metrics "
                             "are; `unknown` for jobs whose record names no class", label="job_class")
QUEUE_PAUSED = Metric("paused", GAUGE, Unit.BOOLEAN, "1 while Sidekiq Pro/Enterprise holds the queue paused (the "
                      "`paused` set); sent for paused queues only", per_queue=True)
QUEUES_PAUSED = Metric("queues.paused", GAUGE, Unit.QUEUES, "queues Sidekiq Pro/Enterprise holds paused; 0 when "
                       "none (and without Pro)")

# Breakdowns (sidekiq/breakdown.py): each from the latest whole pass over its set; see docs/metrics.md for how
# fresh that is and what it means while jobs come and go.
JOB_RETRIES = Metric("job.<class>.retries", GAUGE, Unit.JOBS, "jobs of the class in the retry set, by Sidekiq's "
                     "`display_class` (ActiveJob's own class, `Mailer#method` for mailers); `unknown`: jobs whose "
                     "class could not be read", label="job_class")
JOB_RETRIES_OLDEST = Metric("job.<class>.retries.oldest", GAUGE, Unit.SECONDS, "seconds since the class's oldest "
                            "job in the retry set first failed (its `failed_at`)", label="job_class")
JOB_DEAD = Metric("job.<class>.dead", GAUGE, Unit.JOBS, "jobs of the class in the dead set", label="job_class")
JOB_DEAD_OLDEST = Metric("job.<class>.dead.oldest", GAUGE, Unit.SECONDS, "seconds since the class's oldest dead "
                         "job first failed", label="job_class")
JOB_SCHEDULED = Metric("job.<class>.scheduled", GAUGE, Unit.JOBS, "jobs of the class in the schedule set",
                       label="job_class")
JOB_WAITING = Metric("job.<class>.waiting", GAUGE, Unit.JOBS, "jobs of the class waiting in the queue (labels "
                     "`queue` and `job_class`; l2met: `<queue>.job.<class>.waiting`), for the largest queues",
                     label="job_class")
ERROR_RETRIES = Metric("error.<error>.retries", GAUGE, Unit.JOBS, "jobs in the retry set by the class of their last "
                       "error (`error_class`)", label="error_class")
ERROR_DEAD = Metric("error.<error>.dead", GAUGE, Unit.JOBS, "jobs in the dead set by `error_class`",
                    label="error_class")
RETRIES_BREAKDOWN_AGE = Metric("retries.breakdown.age", GAUGE, Unit.SECONDS, "how old the retry set's breakdown "
                               "is: seconds since the pass it comes from began")
DEAD_BREAKDOWN_AGE = Metric("dead.breakdown.age", GAUGE, Unit.SECONDS, "the same for the dead set")
SCHEDULED_BREAKDOWN_AGE = Metric("scheduled.breakdown.age", GAUGE, Unit.SECONDS, "the same for the schedule set")
QUEUES_BREAKDOWN_AGE = Metric("queues.breakdown.age", GAUGE, Unit.SECONDS, "the same for the queues: the oldest "
                              "of the queues' breakdowns")

CATALOGUE: tuple[Metric, ...] = (
    QUEUE_SIZE, QUEUE_LATENCY, ENQUEUED, SCHEDULED, RETRIES, DEAD, DEAD_LAST_DEATH,
    PROCESSES, BUSY, PROCESSED, FAILED, MAX_LATENCY,
    UTILIZATION, SCHEDULED_LAG, RETRIES_LAG, PROCESS_COUNT, PROCESS_BUSY, PROCESS_CONCURRENCY, PROCESS_UTILIZATION,
    PROCESS_QUIET, PROCESS_MEMORY_MAX, PROCESS_MEMORY_TOTAL, PROCESS_REDIS_RTT_MAX, JOBS_PROCESSED, JOBS_FAILED, UP,
    ERRORS, AUTOSCALE_CURRENT, AUTOSCALE_DESIRED, AUTOSCALE_MAX, JOB_PROCESSED, JOB_FAILED, JOB_RUNTIME_MEAN,
    JOB_RUNTIME_P50, JOB_RUNTIME_P95, JOB_RUNTIME_P99, OTLP_DROPPED, REDIS_MEMORY_USED, REDIS_MEMORY_MAX,
    REDIS_MEMORY_RATIO, REDIS_CLIENTS, REDIS_EVICTED, REDIS_EVICTIONS, REDIS_OPS, QUEUE_RUNNING_LONGEST,
    JOB_RUNNING_LONGEST, QUEUE_PAUSED, QUEUES_PAUSED,
    JOB_RETRIES, JOB_RETRIES_OLDEST, JOB_DEAD, JOB_DEAD_OLDEST, JOB_SCHEDULED, JOB_WAITING, ERROR_RETRIES, ERROR_DEAD,
    RETRIES_BREAKDOWN_AGE, DEAD_BREAKDOWN_AGE, SCHEDULED_BREAKDOWN_AGE, QUEUES_BREAKDOWN_AGE,
)
