"""Settings: read once from flags and the environment, validated, then immutable.

Precedence for every setting: a command-line flag, then its environment variable,
then the default. An empty environment variable counts as unset. Parsing takes a
plain mapping, so tests pass dicts instead of patching os.environ.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sidekiq_metrics.dynos import PROCESS_TYPE
from sidekiq_metrics.errors import ConfigError
from sidekiq_metrics.metrics import SHARDS_TOTAL
from sidekiq_metrics.outputs import FACTORIES
from sidekiq_metrics.outputs.otlp_settings import OtlpSettings, resolve_otlp
from sidekiq_metrics.parsing import check_host, format_value, host, matching, one_of, quote, whole_number
from sidekiq_metrics.redis_target import DEFAULT_SHARD, RedisTarget, Shard
from sidekiq_metrics.schedule import ScheduleError, Window, parse_schedule, window_at

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
DEFAULT_INTERVAL = 30.0
MAX_INTERVAL = 86400.0
DEFAULT_PREFIX = "sidekiq"
METRIC_TYPES = ("sample", "measure", "count")
OUTPUTS = tuple(FACTORIES)  # the output names, declared once, with the code that builds each
DEFAULT_HEROKU_API_URL = "https://api.heroku.com"
MAX_DYNOS = 1000  # far above any Heroku formation: anything larger is a typo

# Librato's metric-name alphabet. A prefix also may not start or end with a dot,
# so that "<prefix>.<queue>.size" never has an empty part.
_PREFIX_RE = re.compile(r"[A-Za-z0-9_:-]([A-Za-z0-9._:-]{0,62}[A-Za-z0-9_:-])?")
_SOURCE_RE = re.compile(r"[A-Za-z0-9._:-]{1,255}")
_NAMESPACE_RE = re.compile(r"[A-Za-z0-9.\-_/#: ]{1,255}")  # CloudWatch's own rule for namespaces
# A variable's name, as REDIS_PROVIDER must give one: the hook's rule too (profile.d: not `[0-9]*` nor
# `*[!A-Za-z0-9_]*`), held equal to it by tests/test_dyno_rule.py.
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_APP_NAME = re.compile(r"[A-Za-z0-9-]{1,100}|[0-9a-fA-F-]{36}")  # an app's name or id
_TOKEN = re.compile(r"[\x21-\x7e]{1,4096}")  # printable ASCII: it goes into an HTTP header
_NUMBER_RE = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class ScalingRule:
    """How one process type (a Procfile entry, e.g. `worker`) is scaled on its queues' latency."""

    process_type: str
    max_dynos: int
    queues: tuple[str, ...] | None = None  # None: every reported queue
    min_dynos: int = 1
    up_latency: float = 30.0  # seconds; above it for `up_polls` polls in a row: scale up
    down_latency: float = 5.0  # seconds; below it for `down_cooldown` seconds: scale down
    step: int = 1
    up_cooldown: float = 120.0  # seconds after any change before the next scale-up
    down_cooldown: float = 600.0  # seconds after any change (and of low latency) before a scale-down
    up_polls: int = 2
    drain_wait: float = 600.0  # seconds a scale-down waits for the type's running jobs; 0: it does not wait
    catch_up: float = 0.0  # seconds: size a scale-up to bring latency under up_latency within them; 0: plain steps
    max_step: int = 0  # the most dynos one sized scale-up adds; 0: up to max_dynos
    schedule: tuple[Window, ...] = ()  # time windows that override min_dynos and max_dynos
    timezone: str = "UTC"  # the windows' (SIDEKIQ_METRICS_AUTOSCALE_TIMEZONE, for every type)

    def bounds(self, at: float | None) -> tuple[int, int, Window | None]:
        """MIN and MAX at the moment `at` (epoch seconds; None: the rule's own), and the window that set them."""
        window = window_at(self.schedule, self.timezone, at) if at is not None else None
        if window is None:
            return self.min_dynos, self.max_dynos, None
        low = self.min_dynos if window.min_dynos is None else window.min_dynos
        high = self.max_dynos if window.max_dynos is None else window.max_dynos
        return low, high, window


@dataclass(frozen=True)
class AutoscaleSettings:
    rules: tuple[ScalingRule, ...]
    app: str
    token: str = field(repr=False)
    api_url: str = DEFAULT_HEROKU_API_URL
    dry_run: bool = False


@dataclass(frozen=True)
class Setting:
    """One setting of the emitter, as a user meets it: a flag, an environment variable, a default."""

    name: str  # the Settings field
    flag: str
    variable: str
    default: object
    help: str  # what it means, one sentence: for --help, `doctor` and docs/configuration.md
    parse: Callable[[str, str], object] = field(repr=False)  # (raw text, the flag or variable) -> value
    shown: str | None = None  # the default as the docs say it, when its value does not say it well

    @property
    def boolean(self) -> bool:
        return self.parse is parse_bool

    @property
    def shown_default(self) -> str:
        if self.shown is not None:
            return self.shown
        return "none" if self.default is None else format_value(self.default)


