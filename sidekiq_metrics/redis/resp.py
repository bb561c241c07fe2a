"""A small Redis client: one connection, pipelined commands, RESP2 replies. Standard library only.

Why not redis-py for the emitter: importing it loads asyncio, cluster and observability
modules, 30 MB of RSS before the first poll, on a web dyno that pays for every MB. The
emitter needs only a handful of read commands, pipelined; this module speaks them over
socket and ssl in a few MB. (redis-py stays for `demo`, which writes sample data.)

Semantics the emitter relies on:
- nothing is sent until `pipeline` is called; a lost connection is reopened on the next call, once;
- a connection that Redis closed while we were away (its idle `timeout`, a restart) is noticed
  before anything is sent on it, and a new one opened in its place: no command is ever sent twice;
- TCP keepalive is on, so a connection a middlebox dropped silently is noticed too;
- every call has a deadline, `timeout` seconds (or the one `within` sets for several calls), that
  holds for the whole exchange, not per socket read: a server that trickles its reply a byte at a
  time fails the call on time. A timeout or a broken connection closes the socket (a half-read
  reply stream is never reused);
- an error reply of one command is returned in its place, as a ReplyError; it does not
  disturb the other replies.

It knows RESP, sockets, TLS and deadlines; nothing of Sidekiq, nor of what a caller expects to read.
"""

from __future__ import annotations

import select
import socket
import ssl
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TypeAlias

from sidekiq_metrics.redis.resolver import RESOLVER, Address
from sidekiq_metrics.redis.target import RedisTarget

Command = Sequence[bytes | str | int]
Reply: TypeAlias = "bytes | int | None | list[Reply] | ReplyError | TooLarge"


class RedisError(Exception):
    """Redis could not be read. The message is safe to print: it never holds a credential."""


class ConnectionFailed(RedisError):
    pass


class ReplyError(RedisError):
    """An error reply, e.g. `WRONGTYPE ...`, `NOSCRIPT ...`, `LOADING ...`."""

    @property
    def code(self) -> str:
        return str(self).split(" ", 1)[0]


class TooLarge:
    """In place of a bulk reply longer than the call's `max_bulk`: its bytes were read and dropped as
    they came, never held (a 100 MB job read whole cost 430 MB of RSS), but for its first and last
    KEPT bytes (a Sidekiq job ends with its enqueued_at)."""

    KEPT = 256
    __slots__ = ("size", "head", "tail")

    def __init__(self, size: int, head: bytes, tail: bytes) -> None:
        self.size, self.head, self.tail = size, head, tail

    def __repr__(self) -> str:
        return f"TooLarge({self.size})"


