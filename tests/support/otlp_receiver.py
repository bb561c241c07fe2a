"""A real OTLP/HTTP receiver on loopback, decoding what it receives with the official messages.

It checks what the OTLP specification asks of a request (POST, a Content-Type of
application/x-protobuf or application/json, gzip when Content-Encoding says so) and keeps
every request, decoded: protobuf with opentelemetry-proto's ExportMetricsServiceRequest,
JSON with the proto3 JSON mapping into the same message. Replies are scripted: a list of
Reply to give in turn (then 200), or `hang` to accept a request and never answer.
"""

from __future__ import annotations

import gzip
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

CONTENT_TYPES = ("application/x-protobuf", "application/json")


@dataclass
class Received:
    at: float  # time.monotonic() when it came
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes  # as sent (gzip-compressed, if it was)
    message: ExportMetricsServiceRequest

    def metrics(self) -> dict[str, object]:
        """Every metric of the request by name (one resource, one scope: what the emitter sends)."""
        (resource,) = self.message.resource_metrics
        (scope,) = resource.scope_metrics
        return {metric.name: metric for metric in scope.metrics}

    def resource(self) -> dict[str, str]:
        (resource,) = self.message.resource_metrics
        return {kv.key: kv.value.string_value for kv in resource.resource.attributes}


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    partial: tuple[int, str] | None = None  # rejected data points, message


class OtlpReceiver:
    def __init__(self, certificate: tuple[str, str] | None = None, port: int = 0,
                 idle_timeout: float | None = None) -> None:
        """`idle_timeout`: close a kept-alive connection after that many seconds without a request, as Node's
        HTTP server does after 5 s (and many collectors' load balancers after some seconds more)."""
        self.requests: list[Received] = []
        self.refused: list[str] = []  # what was wrong with requests that were not OTLP
        self.replies: list[Reply] = []
        self.hang = threading.Event()  # set: read each request, then never answer
        self._lock = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as OTLP clients should use
            timeout = idle_timeout  # socketserver closes the connection when a read waits longer

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                receiver._handle(self)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # a client gone mid-reply is no news here
        self.scheme = "http"
        if certificate:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*certificate)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://{'localhost' if self.scheme == 'https' else '127.0.0.1'}:{self.server.server_port}"

    def close(self) -> None:
        self.hang.clear()
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, timeout: float) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.requests) < count and time.monotonic() < deadline:
                self._lock.wait(0.05)
            return list(self.requests)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        content_type = headers.get("content-type", "")
        try:
            if content_type not in CONTENT_TYPES:
                raise ValueError(f"Content-Type {content_type!r}")
            data = gzip.decompress(body) if headers.get("content-encoding") == "gzip" else body
            message = ExportMetricsServiceRequest()
            if content_type == "application/json":
                json_format.Parse(data, message)
            else:
                message.ParseFromString(data)
        except Exception as exc:  # noqa: BLE001 - a test fails on it through `refused`
            self.refused.append(str(exc))
            handler.send_response(400)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        with self._lock:
            self.requests.append(Received(time.monotonic(), handler.path, headers, body, message))
            reply = self.replies.pop(0) if self.replies else Reply()
            self._lock.notify_all()
        if self.hang.is_set():
            while self.hang.is_set():
                time.sleep(0.05)
            return
        response = ExportMetricsServiceResponse()
        if reply.partial:
            response.partial_success.rejected_data_points, response.partial_success.error_message = reply.partial
        payload = (json_format.MessageToJson(response).encode() if content_type == "application/json"
                   else response.SerializeToString())
        handler.send_response(reply.status)
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
