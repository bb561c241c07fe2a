"""OTLP/HTTP: each poll's readings pushed to an OpenTelemetry backend, in the official messages.

The messages are the OpenTelemetry project's own (opentelemetry-proto), encoded as binary
protobuf or, for `http/json`, in the proto3 JSON mapping with integer enums, as the OTLP
specification asks. Names and kinds come from the catalogue:

    sidekiq.queue.size{queue}     Gauge, {job}         sidekiq.enqueued ... sidekiq.busy   Gauges
    sidekiq.queue.latency{queue}  Gauge, s             sidekiq.jobs.processed / .failed    Sums (monotonic)
    sidekiq.metrics.up            Gauge, 1             sidekiq.autoscale.current{process_type}  Gauge

Sending never delays a poll: the poll hands its readings to a sender thread through a deque
of at most MAX_PENDING polls (the oldest is dropped, and counted, when the backend is away
for longer). The sender retries what the OTLP specification calls transient (429, 502, 503,
504, timeouts, connection errors) with exponential backoff and jitter, honouring
Retry-After, and drops the rest. It says one line when exports start failing and one when
they work again; the URL's path and the headers (API keys) never appear in either.
"""

from __future__ import annotations

import collections
import gzip
import http.client
import random
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AGGREGATION_TEMPORALITY_CUMULATIVE,
    AGGREGATION_TEMPORALITY_DELTA,
    Metric,
    NumberDataPoint,
)

from sidekiq_metrics import __version__
from sidekiq_metrics import catalogue as c
from sidekiq_metrics.catalogue import Kind, Unit
from sidekiq_metrics.http.deadline import Deadline
from sidekiq_metrics.http.retry_after import retry_after as retry_after_seconds
from sidekiq_metrics.metrics.samples import Counts, Labels, Measurements, Sample
from sidekiq_metrics.outputs.otlp_settings import OtlpSettings
from sidekiq_metrics.redact import redact
from sidekiq_metrics.redis.resolver import RESOLVER
from sidekiq_metrics.redis.resp import open_tcp

MAX_SAID = 64  # kinds of trouble remembered as said (there are a handful: statuses, "partial", error types)
MAX_PENDING = 4  # polls kept while the backend is away: two minutes at the default interval
MIN_BACKOFF = 1.0  # seconds between tries, at least: `Retry-After: 0` made 15,000 requests in 10 s
MAX_BACKOFF = 60.0  # seconds between tries, at most (Retry-After may ask for up to MAX_RETRY_AFTER)
MAX_RETRY_AFTER = 600.0
MAX_RESPONSE = 4 << 20  # bytes of a reply we read, as the OTLP specification recommends
RETRYABLE = frozenset({429, 502, 503, 504})
USER_AGENT = f"sidekiq-metrics/{__version__} (OTLP exporter)"
UNITS = {Unit.JOBS: "{job}", Unit.SECONDS: "s", Unit.PROCESSES: "{process}", Unit.RATIO: "1", Unit.BOOLEAN: "1",
         Unit.POLLS: "{poll}", Unit.DYNOS: "{dyno}", Unit.MEGABYTES: "MBy", Unit.MILLISECONDS: "ms",
         Unit.CONNECTIONS: "{connection}", Unit.KEYS: "{key}", Unit.PER_SECOND: "{command}/s",
         Unit.QUEUES: "{queue}"}
# A running total is sent under the name of its increase: `sidekiq.jobs.processed`, not `sidekiq.processed`.
_SUM_NAME = {m.total: m for m in c.CATALOGUE if m.total is not None}
# Counts of ours, always sent from our start (failed polls, dropped polls); a job class's from its first run.
_FROM_START = (*(m for m in c.CATALOGUE if m.kind is Kind.DELTA and m.total is None and m.label is None),
               c.OTLP_DROPPED)
Log = Callable[[str], None]


def otel_name(prefix: str, metric: c.Metric) -> str:
    """OpenTelemetry's naming guidance: dotted, lower case, no unit in the name, the type as an attribute."""
    named = _SUM_NAME.get(metric, metric)
    return f"{prefix}.{'queue.' if named.per_queue else ''}{named.bare_name}"


