"""A Prometheus / OpenMetrics text endpoint serving the last poll, for a scraper or a Kubernetes HPA.

It never reads Redis itself: a scrape returns what the last poll found. Served by a
daemon thread, so the poll loop never waits on a scraper.

    # TYPE sidekiq_queue_size gauge
    sidekiq_queue_size{queue="default"} 3
    # TYPE sidekiq_queue_latency_seconds gauge
    sidekiq_queue_latency_seconds{queue="default"} 12.345
    # TYPE sidekiq_processed_total counter
    sidekiq_processed_total 120
"""

from __future__ import annotations

import errno
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast

from sidekiq_metrics import catalogue as m
from sidekiq_metrics.catalogue import Kind, Metric, Unit
from sidekiq_metrics.errors import OutputUnavailable
from sidekiq_metrics.metrics.samples import SERIES_IDLE, Count, Counts, Labels, Measurements, Sample

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_UNSAFE = re.compile(r"[^A-Za-z0-9_:]")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def metric_base(prefix: str) -> str:
    """The prefix as the start of a valid Prometheus name ([a-zA-Z_:][a-zA-Z0-9_:]*): `9app` -> `_9app`."""
    base = _UNSAFE.sub("_", prefix)
    return "_" + base if base[:1].isdigit() else base


_UNIT_SUFFIXES = {Unit.SECONDS: "_seconds", Unit.MEGABYTES: "_megabytes", Unit.MILLISECONDS: "_milliseconds"}


def family_name(metric: Metric) -> str:
    """Prometheus's conventions: a queue's metrics begin `queue_`, the unit ends the name (`_seconds`), a running
    total is a counter ending `_total`: `queue_latency_seconds`, `processed_total`."""
    name = _UNSAFE.sub("_", metric.tag_name) + _UNIT_SUFFIXES.get(metric.unit, "")
    return name + "_total" if metric.kind is not Kind.GAUGE else name


def series_name(prefix: str, metric: Metric) -> str:
    """The name this endpoint serves a metric under, for rules and dashboards built on it (tools/alerts.py). An
    increase of one of Sidekiq's totals is served as that total: `sidekiq_processed_total`."""
    served = metric.total if metric.kind is Kind.DELTA and metric.total is not None else metric
    return f"{metric_base(prefix)}_{family_name(served)}"


def _label(name: str, value: str) -> str:
    return f'{name}="{_escape(value.encode("utf-8", "backslashreplace").decode())}"'


def render(prefix: str, samples: Iterable[Sample]) -> str:
    """The text exposition of a poll. An increase of one of Sidekiq's totals is left out (Prometheus takes
    rate() of the total); any other increase is a counter, which the caller has summed up (Counts)."""
    base = metric_base(prefix)
    families: dict[str, tuple[str, list[str]]] = {}
    for sample in samples:
        kind = sample.metric.kind
        if kind is Kind.DELTA and sample.metric.total is not None:
            continue
        labels = sample.tagged()[1]
        text = "{" + ",".join(_label(name, value) for name, value in labels) + "}" if labels else ""
        value = sample.value
        number = str(value) if value.__class__ is int else repr(float(value))
        family = f"{base}_{family_name(sample.metric)}"
        families.setdefault(family, ("gauge" if kind is Kind.GAUGE else "counter", []))[1].append(
            f"{family}{text} {number}")
    out = []
    for family, (kind_name, lines) in families.items():
        out.append(f"# TYPE {family} {kind_name}")
        out += lines
    return "\n".join(out) + "\n"


# Read from Sidekiq's minutes, which complete once a minute: a poll that found no new minute has none of them.
PER_MINUTE = (m.JOB_RUNTIME_MEAN, m.JOB_RUNTIME_P50, m.JOB_RUNTIME_P95, m.JOB_RUNTIME_P99)


class LastMinute:
    """The job classes' run times as the last minute that had runs left them. A scrape sees every poll's, not
    only the one poll a minute that read a new minute (with a 30 s interval and a 15 s scrape, three scrapes in
    four would find none, and an alert or a panel would flap on and off). A class's value is replaced by its
    next minute with runs, and forgotten after SERIES_IDLE seconds without one, as its counts are."""

    def __init__(self) -> None:
        self.kept: dict[tuple[Metric, Labels], tuple[Sample, float]] = {}

    def update(self, samples: list[Sample], at: float) -> list[Sample]:
        """The samples with the kept run times of classes this poll has none of added."""
        for sample in samples:
            if sample.metric in PER_MINUTE:
                self.kept[sample.metric, sample.labels] = (sample, at)
        self.kept = {key: (sample, seen) for key, (sample, seen) in self.kept.items() if at - seen < SERIES_IDLE}
        fresh = {(s.metric, s.labels) for s in samples if s.metric in PER_MINUTE}
        return samples + [sample for key, (sample, _) in self.kept.items() if key not in fresh]

    def clear(self) -> None:
        self.kept.clear()


