"""`sidekiq-metrics doctor`: why metrics do or do not appear, one check a line, each problem with its fix.

Read-only, like the emitter: PING, INFO, EXISTS, SCARD, RANDOMKEY and one ordinary poll.
Exit status 0 when the emitter would work here, 1 otherwise.
"""

from __future__ import annotations

import dataclasses
import io
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from sidekiq_metrics.autoscale.settings import AutoscaleSettings
from sidekiq_metrics.config import SETTINGS, Settings, check_settings
from sidekiq_metrics.errors import ConfigError
from sidekiq_metrics.heroku.dynos import DISABLED, NO_REDIS, OTHER_DYNO, why_no_emitter
from sidekiq_metrics.metrics.samples import Measurements, heartbeat, queue_series, total_samples
from sidekiq_metrics.outputs.choice import PRINTING
from sidekiq_metrics.outputs.otlp_settings import OtlpSettings
from sidekiq_metrics.redact import describe_error, redact
from sidekiq_metrics.redis.resp import Connection, RedisError, ReplyError
from sidekiq_metrics.sidekiq.job_metrics import minute_keys
from sidekiq_metrics.sidekiq.keys import NAMESPACED, SidekiqKeys, decode, key_prefix
from sidekiq_metrics.sidekiq.reader import SidekiqReader
from sidekiq_metrics.sidekiq.readings import Snapshot
from sidekiq_metrics.sidekiq.redis_health import SAFE_POLICY, refusal
from sidekiq_metrics.wiring import build_poller, redis_connection

OK, FAIL, WARN, INFO = "ok  ", "FAIL", "warn", "info"


class Report:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.failed = False
        self.warned = False
        self.secrets: tuple[str, ...] = ()  # scrubbed out of every line, whatever wrote it, as the emitter's log is

    def line(self, mark: str, text: str, fix: str | None = None) -> None:
        self.failed |= mark == FAIL
        self.warned |= mark == WARN
        self.out.write(f"{mark}  {redact(text, self.secrets)}\n")
        if fix:
            self.out.write(f"      -> {redact(fix, self.secrets)}\n")
        self.out.flush()

    def section(self, title: str) -> None:
        self.out.write(f"\n{title}\n")


def run_doctor(env: Mapping[str, str], flags: Mapping[str, object], out: TextIO) -> int:
    report = Report(out)
    settings, errors = check_settings(env, flags)
    report.secrets = settings.secrets
    report.section("Configuration")
    _configuration(report, settings, errors)
    report.section("This dyno")
    _dyno(report, env, settings)
    report.section("Redis")
    known: set[str] | None = None  # the queues Sidekiq knows, as autoscaling names them (None: not read)
    if any(error.field == "redis" for error in errors):
        report.line(FAIL, "not checked: the Redis URL is not valid (see Configuration above)")
    elif any(error.field == "shard_variables" for error in errors):
        report.line(FAIL, "not checked: the shards are not all known (see Configuration above)")
    elif _redis(report, settings):
        report.section("One poll, exactly as it would print")
        known = _poll(report, settings)
    if settings.otlp:
        report.section("OpenTelemetry (the otlp output)")
        _otlp(report, settings, settings.otlp)
    if settings.autoscale:
        report.section("Autoscaling")
        _autoscale(report, settings.autoscale, known)
    # "All good." only without warnings: a warning is a reading left out (exit 0 all the same, as the emitter works).
    closing = "The emitter would not work here: see FAIL above." if report.failed else \
        "The emitter works here, with warnings: see warn above." if report.warned else "All good."
    report.out.write(f"\n{closing}\n")
    return 1 if report.failed else 0