@dataclass(frozen=True)
class SumPoint:
    metric: c.Metric
    value: int
    start: float
    labels: Labels = ()  # attributes of the point: a job class's, say


class Sums:
    """The running totals of metrics.Counts as OTLP Sums, made in the poll's thread and order.

    Cumulative: the total, since the start of its run (its first sight, the OTel data model's form for an
    unknown start; after a reset, the poll before it). Delta: the increase since the previous poll that saw
    it, none at its first sight nor across a reset, as the l2met `count#` lines report it. Our own counts
    (failed polls, dropped polls) start at 0 when this output does."""

    def __init__(self, temporality: str, started: float) -> None:
        self.delta = temporality == "delta"
        self.counts = Counts(started, from_start=_FROM_START)

    def points(self, samples: Iterable[Sample], at: float) -> list[SumPoint]:
        counts = self.counts.update(samples, at)
        if self.delta:
            return [SumPoint(n.metric, n.increase, n.since, n.labels) for n in counts if n.increase is not None]
        return [SumPoint(n.metric, n.total, n.start, n.labels) for n in counts]


@dataclass
class _Pending:
    measurements: Measurements
    at: float
    sums: list[SumPoint]
    body: bytes | None = field(default=None, repr=False)


class Encoder:
    """ExportMetricsServiceRequests from a poll's readings, on the wire as the protocol says."""

    def __init__(self, prefix: str, config: OtlpSettings, temporality: str) -> None:
        self.prefix = prefix
        self.json = config.protocol == "http/json"
        self.gzip = config.compression == "gzip"
        self.temporality = AGGREGATION_TEMPORALITY_DELTA if temporality == "delta" else \
            AGGREGATION_TEMPORALITY_CUMULATIVE
        self.resource = [_attribute(key, value) for key, value in config.resource]
        self.content_type = "application/json" if self.json else "application/x-protobuf"

    def request(self, measurements: Measurements, at: float, sums: list[SumPoint]) -> ExportMetricsServiceRequest:
        now = _nanos(at)
        request = ExportMetricsServiceRequest()
        resource_metrics = request.resource_metrics.add()
        resource_metrics.resource.attributes.extend(self.resource)
        scope = resource_metrics.scope_metrics.add()
        scope.scope.name, scope.scope.version = "sidekiq-metrics", __version__
        metrics = scope.metrics
        for series in measurements.series:
            if not series.queues:
                continue  # a metric must have data points (no queues: nothing to say)
            metric = self._metric(metrics, series.metric)
            points = metric.gauge.data_points
            for queue, value in zip(series.queues, series.values, strict=True):
                point = points.add()
                point.time_unix_nano = now
                _set_value(point, value)
                point.attributes.append(_attribute("queue", queue))
        gauges: dict[str, Metric] = {}
        for sample in measurements.samples:
            if sample.metric.kind is not Kind.GAUGE:
                continue  # totals and increases are the Sums below
            name = otel_name(self.prefix, sample.metric)
            metric = gauges.get(name) or gauges.setdefault(name, self._metric(metrics, sample.metric))
            point = metric.gauge.data_points.add()
            point.time_unix_nano = now
            _set_value(point, sample.value)
            point.attributes.extend(_attribute(label, value) for label, value in sample.labels)
        summed: dict[c.Metric, Metric] = {}
        for sum_point in sums:
            if sum_point.value not in INT64:
                continue  # no int64 holds it: not a count Sidekiq made
            metric = summed.get(sum_point.metric) or summed.setdefault(sum_point.metric,
                                                                        self._metric(metrics, sum_point.metric))
            metric.sum.is_monotonic = True
            metric.sum.aggregation_temporality = self.temporality
            point = metric.sum.data_points.add()
            point.start_time_unix_nano, point.time_unix_nano = _nanos(sum_point.start), now
            point.as_int = sum_point.value
            point.attributes.extend(_attribute(label, value) for label, value in sum_point.labels)
        return request

    def encode(self, request: ExportMetricsServiceRequest) -> bytes:
        if self.json:
            from google.protobuf import json_format  # only for http/json

            body = json_format.MessageToJson(request, use_integers_for_enums=True, indent=None).encode()
        else:
            body = request.SerializeToString()
        return gzip.compress(body, compresslevel=6, mtime=0) if self.gzip else body

    def _metric(self, metrics: RepeatedCompositeFieldContainer[Metric], metric: c.Metric) -> Metric:
        added = metrics.add()
        added.name, added.unit = otel_name(self.prefix, metric), UNITS[metric.unit]
        added.description = metric.help.split(";")[0][:200]
        return added

    def response(self, body: bytes) -> ExportMetricsServiceResponse:
        response = ExportMetricsServiceResponse()
        if self.json:
            from google.protobuf import json_format

            json_format.Parse(body or b"{}", response, ignore_unknown_fields=True)
        else:
            response.ParseFromString(body)
        return response


