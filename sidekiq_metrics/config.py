"""Settings: read once from flags and the environment, validated, then immutable.

Each layer declares its own section of settings beside the code that uses it (setting.py says how): the
Redis target (redis/target.py), the reader (sidekiq/reader.py), the loop (loop/settings.py), the outputs
(outputs/choice.py, and outputs/otlp_settings.py for otlp), autoscaling (autoscale/settings.py). This
module only assembles them into one Settings and resolves them from the environment.

Precedence for every setting: a command-line flag, then its environment variable, then the default. An
empty environment variable counts as unset. Parsing takes a plain mapping, so tests pass dicts instead of
patching os.environ.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sidekiq_metrics.autoscale.settings import AutoscaleSettings, resolve_autoscale
from sidekiq_metrics.errors import ConfigError
from sidekiq_metrics.loop.settings import LOOP_SETTINGS
from sidekiq_metrics.outputs.choice import (
    CLOUDWATCH_SETTINGS,
    L2MET_SETTINGS,
    OUTPUT_SETTINGS,
    PROMETHEUS_SETTINGS,
    STATSD_SETTINGS,
)
from sidekiq_metrics.outputs.otlp_settings import OtlpSettings, resolve_otlp
from sidekiq_metrics.redis.target import REDIS_SETTINGS, RedisTarget, Shard, resolve_redis
from sidekiq_metrics.setting import Setting, read_section
from sidekiq_metrics.sidekiq.breakdown import BREAKDOWN_SETTINGS
from sidekiq_metrics.sidekiq.reader import READER_SETTINGS

# Every section's settings, in the order users meet them in `--help`, `doctor` and docs/configuration.md (the
# Redis URL, read by its own rule, comes first: redis/target.REDIS_URL).
_ORDER = ("tls_verify", "interval", "lease", "shard_variables", "queues", "namespace", "prefix", "metric_type",
          "source", "stats", "outputs", "statsd_host", "statsd_port", "prometheus_host", "prometheus_port",
          "cloudwatch_namespace", "job_metrics", "job_classes", "job_classes_top", "breakdowns", "breakdown_max_size",
          "breakdown_queues")
_SECTIONS = (*REDIS_SETTINGS, *LOOP_SETTINGS, *READER_SETTINGS, *BREAKDOWN_SETTINGS, *OUTPUT_SETTINGS, *L2MET_SETTINGS,
             *STATSD_SETTINGS, *PROMETHEUS_SETTINGS, *CLOUDWATCH_SETTINGS)
SETTINGS: tuple[Setting, ...] = tuple(sorted(_SECTIONS, key=lambda s: _ORDER.index(s.name)))


@dataclass(frozen=True)
class Settings:
    """Every field is set by check_settings, from the declarations in SETTINGS (defaults included)."""

    shards: tuple[Shard, ...]  # every Redis read: the default one (Sidekiq's default pool) first, alone without shards
    tls_verify: bool
    interval: float
    queues: tuple[str, ...] | None  # None: every queue in Sidekiq's `queues` set
    namespace: str | None
    prefix: str
    metric_type: str
    source: str | None
    stats: bool  # whole-Sidekiq totals beside the per-queue lines
    outputs: tuple[str, ...]
    statsd_host: str  # Datadog's DD_AGENT_HOST and DD_DOGSTATSD_PORT
    statsd_port: int
    prometheus_host: str
    prometheus_port: int
    cloudwatch_namespace: str
    job_metrics: bool  # Sidekiq's execution metrics per job class (7.0+)
    job_classes: tuple[str, ...] | None  # the classes that may be reported one by one; None: any
    job_classes_top: int  # at most this many, by run time over the last hour
    breakdowns: frozenset[str]  # the sets (and `queues`) tallied by job class: sidekiq/breakdown.py
    breakdown_max_size: int  # a set or queue larger than this is not tallied
    breakdown_queues: int  # the largest queues tallied
    lease: bool  # run only while holding the Redis lease (lease.py): one active emitter among several
    shard_variables: tuple[tuple[str, str], ...] | None  # SIDEKIQ_METRICS_SHARDS: (name, variable); None: one Redis
    autoscale: AutoscaleSettings | None = None  # None: off (the default)
    otlp: OtlpSettings | None = None  # None: the otlp output is not chosen
    origins: Mapping[str, str] = field(default_factory=dict, compare=False)
    """For each setting, where its value came from: a flag, a variable, or "default"."""

    @property
    def redis(self) -> RedisTarget:
        """The default Redis: the one without shards, the first shard with them (the lease, the autoscaler's lock,
        `doctor` and `watch` use it)."""
        return self.shards[0].target

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every string that must never reach any output: the Redis URL's credentials, the OTLP headers'
        values, the Heroku API token."""
        return (*(s for shard in self.shards for s in shard.target.secrets),
                *(self.otlp.secrets if self.otlp else ()),
                *((self.autoscale.token,) if self.autoscale else ()))


def load_settings(env: Mapping[str, str], flags: Mapping[str, object] | None = None) -> Settings:
    """Build Settings from the environment and explicit flags (None means "not given").

    Raises ConfigError naming the flag or variable at fault and what it accepts.
    """
    settings, errors = check_settings(env, flags)
    if errors:
        raise errors[0]
    return settings


def check_settings(env: Mapping[str, str],
                   flags: Mapping[str, object] | None = None) -> tuple[Settings, list[ConfigError]]:
    """Settings with every valid value, defaults in place of the others, and every error (for `doctor`)."""
    flags = flags or {}
    origins: dict[str, str] = {}
    errors: list[ConfigError] = []
    redis_errors: list[ConfigError] = []
    values = read_section(SETTINGS, env, origins, errors, flags=flags)
    shards = resolve_redis(env, flags, values, origins, redis_errors)
    errors[:0] = [e for e in redis_errors if e.field == "redis"]  # the URL's own error first, as it is listed first
    errors += [e for e in redis_errors if e.field != "redis"]
    reported = values["queues"]  # as autoscaling names them: another shard's as `orders:default`
    if reported is not None and values["shard_variables"]:
        reported += tuple(f"{name}:{queue}" for name, _ in values["shard_variables"][1:] for queue in reported)
    shard_names = tuple(name for name, _ in values["shard_variables"] or ())
    autoscale = resolve_autoscale(env, reported, origins, errors, shard_names)
    # Only for the otlp output: an app's own OpenTelemetry SDK may use OTEL_* variables we do not accept (grpc).
    otlp = resolve_otlp(env, origins, errors) if "otlp" in values["outputs"] else None
    return Settings(shards=shards, autoscale=autoscale, otlp=otlp, origins=origins, **values), errors