def counters(counts: list[Count]) -> list[Sample]:
    """Our own increases (failed polls, a job class's runs) as the running totals a Prometheus counter is."""
    return [Sample(c.metric, c.total, c.labels) for c in counts if c.metric.kind is Kind.DELTA]


PATH = "/metrics"
STANDING_BY = b"# this emitter stands by: another holds the lease (SIDEKIQ_METRICS_LEASE)\n"
Request = socket.socket | tuple[bytes, socket.socket]  # socketserver's _RequestType
Address = tuple[str, int] | str  # socketserver's _AddressType, as a listening TCP server sees its clients
MAX_CLIENTS = 8  # scrapers at once; more are closed at once (a scraper is one or two Prometheus servers)
IDLE_TIMEOUT = 2.0  # seconds a connection may stay silent: a scraper sends its request at once


class _Server(ThreadingHTTPServer):
    """A thread per client, but never more than MAX_CLIENTS, and never a traceback on stderr: this
    runs inside the customer's web dyno, and a client that resets its connection is no news."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], family: int) -> None:
        self.address_family = family
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(MAX_CLIENTS)
        self.idle: dict[socket.socket, float] = {}  # connections waiting for a request, since when
        self.idle_lock = threading.Lock()

    def process_request(self, request: Request, client_address: Address) -> None:
        # All slots taken: connections that only wait (idle keep-alives, clients that never send) must not keep
        # a real scrape out. The longest-idle one is closed, and the new one served once its slot is free.
        if not self.slots.acquire(blocking=False) and not (self._close_longest_idle() and
                                                           self.slots.acquire(timeout=1.0)):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Request, client_address: Address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Request, client_address: Address) -> None:
        pass

    def _close_longest_idle(self) -> bool:
        with self.idle_lock:
            if not self.idle:
                return False  # every slot is answering a request: the new client waits for none of them
            oldest = min(self.idle, key=self.idle.__getitem__)
            del self.idle[oldest]
        try:
            oldest.shutdown(socket.SHUT_RDWR)  # its handler reads the end, and frees its slot
        except OSError:
            pass
        return True

    def waiting(self, connection: socket.socket, idle: bool) -> None:
        """A handler says its connection waits for a request (idle) or has one (busy)."""
        with self.idle_lock:
            if idle:
                self.idle[connection] = time.monotonic()
            else:
                self.idle.pop(connection, None)


class PrometheusOutput:
    def __init__(self, prefix: str, host: str, port: int) -> None:
        self.prefix = prefix
        self.counts = Counts(time.time())  # our own increases (failed polls, a job class's runs) as counters
        self.last_minute = LastMinute()
        self.body = b"# no poll yet\n"
        self.serving: Callable[[], bool] = lambda: True
        output = self

        class Handler(BaseHTTPRequestHandler):
            timeout = IDLE_TIMEOUT

            def handle_one_request(self) -> None:
                server = cast(_Server, self.server)
                server.waiting(self.connection, idle=True)
                try:
                    super().handle_one_request()
                finally:
                    server.waiting(self.connection, idle=False)

            def parse_request(self) -> bool:  # the request line is in: no longer idle
                cast(_Server, self.server).waiting(self.connection, idle=False)
                return super().parse_request()

            def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
                self._answer(with_body=True)

            def do_HEAD(self) -> None:  # noqa: N802
                self._answer(with_body=False)

            def _answer(self, with_body: bool) -> None:
                if self.path.split("?", 1)[0] != PATH:
                    self.send_error(404, f"the metrics are at {PATH}")
                    return
                body = output.body if output.serving() else STANDING_BY
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if with_body:
                    self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet: no line per scrape
                pass

        try:
            self.server = _Server((host, port), Handler, socket.AF_INET6 if ":" in host else socket.AF_INET)
        except OSError as exc:
            fix = ("set SIDEKIQ_METRICS_PROMETHEUS_PORT to a free port" if exc.errno == errno.EADDRINUSE else
                   "set SIDEKIQ_METRICS_PROMETHEUS_HOST to an address of this dyno (0.0.0.0: all of them)")
            raise OutputUnavailable(f"cannot listen on {host}:{port} ({exc.strerror or exc}); {fix}") from None
        threading.Thread(target=self.server.serve_forever, name="prometheus", daemon=True).start()

    def stand_by(self) -> None:
        # No series at all, rather than the last poll frozen: another emitter's endpoint serves the readings now.
        self.body = STANDING_BY
        self.last_minute.clear()

    def serve_while(self, serving: Callable[[], bool]) -> None:
        self.serving = serving

    def emit(self, measurements: Measurements, at: float) -> None:
        levels = self.last_minute.update([s for s in measurements if s.metric.kind is not Kind.DELTA], at)
        self.body = render(self.prefix, levels + counters(self.counts.update(measurements.samples, at))).encode()
