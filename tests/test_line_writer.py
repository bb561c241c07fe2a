"""LineWriter on real pipes: writes never wait for the reader, what waits is bounded, and what is dropped is said."""

from __future__ import annotations

import io
import os
import threading
import time

import pytest

from sidekiq_metrics.line_writer import LineWriter


def pipe_stream() -> tuple[int, io.TextIOWrapper]:
    reader, writer = os.pipe()
    return reader, open(writer, "w", encoding="utf-8")  # noqa: SIM115 - closed by the test


def read_all(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks).decode()


def reader_comes_back(reader: int, stream: io.TextIOWrapper, writer: LineWriter) -> str:
    """Read the pipe until the writer has written everything it holds; what was read."""
    got: list[str] = []
    collector = threading.Thread(target=lambda: got.append(read_all(reader)))
    collector.start()
    assert writer.drain(10)
    stream.close()
    collector.join(10)
    return got[0]


def test_writes_to_a_reader_that_stopped_never_wait_and_the_oldest_are_dropped():
    reader, stream = pipe_stream()
    said: list[str] = []
    writer = LineWriter(stream, report=said.append, limit=100_000)
    batch = "".join(f"poll={{n}} line={i:03d} {'x' * 70}\n" for i in range(100))  # some 9 KB a poll
    done = threading.Event()

    def write_polls() -> None:
        for n in range(200):  # 1.8 MB: far more than the 64 KB pipe and the 100 KB that may wait
            writer.write(batch.replace("{n}", f"{n:03d}"))
        done.set()

    threading.Thread(target=write_polls, daemon=True).start()
    assert done.wait(10), "a write waited for the reader"
    assert writer._size <= 100_000
    assert said == []  # nothing said until the reader is back
    assert writer.drain(0.2) is False  # the pipe is full: nothing moves
    lines = reader_comes_back(reader, stream, writer).splitlines()
    polls = sorted({int(line.split(" ")[0][5:]) for line in lines})
    assert polls[-11:] == list(range(189, 200))  # the newest were kept: the 100 KB that may wait
    assert len(lines) % 100 == 0 and all(len(line) == 88 for line in lines)  # whole polls, whole lines
    assert said == [f"the log reader fell behind: {200 * 100 - len(lines)} line(s) were dropped"]


def test_without_a_report_the_notice_goes_ahead_of_the_next_lines():
    reader, stream = pipe_stream()
    writer = LineWriter(stream, limit=10)
    writer.write("a" * 70_000 + "\n")  # more than the pipe holds: the writer waits on it
    while writer._queue:  # until the thread has taken it
        time.sleep(0.01)
    writer.write("second\n")
    writer.write("third\n")  # past the limit: "second" is dropped
    assert reader_comes_back(reader, stream, writer).splitlines()[1:] == [
        "sidekiq-metrics: the log reader fell behind: 1 line(s) were dropped", "third"]


def test_a_reader_gone_is_raised_by_the_next_write_as_the_stream_would_raise_it():
    reader, stream = pipe_stream()
    writer = LineWriter(stream)
    os.close(reader)
    writer.write("lost\n")
    writer.drain(10)
    with pytest.raises(BrokenPipeError):
        writer.flush()
    with pytest.raises(BrokenPipeError):
        writer.write("more\n")
    stream.close()


def test_a_stream_without_a_descriptor_is_written_through():
    stream = io.StringIO()
    writer = LineWriter(stream)
    writer.write("a line é\n")
    assert writer.drain(10)
    assert stream.getvalue() == "a line é\n"
