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

import re
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sidekiq_metrics.errors import OutputUnavailable
from sidekiq_metrics.metrics import Measurements, Sample

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Level samples with a name of their own here; `jobs.*` increases are left out: Prometheus takes rate().
QUEUE_NAMES = {"size": ("queue_size", "gauge"), "latency": ("queue_latency_seconds", "gauge")}
TOTAL_NAMES = {"processed": ("processed_total", "counter"), "failed": ("failed_total", "counter"),
               "max_latency": ("max_latency_seconds", "gauge")}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(prefix: str, samples: Iterable[Sample]) -> str:
    base = re.sub(r"[^A-Za-z0-9_:]", "_", prefix)
    families: dict[str, tuple[str, list[str]]] = {}
    for name, value, queue, counter in samples:
        if counter:
            continue
        if queue is not None:
            metric, kind = QUEUE_NAMES[name]
            labels = f'{{queue="{_escape(queue.encode("utf-8", "backslashreplace").decode())}"}}'
        else:
            metric, kind = TOTAL_NAMES.get(name, (re.sub(r"[^A-Za-z0-9_:]", "_", name), "gauge"))
            labels = ""
        number = str(value) if value.__class__ is int else repr(float(value))
        families.setdefault(f"{base}_{metric}", (kind, []))[1].append(f"{base}_{metric}{labels} {number}")
    out = []
    for family, (kind, lines) in families.items():
        out.append(f"# TYPE {family} {kind}")
        out += lines
    return "\n".join(out) + "\n"


class PrometheusOutput:
    def __init__(self, prefix: str, host: str, port: int) -> None:
        self.prefix = prefix
        self.body = b"# no poll yet\n"
        output = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
                body = output.body
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet: no line per scrape
                pass

        try:
            self.server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise OutputUnavailable(f"cannot listen on {host}:{port} ({exc.strerror or exc}); set "
                                    "SIDEKIQ_METRICS_PROMETHEUS_PORT to a free port") from None
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="prometheus", daemon=True).start()

    def emit(self, measurements: Measurements, at: float) -> None:
        self.body = render(self.prefix, measurements).encode()