def _configuration(report: Report, settings: Settings, errors: list[ConfigError]) -> None:
    origins = settings.origins
    known = not any(error.field in ("redis", "shard_variables") for error in errors)  # else its error is listed below
    if known:
        report.line(OK, f"redis url = {settings.redis.display} ({origins.get('redis_url', 'default')})")
    for setting in SETTINGS:
        value = getattr(settings, setting.name)
        if setting.name == "shard_variables" and value:  # each shard with its Redis, never its password
            value = tuple(f"{shard.name}:{shard.variable}={shard.target.display}" for shard in settings.shards) \
                if known else tuple(f"{name}:{variable}" for name, variable in value)
        shown = ",".join(value) if isinstance(value, tuple) else "(none)" if value is None else value
        report.line(OK, f"{setting.name.replace('_', ' ')} = {shown} ({origins.get(setting.name, 'default')})")
    for shard in settings.shards if known else ():
        if shard.target.tls:  # each Redis is verified as its own URL says, unless the setting says for all
            where = f" (shard {shard.name})" if settings.shard_variables else ""
            why = origins.get("tls_verify", "default")
            why = f"{shard.variable}'s ?ssl_cert_reqs=" if why == "default" and shard.target.tls_verify is not None \
                else why
            report.line(OK, f"tls{where}: the certificate is {'' if shard.target.tls_verify else 'not '}verified "
                            f"({why})")
    for error in errors:
        report.line(FAIL, str(error), "set it to a value it accepts, or unset it for the default")


def _dyno(report: Report, env: Mapping[str, str], settings: Settings) -> None:
    reasons = why_no_emitter(env)
    for reason in reasons:
        if reason.kind == DISABLED:
            report.line(WARN, reason.text, "heroku config:unset SIDEKIQ_METRICS_DISABLE")
        elif reason.kind == NO_REDIS:
            report.line(FAIL, reason.text, "set REDIS_URL (or REDIS_PROVIDER, or SIDEKIQ_METRICS_REDIS_URL)")
        else:
            report.line(INFO, reason.text)
    if not any(reason.kind == OTHER_DYNO for reason in reasons):
        report.line(OK, f"this dyno ({env.get('DYNO')}) is the one that runs the emitter")
    home = Path(env.get("HOME", "/app"))
    launcher, hook = home / ".sidekiq-metrics/bin/sidekiq-metrics", home / ".profile.d/sidekiq-metrics.sh"
    if launcher.exists() and hook.exists():
        report.line(OK, f"the buildpack's runtime and hook are in the slug ({home})")
    else:
        report.line(INFO, f"no buildpack runtime or hook under {home} (fine outside Heroku)",
                    "on Heroku: heroku buildpacks:add this buildpack, then deploy")


def _redis(report: Report, settings: Settings) -> bool:
    connection = redis_connection(settings)
    where = f"{settings.redis.display} ({'TLS' if settings.redis.tls else 'no TLS'})"
    try:
        start = time.perf_counter()
        pong = connection.pipeline([["PING"]])[0]
        rtt = (time.perf_counter() - start) * 1000
        info = connection.pipeline([["INFO", "server"]])[0]
    except RedisError as exc:
        report.line(FAIL, f"Redis does not answer at {where}: {describe_error(exc, settings.secrets)}",
                    "check the URL and that this dyno can reach it; for Heroku Key-Value Store use rediss://")
        return False
    if isinstance(pong, ReplyError):
        if pong.code == "NOAUTH":
            report.line(FAIL, f"Redis at {where} wants a password (NOAUTH) and the URL has none",
                        "use the URL your Redis add-on gives (redis://:password@host:port), as Sidekiq does")
        else:
            report.line(FAIL, f"Redis at {where} refuses even PING ({pong.code})",
                        "give the URL's user the +@connection and +@read commands")
        return False
    version = re.search(rb"(redis|valkey)_version:([^\r\n]+)", info if isinstance(info, bytes) else b"")
    report.line(OK, f"Redis answers at {where}, in {rtt:.1f} ms"
                    + (f", version {version[2].decode()}" if version else ""))
    _sidekiq_data(report, settings, connection)
    return True


