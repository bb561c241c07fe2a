"""Autoscaling's settings: one section for every process type (SIDEKIQ_METRICS_AUTOSCALE_<TYPE>_*) and one for
the app, declared once here, beside the policy that uses them (scaler.py); the tables in docs/autoscaling.md are
made from them."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sidekiq_metrics.autoscale.schedule import ScheduleError, Window, parse_schedule, window_at
from sidekiq_metrics.errors import ConfigError
from sidekiq_metrics.heroku.dynos import PROCESS_TYPE
from sidekiq_metrics.parsing import parse_bool, parse_queue_list, parse_seconds, quote, whole_number
from sidekiq_metrics.setting import TYPE, Setting, read_section

DEFAULT_HEROKU_API_URL = "https://api.heroku.com"
MAX_DYNOS = 1000  # far above any Heroku formation: anything larger is a typo
_APP_NAME = re.compile(r"[A-Za-z0-9-]{1,100}|[0-9a-fA-F-]{36}")  # an app's name or id
_TOKEN = re.compile(r"[\x21-\x7e]{1,4096}")  # printable ASCII: it goes into an HTTP header


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


def parse_dynos(raw: str, label: str) -> int:
    if whole_number(raw) is not None and int(raw) <= MAX_DYNOS:
        return int(raw)
    raise ConfigError(label, f"must be a number of dynos from 0 to {MAX_DYNOS}, got {quote(raw)}")


def parse_positive(raw: str, label: str) -> int:
    if whole_number(raw) is not None and 0 < int(raw) <= MAX_DYNOS:
        return int(raw)
    raise ConfigError(label, f"must be a whole number from 1 to {MAX_DYNOS}, got {quote(raw)}")


def _rule(name: str, suffix: str, help: str, parse: Callable[[str, str], object]) -> Setting:  # noqa: A002
    """A per-type setting, SIDEKIQ_METRICS_AUTOSCALE_<TYPE>_<SUFFIX>; its default is the ScalingRule field's."""
    default = next(f.default for f in dataclasses.fields(ScalingRule) if f.name == name)
    shown = "required" if default is dataclasses.MISSING else "every reported queue" if default is None else \
        "none" if default == () else None
    return Setting(name, (f"SIDEKIQ_METRICS_AUTOSCALE_{TYPE}_{suffix}",), None if shown else default, help, parse,
                   shown=shown)


def _schedule(raw: str, label: str) -> tuple[Window, ...]:
    try:
        return parse_schedule(raw)
    except ScheduleError as exc:
        raise ConfigError(label, str(exc)) from None


def autoscale_variable(process_type: str, suffix: str) -> str:
    """SIDEKIQ_METRICS_AUTOSCALE_WORKER_MAX for `worker`; a dash becomes an underscore (urgent-worker)."""
    return f"SIDEKIQ_METRICS_AUTOSCALE_{process_type.upper().replace('-', '_')}_{suffix}"



AUTOSCALE_RULE_SETTINGS: tuple[Setting, ...] = (
    _rule("queues", "QUEUES", "the queues this type serves; its latency is the worst of them, its backlog "
                "their total size. A queue Sidekiq does not know counts as empty (it may not exist yet): `doctor` "
                "names each such queue. They must be among `SIDEKIQ_METRICS_QUEUES` if that is set. A queue of "
                "another shard than the first is "
                "`shard:queue` (`orders:urgent`); the first shard's is its name alone or, by that shard's name, "
                "`default:urgent`. A shard `SIDEKIQ_METRICS_SHARDS` does not list is refused (exit 2)",
                parse_queue_list),
    _rule("min_dynos", "MIN", f"fewest dynos, 0 to {MAX_DYNOS}", parse_dynos),
    _rule("max_dynos", "MAX", "most dynos, at least MIN", parse_dynos),
    _rule("up_latency", "UP_LATENCY", "seconds; latency above it for UP_POLLS polls in a row scales up",
                parse_seconds),
    _rule("down_latency", "DOWN_LATENCY", "seconds, below UP_LATENCY; latency below it for DOWN_COOLDOWN "
                "seconds scales down", parse_seconds),
    _rule("up_polls", "UP_POLLS", "consecutive polls above UP_LATENCY before scaling up", parse_positive),
    _rule("step", "STEP", "dynos added or removed per change", parse_positive),
    _rule("catch_up", "CATCH_UP", "seconds; when set, a scale-up adds the dynos the measured job rates say "
                "bring latency under UP_LATENCY within them, and a scale-down keeps those the arrivals keep at most "
                "80% busy (never a smaller change than STEP). 0: steps of STEP", parse_seconds),
    _rule("max_step", "MAX_STEP", "the most dynos one CATCH_UP change adds or removes, at least STEP. 0: no "
                "limit but MIN and MAX", parse_dynos),
    _rule("up_cooldown", "UP_COOLDOWN", "seconds after any change before the next scale-up", parse_seconds),
    _rule("down_cooldown", "DOWN_COOLDOWN", "seconds after any change, and of low latency, before a "
                "scale-down", parse_seconds),
    _rule("schedule", "SCHEDULE", "time windows that override MIN and MAX, `;`-separated: `Mon-Fri "
                "08:00-18:00 min=3; Sat,Sun 00:00-24:00 max=2` (the first that covers a moment wins; times in "
                "`SIDEKIQ_METRICS_AUTOSCALE_TIMEZONE`)", lambda raw, label: _schedule(raw, label)),
    _rule("drain_wait", "DRAIN_WAIT", "seconds a scale-down waits while the type's Sidekiq processes (quiet "
                "ones included) run a job that has run 25 s, Sidekiq's shutdown timeout; then it stops STEP dynos "
                "and names the jobs it may interrupt. 0: no wait", parse_seconds),
)



