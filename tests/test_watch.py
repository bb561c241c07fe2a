"""`sidekiq-metrics watch` in a real terminal (tmux), its screen read back; and without a terminal."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import pytest

from support.commands import console_script, spawn
from support.sidekiq_data import idle_process, seed


@pytest.fixture
def tmux():
    if not shutil.which("tmux"):
        pytest.fail("tmux is needed: run the README's test command (tests/run installs it)")
    name = f"watch{time.monotonic_ns()}"
    yield name
    subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def screen(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout


def wait_for(session: str, text: str, timeout: float = 8) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = screen(session)
        if text in shown:
            return shown
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared on:\n{screen(session)}")


def seed_queues(r) -> None:
    seed(r, {"fast": (0.2, 1), "slow": (120.0, 3), "middle": (8.0, 2), "empty": (0, 0)})


def test_live_screen_worst_first_resize_outage_and_ctrl_c(tmux, own_redis, tmp_path):
    seed_queues(own_redis.client())
    status = tmp_path / "status"
    command = (f"REDIS_URL={own_redis.url} {console_script()} watch --every 0.3 --threshold 60; "
               f"echo $? > {status}")
    subprocess.run(["tmux", "new-session", "-d", "-s", tmux, "-x", "100", "-y", "20", command], check=True)
    subprocess.run(["tmux", "set-option", "-t", tmux, "remain-on-exit", "on"], check=True)
    shown = wait_for(tmux, "QUEUE")
    rows = [line for line in shown.splitlines() if line[2:].split(" ")[0] in ("fast", "slow", "middle", "empty")]
    assert [row[2:].split(" ")[0] for row in rows] == ["slow", "middle", "fast", "empty"]  # worst latency first
    assert rows[0].startswith("! slow") and not rows[1].startswith("!")  # above the threshold: marked
    assert "enqueued 6" in shown and "last read" in shown
    time.sleep(1.0)
    assert any(ch in wait_for(tmux, "slow") for ch in "▂▃▄▅▆▇█")  # a trend has grown

    subprocess.run(["tmux", "resize-window", "-t", tmux, "-x", "50", "-y", "12"], check=True)
    time.sleep(0.8)
    assert all(len(line) <= 50 for line in screen(tmux).splitlines())

    own_redis.stop()
    stale = wait_for(tmux, "STALE since")
    assert "cannot connect to Redis" in stale or "no reply" in stale or "lost the connection" in stale
    own_redis.start()
    seed_queues(own_redis.client())
    deadline = time.monotonic() + 8
    while "STALE" in screen(tmux) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "STALE" not in screen(tmux)

    subprocess.run(["tmux", "send-keys", "-t", tmux, "C-c"], check=True)
    deadline = time.monotonic() + 5
    while not status.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status.read_text().strip() == "0"  # ended at once, with status 0
    assert "QUEUE" not in screen(tmux)  # the normal screen is back, the table gone


def test_without_a_terminal_it_prints_plain_tables(r, redis_server):
    seed_queues(r)
    r.sadd("paused", "middle")  # Sidekiq Pro's Queue#pause!
    identity = idle_process(r, "worker.1")
    r.hset(f"{identity}:work", "tid", json.dumps({"queue": "slow", "payload": json.dumps({"class": "SlowJob"}),
                                                  "run_at": int(time.time()) - 600}))
    proc = spawn("watch", "--every", "0.3", env={"REDIS_URL": redis_server.url})
    time.sleep(1.2)
    proc.terminate()
    out, _ = proc.communicate(timeout=5)
    assert proc.returncode == 0
    assert "\x1b" not in out  # no escape codes when stdout is not a terminal
    tables = [t for t in out.split("\n\n") if "QUEUE" in t]
    assert len(tables) >= 3
    rows = tables[-1].splitlines()
    assert rows[3].startswith("! slow ")  # above the default threshold of 30 s
    assert re.search(r" 60[0-9]s  ", rows[3])  # its job running for 600 s, in the RUNNING column
    assert rows[4].startswith("P middle ") and "paused 1" in rows[1]  # paused: its latency grows by design


def test_every_line_fits_a_narrow_terminal_with_paused_queues_and_the_running_column(r, redis_server):
    """Review of issue 34: in a 44-column terminal (a split tmux pane, a phone's SSH client) the totals line was no
    longer cut to the width once a queue was paused, and the RUNNING column made the heading 50 wide: each wrapped
    onto a second row, so a live screen drawn row by row scrolled."""
    seed_queues(r)
    r.sadd("paused", "middle")
    idle_process(r, "worker.1")
    proc = spawn("watch", "--every", "0.3", env={"REDIS_URL": redis_server.url, "COLUMNS": "44"})
    time.sleep(1.2)
    proc.terminate()
    out, _ = proc.communicate(timeout=5)
    tables = [t for t in out.split("\n\n") if "QUEUE" in t]
    assert tables and "\nP middle" in tables[-1], out
    assert [line for line in tables[-1].splitlines() if len(line) > 44] == []


def test_the_j_key_switches_to_job_classes_from_sidekiqs_execution_metrics(tmux, r, redis_server, reference_sidekiq):
    """Real Sidekiq 8.1's tracker writes the latest complete minute; `j` shows its classes, `j` again the queues."""
    import json
    import os

    from support.commands import ROOT

    at = (int(time.time() - 10) // 60 - 1) * 60 + 5  # inside the latest complete minute
    commands = [{"track": {"class": "ReportJob", "ms": [40] * 9, "failures": 1, "at": at}},
                {"track": {"class": "Billing::Invoice", "ms": [2000], "at": at}}]
    subprocess.run([*reference_sidekiq["8"], str(ROOT / "tests/support/metrics_ref.rb")], input=json.dumps(commands),
                   env={**os.environ, "REDIS_URL": redis_server.url}, check=True, capture_output=True, text=True)
    seed_queues(r)
    command = f"REDIS_URL={redis_server.url} {console_script()} watch --every 0.3"
    subprocess.run(["tmux", "new-session", "-d", "-s", tmux, "-x", "110", "-y", "20", command], check=True)
    assert "j: job classes" in wait_for(tmux, "QUEUE")
    subprocess.run(["tmux", "send-keys", "-t", tmux, "j"], check=True)
    shown = wait_for(tmux, "JOB CLASS")
    report = next(line for line in shown.splitlines() if "ReportJob" in line).split()
    assert report[1:] == ["10", "1", "0.040s", "0.045s"]  # runs a minute, failed, mean, p95 (bucket < 45 ms)
    assert "Billing::Invoice" in shown
    subprocess.run(["tmux", "send-keys", "-t", tmux, "j"], check=True)
    assert "slow" in wait_for(tmux, "QUEUE")
    subprocess.run(["tmux", "send-keys", "-t", tmux, "q"], check=True)
