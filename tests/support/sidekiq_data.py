"""Sidekiq-shaped data in Redis, the one way the tests write it; and real Sidekiq as the reference.

`push` and `seed` write what Sidekiq's client writes (SADD queues, LPUSH queue:<name>, so the
first job given is the oldest); `job` is a job as Sidekiq 7 serialises it. Where the exact bytes
matter (hostile payloads, Sidekiq 8's milliseconds), tests pass their own payload to `push`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping

import pytest
import redis

from support.commands import ROOT

SIDEKIQ_REF = ROOT / "tests" / "support" / "sidekiq_ref.rb"


_NOW = object()


def job(enqueued_at: object = _NOW, *, created_at: object = _NOW, queue: str = "default", **fields: object) -> str:
    """A job as Sidekiq's client writes it: compact JSON, `enqueued_at` last. A stamp is now unless given
    (`created_at`: the same as `enqueued_at`); None leaves it out. Sidekiq <= 7 writes float seconds,
    Sidekiq 8 integer milliseconds: pass either."""
    enqueued = time.time() if enqueued_at is _NOW else enqueued_at
    created = enqueued if created_at is _NOW else created_at
    payload: dict[str, object] = {"retry": True, "queue": queue, "class": "HardJob", "args": [], "jid": "ab" * 12}
    payload.update(fields)
    if created is not None:
        payload["created_at"] = created
    if enqueued is not None:
        payload["enqueued_at"] = enqueued
    return json.dumps(payload, separators=(",", ":"))


def push(r: redis.Redis, queue: str | bytes, *jobs: str | bytes) -> None:
    """As Sidekiq's client does: SADD queues, then LPUSH each job (so the first one given is the oldest)."""
    name = queue if isinstance(queue, bytes) else queue.encode()
    r.sadd("queues", name)
    for payload in jobs:
        r.lpush(b"queue:" + name, payload)


def busy_process(r: redis.Redis, dyno: str, job_class: str, running_for: float, work: str = "work") -> str:
    """A Sidekiq process on `dyno` running one job, its heartbeat and its work as Sidekiq 7+ write them
    (`work="workers"`: as Sidekiq 6.4.1 and earlier name that hash). tests/test_drain.py holds this to what
    real Sidekiq 6.4.1 and 8.1 write. Its identity."""
    identity = idle_process(r, dyno, "8.1.7" if work == "work" else "6.4.1")
    r.hset(identity, "busy", 1)
    payload = {"class": job_class, "queue": "default", "jid": "f" * 24, "args": []}
    r.hset(f"{identity}:{work}", "tid-1", json.dumps({"queue": "default", "payload": json.dumps(payload),
                                                      "run_at": int(time.time() - running_for)}))
    return identity


def idle_process(r: redis.Redis, dyno: str, version: str = "8.1.7") -> str:
    """A Sidekiq process on `dyno` running nothing, its heartbeat as Sidekiq writes it. Its identity."""
    identity = f"{dyno}:4:0123456789ab"
    r.sadd("processes", identity)
    r.hset(identity, mapping={"busy": 0, "concurrency": 5, "quiet": "false", "info": json.dumps(
        {"hostname": dyno, "concurrency": 5, "version": version})})
    return identity


def shut_down(r: redis.Redis, identity: str, work: str = "work") -> None:
    """What Sidekiq's Launcher#clear_heartbeat does when its process stops (6.4.1, 7.3, 8.1): it leaves the process
    set and its work record goes; its heartbeat hash is left to expire. tests/test_drain.py holds this to real
    Sidekiq 6.4.1 and 8.1 stopped by SIGTERM."""
    r.srem("processes", identity)
    r.unlink(f"{identity}:{work}")


def seed(r: redis.Redis, queues: Mapping[str, tuple[float, int]]) -> None:
    """Queues by name: (age in seconds of every job, how many jobs)."""
    now = time.time()
    for queue, (age, size) in queues.items():
        push(r, queue, *[job(now - age, queue=queue)] * size)


def sidekiq(url: str, commands: list[dict], namespace: str | None = None) -> dict:
    """Run commands through real Sidekiq (tests/support/sidekiq_ref.rb) and return its JSON answer."""
    if not shutil.which("ruby"):
        pytest.fail("ruby-sidekiq is not installed: run the README's test command (tests/run)")
    env = {**os.environ, "REDIS_URL": url}
    if namespace:
        env["SIDEKIQ_NAMESPACE"] = namespace
    out = subprocess.run(["ruby", str(SIDEKIQ_REF)], input=json.dumps(commands), env=env, capture_output=True,
                         text=True, timeout=60, check=True)
    return json.loads(out.stdout)


