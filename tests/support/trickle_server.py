"""An HTTP server on loopback that reads each request whole, then answers one byte every `every` seconds.

Each byte comes well within any per-read timeout, so a client whose timeout is per socket call (as
http.client's is) waits for ever; only a deadline for the whole exchange ends it. Like a real slow
server it keeps reading requests on the same connection, and counts them.
"""

from __future__ import annotations

import socket
import threading

ANSWER = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n{"quantity":1}'


class TrickleServer:
    def __init__(self, every: float = 0.5, answer: bytes = ANSWER) -> None:
        self.every = every
        self.answer = answer
        self.requests = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._closed.set()
        self.listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = client.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(body) < length:
                    body += client.recv(65536)
                self.requests += 1
                for byte in self.answer:
                    if self._closed.wait(self.every):
                        return
                    client.sendall(bytes([byte]))
            except OSError:  # the client gave up: that is what the tests want
                return