def _nanos(seconds: float) -> int:
    return int(seconds * 1e9)


INT64 = range(-(1 << 63), 1 << 63)


def _set_value(point: NumberDataPoint, value: float) -> None:
    if value.__class__ is int and value in INT64:
        point.as_int = int(value)
    else:  # a float, or a count no int64 holds (a hand-written stat:processed of 30 digits)
        point.as_double = float(value)


def _attribute(key: str, value: str) -> KeyValue:
    attribute = KeyValue(key=key)
    # A queue name that is not UTF-8 (surrogate escapes) cannot be a protobuf string: backslash escapes stand in.
    attribute.value.string_value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return attribute


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status: int = 0  # the HTTP status, when the endpoint answered
    retry: bool = False
    retry_after: float | None = None
    message: str = ""  # for the log: never a header, never the URL's path
    rejected: int = 0  # data points a partial success refused


class Client:
    """One keep-alive HTTP/1.1 connection to the endpoint. The host is looked up with the emitter's
    resolver (a silent name server costs one timeout, never a stuck thread), and TLS is verified."""

    def __init__(self, config: OtlpSettings, encoder: Encoder) -> None:
        self.config = config
        self.encoder = encoder
        parts = urlsplit(config.endpoint)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        self.target = parts.path + (f"?{parts.query}" if parts.query else "")
        self.context = self._tls_context() if self.https else None
        self.connection: http.client.HTTPConnection | None = None

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.config.certificate)
        if self.config.client_certificate:
            context.load_cert_chain(self.config.client_certificate, self.config.client_key)
        return context

    def post(self, body: bytes) -> Outcome:
        """One export, within OTEL_EXPORTER_OTLP_TIMEOUT from connect to the last byte of the reply. A kept-alive
        connection the collector closed while idle (Node closes them after 5 s) is no failure: it is replaced
        before sending, or, if that shows only in the send, the export is made once more on a fresh one."""
        headers = {**dict(self.config.headers), "Content-Type": self.encoder.content_type, "User-Agent": USER_AGENT}
        if self.encoder.gzip:
            headers["Content-Encoding"] = "gzip"
        if self.connection is not None and not _still_open(self.connection.sock):
            self.close()
        reused = self.connection is not None
        outcome, unanswered = self._exchange(body, headers)
        if unanswered and reused:
            outcome, _ = self._exchange(body, headers)
        return outcome

    def _exchange(self, body: bytes, headers: dict[str, str]) -> tuple[Outcome, bool]:
        """The outcome, and whether the connection failed before any answer (so a reused one may be retried)."""
        deadline = Deadline(lambda: self.connection.sock if self.connection else None, self.config.timeout)
        answered = False
        try:
            with deadline:
                connection = self.connection or self._connect(deadline)
                connection.request("POST", self.target, body=body, headers=headers)
                reply = connection.getresponse()
                answered = True
                data = reply.read(MAX_RESPONSE + 1)
            if deadline.expired:
                raise TimeoutError
            if reply.will_close or len(data) > MAX_RESPONSE:  # a reply left unread: the connection is spent
                self.close()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            timed_out = deadline.expired or isinstance(exc, TimeoutError | socket.timeout)
            reason = "timed out" if timed_out else (getattr(exc, "strerror", None) or type(exc).__name__)
            if isinstance(exc, ssl.SSLCertVerificationError):
                return Outcome(False, message=f"its TLS certificate was refused ({exc.verify_message}); set "
                                              "OTEL_EXPORTER_OTLP_CERTIFICATE to its CA's PEM file if it is "
                                              "private"), False
            return Outcome(False, retry=True, message=str(reason)), not answered and not timed_out
        return self._outcome(reply.status, reply.reason, reply.getheader("Retry-After"), data), False

    def _outcome(self, status: int, reason: str, retry_after: str | None, data: bytes) -> Outcome:
        if 200 <= status < 300:
            if len(data) > MAX_RESPONSE:
                return Outcome(True, status, message="its reply was over 4 MiB and was not read")
            try:
                partial = self.encoder.response(data).partial_success
            except Exception:  # noqa: BLE001 - any reply that is not OTLP: the export still succeeded
                return Outcome(True, status)
            return Outcome(True, status, message=partial.error_message[:200], rejected=partial.rejected_data_points)
        message = f"{status} {reason}".strip()
        if status in RETRYABLE:
            wait = retry_after_seconds(retry_after, least=MIN_BACKOFF, most=MAX_RETRY_AFTER)
            return Outcome(False, status, retry=True, retry_after=wait, message=message)
        return Outcome(False, status, message=message)

    def _connect(self, deadline: Deadline) -> http.client.HTTPConnection:
        timeout = self.config.timeout
        sock = open_tcp(RESOLVER.lookup(self.host, self.port, wait=deadline.left()), deadline.left())
        if self.context is not None:
            try:
                sock = self.context.wrap_socket(sock, server_hostname=self.host)
            except BaseException:
                sock.close()
                raise
        connection: http.client.HTTPConnection
        if self.context is not None:  # (HTTPS for its default port in the Host header; TLS is done above)
            connection = http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self.context)
        else:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        connection.sock = sock  # connected and, for https, verified: http.client only speaks HTTP on it
        self.connection = connection
        return connection

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
        self.connection = None


