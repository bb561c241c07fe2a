"""Settings: read once from flags and the environment, validated, then immutable.

Precedence for every setting: a command-line flag, then its environment variable,
then the default. An empty environment variable counts as unset. Parsing takes a
plain mapping, so tests pass dicts instead of patching os.environ.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from sidekiq_metrics.errors import ConfigError

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
DEFAULT_INTERVAL = 30.0
MAX_INTERVAL = 86400.0
DEFAULT_PREFIX = "sidekiq"
METRIC_TYPES = ("sample", "measure", "count")
OUTPUTS = ("l2met", "json", "statsd", "prometheus", "cloudwatch")

# Librato's metric-name alphabet. A prefix also may not start or end with a dot,
# so that "<prefix>.<queue>.size" never has an empty part.
_PREFIX_RE = re.compile(r"[A-Za-z0-9_:-]([A-Za-z0-9._:-]{0,62}[A-Za-z0-9_:-])?")
_SOURCE_RE = re.compile(r"[A-Za-z0-9._:-]{1,255}")
_HOST_RE = re.compile(r"[A-Za-z0-9.:_-]{1,253}")
_NAMESPACE_RE = re.compile(r"[A-Za-z0-9.\-_/#: ]{1,255}")  # CloudWatch's own rule for namespaces
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_NUMBER_RE = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class RedisTarget:
    """Where Redis is, parsed from a URL. `display` is safe to print: it has no credentials."""

    scheme: str
    host: str | None = None
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    unix_path: str | None = None

    @property
    def tls(self) -> bool:
        return self.scheme == "rediss"

    @property
    def display(self) -> str:
        auth = "***@" if (self.username or self.password) else ""
        if self.unix_path:
            return f"unix://{auth}{self.unix_path}?db={self.db}"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{self.scheme}://{auth}{host}:{self.port}/{self.db}"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Strings that must never reach any output."""
        return tuple(s for s in (self.password, self.username) if s)


@dataclass(frozen=True)
class Settings:
    redis: RedisTarget
    tls_verify: bool = False
    interval: float = DEFAULT_INTERVAL
    queues: tuple[str, ...] | None = None  # None: every queue in Sidekiq's `queues` set
    namespace: str | None = None
    prefix: str = DEFAULT_PREFIX
    metric_type: str = "sample"
    source: str | None = None
    stats: bool = True  # whole-Sidekiq totals beside the per-queue lines
    outputs: tuple[str, ...] = ("l2met",)
    statsd_host: str = "127.0.0.1"  # Datadog's DD_AGENT_HOST and DD_DOGSTATSD_PORT
    statsd_port: int = 8125
    prometheus_host: str = "0.0.0.0"
    prometheus_port: int = 9394
    cloudwatch_namespace: str = "Sidekiq"
    origins: Mapping[str, str] = field(default_factory=dict, compare=False)
    """For each setting, where its value came from: a flag, a variable, or "default"."""


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
    kw: dict[str, object] = {}
    try:
        url, url_label = _redis_url(env, flags, origins)
        kw["redis"] = parse_redis_url(url, url_label)
    except ConfigError as exc:
        errors.append(exc)
        kw["redis"] = parse_redis_url(DEFAULT_REDIS_URL, "the default Redis URL")
    for name, flag, variable, parse in SETTINGS:
        raw, label = _pick(name, flag, variable, flags, env, origins)
        if raw is not None:
            try:
                kw[name] = parse(raw, label)
            except ConfigError as exc:
                errors.append(exc)
                origins[name] = "default"
    return Settings(origins=origins, **kw), errors  # type: ignore[arg-type]


def _matching(pattern: re.Pattern[str], accepts: str) -> Callable[[str, str], str]:
    def parse(raw: str, label: str) -> str:
        if not pattern.fullmatch(raw):
            raise ConfigError(label, f"must be {accepts}, got {_quote(raw)}")
        return raw
    return parse


