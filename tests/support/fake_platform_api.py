"""A Heroku Platform API stand-in on loopback: the two formation endpoints, as documented.

    GET   /apps/{app}/formation/{type}
    PATCH /apps/{app}/formation/{type}   {"quantity": n}

It checks what Heroku checks (a bearer token, the version-3 Accept header, the app and type exist)
and answers with Heroku's error bodies. Tests read `requests` and may queue scripted answers
(status, headers, body) that are given before any normal one (or to PATCHes only), or make every answer slow. `on_scale`
(type, old, new) is called after a PATCH changes a quantity: a test stops or starts its dynos there.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple

ACCEPT = "application/vnd.heroku+json; version=3"
_PATH = re.compile(r"/apps/([^/]+)/formation/([^/]+)")


class Request(NamedTuple):
    at: float  # time.monotonic()
    method: str
    path: str
    quantity: int | None  # the PATCH body's


class FakePlatformApi:
    def __init__(self, app: str = "shop", token: str = "tok-3f9a2c", formation: dict[str, int] | None = None) -> None:
        self.app = app
        self.token = token
        self.formation = dict(formation or {"worker": 1})
        self.requests: list[Request] = []
        self.scripted: list[tuple[int, dict[str, str], dict]] = []
        self.scripted_patches: list[tuple[int, dict[str, str], dict]] = []  # given to PATCHes only, first
        self.delay = 0.0
        self.on_scale: Callable[[str, int, int], None] | None = None
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                api._handle(self, "GET")

            def do_PATCH(self) -> None:  # noqa: N802
                api._handle(self, "PATCH")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def patches(self) -> list[int]:
        return [r.quantity for r in self.requests if r.method == "PATCH" and r.quantity is not None]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        quantity = None
        if method == "PATCH":
            try:
                quantity = json.loads(body)["quantity"]
            except (ValueError, KeyError, TypeError):
                quantity = None
        with self._lock:
            self.requests.append(Request(time.monotonic(), method, handler.path, quantity))
            scripted = self.scripted.pop(0) if self.scripted else None
            if scripted is None and method == "PATCH" and self.scripted_patches:
                scripted = self.scripted_patches.pop(0)
        if self.delay:
            time.sleep(self.delay)
        if scripted:
            return _answer(handler, *scripted)
        if handler.headers.get("Authorization") != f"Bearer {self.token}":
            return _answer(handler, 401, {}, {"id": "unauthorized", "message": "Invalid credentials provided."})
        if handler.headers.get("Accept") != ACCEPT:
            return _answer(handler, 400, {}, {"id": "bad_request", "message": "Expected version=3 in Accept."})
        match = _PATH.fullmatch(handler.path)
        if not match or match[1] != self.app:
            return _answer(handler, 404, {}, {"id": "not_found", "message": "Couldn't find that app."})
        process_type = match[2]
        if process_type not in self.formation:
            return _answer(handler, 404, {}, {"id": "not_found", "message": "Couldn't find that formation."})
        if method == "PATCH":
            if not isinstance(quantity, int) or handler.headers.get("Content-Type") != "application/json":
                return _answer(handler, 422, {}, {"id": "invalid_params", "message": "Invalid quantity."})
            old, self.formation[process_type] = self.formation[process_type], quantity
            if self.on_scale and old != quantity:
                self.on_scale(process_type, old, quantity)
        return _answer(handler, 200, {}, {"type": process_type, "quantity": self.formation[process_type],
                                          "size": "Standard-1X", "command": "bundle exec sidekiq"})


def _answer(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: dict) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)