def _sidekiq_data(report: Report, settings: Settings, connection: Connection) -> None:
    keys = SidekiqKeys.under(settings.namespace)
    queues, bare = connection.pipeline([["SCARD", keys.queues], ["EXISTS", SidekiqKeys().queues]])
    if isinstance(queues, ReplyError):
        key = keys.queues.decode(errors="replace")
        if queues.code == "WRONGTYPE":
            report.line(FAIL, f"the key {key!r} is not a set (WRONGTYPE): Sidekiq keeps its queue list there",
                        "another program writes that key, or this is not Sidekiq's Redis database")
        else:
            report.line(FAIL, f"Redis refused to read the key {key!r} ({queues.code})",
                        "give the URL's user read access to Sidekiq's keys")
        return
    if isinstance(queues, int) and queues:
        report.line(OK, f"Sidekiq's queues set lists {queues} queue(s)"
                        + (f" under the namespace {settings.namespace!r}" if settings.namespace else ""))
        return
    if settings.namespace and bare:
        report.line(FAIL, f"nothing under the namespace {settings.namespace!r}, but un-namespaced Sidekiq keys exist",
                    "unset SIDEKIQ_METRICS_NAMESPACE (Sidekiq 7+ has no namespaces)")
        return
    guess = _guess_namespace(connection)
    if guess and guess != settings.namespace:
        report.line(FAIL, f"no `queues` set here, but Sidekiq's keys are under the prefix {guess!r}",
                    f"set SIDEKIQ_METRICS_NAMESPACE={guess}")
    else:
        report.line(WARN, "Sidekiq's queues set is empty or missing: no job was ever pushed to this Redis?",
                    "check that Sidekiq and this emitter use the same Redis URL and database")


def _guess_namespace(connection: Connection) -> str | None:
    """A few random keys (RANDOMKEY: a read, never a scan of the keyspace) that look namespaced."""
    for key in connection.pipeline([["RANDOMKEY"]] * 50):
        if isinstance(key, bytes) and (m := NAMESPACED.match(key)):
            return m[1].decode("utf-8", "replace")
    return None


def _poll(report: Report, settings: Settings) -> set[str] | None:
    """One poll as it would print, each Redis's health and reads; the queues Sidekiq knows on every shard, as
    autoscaling names them, when every queue is read (not only SIDEKIQ_METRICS_QUEUES') and every shard was."""
    captured, errors = io.StringIO(), io.StringIO()
    # Only the outputs that print: a doctor neither opens the Prometheus port nor sends to an agent.
    printed = tuple(o for o in settings.outputs if o in PRINTING) or ("l2met",)
    poller = build_poller(dataclasses.replace(settings, outputs=printed), captured, errors)
    ok = poller.poll()
    for line in errors.getvalue().splitlines():
        report.line(WARN if ok else FAIL, line)
    snapshot_lines = captured.getvalue().splitlines()
    for line in snapshot_lines:
        report.out.write(f"      {line}\n")
    if ok:
        report.line(OK, f"a poll read Redis and printed {len(snapshot_lines)} line(s)")
    known: set[str] | None = set() if settings.queues is None else None
    for n, shard in enumerate(poller.shards):  # each Redis's own health, from a read of its own reader
        try:
            read = shard.reader.read(settings.queues, totals=True)
        except RedisError:
            known = None
            continue  # the poll above has said why
        _health(report, shard.name if poller.sharded else None, read)
        if known is not None:
            known |= {q.name if n == 0 else f"{shard.name}:{q.name}" for q in read.queues}
    try:  # once more with the poll's own reader: after a refused script it reads as the emitter's next poll does
        snapshot = poller.reader.read(settings.queues, totals=True)
    except RedisError:
        return None  # the poll above has said why
    connection = poller.reader.connection
    _reads(report, snapshot, settings.namespace, autoscaling=settings.autoscale is not None)
    _held(report, snapshot)
    if ok:
        _generation(report, snapshot)
        if settings.job_metrics:
            _execution_metrics(report, connection, key_prefix(settings.namespace))
    return known