def _still_open(sock: socket.socket | None) -> bool:
    """A kept-alive connection is usable only while the collector has sent nothing on it: between exchanges,
    anything readable is its close (or bytes we never asked for)."""
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


class Sender:
    """The sender thread and the bounded hand-off to it."""

    def __init__(self, client: Client, encoder: Encoder, display: str, log: Log, secrets: tuple[str, ...]) -> None:
        self.client, self.encoder, self.display = client, encoder, display
        self._log, self._secrets = log, secrets
        self.pending: collections.deque[_Pending] = collections.deque()
        self.dropped = 0  # polls dropped since the start, all outages together
        self._dropped_at_failure = 0
        self._failing: str | None = None  # the outage's first reason, while exports fail
        self._said: set[str] = set()  # kinds of refusal and partial success said, until exports work again
        self._busy = False  # a send is under way (its poll already off the deque: dropped while sent)
        self._attempt = 0  # tries of the poll at the head, for the backoff
        self._wake = threading.Condition()
        threading.Thread(target=self._run, name="otlp", daemon=True).start()

    def submit(self, item: _Pending) -> None:
        with self._wake:
            if len(self.pending) >= MAX_PENDING:
                self.pending.popleft()  # the oldest, even if it is the one being retried
                self.dropped += 1
            self.pending.append(item)
            self._wake.notify_all()

    def flush(self, timeout: float) -> bool:
        """True once every poll handed over has been sent (or dropped); False after `timeout` seconds.
        Waits in short steps, so that a signal handler can interrupt it."""
        deadline = time.monotonic() + timeout
        with self._wake:
            while self.pending or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.wait(min(left, 0.05))
        return True

    def _run(self) -> None:
        """Send for ever. Nothing a poll holds or a collector answers ends this thread: an error we did not
        foresee drops that poll with one line, and the next is sent after MIN_BACKOFF."""
        self._attempt = 0
        while True:
            with self._wake:
                while not self.pending:
                    self._wake.wait()
                item = self.pending[0]
                self._busy = True
            try:
                self._send(item)
            except Exception as exc:  # noqa: BLE001 - the thread must outlive it, or exports stop unseen
                self.client.close()
                self._say(kind=type(exc).__name__, line=f"otlp: a poll could not be exported ({type(exc).__name__}: "
                          f"{str(exc)[:100]}); "
                          "it is dropped")
                self._done(item)
                time.sleep(MIN_BACKOFF)

    def _done(self, item: _Pending) -> None:
        with self._wake:
            if self.pending and self.pending[0] is item:
                self.pending.popleft()
            self._busy = False
            self._wake.notify_all()

    def _send(self, item: _Pending) -> None:
        if item.body is None:
            item.body = self.encoder.encode(self.encoder.request(item.measurements, item.at, item.sums))
        outcome = self.client.post(item.body)
        if outcome.retry:
            self._attempt += 1
            self._failed(outcome.message)
            delay = outcome.retry_after if outcome.retry_after is not None else \
                max(MIN_BACKOFF, min(MAX_BACKOFF, 2.0 ** (self._attempt - 1)) * random.uniform(0.5, 1.0))  # noqa: S311
            until = time.monotonic() + delay
            with self._wake:
                self._busy = False
                while (left := until - time.monotonic()) > 0:  # a new poll only queues: the wait holds
                    self._wake.wait(left)
            return
        self._attempt = 0
        self._done(item)
        if outcome.ok:
            self._worked(outcome)
        else:
            self._say(f"otlp: {self.display} refused an export ({outcome.message}); it is dropped, not retried",
                      kind=f"refused {outcome.status}")

    def _failed(self, reason: str) -> None:
        if self._failing is None:
            self._failing = reason
            self._dropped_at_failure = self.dropped
            self.log(f"otlp: cannot export to {self.display} ({reason}); retrying with backoff, keeping the "
                     f"newest {MAX_PENDING} polls")

    def _worked(self, outcome: Outcome) -> None:
        if self._failing is not None:
            lost = self.dropped - self._dropped_at_failure
            self.log(f"otlp: exporting to {self.display} again" + (f"; {lost} poll(s) were dropped meanwhile"
                                                                   if lost else ""))
            self._failing = None
        if outcome.rejected or outcome.message:
            self._say(kind="partial", line=f"otlp: {self.display} accepted the export but rejected {outcome.rejected} "
                      "data point(s)"
                      + (f": {outcome.message}" if outcome.message else ""))
        else:
            self._said.clear()

    def log(self, line: str) -> None:
        self._log(redact(line, self._secrets))  # a backend's text may echo what we sent it

    def _say(self, line: str, kind: str | None = None) -> None:
        """Say `line` once per kind of trouble (a status, "partial", an error's type) until exports work again.
        By kind, not by text: a backend whose messages vary (a count, an id in them) would otherwise be
        said at every export and remembered for ever (20,000 exports kept 20,000 lines)."""
        kind = kind or line
        if kind not in self._said and len(self._said) < MAX_SAID:
            self._said.add(kind)
            self.log(line)


class OtlpOutput:
    def __init__(self, prefix: str, config: OtlpSettings, log: Log) -> None:
        self.sums = Sums(config.temporality, time.time())
        self.encoder = Encoder(prefix, config, config.temporality)
        self.sender = Sender(Client(config, self.encoder), self.encoder, config.display, log, config.secrets)

    def emit(self, measurements: Measurements, at: float) -> None:
        samples = [*measurements.samples, Sample(c.OTLP_DROPPED, self.sender.dropped)]
        self.sender.submit(_Pending(measurements, at, self.sums.points(samples, at)))

    def flush(self, timeout: float) -> bool:
        return self.sender.flush(timeout)


def export_once(prefix: str, config: OtlpSettings, measurements: Measurements, at: float) -> Outcome:
    """One export, made and sent now, in this thread (for `doctor`)."""
    encoder = Encoder(prefix, config, config.temporality)
    client = Client(config, encoder)
    try:
        sums = Sums(config.temporality, at).points(measurements.samples, at)
        return client.post(encoder.encode(encoder.request(measurements, at, sums)))
    finally:
        client.close()
