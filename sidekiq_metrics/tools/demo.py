"""`sidekiq-metrics demo`: a throwaway redis-server with jobs as Sidekiq 7 and 8 write them, and a few polls."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import redis

from sidekiq_metrics.config import load_settings
from sidekiq_metrics.wiring import build_poller


def seed(client: redis.Redis, now: float) -> None:
    """Queues as Sidekiq's client leaves them: SADD queues, LPUSH queue:<name> (newest on the left)."""
    jobs: dict[str, list[float]] = {
        # Sidekiq <= 7: epoch seconds as JSON floats.
        "default": [now - 42.5, now - 3.25],
        # Sidekiq 8: epoch milliseconds as JSON integers.
        "mailers": [int((now - 7.0) * 1000)],
        "low priority": [],
    }
    for queue, stamps in jobs.items():
        client.sadd("queues", queue)
        for i, stamp in enumerate(stamps):
            job = {"retry": True, "queue": queue, "class": "DemoJob", "args": [i], "jid": f"{i:024x}",
                   "created_at": stamp, "enqueued_at": stamp}
            client.lpush(f"queue:{queue}", json.dumps(job))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def run_demo(polls: int) -> int:
    server = shutil.which("redis-server")
    if not server:
        print("sidekiq-metrics: the demo needs redis-server (Debian/Ubuntu: apt-get install redis-server)",
              file=sys.stderr)
        return 1
    port = _free_port()
    with tempfile.TemporaryDirectory() as workdir:
        proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--dir", workdir],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"redis://127.0.0.1:{port}/0"
            client = redis.Redis.from_url(url)
            for _ in range(100):
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.05)
            seed(client, time.time())
            print(f"# redis-server on port {port} holds 3 Sidekiq queues; {polls} polls, 1 s apart:", flush=True)
            poller = build_poller(load_settings({"SIDEKIQ_METRICS_REDIS_URL": url, "SIDEKIQ_METRICS_INTERVAL": "1"}),
                            sys.stdout, sys.stderr)
            for i in range(polls):
                if i:
                    time.sleep(1)
                poller.poll()
        finally:
            proc.terminate()
            proc.wait(5)
    return 0