class Connection:
    def __init__(self, target: RedisTarget, *, timeout: float, tls_verify: bool = False) -> None:
        self.target = target
        self.timeout = timeout
        self.tls_verify = tls_verify
        self._sock: socket.socket | None = None
        self._buf = bytearray()
        self._pos = 0
        self._deadline: float | None = None  # time.monotonic() by which the calls under way must be done
        self._max_bulk: int | None = None  # the call's max_bulk
        self.received = 0  # bytes Redis has sent us, for benchmarks and tests
        self.opened = 0  # connections opened and logged in so far: a caller can tell a new one (a new server?)

    @property
    def where(self) -> str:
        t = self.target
        return t.unix_path or f"{t.host}:{t.port}"

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None
        self._buf.clear()
        self._pos = 0

    @contextmanager
    def within(self, seconds: float) -> Iterator[None]:
        """Every call made inside, connecting included, is done within `seconds` of now in all (e.g. one
        poll's calls), or fails with ConnectionFailed."""
        outer = self._deadline
        self._deadline = time.monotonic() + seconds if outer is None else min(outer, time.monotonic() + seconds)
        try:
            yield
        finally:
            self._deadline = outer

    def _time_left(self) -> float:
        """Seconds until the deadline; raises TimeoutError when it has passed."""
        left = self._deadline - time.monotonic() if self._deadline is not None else self.timeout
        if left <= 0:
            raise TimeoutError
        return min(left, self.timeout)

    def pipeline(self, commands: Sequence[Command]) -> list[Reply]:
        """Send every command at once, then read one reply per command."""
        return list(self.replies(commands))

    def replies(self, commands: Sequence[Command], *, max_bulk: int | None = None) -> Iterator[Reply]:
        """Like pipeline, but each reply is handed over as soon as it is read, so the caller's work
        on one reply overlaps Redis's work on the next. `max_bulk`: a bulk reply (not inside an array)
        longer than this is dropped as it arrives, TooLarge in its place."""
        if not commands:
            return
        with self.within(self.timeout):  # a call of its own, or part of the caller's `within`
            self._max_bulk = max_bulk
            try:
                yield from self._exchange(commands)
            finally:
                self._max_bulk = None

    def _exchange(self, commands: Sequence[Command]) -> Iterator[Reply]:
        if self._sock is not None and self._closed_by_peer(self._sock):
            self.close()
        sock = self._sock or self._connect()
        try:
            sock.settimeout(self._time_left())
            sock.sendall(encode_commands(commands))
            for _ in range(len(commands)):
                yield self._read_reply()
        except BaseException as exc:
            self.close()  # whatever happened, the reply stream is no longer in step
            if isinstance(exc, socket.timeout):
                raise ConnectionFailed(f"no reply from Redis at {self.where} within {self.timeout:g}s") from None
            if isinstance(exc, OSError):
                raise ConnectionFailed(f"lost the connection to Redis at {self.where}: {_reason(exc)}") from None
            if isinstance(exc, ValueError):  # a length or an integer that is not one: not Redis speaking
                raise ConnectionFailed(f"unexpected reply from Redis at {self.where}: not RESP") from None
            raise

    def _closed_by_peer(self, sock: socket.socket) -> bool:
        """True when the connection we are about to reuse cannot serve a command: Redis closed it (end
        of file) or bytes came that nobody asked for (the stream is out of step). Checking costs no
        round trip: a poll(2) with no wait, and a read only when it says there is something. Under
        TLS that something may be the protocol's own records (TLS 1.3 session tickets come after the
        handshake, sometimes after our last read): they are consumed, and the connection kept."""
        if self._pos < len(self._buf):
            return True
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return True
        if not readable and not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
            return False
        try:
            sock.setblocking(False)
            sock.recv(1)
        except (ssl.SSLWantReadError, BlockingIOError):
            return False  # TLS records of its own, no data for us: the connection is fine
        except OSError:
            return True
        return True  # b"": closed; a byte: out of step. Either way, a new connection.

    def _connect(self) -> socket.socket:
        """A new connection, logged in and on the URL's database, as self._sock."""
        t = self.target
        try:
            if t.unix_path:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self._time_left())
                sock.connect(t.unix_path)
            else:
                host = t.host or "localhost"  # (config refuses a URL without a host)
                addresses = RESOLVER.lookup(host, t.port, wait=self._time_left())
                sock = open_tcp(addresses, self._time_left())
            if t.tls:
                sock.settimeout(self._time_left())
                sock = self._tls_context().wrap_socket(sock, server_hostname=t.host)
        except ssl.SSLCertVerificationError as exc:
            raise ConnectionFailed(f"the TLS certificate of {self.where} was refused ({exc.verify_message}); "
                                   "Heroku's Redis certificates are self-signed: to encrypt without verifying, "
                                   "unset SIDEKIQ_METRICS_TLS_VERIFY and drop ?ssl_cert_reqs= from the URL") from None
        except TimeoutError:
            raise ConnectionFailed(f"cannot connect to Redis at {self.where}: timed out "
                                   f"after {self.timeout:g}s") from None
        except OSError as exc:
            raise ConnectionFailed(f"cannot connect to Redis at {self.where}: {_reason(exc)}") from None
        self._sock = sock
        hello: list[Command] = []
        if t.password:
            hello.append(["AUTH", t.username, t.password] if t.username else ["AUTH", t.password])
        if t.db:
            hello.append(["SELECT", t.db])
        for command, reply in zip(hello, self.pipeline(hello), strict=True):
            if isinstance(reply, ReplyError):
                self.close()
                if command[0] == "AUTH":
                    # Never Redis's text: a server that does not know AUTH echoes its arguments, the
                    # password among them ("ERR unknown command 'AUTH', with args beginning with: ...").
                    code = reply.code if reply.code.isalpha() and reply.code.isupper() else "ERR"
                    raise ConnectionFailed(f"Redis at {self.where} refused the login ({code}): check the "
                                           "user name and password in the Redis URL")
                raise ConnectionFailed(f"Redis at {self.where} refused the connection: {reply}")
        self.opened += 1
        return sock

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    # Reading: a buffer we parse in place, refilled from the socket as needed.

    def _fill(self) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        if self._sock is None:  # closed under us (a signal handler's close, say)
            raise ConnectionResetError("the connection was closed")
        self._sock.settimeout(self._time_left())
        chunk = self._sock.recv(1 << 16)
        if not chunk:
            raise ConnectionResetError("Redis closed the connection")
        self.received += len(chunk)
        self._buf += chunk

    def _line(self) -> bytes:
        while True:
            end = self._buf.find(b"\r\n", self._pos)
            if end >= 0:
                line = bytes(self._buf[self._pos:end])
                self._pos = end + 2
                return line
            self._fill()

    def _read_reply(self) -> Reply:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            if self._max_bulk is not None and n > self._max_bulk:
                head, tail = self._drop(n)
                self._drop(2)
                return TooLarge(n, head, tail)
            while len(self._buf) - self._pos < n + 2:
                self._fill()
            data = bytes(self._buf[self._pos:self._pos + n])
            self._pos += n + 2
            return data
        if kind == b":":
            return int(rest)
        if kind == b"+":
            return rest
        if kind == b"-":
            return ReplyError(rest.decode("utf-8", "replace"))
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else self._read_array(n)
        raise OSError(f"unexpected reply from Redis: {line[:40]!r}")

    def _drop(self, count: int) -> tuple[bytes, bytes]:
        """Consume `count` bytes of the stream, keeping only its first and last TooLarge.KEPT."""
        kept = TooLarge.KEPT
        head, tail = b"", b""
        while True:
            take = min(len(self._buf) - self._pos, count)
            head += bytes(self._buf[self._pos:self._pos + min(take, kept - len(head))])
            tail = (tail + bytes(self._buf[max(self._pos, self._pos + take - kept):self._pos + take]))[-kept:]
            self._pos += take
            count -= take
            if not count:
                return head, tail
            self._buf.clear()
            self._pos = 0
            self._fill()

    def _read_array(self, n: int) -> list[Reply]:
        """n replies; bulk strings (SMEMBERS of 10,000 queue names) without a call each."""
        out: list[Reply] = []
        buf = self._buf
        while len(out) < n:
            pos = self._pos
            if buf[pos:pos + 1] != b"$":
                if pos >= len(buf):
                    self._fill()
                else:
                    out.append(self._read_reply())
                continue
            end = buf.find(b"\r\n", pos)
            if end < 0:
                self._fill()
                continue
            size = int(buf[pos + 1:end])
            if size < 0:
                out.append(None)
                self._pos = end + 2
                continue
            stop = end + 2 + size
            if len(buf) < stop + 2:
                self._fill()
                continue
            out.append(bytes(buf[end + 2:stop]))
            self._pos = stop + 2
        return out


