"""LineWriter on real pipes: writes never wait for the reader, what waits is bounded, and what is dropped is said."""

from __future__ import annotations

import io
import os
import re
import select
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidekiq_metrics.outputs.line_writer import LineWriter, whole_lines
from support.commands import cli_env, console_script
from support.redis_server import wait_until
from support.shared_stdout import APP_LINE, APP_WRITING, L2MET_LINE, slow_reader
from support.sidekiq_data import seed


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
    collector = threading.Thread(target=lambda: got.append(read_all(reader)), daemon=True)
    collector.start()
    try:
        assert writer.drain(10)
    finally:  # else a failed drain leaves the reader waiting, and with it the end of the test run
        stream.close()
    collector.join(10)
    return got[0]


def test_writes_to_a_reader_that_stopped_never_wait_and_the_oldest_are_dropped():
    reader, stream = pipe_stream()
    said: list[str] = []
    writer = LineWriter(stream, report=said.append, limit=100_000)
    # First the pipe is full and the writer's thread waits on it, whatever the machine's speed: every drop below
    # then happens while the reader is away.
    writer.write("p" * 70_000 + "\n")
    while writer._queue:
        time.sleep(0.01)
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
    first, *lines = reader_comes_back(reader, stream, writer).splitlines()
    assert first == "p" * 70_000
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


def _lagging_reader(fd: int, got: list[bytes]) -> None:
    """Reads a little at a time, so the pipe is full most of the while, as a lagging log shipper leaves it."""
    while True:
        time.sleep(0.001)
        chunk = os.read(fd, 4096)
        if not chunk:
            return
        got.append(chunk)


