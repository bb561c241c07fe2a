"""One deadline for a whole HTTP exchange.

http.client's timeout applies to each socket call, so a server that trickles its answer (a byte every
few seconds) holds a request for ever: the otlp sender then never sent another poll, and autoscaling
never asked the Platform API again, without a line. A Deadline gives the exchange one limit: past it
the socket is shut down, the blocked call returns or fails, and `expired` says why.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType


class Deadline:
    """`with Deadline(lambda: connection.sock, seconds) as deadline:` around connect, request and reading the
    reply. `socket_of` gives the exchange's socket at the moment the deadline passes (None before connect)."""

    def __init__(self, socket_of: Callable[[], socket.socket | None], seconds: float) -> None:
        self.socket_of = socket_of
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._timer.cancel()

    def left(self) -> float:
        """Seconds until the deadline (for a connect made inside it); raises TimeoutError once it has passed."""
        left = self.at - time.monotonic()
        if left <= 0 or self.expired:
            self.expired = True
            raise TimeoutError
        return left

    def _expire(self) -> None:
        self.expired = True
        sock = self.socket_of()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # closed meanwhile: the exchange is over anyway
                pass