def open_tcp(addresses: list[Address], timeout: float) -> socket.socket:
    """The first of the addresses that accepts a connection (as socket.create_connection, without its
    name lookup: that is the resolver's, which never makes us wait past our timeout)."""
    error: OSError = OSError("no address")
    for family, sockaddr in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _keepalive(sock)
        return sock
    raise error


# Probes after 60 s of silence, every 15 s, 4 unanswered: a dead peer is found in about two minutes
# (the next poll then fails fast and reconnects), and a live one costs a few bytes a minute.
KEEPALIVE_OPTIONS = (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 15), ("TCP_KEEPCNT", 4))


def _keepalive(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in KEEPALIVE_OPTIONS:
        if hasattr(socket, name):  # Linux has all three; elsewhere the system's defaults apply
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


def encode_commands(commands: Sequence[Command]) -> bytes:
    return b"".join(map(encode_command, commands))


def encode_command(command: Command) -> bytes:
    args = [arg if isinstance(arg, bytes) else str(arg).encode() for arg in command]
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def refuses_scripts(error: ReplyError) -> bool:
    """Redis will not run our script at any moment: no permission (an ACL user without @scripting) or
    no such command (scripting renamed away by the provider). Any other error (NOAUTH or "max number of
    clients reached" on a fresh connection, LOADING, OOM, NOSCRIPT after a SCRIPT FLUSH, ...) fails that
    poll only: giving the script up for it would read whole jobs for the life of the process."""
    return error.code == "NOPERM" or (error.code == "ERR" and "unknown command" in str(error).lower())
