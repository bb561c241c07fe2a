"""A TCP proxy on a free loopback port in front of a real redis-server, with faults a test switches on and off.

Faults, on what Redis sends back (what a flaky network or middlebox does to a reply):
    "pass"        forward as it comes
    "trickle"     one byte every `trickle_delay` seconds
    "stall"       keep reading from Redis, forward nothing, close nothing (a half-open path)
    "reset"       forward `reset_after` bytes of the next reply, then reset the client's connection (RST)
And on both directions:
    "partition"   forward nothing either way, close nothing (a network cut: commands never reach Redis)
And `idle_close`: seconds of client silence after which the proxy closes the client's connection (FIN),
as a NAT or load balancer with an idle timeout does; `idle_forget`: seconds of client silence after which
the proxy forgets the connection without a word, as a NAT that dropped its state does: the client's next
bytes are answered with a reset (RST), and nothing tells it before it sends.

`commands` counts the commands each client connection sent (RESP arrays, pipelined or not), whether or not
they were forwarded, so a test can hold a waiting client to how often it asks.
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
        self.idle_forget: float | None = None
        self.accepted = 0
        self.commands: list[tuple[float, bytes]] = []  # (monotonic time, command name) of every command sent
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
            threading.Thread(target=self._to_client, args=(upstream, client, activity), daemon=True).start()
            if self.idle_close is not None or self.idle_forget is not None:
                threading.Thread(target=self._watch_idle, args=(client, upstream, activity), daemon=True).start()

    def commands_since(self, since: float, until: float = float("inf")) -> list[bytes]:
        return [name for at, name in list(self.commands) if since <= at < until]

    def _to_redis(self, client: socket.socket, upstream: socket.socket, activity: list[float]) -> None:
        counter = _CommandCounter()
        while True:
            try:
                data = client.recv(65536)
            except OSError:
                data = b""
            if not data:
                _quietly(upstream.close)
                return
            if activity[0] < 0:  # forgotten: the first bytes after that are answered with a reset
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                _quietly(client.close)
                return
            activity[0] = time.monotonic()
            now = time.monotonic()
            self.commands += [(now, name) for name in counter.feed(data)]
            if self.mode != "partition":
                _quietly(upstream.sendall, data)

    def _to_client(self, upstream: socket.socket, client: socket.socket, activity: list[float]) -> None:
        while True:
            try:
                data = upstream.recv(65536)
            except OSError:
                data = b""
            if not data:
                if activity[0] >= 0:  # (a forgotten connection's client is told nothing)
                    _quietly(client.close)
                return
            mode = self.mode
            if mode in ("stall", "partition"):
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

    def _watch_idle(self, client: socket.socket, upstream: socket.socket, activity: list[float]) -> None:
        while not self._closed:
            time.sleep(0.05)
            idle = time.monotonic() - activity[0]
            if self.idle_close is not None and idle > self.idle_close:
                _quietly(client.shutdown, socket.SHUT_RDWR)
                _quietly(client.close)
                return
            if self.idle_forget is not None and idle > self.idle_forget:
                activity[0] = -1.0  # nothing is sent to the client; its next bytes meet a reset
                _quietly(upstream.close)
                return


class _CommandCounter:
    """Splits a client's byte stream into RESP commands (arrays of bulk strings), as they arrive in pieces."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        names = []
        while (name := self._one()) is not None:
            names.append(name)
        return names

    def _one(self) -> bytes | None:
        buf, pos = self.buf, 0
        end = buf.find(b"\r\n")
        if end < 0 or buf[:1] != b"*":
            return None
        args, pos = int(buf[1:end]), end + 2
        first = b""
        for n in range(args):
            end = buf.find(b"\r\n", pos)
            if end < 0:
                return None
            size = int(buf[pos + 1:end])
            if len(buf) < end + 2 + size + 2:
                return None
            if n == 0:
                first = buf[end + 2:end + 2 + size].upper()
            pos = end + 2 + size + 2
        self.buf = buf[pos:]
        return first


def _quietly(call, *args) -> bool:  # noqa: ANN001
    try:
        call(*args)
        return True
    except OSError:
        return False