# What each read Redis may refuse costs. The first kind a poll cannot do without (metrics.up=0 while it is refused,
# and autoscaling holds still); the second is left out of the lines, and the rest is reported.
# Each is (the Totals field, the SidekiqKeys key it is read from, what it costs).
_NEEDED = (("queues", "no queue is known, so none is reported"), ("processes", "busy, utilization, the processes "
           "by type and autoscaling's protection of running jobs are unknown"))
_OPTIONAL = (("processed", "processed", "sidekiq.processed and count#sidekiq.jobs.processed"),
             ("failed", "failed", "sidekiq.failed and count#sidekiq.jobs.failed"),
             ("scheduled", "schedule", "sidekiq.scheduled and sidekiq.scheduled.lag"),
             ("retries", "retry", "sidekiq.retries and sidekiq.retries.lag"),
             ("dead", "dead", "sidekiq.dead"))


def _reads(report: Report, snapshot: Snapshot, namespace: str | None, autoscaling: bool) -> None:
    """Which of the emitter's reads Redis refuses this user, and what each costs."""
    keys = SidekiqKeys.under(namespace)
    needed = {decode(getattr(keys, key)): cost for key, cost in _NEEDED}
    queue = decode(keys.queue(""))
    fix = "give the Redis URL's user read access to it (ACL: +@read, and ~<key> among its key patterns)"
    for key in snapshot.unread:
        cost = needed.get(key) or ("that queue's size and latency are unknown" if key.startswith(queue) else
                                   "that process's busy threads are unknown, and with them busy and utilization")
        report.line(FAIL, f"reads: Redis refuses {key!r}: {cost}; metrics.up is 0 and autoscaling holds still "
                          "until it can be read", fix)
    totals = snapshot.totals
    for field, key, metrics in _OPTIONAL if totals is not None else ():
        if getattr(totals, field) is None:
            refused = decode(getattr(keys, key))
            report.line(WARN, f"reads: Redis refuses {refused!r}: {metrics} are left out (the rest is reported)", fix)
    if snapshot.paused is None:
        # With autoscaling on, this read is one it cannot do without: no type would ever scale up, hence FAIL.
        refused = f"reads: Redis refuses {decode(keys.paused)!r} (Sidekiq Pro's paused queues): which queues are " \
                  "paused is unknown, so sidekiq.queue.paused is left out"
        if autoscaling:
            report.line(FAIL, f"{refused}, and autoscaling scales no type up until it can be read (a paused queue's "
                              "backlog could ask for dynos that cannot run it)", fix)
        else:
            report.line(WARN, f"{refused} (with autoscaling on, no type would scale up)", fix)
    if totals is not None and snapshot.running is None:
        report.line(WARN, "reads: Redis refuses a process's `<identity>:work` hash (what it runs): the longest-running "
                          "job is unknown, so its running.longest metrics are left out, and autoscaling holds a "
                          "scale-down while that process is busy (all its jobs count as at risk)",
                    "give the Redis URL's user read access to them (ACL: ~*:work among its key patterns)")
    if not snapshot.unread and totals is not None and snapshot.paused is not None and snapshot.running is not None \
            and all(getattr(totals, f) is not None for f, _, _ in _OPTIONAL):
        report.line(OK, "reads: Redis answers every read the emitter makes")