def shard_queues(queues: tuple[str, ...], shards: tuple[str, ...], label: str) -> tuple[str, ...]:
    """A type's queues as the readings name them, with shards: `orders:urgent` on the shard `orders`, and the first
    shard's plain, whether written `urgent` or `default:urgent` (`default:low:priority` for its queue
    `low:priority`). A shard that SIDEKIQ_METRICS_SHARDS does not list is refused: its queue would be unknown, hence
    read as empty, and the type would scale down while the real queue waits."""
    named = []
    for queue in queues:
        shard, colon, name = queue.partition(":")
        shard, name = shard.strip(), name.strip()  # `orders: urgent`, as spaces around a comma are read
        queue = f"{shard}:{name}" if colon else queue
        if colon and (shard not in shards or not name):
            raise ConfigError(label, f"names {quote(queue)}, a queue of the shard {quote(shard)}, but "
                                     f"SIDEKIQ_METRICS_SHARDS lists {', '.join(shards)}: another shard's queue is "
                                     f"`shard:queue`, the first shard's is its name alone (or `{shards[0]}:queue`, "
                                     "for a name that holds a colon)")
        named.append(name if colon and shard == shards[0] else queue)
    return tuple(dict.fromkeys(named))


def _types(raw: str, label: str) -> tuple[str, ...]:
    types = tuple(dict.fromkeys(t.strip() for t in raw.split(",") if t.strip()))
    if not types or any(not PROCESS_TYPE.fullmatch(t) for t in types):
        raise ConfigError(label, f"must list Procfile process types separated by commas, e.g. worker,urgent_worker, "
                                 f"got {quote(raw)}")
    variables = [autoscale_variable(t, "MAX") for t in types]
    if len(set(variables)) < len(variables):
        raise ConfigError(label, "lists two process types whose variables would be the same (a dash reads as an "
                                 f"underscore), got {quote(raw)}")
    return types


def _app(raw: str, label: str) -> str:
    if not _APP_NAME.fullmatch(raw):
        raise ConfigError(label, f"must be a Heroku app name, got {quote(raw)}")
    return raw


def _token(raw: str, label: str) -> str:
    if not _TOKEN.fullmatch(raw):  # never quoted back: it is a credential
        raise ConfigError(label, "must be a Heroku API token (printable characters, no spaces)")
    return raw


def _api_url(raw: str, label: str) -> str:
    url = raw.rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.query:
        raise ConfigError(label, "must be an http:// or https:// URL without credentials, e.g. https://api.heroku.com")
    return url


def _timezone(raw: str, label: str) -> str:
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(label, f"must be a time zone such as Europe/Berlin or UTC, got {quote(raw)}") from None
    return raw