def _one_of(choices: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(raw: str, label: str) -> str:
        if raw not in choices:
            raise ConfigError(label, f"must be one of {', '.join(choices)}, got {_quote(raw)}")
        return raw
    return parse


def parse_outputs(raw: str, label: str) -> tuple[str, ...]:
    outputs = tuple(dict.fromkeys(o.strip().lower() for o in raw.split(",") if o.strip()))
    if not outputs or any(o not in OUTPUTS for o in outputs):
        raise ConfigError(label, f"must list outputs from {', '.join(OUTPUTS)}, separated by commas, "
                                 f"got {_quote(raw)}")
    return outputs


def _redis_url(env: Mapping[str, str], flags: Mapping[str, object],
               origins: dict[str, str]) -> tuple[str, str]:
    """Sidekiq's own rule, behind our explicit override: the variable REDIS_PROVIDER names, else REDIS_URL."""
    raw, label = _pick("redis_url", "--redis-url", "SIDEKIQ_METRICS_REDIS_URL", flags, env, origins)
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


def parse_redis_url(url: str, label: str) -> RedisTarget:
    """Parse redis://, rediss:// or unix:// URLs. Error messages never repeat the URL: it holds a password."""
    accepts = "a redis://, rediss:// or unix:// URL"
    if len(url) > 4096:
        raise ConfigError(label, f"must be {accepts} (the value is too long)")
    try:
        parts = urlsplit(url)
        port = parts.port
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
    except ValueError:
        raise ConfigError(label, f"must be {accepts} (the value could not be parsed)") from None
    scheme = parts.scheme.lower()
    query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
    if scheme == "unix":
        if not parts.path:
            raise ConfigError(label, f"must be {accepts} (no socket path)")
        return RedisTarget(scheme, unix_path=parts.path, db=_db_number(query.get("db", "0"), label),
                           username=username, password=password)
    if scheme not in ("redis", "rediss"):
        raise ConfigError(label, f"must be {accepts} (the scheme is not one of these)")
    if not parts.hostname:
        raise ConfigError(label, f"must be {accepts} (no host name)")
    db_text = parts.path.lstrip("/") or query.get("db", "0")
    return RedisTarget(scheme, host=parts.hostname, port=port or 6379, db=_db_number(db_text, label),
                       username=username, password=password)


def _db_number(text: str, label: str) -> int:
    if not text.isdigit() or not text.isascii() or int(text) > 1_000_000:
        raise ConfigError(label, "must end in a database number, e.g. /0 (the path is not a number)")
    return int(text)


def parse_interval(raw: str, label: str) -> float:
    if _NUMBER_RE.fullmatch(raw):
        value = float(raw)
        if 0 < value <= MAX_INTERVAL and math.isfinite(value):
            return value
    raise ConfigError(label, f"must be a number of seconds above 0 and at most {MAX_INTERVAL:.0f}, "
                             f"e.g. 30, got {_quote(raw)}")


def parse_port(raw: str, label: str) -> int:
    if raw.isdigit() and raw.isascii() and 0 < int(raw) < 65536:
        return int(raw)
    raise ConfigError(label, f"must be a port number from 1 to 65535, got {_quote(raw)}")


def parse_bool(raw: str, label: str) -> bool:
    low = raw.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ConfigError(label, f"must be true or false (also 1/0, yes/no, on/off), got {_quote(raw)}")


def parse_queue_list(raw: str, label: str) -> tuple[str, ...]:
    names = [n.strip() for n in raw.split(",")]
    names = list(dict.fromkeys(n for n in names if n))  # keep order, drop repeats
    if not names:
        raise ConfigError(label, "must list queue names separated by commas, e.g. default,mailers")
    return tuple(names)


def _quote(raw: str, limit: int = 40) -> str:
    """A bad value, shortened and escaped so that it prints as one harmless line."""
    shown = raw if len(raw) <= limit else raw[:limit] + "..."
    return ascii(shown)


# Every setting but the Redis URL (which has Sidekiq's own rule, above): the Settings field,
# its flag, its environment variable, and what parses and checks it.
SETTINGS: tuple[tuple[str, str, str, Callable[[str, str], object]], ...] = (
    ("tls_verify", "--tls-verify", "SIDEKIQ_METRICS_TLS_VERIFY", parse_bool),
    ("interval", "--interval", "SIDEKIQ_METRICS_INTERVAL", parse_interval),
    ("queues", "--queues", "SIDEKIQ_METRICS_QUEUES", parse_queue_list),
    ("namespace", "--namespace", "SIDEKIQ_METRICS_NAMESPACE", lambda raw, label: raw),  # any text, as in Sidekiq
    ("prefix", "--prefix", "SIDEKIQ_METRICS_PREFIX",
     _matching(_PREFIX_RE, "1 to 64 of A-Z a-z 0-9 . _ : - (not starting or ending with a dot)")),
    ("metric_type", "--type", "SIDEKIQ_METRICS_TYPE", _one_of(METRIC_TYPES)),
    ("source", "--source", "SIDEKIQ_METRICS_SOURCE", _matching(_SOURCE_RE, "1 to 255 of A-Z a-z 0-9 . _ : -")),
    ("stats", "--stats", "SIDEKIQ_METRICS_STATS", parse_bool),
    ("outputs", "--output", "SIDEKIQ_METRICS_OUTPUT", parse_outputs),
    ("statsd_host", "--statsd-host", "DD_AGENT_HOST", _matching(_HOST_RE, "a host name or IP address")),
    ("statsd_port", "--statsd-port", "DD_DOGSTATSD_PORT", parse_port),
    ("prometheus_host", "--prometheus-host", "SIDEKIQ_METRICS_PROMETHEUS_HOST",
     _matching(_HOST_RE, "a host name or IP address to listen on")),
    ("prometheus_port", "--prometheus-port", "SIDEKIQ_METRICS_PROMETHEUS_PORT", parse_port),
    ("cloudwatch_namespace", "--cloudwatch-namespace", "SIDEKIQ_METRICS_CLOUDWATCH_NAMESPACE",
     _matching(_NAMESPACE_RE, "1 to 255 of A-Z a-z 0-9 . - _ / # : and spaces")),
)