def _health(report: Report, shard: str | None, snapshot: Snapshot) -> None:
    """Whether the Redis may drop Sidekiq's jobs (its maxmemory-policy), and how full it is."""
    where = f"Redis (shard {shard})" if shard else "Redis"
    health = snapshot.health
    if snapshot.health_refused or health is None:
        report.line(WARN, f"health: {where} refuses INFO ({snapshot.health_refused or 'no reply'}): the redis.* "
                          "metrics are left out", "give the URL's user the INFO command (ACL: +info)")
        return
    if refused := refusal(health):
        report.line(WARN, f"health: {where} refuses {refused}", "give the URL's user the INFO command (ACL: +info)")
        if any(section == "memory" for section, _ in health.refused):
            return  # its maxmemory and policy are unknown: nothing more to judge
    full = f", {health.memory_ratio:.0%} of its maxmemory used" if health.memory_ratio is not None else \
        ", with no maxmemory (it grows until the machine is full)"
    if health.policy is not None and health.policy != SAFE_POLICY:
        report.line(WARN, f"health: {where} has maxmemory-policy {health.policy}: when full it deletes keys, Sidekiq's "
                          f"queued jobs among them{full}", "set it to noeviction, as Sidekiq asks (Heroku Key-Value "
                          "Store: heroku redis:maxmemory --policy noeviction)")
    else:
        report.line(OK, f"health: {where} never evicts keys (maxmemory-policy {health.policy or 'unknown'}){full}")


def _autoscale(report: Report, config: AutoscaleSettings, known: set[str] | None) -> None:
    """Each scaled type's rule, and its formation read from the Platform API (a GET only: nothing is scaled); and
    the queues it names that Sidekiq does not know (`known`, None: not read): live, such a queue counts as empty
    (a new one may not exist yet), so a misspelt one would scale its type down while the real queue waits."""
    from sidekiq_metrics.heroku.platform_api import ApiError, PlatformApi  # only for those who autoscale

    api = PlatformApi(config.api_url, config.token, config.app)
    if config.dry_run:
        report.line(INFO, "dry run: decisions are logged, nothing is changed",
                    "heroku config:unset SIDEKIQ_METRICS_AUTOSCALE_DRY_RUN when the decisions look right")
    for rule in config.rules:
        queues = ",".join(rule.queues) if rule.queues else "every reported queue"
        try:
            quantity = api.quantity(rule.process_type)
        except ApiError as exc:
            report.line(FAIL, f"{rule.process_type}: {describe_error(exc, (config.token,))}",
                        "check HEROKU_API_TOKEN, the app "
                        f"({config.app}) and that `heroku ps` lists {rule.process_type}")
            continue
        report.line(OK, f"{rule.process_type}: {quantity} dyno(s) now, scaled {rule.min_dynos}..{rule.max_dynos} on "
                        f"the latency of {queues} (up above {rule.up_latency:g}s, down below {rule.down_latency:g}s)")
    for rule in config.rules:
        for queue in [q for q in rule.queues or () if known is not None and q not in known]:
            report.line(WARN, f"{rule.process_type}: Sidekiq has no queue {ascii(queue)} now: it counts as empty until "
                              "a job is pushed to it (misspelt?)")


def _otlp(report: Report, settings: Settings, config: OtlpSettings) -> None:
    """Where exports go (the host only: a path or a header may hold a key), how, and one real export."""
    from sidekiq_metrics.outputs.otlp import export_once  # only for those who chose it

    origin = settings.origins.get("otlp.endpoint", "default")
    report.line(OK, f"otlp endpoint = {config.display} ({origin})")
    names = ", ".join(name for name, _ in config.headers)
    if names:
        report.line(OK, f"headers: {names} (values not shown)")
    else:
        report.line(INFO, "no headers set", "most backends want an API key in OTEL_EXPORTER_OTLP_HEADERS")
    report.line(OK, f"protocol {config.protocol}, compression {config.compression}, temporality {config.temporality}")
    try:
        reader = SidekiqReader(redis_connection(settings), namespace=settings.namespace)
        snapshot = reader.read(settings.queues, totals=True)
        series, _ = queue_series(snapshot)
        totals = total_samples(snapshot.totals, series, snapshot.read_at) if snapshot.totals else []
        measurements = Measurements(series, totals + heartbeat(up=True))
    except RedisError:
        measurements = Measurements(samples=heartbeat(up=False))
    outcome = export_once(settings.prefix, config, measurements, time.time())
    said = redact(outcome.message, settings.secrets)
    if outcome.ok:
        report.line(OK, f"otlp: an export was accepted ({outcome.status}" + (f"; {said}" if said else "") + ")")
        if outcome.rejected:
            report.line(WARN, f"otlp: {outcome.rejected} data point(s) were rejected")
    elif outcome.status:
        report.line(FAIL, f"otlp: the export was refused ({said})",
                    "check the endpoint and the API key header your backend documents")
    else:
        report.line(FAIL, f"otlp: cannot export to {config.display}: {said}",
                    "check OTEL_EXPORTER_OTLP_ENDPOINT and that this dyno can reach it")


