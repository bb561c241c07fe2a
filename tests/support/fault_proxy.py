"""A TCP proxy on a free loopback port in front of a real redis-server, with faults a test switches on and off.

Faults, on what Redis sends back (what a flaky network or middlebox does to a reply):
    "pass"        forward as it comes
    "trickle"     one byte every `trickle_delay` seconds
    "stall"       keep reading from Redis, forward nothing, close nothing (a half-open path)
    "reset"       forward `reset_after` bytes of the next reply, then reset the client's connection (RST)
And `idle_close`: seconds of client silence after which the proxy closes the client's connection (FIN),
as a NAT or load balancer with an idle timeout does.
"""

from __future__ import annotations

import socket
import struct
import threading
import time


class FaultProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.mode = "pass"
        self.trickle_delay = 0.05
        self.reset_after = 10
        self.idle_close: float | None = None
        self.accepted = 0
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        self._open: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        for sock in self._open:
            _quietly(sock.close)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:  # Redis is down: the client's connection ends at once, as one to a dead port would
                _quietly(client.close)
                continue
            self._open += [client, upstream]
            activity = [time.monotonic()]
            threading.Thread(target=self._to_redis, args=(client, upstream, activity), daemon=True).start()
            threading.Thread(target=self._to_client, args=(upstream, client), daemon=True).start()
            if self.idle_close is not None:
                threading.Thread(target=self._watch_idle, args=(client, activity), daemon=True).start()

    def _to_redis(self, client: socket.socket, upstream: socket.socket, activity: list[float]) -> None:
        while True:
            try:
                data = client.recv(65536)
            except OSError:
                data = b""
            if not data:
                _quietly(upstream.close)
                return
            activity[0] = time.monotonic()
            _quietly(upstream.sendall, data)

    def _to_client(self, upstream: socket.socket, client: socket.socket) -> None:
        while True:
            try:
                data = upstream.recv(65536)
            except OSError:
                data = b""
            if not data:
                _quietly(client.close)
                return
            mode = self.mode
            if mode == "stall":
                continue
            if mode == "trickle":
                for i in range(len(data)):
                    if _quietly(client.sendall, data[i:i + 1]) is False:
                        return
                    time.sleep(self.trickle_delay)
                continue
            if mode == "reset":
                _quietly(client.sendall, data[:self.reset_after])
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                _quietly(client.close)
                _quietly(upstream.close)
                return
            if _quietly(client.sendall, data) is False:
                return

    def _watch_idle(self, client: socket.socket, activity: list[float]) -> None:
        while not self._closed:
            time.sleep(0.05)
            if time.monotonic() - activity[0] > self.idle_close:  # type: ignore[operator]
                _quietly(client.shutdown, socket.SHUT_RDWR)
                _quietly(client.close)
                return


def _quietly(call, *args) -> bool:  # noqa: ANN001
    try:
        call(*args)
        return True
    except OSError:
        return False
