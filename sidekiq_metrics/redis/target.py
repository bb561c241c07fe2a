"""Where Redis is: what the transport needs to connect, and the settings section that says it (the URL, TLS
verification, the shards), parsed here."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import unquote, urlsplit

from sidekiq_metrics.errors import ConfigError
from sidekiq_metrics.parsing import VARIABLE_NAME, check_host, parse_bool, quote, whole_number
from sidekiq_metrics.setting import Setting, raw_value


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
    # Whether a rediss:// server's certificate is verified: the URL's ?ssl_cert_reqs= as parsed, then, from
    # resolve_redis on, SIDEKIQ_METRICS_TLS_VERIFY when that is set. None: neither says, so it is not verified.
    tls_verify: bool | None = None

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
        """Strings that must never reach any output: the password. Not the user name: it is no secret, and often a
        common word (Redis Cloud's URLs log in as `default`), which masking would cut out of shard and queue names."""
        return (self.password,) if self.password else ()


DEFAULT_SHARD = "default"  # the name of the one Redis when no shards are named (it is never printed)
SHARDS_TOTAL = "all"  # the shard label of the sums over every shard: no shard may take the name
DEFAULT_REDIS_URL = "redis://localhost:6379/0"


@dataclass(frozen=True)
class Shard:
    """One Redis of a sharded Sidekiq (`Sidekiq::Client.via`), by the name the user gives it. The first is
    Sidekiq's default pool: its readings keep the names they have without shards."""

    name: str
    target: RedisTarget
    variable: str  # the config var that holds its URL, to name it by in errors (never its URL)


# In place of a Redis whose URL is refused, so that the settings stay whole for `doctor`'s list of errors; never read.
_STAND_IN = Shard(DEFAULT_SHARD, RedisTarget("redis", host="localhost"), "the default Redis URL")


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
    pairs = [(unquote(key), unquote(value)) for key, _, value in (p.partition("=") for p in query.split("&") if p)]
    options = dict(pairs)
    if len(options) < len(pairs):  # clients differ on which of two wins (redis-py: the first): say which is meant
        twice = next(key for n, (key, _) in enumerate(pairs) if key in dict(pairs[:n]))
        if twice in URL_QUERY_OPTIONS:
            raise ConfigError(label, f"gives the query option {quote(twice)} twice: keep the one you mean")
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


_SHARD_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


def parse_shards(raw: str, label: str) -> tuple[tuple[str, str], ...]:
    """`default:REDIS_URL,orders:HEROKU_REDIS_COBALT_URL`: each shard's name and the config var of its URL.
    The URLs themselves never go here: they hold passwords, and Heroku rotates them in the vars."""
    shards: list[tuple[str, str]] = []
    for item in raw.split(","):
        name, colon, variable = (part.strip() for part in item.strip().partition(":"))
        if not colon or not _SHARD_NAME.fullmatch(name) or not VARIABLE_NAME.fullmatch(variable):
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


def _redis_url(env: Mapping[str, str], flags: Mapping[str, object],
               origins: dict[str, str]) -> tuple[str, str]:
    """Sidekiq's own rule, behind our explicit override: the variable REDIS_PROVIDER names, else REDIS_URL."""
    raw, label = raw_value(REDIS_URL, env, flags)
    if raw is not None:
        origins[REDIS_URL.name] = label
        return raw, label
    provider = env.get("REDIS_PROVIDER", "").strip()
    if provider:
        if not VARIABLE_NAME.fullmatch(provider):
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


def _one_redis(env: Mapping[str, str], flags: Mapping[str, object], origins: dict[str, str],
               errors: list[ConfigError]) -> tuple[Shard, ...]:
    """The one Redis, without shards: its URL by Sidekiq's rule (_redis_url)."""
    try:
        url, url_label = _redis_url(env, flags, origins)
        return (Shard(DEFAULT_SHARD, parse_redis_url(url, url_label), url_label),)
    except ConfigError as exc:
        exc.field = "redis"
        errors.append(exc)
        return (_STAND_IN,)


def resolve_redis(env: Mapping[str, str], flags: Mapping[str, object], values: dict[str, object],
                  origins: dict[str, str], errors: list[ConfigError]) -> tuple[Shard, ...]:
    """Every Redis to read: each shard's, Sidekiq's default pool first, when SIDEKIQ_METRICS_SHARDS is given; else
    the one Redis URL's. With shards, what would name the one Redis (SIDEKIQ_METRICS_REDIS_URL, REDIS_PROVIDER) is
    not read at all: a leftover of it is no error. An unusable URL is an error of the field "redis" (`doctor` then
    probes nothing), with a stand-in target that is never used. Each Redis's certificate is verified as its own
    URL's ?ssl_cert_reqs= says, unless SIDEKIQ_METRICS_TLS_VERIFY is set: then as that says, for every Redis."""
    if raw_value(SHARDS, env, flags)[0] is None:
        shards = _one_redis(env, flags, origins, errors)
    else:
        named = values.get("shard_variables")  # not a tuple when the setting itself is refused: said in its error
        before = len(errors)
        shards = _shards(named, env, errors) if isinstance(named, tuple) else ()
        for error in errors[before:]:
            error.field = SHARDS.name  # (`doctor` probes no Redis while a shard's is unknown)
        if shards:
            origins["redis_url"] = f"{shards[0].variable}, the first shard's"
        shards = shards or (_STAND_IN,)
    if origins.get(TLS_VERIFY.name, "default") == "default":
        return shards
    return tuple(replace(shard, target=replace(shard.target, tls_verify=bool(values[TLS_VERIFY.name])))
                 for shard in shards)


# The Redis target's section. The URL is read apart (resolve_redis: Sidekiq's own rule behind our override).
REDIS_URL = Setting(
    "redis_url", ("SIDEKIQ_METRICS_REDIS_URL",), DEFAULT_REDIS_URL,
    "Redis URL: `redis://`, `rediss://` (TLS) or `unix://`. Unset: the variable `REDIS_PROVIDER` names, "
    "else `REDIS_URL`, else the default (Sidekiq's own rule)", parse_redis_url, flag="--redis-url")
TLS_VERIFY = Setting(
    "tls_verify", ("SIDEKIQ_METRICS_TLS_VERIFY",), False,
    "verify a `rediss://` server's certificate and host name, for every Redis (each shard too). Unset: as each "
    "URL's `?ssl_cert_reqs=` says, else off, because Heroku Key-Value Store uses self-signed certificates; traffic "
    "is encrypted either way", parse_bool, flag="--tls-verify", shown="each URL's `?ssl_cert_reqs=`, else `false`")
SHARDS = Setting(
    "shard_variables", ("SIDEKIQ_METRICS_SHARDS",), None,
    "several Redis shards (Sidekiq 7+ `Sidekiq::Client.via`) read by one emitter, as `name:VARIABLE,...`: "
    "each shard's name and the config var holding its URL, Sidekiq's default pool first "
    "(`default:REDIS_URL,orders:HEROKU_REDIS_COBALT_URL`). The first keeps today's metric names; the "
    "others carry their shard (docs/metrics.md)", parse_shards, flag="--shards", shown="one Redis")
REDIS_SETTINGS = (TLS_VERIFY, SHARDS)