def _held(report: Report, snapshot: Snapshot) -> None:
    """The queues Sidekiq Pro holds paused, and the job that has run longest: what a growing latency may mean."""
    if snapshot.paused:
        names = sorted(snapshot.paused)
        shown = ", ".join(ascii(q)[:80] for q in names[:10])
        shown += f" and {len(names) - 10} more" if len(names) > 10 else ""
        report.line(WARN, f"{len(names)} queue(s) paused by Sidekiq Pro/Enterprise (its `paused` set): {shown}; their "
                    "latency grows until they are resumed, and autoscaling leaves their backlog out",
                    "resume them in Sidekiq's web UI (Queues), or with Sidekiq::Queue.new(name).unpause!")
    elif snapshot.paused is not None:
        report.line(OK, "no queue is paused (Sidekiq Pro/Enterprise's `paused` set is empty or absent)")
    if snapshot.running and snapshot.running.by_class:
        name, since = min(snapshot.running.by_class, key=lambda pair: pair[1])
        report.line(INFO, f"the longest-running job ({ascii(name)[1:-1][:80]}) has run "
                    f"{max(0.0, snapshot.read_at - since):.0f}s")


def _generation(report: Report, snapshot: Snapshot) -> None:
    """Which Sidekiq wrote the jobs, by the type of their timestamps, and its live processes."""
    stamps = [q.oldest.enqueued_at for q in snapshot.queues if q.oldest is not None]
    floats = sum(isinstance(s, float) for s in stamps)
    ints = sum(isinstance(s, int) and not isinstance(s, bool) for s in stamps)
    if floats or ints:
        kinds = []
        if floats:
            kinds.append(f"{floats} with float seconds (Sidekiq <= 7)")
        if ints:
            kinds.append(f"{ints} with integer milliseconds (Sidekiq 8)")
        report.line(INFO, "oldest jobs: " + ", ".join(kinds))
    if snapshot.totals is not None and snapshot.totals.live is not None:
        live = len(snapshot.totals.live)
        versions = sorted({p.version or "6 or earlier" for p in snapshot.totals.live})
        report.line(OK if live else INFO, f"{live} live Sidekiq process(es)"
                    + (f", Sidekiq {', '.join(versions)}" if versions else "")
                    + ("" if live else ": none is running now, or they use another Redis"))


def _execution_metrics(report: Report, connection: Connection, prefix: bytes) -> None:
    """Whether Sidekiq's execution metrics (7.0+) are there: its minute keys of the last ten minutes."""
    now = int(time.time() // 60)
    minutes = range(now - 9, now + 1)
    found = connection.pipeline([["EXISTS", prefix + key] for m in minutes for key in minute_keys(m)])
    generations = {("Sidekiq 7", "Sidekiq 8")[n % 2] for n, reply in enumerate(found) if reply == 1}
    if generations:
        report.line(OK, f"Sidekiq's execution metrics are there ({' and '.join(sorted(generations))} keys): "
                        "job-class metrics come once a minute, a minute after it ends")
    else:
        report.line(INFO, "no execution metrics in the last ten minutes: Sidekiq 6 writes none (job-class metrics "
                          "need Sidekiq 7+), or no job ran", "SIDEKIQ_METRICS_JOB_METRICS=false turns them off")