# The app's section: which types, the Platform API and its credentials, and what holds for every type.
AUTOSCALE_APP_SETTINGS: tuple[Setting, ...] = (
    Setting("process_types", ("SIDEKIQ_METRICS_AUTOSCALE",), None, "comma-separated process types to scale, "
            "e.g. `worker`", _types, shown="unset (off)"),
    Setting("timezone", ("SIDEKIQ_METRICS_AUTOSCALE_TIMEZONE",), "UTC", "the time zone of every type's SCHEDULE "
            "windows (an IANA name: `Europe/Berlin`, `America/New_York`); windows keep their wall-clock hours across "
            "daylight-saving changes", _timezone, shown="`UTC`"),
    Setting("dry_run", ("SIDEKIQ_METRICS_AUTOSCALE_DRY_RUN",), False, "log decisions, change nothing (and write no "
            "lock key). Each decision starts from the quantity the previous one would have set, so the log shows "
            "what a real run would do; `.current` stays the real quantity", parse_bool, shown="`false`"),
    Setting("token", ("HEROKU_API_TOKEN",), None, "a Platform API token allowed to scale the app (`heroku "
            "authorizations:create`); never printed", _token, shown="required"),
    Setting("app", ("SIDEKIQ_METRICS_HEROKU_APP", "HEROKU_APP_NAME"), None, "the app to scale; `HEROKU_APP_NAME` "
            "comes from `heroku labs:enable runtime-dyno-metadata`", _app, shown="`HEROKU_APP_NAME`"),
    Setting("api_url", ("SIDEKIQ_METRICS_HEROKU_API_URL",), DEFAULT_HEROKU_API_URL, "the Platform API, for a proxy "
            "(Private Spaces) or tests", _api_url, shown=f"`{DEFAULT_HEROKU_API_URL}`"),
)


def resolve_autoscale(env: Mapping[str, str], reported: tuple[str, ...] | None, origins: dict[str, str],
                      errors: list[ConfigError], shards: tuple[str, ...] = ()) -> AutoscaleSettings | None:
    """Autoscaling is on when SIDEKIQ_METRICS_AUTOSCALE lists process types; each needs at least its MAX. Errors in
    the order a user fixes them: the types, each type's rule, then the app's settings. `shards`: the names in
    SIDEKIQ_METRICS_SHARDS, the first shard's first (none without shards)."""
    if not env.get("SIDEKIQ_METRICS_AUTOSCALE", "").strip():
        return None
    before = len(errors)
    setting = {s.name: s for s in AUTOSCALE_APP_SETTINGS}

    def read(name: str) -> Any:  # noqa: ANN401 - each its own type
        return read_section([setting[name]], env, origins, errors, origin_prefix="autoscale.")[name]

    types = read("process_types")
    if types is None:  # refused: said in `errors`
        return None
    rules = [rule for t in types if (rule := _scaling_rule(t, env, reported, origins, errors, shards))]
    app = read("app")
    if app is None and origins["autoscale.app"] == "default":
        errors.append(ConfigError("HEROKU_APP_NAME", "must be set for autoscaling: run `heroku labs:enable "
                                  "runtime-dyno-metadata` (then deploy), or set SIDEKIQ_METRICS_HEROKU_APP"))
    token = read("token")
    if token is None and origins["autoscale.token"] == "default":
        errors.append(ConfigError("HEROKU_API_TOKEN", "must be set for autoscaling: a token that may scale this "
                                  "app's dynos, e.g. from `heroku authorizations:create`"))
    api_url, timezone, dry_run = read("api_url"), read("timezone"), read("dry_run")
    if len(errors) > before:
        return None
    rules = [dataclasses.replace(rule, timezone=timezone) for rule in rules]
    return AutoscaleSettings(tuple(rules), app, token, api_url, dry_run)


def _scaling_rule(process_type: str, env: Mapping[str, str], reported: tuple[str, ...] | None,
                  origins: dict[str, str], errors: list[ConfigError], shards: tuple[str, ...]) -> ScalingRule | None:
    before = len(errors)
    read = read_section([s.for_type(process_type) for s in AUTOSCALE_RULE_SETTINGS], env, origins, errors,
                        origin_prefix=f"autoscale.{process_type}.")
    values = {name: value for name, value in read.items()
              if origins[f"autoscale.{process_type}.{name}"] != "default"}  # the rest: ScalingRule's defaults
    if len(errors) > before:
        return None
    if "queues" in values and len(shards) > 1:
        try:
            values["queues"] = shard_queues(values["queues"], shards, autoscale_variable(process_type, "QUEUES"))
        except ConfigError as exc:
            errors.append(exc)
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