@pytest.mark.parametrize("nonblocking", [False, True])
def test_stdout_and_stderr_on_one_pipe_never_tear_a_line(nonblocking):
    """Issue 25.12: each stream had its own writer thread, so with one pipe for both (foreman, `2>&1`, journald)
    and a lagging reader, a poll's chunk was split and stderr lines landed inside metric lines. Issue 25.13: a
    non-blocking pipe (EAGAIN) ended the emitter with exit 74; a full pipe is waited for."""
    reader, writer = os.pipe()
    if nonblocking:
        os.set_blocking(writer, False)
    out = open(writer, "w", encoding="utf-8", closefd=False)  # noqa: SIM115 - closed below
    err = open(writer, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    got: list[bytes] = []
    # A daemon, and the pipe closed whatever happens: a reader left waiting would hold the test run's exit.
    collector = threading.Thread(target=_lagging_reader, args=(reader, got), daemon=True)
    collector.start()
    try:
        lines, errors = LineWriter(out, limit=1 << 30), LineWriter(err, limit=1 << 30)
        poll = "".join(f"sample#sidekiq.queue_{n:05d}.size={n}\n" for n in range(2000))  # ~70 KB, 2,000 queues
        for k in range(20):
            lines.write(poll)
            for j in range(10):
                errors.write(f"sidekiq-metrics: otlp: cannot export ({k}.{j})\n")
        assert lines.drain(30) and errors.drain(30)
        lines.flush()
        errors.flush()  # nothing failed: EAGAIN is a full pipe, not an error
    finally:
        os.close(writer)
    collector.join(30)
    text = b"".join(got).decode()
    whole = re.compile(r"sample#sidekiq\.queue_\d{5}\.size=\d+|sidekiq-metrics: otlp: cannot export \(\d+\.\d\)")
    torn = [line for line in text.splitlines() if not whole.fullmatch(line)]
    assert torn == []
    assert text.count("sample#") == 20 * 2000 and text.count("cannot export") == 200


def test_a_stdout_nobody_reads_never_holds_up_stderr_on_another_pipe():
    """The lock that keeps lines whole on a shared pipe is the file's own: stdout blocked on a full pipe must not
    keep stderr, on a pipe of its own, from being written."""
    out_reader, out_stream = pipe_stream()
    err_reader, err_stream = pipe_stream()
    lines, errors = LineWriter(out_stream, limit=1 << 30), LineWriter(err_stream)
    lines.write("x" * (1 << 20) + "\n")  # fills the pipe: its writer blocks, holding stdout's lock
    time.sleep(0.2)
    errors.write("sidekiq-metrics: still said\n")
    assert errors.drain(5)
    err_stream.close()
    assert read_all(err_reader) == "sidekiq-metrics: still said\n"
    assert reader_comes_back(out_reader, out_stream, lines).startswith("x")


def test_a_poll_stays_whole_on_a_pipe_another_process_writes_to():
    """Issue 32.7: a poll of 400 queues (some 40 KB) went into the pipe in one write(2); over PIPE_BUF (4,096 bytes)
    that is not atomic, and the app's lines landed inside ours. Whole lines, at most PIPE_BUF a write, stay whole."""
    reader, writer = os.pipe()
    got: list[bytes] = []
    collector = threading.Thread(target=slow_reader, args=(reader, got), daemon=True)
    app = subprocess.Popen([sys.executable, "-c", APP_WRITING], stdout=writer, stdin=subprocess.DEVNULL)
    out = open(writer, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    collector.start()
    try:
        lines = LineWriter(out, limit=1 << 30)
        poll = "".join(f"sample#sidekiq.queue_{n:03d}.size={n} sample#sidekiq.queue_{n:03d}.latency={n}.125 "
                       f"sample#sidekiq.queue_{n:03d}.busy=0\n" for n in range(400))
        assert len(poll) > 10 * select.PIPE_BUF
        for _ in range(30):
            lines.write(poll)
        assert lines.drain(60)
        lines.flush()
    finally:
        app.kill()
        app.wait(10)
        out.close()
    collector.join(30)
    text = b"".join(got).decode()
    ours = re.compile(r"(sample#sidekiq\.queue_(\d{3})\.size=\d+ sample#sidekiq\.queue_\2\.latency=\d+\.125 "
                      r"sample#sidekiq\.queue_\2\.busy=0)")
    torn = [line for line in text.splitlines()
            if not (ours.fullmatch(line) or re.fullmatch(APP_LINE, line))]
    assert torn == [], f"{len(torn)} torn lines, e.g. {torn[:2]}"
    assert text.count("sample#") == 30 * 400 * 3
    assert text.count("app: request") > 1000  # the app did write meanwhile


@given(st.lists(st.binary(max_size=300).map(lambda b: b.replace(b"\n", b"")), max_size=40), st.booleans(),
       st.integers(1, 1000))
def test_whole_lines_cut_only_between_lines_and_never_above_the_size_but_for_a_longer_line(lines, ends, size):
    data = b"\n".join(lines) + (b"\n" if ends and lines else b"")
    chunks = list(whole_lines(data, size))
    assert b"".join(chunks) == data and all(chunks)
    for chunk in chunks[:-1]:
        assert chunk.endswith(b"\n")
    for chunk in chunks:
        assert len(chunk) <= size or chunk.count(b"\n") <= 1 and b"\n" not in chunk[:-1]


def test_the_emitters_lines_stay_whole_beside_the_apps_on_one_stdout(r, redis_server):
    """Issue 32.7 end to end: `sidekiq-metrics run` at 400 queues and an app writing its own lines share one pipe
    read by a slow reader, as on a dyno (about 150 torn lines in 8 s before). Every line is whole: ours l2met,
    the app's its own."""
    seed(r, {f"queue_{n:03d}_{'q' * 40}": (5.0, 1) for n in range(400)})
    reader, writer = os.pipe()
    got: list[bytes] = []
    collector = threading.Thread(target=slow_reader, args=(reader, got), daemon=True)
    collector.start()
    env = cli_env(REDIS_URL=redis_server.url, SIDEKIQ_METRICS_INTERVAL="0.2")
    emitter = subprocess.Popen([console_script(), "run"], env=env, stdout=writer, stdin=subprocess.DEVNULL)
    app = subprocess.Popen([sys.executable, "-c", APP_WRITING], stdout=writer, stdin=subprocess.DEVNULL)
    os.close(writer)

    def polls() -> int:
        return b"".join(got).count(b"sidekiq.metrics.up=1")

    try:
        assert wait_until(lambda: polls() >= 12, 60), polls()
    finally:
        emitter.terminate()
        app.kill()
        assert emitter.wait(5) == 0
        app.wait(5)
    collector.join(30)
    lines = b"".join(got).decode().splitlines()
    torn = [line for line in lines if not (L2MET_LINE.fullmatch(line) or re.fullmatch(APP_LINE, line))]
    assert torn == [], f"{len(torn)} torn lines of {len(lines)}, e.g. {torn[:2]}"
    assert sum(line.startswith("app: ") for line in lines) > 1000  # the app wrote meanwhile