@dataclass(frozen=True)
class Settings:
    """Every field is set by check_settings, from the declarations in SETTINGS (defaults included)."""

    redis: RedisTarget
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
    lease: bool  # run only while holding the Redis lease (lease.py): one active emitter among several
    shard_variables: tuple[tuple[str, str], ...] | None  # SIDEKIQ_METRICS_SHARDS: (name, variable); None: one Redis
    autoscale: AutoscaleSettings | None = None  # None: off (the default)
    shards: tuple[Shard, ...] = ()  # every Redis read, the default one first; set by check_settings
    otlp: OtlpSettings | None = None  # None: the otlp output is not chosen
    origins: Mapping[str, str] = field(default_factory=dict, compare=False)
    """For each setting, where its value came from: a flag, a variable, or "default"."""

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every string that must never reach any output: the Redis URL's credentials, the OTLP headers'
        values, the Heroku API token."""
        return (*self.redis.secrets, *(s for shard in self.shards for s in shard.target.secrets),
                *(self.otlp.secrets if self.otlp else ()),
                *((self.autoscale.token,) if self.autoscale else ()))


def _pick(name: str, flag: str, env_var: str, flags: Mapping[str, object], env: Mapping[str, str],
          origins: dict[str, str]) -> tuple[str | None, str]:
    """The raw value of one setting and the label to name it by in errors."""
    value = flags.get(name)
    if value is not None:
        origins[name] = flag
        return str(value).strip(), flag
    raw = env.get(env_var, "").strip()
    if raw:
        origins[name] = env_var
        return raw, env_var
    origins[name] = "default"
    return None, env_var


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
    values: dict[str, Any] = {setting.name: setting.default for setting in SETTINGS}  # Any: each its own type
    url_label = "the default Redis URL"
    try:
        url, url_label = _redis_url(env, flags, origins)
        redis = parse_redis_url(url, url_label)
    except ConfigError as exc:
        exc.field = "redis"
        errors.append(exc)
        redis = parse_redis_url(DEFAULT_REDIS_URL, "the default Redis URL")  # a stand-in: never to be used
    for setting in SETTINGS:
        raw, label = _pick(setting.name, setting.flag, setting.variable, flags, env, origins)
        if raw is not None:
            try:
                values[setting.name] = setting.parse(raw, label)
            except ConfigError as exc:
                errors.append(exc)
                origins[setting.name] = "default"
    if origins["tls_verify"] == "default" and redis.tls_verify is not None:
        values["tls_verify"] = redis.tls_verify
        origins["tls_verify"] = "the Redis URL's ?ssl_cert_reqs="
    shards: tuple[Shard, ...] = (Shard(DEFAULT_SHARD, redis, url_label),)
    if values["shard_variables"] is not None:
        shards = _shards(values["shard_variables"], env, errors) or shards
        redis = shards[0].target  # the default pool: the lease, the autoscaler's lock and `doctor` use it
    reported = values["queues"]  # as autoscaling names them: another shard's as `orders:default`
    if reported is not None and values["shard_variables"]:
        reported += tuple(f"{name}:{queue}" for name, _ in values["shard_variables"][1:] for queue in reported)
    autoscale = _autoscale(env, reported, origins, errors)
    # Only for the otlp output: an app's own OpenTelemetry SDK may use OTEL_* variables we do not accept (grpc).
    otlp = resolve_otlp(env, origins, errors) if "otlp" in values["outputs"] else None
    return Settings(redis=redis, autoscale=autoscale, otlp=otlp, origins=origins, shards=shards, **values), errors


def parse_outputs(raw: str, label: str) -> tuple[str, ...]:
    outputs = tuple(dict.fromkeys(o.strip().lower() for o in raw.split(",") if o.strip()))
    if not outputs or any(o not in OUTPUTS for o in outputs):
        raise ConfigError(label, f"must list outputs from {', '.join(OUTPUTS)}, separated by commas, "
                                 f"got {quote(raw)}")
    return outputs


def elected_by_type(env: Mapping[str, str]) -> bool:
    """SIDEKIQ_METRICS_DYNO names a process type (`web`) and this is one of its dynos (`web.3`): the hook starts
    an emitter here that polls only while it holds the Redis lease. (The hook's glob `<type>.[0-9]*`.)"""
    dyno, wanted = env.get("DYNO", ""), env.get("SIDEKIQ_METRICS_DYNO") or "web.1"
    first = dyno[len(wanted) + 1:][:1]
    return dyno.startswith(wanted + ".") and first != "" and first in "0123456789"


DISABLED, OTHER_DYNO, NO_REDIS = "disabled", "other dyno", "no redis"  # the kinds of NoEmitter


class NoEmitter(NamedTuple):
    """A reason why the hook starts no emitter on a dyno: its kind (what to do about it) and the line to say."""

    kind: str
    text: str


def why_no_emitter(env: Mapping[str, str]) -> list[NoEmitter]:
    """Every reason why the dyno hook (profile.d/sidekiq-metrics.sh) starts no emitter on the dyno `env`
    describes; none when it starts one. The one statement of that rule in Python, which `doctor` reports
    and a test holds equal to the hook's own, case by case. Blank values count as unset, as everywhere
    here; SIDEKIQ_METRICS_DYNO is matched exactly, as the hook matches it."""
    reasons = []
    if env.get("SIDEKIQ_METRICS_DISABLE", "").strip():
        reasons.append(NoEmitter(DISABLED, "SIDEKIQ_METRICS_DISABLE is set: the hook starts nothing on any dyno"))
    dyno, wanted = env.get("DYNO", ""), env.get("SIDEKIQ_METRICS_DYNO") or "web.1"
    if dyno != wanted and not elected_by_type(env):
        reasons.append(NoEmitter(OTHER_DYNO, f"this dyno ({dyno or 'DYNO unset'}) does not run the emitter; {wanted} "
                                             "does (SIDEKIQ_METRICS_DYNO)"))
    provider = env.get("REDIS_PROVIDER", "").strip()
    named = provider and (not _VARIABLE_NAME.fullmatch(provider) or env.get(provider, "").strip())
    if not (env.get("SIDEKIQ_METRICS_REDIS_URL", "").strip() or env.get("REDIS_URL", "").strip() or named):
        reasons.append(NoEmitter(NO_REDIS, "no Redis URL is configured: the hook starts the emitter only with one"))
    return reasons


def _redis_url(env: Mapping[str, str], flags: Mapping[str, object],
               origins: dict[str, str]) -> tuple[str, str]:
    """Sidekiq's own rule, behind our explicit override: the variable REDIS_PROVIDER names, else REDIS_URL."""
    raw, label = _pick(REDIS_URL.name, REDIS_URL.flag, REDIS_URL.variable, flags, env, origins)
    if raw is not None:
        return raw, label
    provider = env.get("REDIS_PROVIDER", "").strip()
    if provider:
        if not _VARIABLE_NAME.fullmatch(provider):
            # Sidekiq refuses a URL here too: people paste the URL itself into REDIS_PROVIDER.
            raise ConfigError("REDIS_PROVIDER", "must be the name of the variable that holds the Redis URL "
                                                "(e.g. REDISCLOUD_URL), not a URL or other text")
        url = env.get(provider, "").strip()
        if url:
            origins["redis_url"] = f"{provider} (named by REDIS_PROVIDER)"
            return url, provider
    url = env.get("REDIS_URL", "").strip()
    if url:
        origins["redis_url"] = "REDIS_URL"
        return url, "REDIS_URL"
    origins["redis_url"] = "default"
    return DEFAULT_REDIS_URL, "the default Redis URL"


_SHARD_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


def parse_shards(raw: str, label: str) -> tuple[tuple[str, str], ...]:
    """`default:REDIS_URL,orders:HEROKU_REDIS_COBALT_URL`: each shard's name and the config var of its URL.
    The URLs themselves never go here: they hold passwords, and Heroku rotates them in the vars."""
    shards: list[tuple[str, str]] = []
    for item in raw.split(","):
        name, colon, variable = (part.strip() for part in item.strip().partition(":"))
        if not colon or not _SHARD_NAME.fullmatch(name) or not _VARIABLE_NAME.fullmatch(variable):
            what = "a URL" if "//" in item else quote(item.strip()[:40])
            raise ConfigError(label, "must list shards as name:VARIABLE, separated by commas (e.g. "
                                     "default:REDIS_URL,orders:HEROKU_REDIS_COBALT_URL; a name is 1 to 32 of a-z "
                                     f"0-9 _ -, a VARIABLE the config var that holds the shard's URL), got {what}")
        if name == SHARDS_TOTAL:
            raise ConfigError(label, f"names a shard {SHARDS_TOTAL!r}: that name is kept for the sums over every "
                                     "shard; choose another")
        if any(name == n for n, _ in shards) or any(variable == v for _, v in shards):
            raise ConfigError(label, f"names the shard {name!r} or the variable {variable} twice: each Redis "
                                     "once, or its jobs would be counted twice")
        shards.append((name, variable))
    return tuple(shards)


def _shards(named: tuple[tuple[str, str], ...], env: Mapping[str, str], errors: list[ConfigError]) -> tuple[Shard, ...]:
    """Each shard's Redis, from the var that holds its URL; () with an error when one cannot be used."""
    shards: list[Shard] = []
    for name, variable in named:
        url = env.get(variable, "").strip()
        if not url:
            errors.append(ConfigError("SIDEKIQ_METRICS_SHARDS", f"names {variable} for the shard {name!r}, but "
                                                               f"{variable} is not set on this app"))
            return ()
        try:
            target = parse_redis_url(url, variable)
        except ConfigError as exc:
            errors.append(exc)
            return ()
        where = (target.host, target.port, target.unix_path, target.db)
        if same := next((shard for shard in shards if (shard.target.host, shard.target.port, shard.target.unix_path,
                                                         shard.target.db) == where), None):
            errors.append(ConfigError("SIDEKIQ_METRICS_SHARDS", f"the shards {same.name!r} and {name!r} are the same "
                                      "Redis: each once, or its jobs would be counted twice"))
            return ()
        shards.append(Shard(name, target, variable))
    return tuple(shards)


def parse_redis_url(url: str, label: str) -> RedisTarget:
    """Parse redis://, rediss:// or unix:// URLs. Error messages never repeat the URL: it holds a password."""
    accepts = "a redis://, rediss:// or unix:// URL"
    if len(url) > 4096:
        raise ConfigError(label, f"must be {accepts} (the value is too long)")
    try:
        parts = urlsplit(url)
        port = parts.port
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
    except ValueError:
        raise ConfigError(label, f"must be {accepts} (the value could not be parsed)") from None
    if password is None and username is not None:
        # redis://secret@host: one word and no colon is a password, as redis-client (Sidekiq 7+) reads it.
        username, password = None, username
    scheme = parts.scheme.lower()
    query = _url_query(parts.query, label)
    if scheme == "unix":
        if not parts.path:
            raise ConfigError(label, f"must be {accepts} (no socket path)")
        return RedisTarget(scheme, unix_path=parts.path, db=_db_number(query.get("db", "0"), label),
                           username=username, password=password or None)
    if scheme not in ("redis", "rediss"):
        raise ConfigError(label, f"must be {accepts} (the scheme is not one of these)")
    if not parts.hostname:
        raise ConfigError(label, f"must be {accepts} (no host name)")
    tls_verify = None
    if "ssl_cert_reqs" in query:
        if scheme != "rediss":
            raise ConfigError(label, "has ?ssl_cert_reqs=, which means something only for a rediss:// URL")
        tls_verify = _CERT_REQS.get(query["ssl_cert_reqs"].lower())
        if tls_verify is None:
            raise ConfigError(label, "has ?ssl_cert_reqs= with a value other than none, optional or required")
    db_text = parts.path.lstrip("/") or query.get("db", "0")
    return RedisTarget(scheme, host=check_host(parts.hostname, label), port=port or 6379, db=_db_number(db_text, label),
                       username=username, password=password or None, tls_verify=tls_verify)


# ?ssl_cert_reqs= as redis-py reads it; "optional" verifies too (a client's CERT_OPTIONAL is CERT_REQUIRED).
_CERT_REQS = {"none": False, "cert_none": False, "optional": True, "cert_optional": True, "required": True,
              "cert_required": True}
URL_QUERY_OPTIONS = ("db", "ssl_cert_reqs")


def _url_query(query: str, label: str) -> dict[str, str]:
    """The URL's query options we honour; any other is refused, never silently ignored. (Values are not
    repeated in the message: some clients take a password there.)"""
    pairs = (part.partition("=") for part in query.split("&") if part)
    options = {unquote(key): unquote(value) for key, _, value in pairs}
    unknown = [k for k in options if k not in URL_QUERY_OPTIONS]
    if unknown:
        # Named only when it looks like an option's name: `?hunter2` may be a password put in the wrong place.
        name = quote(unknown[0]) if re.fullmatch(r"[a-z_]{1,32}", unknown[0]) else "(not shown)"
        raise ConfigError(label, f"has a query option we do not know: {name} (known: "
                                 f"{', '.join(URL_QUERY_OPTIONS)})")
    return options


def _db_number(text: str, label: str) -> int:
    if whole_number(text) is None or int(text) > 1_000_000:
        raise ConfigError(label, "must end in a database number, e.g. /0 (the path is not a number)")
    return int(text)


def parse_interval(raw: str, label: str) -> float:
    if _NUMBER_RE.fullmatch(raw):
        value = float(raw)
        if 0 < value <= MAX_INTERVAL and math.isfinite(value):
            return value
    raise ConfigError(label, f"must be a number of seconds above 0 and at most {MAX_INTERVAL:.0f}, "
                             f"e.g. 30, got {quote(raw)}")


def parse_port(raw: str, label: str) -> int:
    if whole_number(raw) is not None and 0 < int(raw) < 65536:
        return int(raw)
    raise ConfigError(label, f"must be a port number from 1 to 65535, got {quote(raw)}")


def parse_bool(raw: str, label: str) -> bool:
    low = raw.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ConfigError(label, f"must be true or false (also 1/0, yes/no, on/off), got {quote(raw)}")


def parse_queue_list(raw: str, label: str) -> tuple[str, ...]:
    names = [n.strip() for n in raw.split(",")]
    names = list(dict.fromkeys(n for n in names if n))  # keep order, drop repeats
    if not names:
        raise ConfigError(label, "must list queue names separated by commas, e.g. default,mailers")
    return tuple(names)


def parse_class_patterns(raw: str, label: str) -> tuple[str, ...]:
    patterns = tuple(dict.fromkeys(p.strip() for p in raw.split(",") if p.strip()))
    if not patterns:
        raise ConfigError(label, "must list job classes separated by commas, e.g. ReportJob,Billing::*")
    return patterns


def parse_dynos(raw: str, label: str) -> int:
    if whole_number(raw) is not None and int(raw) <= MAX_DYNOS:
        return int(raw)
    raise ConfigError(label, f"must be a number of dynos from 0 to {MAX_DYNOS}, got {quote(raw)}")


def parse_positive(raw: str, label: str) -> int:
    if whole_number(raw) is not None and 0 < int(raw) <= MAX_DYNOS:
        return int(raw)
    raise ConfigError(label, f"must be a whole number from 1 to {MAX_DYNOS}, got {quote(raw)}")


def parse_seconds(raw: str, label: str) -> float:
    if _NUMBER_RE.fullmatch(raw) and float(raw) <= MAX_INTERVAL:
        return float(raw)
    raise ConfigError(label, f"must be a number of seconds from 0 to {MAX_INTERVAL:.0f}, e.g. 30, got {quote(raw)}")


@dataclass(frozen=True)
class RuleSetting:
    """One per-type autoscaling variable, SIDEKIQ_METRICS_AUTOSCALE_<TYPE>_<SUFFIX>. Its default is the
    ScalingRule field's."""

    name: str  # the ScalingRule field
    suffix: str
    help: str
    parse: Callable[[str, str], object] = field(repr=False)

    @property
    def shown_default(self) -> str:
        default = next(f.default for f in dataclasses.fields(ScalingRule) if f.name == self.name)
        if default is dataclasses.MISSING:
            return "required"
        return "every reported queue" if default is None else "none" if default == () else format_value(default)


AUTOSCALE_RULE_SETTINGS: tuple[RuleSetting, ...] = (
    RuleSetting("queues", "QUEUES", "the queues this type serves; its latency is the worst of them, its backlog "
                "their total size. A queue Sidekiq does not know counts as empty. They must be among "
                "`SIDEKIQ_METRICS_QUEUES` if that is set. A queue of another shard than the first is "
                "`shard:queue` (`orders:urgent`)", parse_queue_list),
    RuleSetting("min_dynos", "MIN", f"fewest dynos, 0 to {MAX_DYNOS}", parse_dynos),
    RuleSetting("max_dynos", "MAX", "most dynos, at least MIN", parse_dynos),
    RuleSetting("up_latency", "UP_LATENCY", "seconds; latency above it for UP_POLLS polls in a row scales up",
                parse_seconds),
    RuleSetting("down_latency", "DOWN_LATENCY", "seconds, below UP_LATENCY; latency below it for DOWN_COOLDOWN "
                "seconds scales down", parse_seconds),
    RuleSetting("up_polls", "UP_POLLS", "consecutive polls above UP_LATENCY before scaling up", parse_positive),
    RuleSetting("step", "STEP", "dynos added or removed per change", parse_positive),
    RuleSetting("catch_up", "CATCH_UP", "seconds; when set, a scale-up adds the dynos the measured job rates say "
                "bring latency under UP_LATENCY within them, and a scale-down keeps those the arrivals keep at most "
                "80% busy (never a smaller change than STEP). 0: steps of STEP", parse_seconds),
    RuleSetting("max_step", "MAX_STEP", "the most dynos one CATCH_UP change adds or removes, at least STEP. 0: no "
                "limit but MIN and MAX", parse_dynos),
    RuleSetting("up_cooldown", "UP_COOLDOWN", "seconds after any change before the next scale-up", parse_seconds),
    RuleSetting("down_cooldown", "DOWN_COOLDOWN", "seconds after any change, and of low latency, before a "
                "scale-down", parse_seconds),
    RuleSetting("schedule", "SCHEDULE", "time windows that override MIN and MAX, `;`-separated: `Mon-Fri "
                "08:00-18:00 min=3; Sat,Sun 00:00-24:00 max=2` (the first that covers a moment wins; times in "
                "`SIDEKIQ_METRICS_AUTOSCALE_TIMEZONE`)", lambda raw, label: _schedule(raw, label)),
    RuleSetting("drain_wait", "DRAIN_WAIT", "seconds a scale-down waits while the type's Sidekiq processes (quiet "
                "ones included) run a job that has run 25 s, Sidekiq's shutdown timeout; then it stops STEP dynos "
                "and names the jobs it may interrupt. 0: no wait", parse_seconds),
)


def _schedule(raw: str, label: str) -> tuple[Window, ...]:
    try:
        return parse_schedule(raw)
    except ScheduleError as exc:
        raise ConfigError(label, str(exc)) from None


def autoscale_variable(process_type: str, suffix: str) -> str:
    """SIDEKIQ_METRICS_AUTOSCALE_WORKER_MAX for `worker`; a dash becomes an underscore (urgent-worker)."""
    return f"SIDEKIQ_METRICS_AUTOSCALE_{process_type.upper().replace('-', '_')}_{suffix}"


@dataclass(frozen=True)
class AppSetting:
    """One app-wide autoscaling variable: declared here, read by _autoscale, its docs table made from this."""

    variable: str
    shown_default: str
    help: str


AUTOSCALE_APP_SETTINGS: tuple[AppSetting, ...] = (
    AppSetting("SIDEKIQ_METRICS_AUTOSCALE", "unset (off)", "comma-separated process types to scale, e.g. `worker`"),
    AppSetting("SIDEKIQ_METRICS_AUTOSCALE_TIMEZONE", "`UTC`", "the time zone of every type's SCHEDULE windows (an "
               "IANA name: `Europe/Berlin`, `America/New_York`); windows keep their wall-clock hours across "
               "daylight-saving changes"),
    AppSetting("SIDEKIQ_METRICS_AUTOSCALE_DRY_RUN", "`false`", "log decisions, change nothing (and write no lock "
               "key). Each decision starts from the quantity the previous one would have set, so the log shows what "
               "a real run would do; `.current` stays the real quantity"),
    AppSetting("HEROKU_API_TOKEN", "required", "a Platform API token allowed to scale the app (`heroku "
               "authorizations:create`); never printed"),
    AppSetting("SIDEKIQ_METRICS_HEROKU_APP", "`HEROKU_APP_NAME`", "the app to scale; `HEROKU_APP_NAME` comes from "
               "`heroku labs:enable runtime-dyno-metadata`"),
    AppSetting("SIDEKIQ_METRICS_HEROKU_API_URL", f"`{DEFAULT_HEROKU_API_URL}`", "the Platform API, for a proxy "
               "(Private Spaces) or tests"),
)


def _autoscale(env: Mapping[str, str], reported: tuple[str, ...] | None, origins: dict[str, str],
               errors: list[ConfigError]) -> AutoscaleSettings | None:
    """Autoscaling is on when SIDEKIQ_METRICS_AUTOSCALE lists process types; each needs at least its MAX."""
    raw = env.get("SIDEKIQ_METRICS_AUTOSCALE", "").strip()
    if not raw:
        return None
    before = len(errors)
    types = list(dict.fromkeys(t.strip() for t in raw.split(",") if t.strip()))
    bad = [t for t in types if not PROCESS_TYPE.fullmatch(t)]
    if not types or bad:
        errors.append(ConfigError("SIDEKIQ_METRICS_AUTOSCALE", "must list Procfile process types separated by "
                                  f"commas, e.g. worker,urgent_worker, got {quote(raw)}"))
        return None
    variables = [autoscale_variable(t, "MAX") for t in types]
    if len(set(variables)) < len(variables):
        errors.append(ConfigError("SIDEKIQ_METRICS_AUTOSCALE", "lists two process types whose variables would be "
                                  f"the same (a dash reads as an underscore), got {quote(raw)}"))
        return None
    rules = [rule for t in types if (rule := _scaling_rule(t, env, reported, origins, errors))]
    app = _pick_env(env, origins, "heroku_app", "SIDEKIQ_METRICS_HEROKU_APP", "HEROKU_APP_NAME")
    if app is None:
        errors.append(ConfigError("HEROKU_APP_NAME", "must be set for autoscaling: run `heroku labs:enable "
                                  "runtime-dyno-metadata` (then deploy), or set SIDEKIQ_METRICS_HEROKU_APP"))
    elif not _APP_NAME.fullmatch(app[0]):
        errors.append(ConfigError(app[1], f"must be a Heroku app name, got {quote(app[0])}"))
    token = env.get("HEROKU_API_TOKEN", "").strip()
    origins["heroku_api_token"] = "HEROKU_API_TOKEN" if token else "default"
    if not token:
        errors.append(ConfigError("HEROKU_API_TOKEN", "must be set for autoscaling: a token that may scale this "
                                  "app's dynos, e.g. from `heroku authorizations:create`"))
    elif not _TOKEN.fullmatch(token):  # never quoted back: it is a credential
        errors.append(ConfigError("HEROKU_API_TOKEN", "must be a Heroku API token (printable characters, no spaces)"))
    api = _pick_env(env, origins, "heroku_api_url", "SIDEKIQ_METRICS_HEROKU_API_URL")
    api_url = api[0].rstrip("/") if api else DEFAULT_HEROKU_API_URL
    parts = urlsplit(api_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.query:
        errors.append(ConfigError("SIDEKIQ_METRICS_HEROKU_API_URL", "must be an http:// or https:// URL without "
                                  "credentials, e.g. https://api.heroku.com"))
    zone = env.get("SIDEKIQ_METRICS_AUTOSCALE_TIMEZONE", "").strip() or "UTC"
    origins["autoscale_timezone"] = "SIDEKIQ_METRICS_AUTOSCALE_TIMEZONE" if zone != "UTC" else "default"
    try:
        ZoneInfo(zone)
        rules = [dataclasses.replace(rule, timezone=zone) for rule in rules]
    except (ZoneInfoNotFoundError, ValueError):
        errors.append(ConfigError("SIDEKIQ_METRICS_AUTOSCALE_TIMEZONE", f"must be a time zone such as "
                                  f"Europe/Berlin or UTC, got {quote(zone)}"))
    dry = env.get("SIDEKIQ_METRICS_AUTOSCALE_DRY_RUN", "").strip()
    origins["autoscale_dry_run"] = "SIDEKIQ_METRICS_AUTOSCALE_DRY_RUN" if dry else "default"
    try:
        dry_run = parse_bool(dry, "SIDEKIQ_METRICS_AUTOSCALE_DRY_RUN") if dry else False
    except ConfigError as exc:
        errors.append(exc)
        dry_run = True
    if len(errors) > before or app is None:  # (app is None only with an error: said so for the type checker)
        return None
    return AutoscaleSettings(tuple(rules), app[0], token, api_url, dry_run)


def _pick_env(env: Mapping[str, str], origins: dict[str, str], name: str, *variables: str) -> tuple[str, str] | None:
    """The first of `variables` that is set, and its name."""
    for variable in variables:
        value = env.get(variable, "").strip()
        if value:
            origins[name] = variable
            return value, variable
    origins[name] = "default"
    return None


def _scaling_rule(process_type: str, env: Mapping[str, str], reported: tuple[str, ...] | None,
                  origins: dict[str, str], errors: list[ConfigError]) -> ScalingRule | None:
    values: dict[str, Any] = {}
    before = len(errors)
    for setting in AUTOSCALE_RULE_SETTINGS:
        variable = autoscale_variable(process_type, setting.suffix)
        raw = env.get(variable, "").strip()
        origins[f"autoscale.{process_type}.{setting.name}"] = variable if raw else "default"
        if raw:
            try:
                values[setting.name] = setting.parse(raw, variable)
            except ConfigError as exc:
                errors.append(exc)
    if len(errors) > before:
        return None
    if "max_dynos" not in values:
        errors.append(ConfigError(autoscale_variable(process_type, "MAX"), f"must be set to autoscale "
                                  f"{process_type}: the most dynos it may have, e.g. 10"))
        return None
    rule = ScalingRule(process_type, **values)
    for window in rule.schedule:
        low = rule.min_dynos if window.min_dynos is None else window.min_dynos
        high = rule.max_dynos if window.max_dynos is None else window.max_dynos
        if low > high or high > MAX_DYNOS:
            errors.append(ConfigError(autoscale_variable(process_type, "SCHEDULE"), f"has a window whose bounds "
                                      f"cannot hold (min {low} > max {high}, or over {MAX_DYNOS}): {window.text}"))
            return None
    if rule.min_dynos > rule.max_dynos:
        errors.append(ConfigError(autoscale_variable(process_type, "MIN"), f"must not be above "
                                  f"{autoscale_variable(process_type, 'MAX')} ({rule.min_dynos} > {rule.max_dynos})"))
    elif rule.down_latency >= rule.up_latency:
        errors.append(ConfigError(autoscale_variable(process_type, "DOWN_LATENCY"), "must be below "
                                  f"{autoscale_variable(process_type, 'UP_LATENCY')} ({rule.down_latency:g} s >= "
                                  f"{rule.up_latency:g} s), or the type would scale up and down in turn"))
    elif rule.max_step and not rule.catch_up:
        errors.append(ConfigError(autoscale_variable(process_type, "MAX_STEP"), "sets the largest CATCH_UP "
                                  f"scale-up, but {autoscale_variable(process_type, 'CATCH_UP')} is not set"))
    elif rule.max_step and rule.max_step < rule.step:
        errors.append(ConfigError(autoscale_variable(process_type, "MAX_STEP"), "must be 0 or at least "
                                  f"{autoscale_variable(process_type, 'STEP')} ({rule.max_step} < {rule.step})"))
    elif reported is not None and rule.queues and (missing := [q for q in rule.queues if q not in reported]):
        errors.append(ConfigError(autoscale_variable(process_type, "QUEUES"), f"names queues that "
                                  f"SIDEKIQ_METRICS_QUEUES leaves out: {quote(','.join(missing))}; add them there"))
    else:
        return rule
    return None


# Every setting of the emitter, declared once: the Settings field, its flag, its environment variable,
# its default, what it means (for --help, `doctor` and docs/configuration.md, which a test holds equal
# to this table) and what parses and checks it. The CLI's options are made from it (cli.py).
REDIS_URL = Setting(
    "redis_url", "--redis-url", "SIDEKIQ_METRICS_REDIS_URL", DEFAULT_REDIS_URL,
    "Redis URL: `redis://`, `rediss://` (TLS) or `unix://`. Unset: the variable `REDIS_PROVIDER` names, "
    "else `REDIS_URL`, else the default (Sidekiq's own rule)", parse_redis_url)
SETTINGS: tuple[Setting, ...] = (
    Setting("tls_verify", "--tls-verify", "SIDEKIQ_METRICS_TLS_VERIFY", False,
            "verify a `rediss://` server's certificate and host name. Off by default because Heroku Key-Value "
            "Store uses self-signed certificates; traffic is encrypted either way", parse_bool),
    Setting("interval", "--interval", "SIDEKIQ_METRICS_INTERVAL", DEFAULT_INTERVAL,
            f"seconds between polls; any number above 0, at most {MAX_INTERVAL:.0f}", parse_interval),
    Setting("lease", "--lease", "SIDEKIQ_METRICS_LEASE", False,
            "poll only while holding a lease in Redis (`sidekiq-metrics:lease`), so that of several emitters one "
            "is active and another takes over within two intervals when it stops; on by itself in the Cloud "
            "Native Buildpack's process and `sidecar`, and with SIDEKIQ_METRICS_DYNO naming a process type",
            parse_bool),
    Setting("shard_variables", "--shards", "SIDEKIQ_METRICS_SHARDS", None,
            "several Redis shards (Sidekiq 7+ `Sidekiq::Client.via`) read by one emitter, as `name:VARIABLE,...`: "
            "each shard's name and the config var holding its URL, Sidekiq's default pool first "
            "(`default:REDIS_URL,orders:HEROKU_REDIS_COBALT_URL`). The first keeps today's metric names; the "
            "others carry their shard (docs/metrics.md)", parse_shards, shown="one Redis"),
    Setting("queues", "--queues", "SIDEKIQ_METRICS_QUEUES", None,
            "comma-separated queues to report (spaces around names ignored); a listed queue that does not "
            "exist reports size 0 and latency 0", parse_queue_list, shown="every queue"),
    Setting("namespace", "--namespace", "SIDEKIQ_METRICS_NAMESPACE", None,
            "the redis-namespace of a Sidekiq <= 6 app: `myapp` reads `myapp:queues`, `myapp:queue:default`",
            lambda raw, label: raw),  # any text, as in Sidekiq
    Setting("prefix", "--prefix", "SIDEKIQ_METRICS_PREFIX", DEFAULT_PREFIX,
            "first part of every metric name (1 to 64 of `A-Za-z0-9._:-`)",
            matching(_PREFIX_RE, "1 to 64 of A-Z a-z 0-9 . _ : - (not starting or ending with a dot)")),
    Setting("metric_type", "--type", "SIDEKIQ_METRICS_TYPE", "sample",
            "l2met measurement type of the levels: `sample`, `measure` or `count`", one_of(METRIC_TYPES)),
    Setting("source", "--source", "SIDEKIQ_METRICS_SOURCE", None,
            "adds `source=<value>` to every l2met line (Librato's source; 1 to 255 of `A-Za-z0-9._:-`)",
            matching(_SOURCE_RE, "1 to 255 of A-Z a-z 0-9 . _ : -")),
    Setting("stats", "--stats", "SIDEKIQ_METRICS_STATS", True,
            "whole-Sidekiq totals (enqueued, busy, processed, ...) beside the per-queue metrics", parse_bool),
    Setting("outputs", "--output", "SIDEKIQ_METRICS_OUTPUT", ("l2met",),
            f"comma-separated outputs: {', '.join(OUTPUTS)}", parse_outputs),
    Setting("statsd_host", "--statsd-host", "DD_AGENT_HOST", "127.0.0.1",
            "the DogStatsD agent's host (statsd output)", host("a host name or IP address")),
    Setting("statsd_port", "--statsd-port", "DD_DOGSTATSD_PORT", 8125,
            "the DogStatsD agent's UDP port (statsd output)", parse_port),
    Setting("prometheus_host", "--prometheus-host", "SIDEKIQ_METRICS_PROMETHEUS_HOST", "0.0.0.0",
            "the address the Prometheus endpoint listens on (prometheus output)",
            host("a host name or IP address to listen on")),
    Setting("prometheus_port", "--prometheus-port", "SIDEKIQ_METRICS_PROMETHEUS_PORT", 9394,
            "the port of the Prometheus endpoint (prometheus output)", parse_port),
    Setting("cloudwatch_namespace", "--cloudwatch-namespace", "SIDEKIQ_METRICS_CLOUDWATCH_NAMESPACE", "Sidekiq",
            "the CloudWatch namespace of the EMF lines (cloudwatch output)",
            matching(_NAMESPACE_RE, "1 to 255 of A-Z a-z 0-9 . - _ / # : and spaces")),
    Setting("job_metrics", "--job-metrics", "SIDEKIQ_METRICS_JOB_METRICS", True,
            "per job class: runs, failures and run times, from Sidekiq's own execution metrics (Sidekiq 7+)",
            parse_bool),
    Setting("job_classes", "--job-classes", "SIDEKIQ_METRICS_JOB_CLASSES", None,
            "comma-separated job classes to report one by one, `*` matching any text (`Billing::*`); the "
            "others are summed as `other`", parse_class_patterns, shown="the top ones by run time"),
    Setting("job_classes_top", "--job-classes-top", "SIDEKIQ_METRICS_JOB_CLASSES_TOP", 20,
            "at most this many classes one by one: those with the most run time in the last hour",
            parse_positive),
)


# The otlp output, configured as the OpenTelemetry SDKs are: the metrics-specific variable wins over the
# general one (the OpenTelemetry specification, protocol/exporter.md).
