"""stdout and stderr written from a thread of their own, so that a reader who stops reading never holds up a poll.

A log reader that stops reading (a pipe nobody drains, a stalled log shipper) fills the pipe, and a write
to it then blocks until the reader is back. The poll must not wait for that: the autoscaler decides on
each poll, the other outputs send each poll, and SIGTERM must end us within a second. So `run` hands
each write to a LineWriter, which only queues it; a thread writes. While the reader lags, at most LIMIT
bytes wait; past that whole writes (a poll's lines, a log line) are dropped, the oldest first: the newest
readings are the ones worth reading, and Heroku's log router drops lines as well when its reader lags
(error L10). Once the reader is back, one line says how many were dropped.

The thread writes with os.write on the file descriptor, not through the stream's buffer: a daemon thread
blocked inside a buffered write holds the buffer's lock, and the interpreter, flushing the stream on the
way out, would abort on it ("could not acquire lock ... at interpreter shutdown").
"""

from __future__ import annotations

import io
import os
import select
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Protocol

LIMIT = 1 << 20  # bytes that may wait: some 16 polls of 10,000 queues' l2met lines
# One lock per file that writers share (stdout and stderr on one pipe): held for a whole write (see LineWriter._put).
_WRITING: dict[tuple[int, int], threading.Lock] = {}
_WRITING_GUARD = threading.Lock()


def _lock_of(fd: int | None) -> threading.Lock:
    """The lock of the file behind `fd`, shared by every LineWriter on that same file (a pipe, a terminal, a file),
    and by no other: a writer blocked on a full stdout never holds up stderr going elsewhere."""
    try:
        status = os.fstat(fd) if fd is not None else None
    except OSError:
        status = None
    if status is None:
        return threading.Lock()
    with _WRITING_GUARD:
        return _WRITING.setdefault((status.st_dev, status.st_ino), threading.Lock())


class Stream(Protocol):
    """What the poll writes to: a text stream, or a LineWriter in front of one."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


class LineWriter:
    """A text stream whose `write` never blocks. A failure of the thread's write (the reader gone, a full
    disk) is raised by the next `write` or `flush`, as the stream itself would have raised it."""

    def __init__(self, stream: Stream, report: Callable[[str], None] | None = None, limit: int = LIMIT) -> None:
        """`report` says that lines were dropped (stdout's drops go to the log); without it the notice is
        written to the stream itself, ahead of the lines that follow."""
        self.stream = stream
        self.report = report
        self.limit = limit
        self.encoding = getattr(stream, "encoding", None) or "utf-8"
        try:
            stream.flush()
            self.fd: int | None = stream.fileno()  # type: ignore[attr-defined]
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            self.fd = None  # no descriptor (a StringIO, a closed stdout): written through the stream
        self._lock = _lock_of(self.fd)  # shared with the writers of the same file
        self._queue: deque[tuple[bytes, int]] = deque()  # (bytes, lines), the oldest on the left
        self._size = 0  # bytes in the queue
        self._dropped = 0  # lines dropped since the last notice
        self._writing = False
        self._failure: BaseException | None = None
        self._changed = threading.Condition()
        threading.Thread(target=self._run, name="line-writer", daemon=True).start()

    def write(self, text: str, /) -> int:
        self.flush()
        if not text:
            return 0
        data = text.encode(self.encoding, "backslashreplace")
        with self._changed:
            self._queue.append((data, text.count("\n") or 1))
            self._size += len(data)
            while self._size > self.limit and len(self._queue) > 1:
                old, lines = self._queue.popleft()
                self._size -= len(old)
                self._dropped += lines
            self._changed.notify_all()
        return len(text)

    def flush(self) -> None:
        """Never waits: raises what the last write met, if it failed."""
        if self._failure is not None:
            raise self._failure

    def drain(self, timeout: float | None) -> bool:
        """Wait at most `timeout` seconds (None: as long as it takes) for what is queued to be written; True if
        it was. A failure is raised by `flush`, not here."""
        with self._changed:
            return self._changed.wait_for(lambda: self._failure is not None or not (self._queue or self._writing),
                                          timeout)

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._queue))
                data, _ = self._queue.popleft()
                self._size -= len(data)
                dropped, self._dropped = self._dropped, 0
                self._writing = True
            try:
                if dropped:
                    notice = f"the log reader fell behind: {dropped} line(s) were dropped"
                    if self.report:
                        self.report(notice)
                    else:
                        data = f"sidekiq-metrics: {notice}\n".encode() + data
                self._put(data)
            except BaseException as exc:  # noqa: BLE001 - the poll raises it; this thread has no one to tell
                with self._changed:
                    self._failure = exc
                    self._writing = False
                    self._changed.notify_all()
                return
            with self._changed:
                self._writing = False
                self._changed.notify_all()

    def _put(self, data: bytes) -> None:
        # One write at a time on each file: stdout and stderr often share one pipe (foreman, `2>&1`, journald),
        # and a full pipe takes a large write in parts, between which the other stream's lines would land
        # inside a metric line. Held for a whole write, a chunk of whole lines stays whole.
        with self._lock:
            if self.fd is None:
                self.stream.write(data.decode(self.encoding))
                self.stream.flush()
                return
            for chunk in whole_lines(data, select.PIPE_BUF):
                view = memoryview(chunk)
                while view:
                    try:
                        view = view[os.write(self.fd, view):]
                    except BlockingIOError:  # a non-blocking pipe that is full: wait for room, as a blocking one does
                        select.select([], [self.fd], [], 1.0)


def whole_lines(data: bytes, size: int) -> Iterator[bytes]:
    """`data` in chunks of whole lines, each at most `size` bytes, except a line longer than that, which is a chunk
    of its own. The app shares our stdout: a pipe takes a write of at most PIPE_BUF bytes whole (or, full, waits
    for room for all of it), while a larger one goes in by parts as the reader makes room, and the app's lines land
    between them, inside ours. A line longer than PIPE_BUF cannot be kept whole; ours never are (l2met lines are at
    most 1,024 bytes), but a json output line of a large poll is."""
    start = 0
    while len(data) - start > size:
        end = data.rfind(b"\n", start, start + size) + 1
        if end == 0:  # no end of line within `size`: the whole of this long line
            end = data.find(b"\n", start + size) + 1 or len(data)
        yield data[start:end]
        start = end
    if start < len(data):
        yield data[start:]
