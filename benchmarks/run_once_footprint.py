"""Peak RSS and wall time of `sidekiq-metrics run --once` for two source trees, side by side in one run.

    .venv/bin/python benchmarks/run_once_footprint.py BEFORE_DIR AFTER_DIR [RUNS]

Each tree is a checkout of the package (e.g. `git archive <commit> | tar -x -C /tmp/before`), run with this
interpreter and PYTHONPATH set to it, against a real redis-server on a free loopback port holding 50 queues of one
Sidekiq job each. The runs alternate between the trees (so a busy moment of the machine costs both alike); the
medians of RUNS runs each (default 11) are printed: peak RSS from the kernel (ru_maxrss of the child), wall time
from start to exit.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main(before: str, after: str, runs: int) -> None:
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() == b"PONG":
                break
            time.sleep(0.05)
        commands = []
        for n in range(50):
            job = json.dumps({"class": "HardJob", "queue": f"q{n}", "jid": f"{n:024x}", "enqueued_at": time.time()},
                             separators=(",", ":"))
            commands += [["SADD", "queues", f"q{n}"], ["LPUSH", f"queue:q{n}", job]]
        for command in commands:
            subprocess.run(["redis-cli", "-p", str(port), *command], check=True, stdout=subprocess.DEVNULL)
        results: dict[str, list[tuple[int, float]]] = {before: [], after: []}
        for _ in range(runs):
            for tree in (before, after):
                env = {**os.environ, "PYTHONPATH": tree, "REDIS_URL": f"redis://127.0.0.1:{port}/0"}
                started = time.perf_counter()
                child = subprocess.Popen([sys.executable, "-m", "sidekiq_metrics", "run", "--once"], env=env,
                                         stdout=subprocess.DEVNULL, cwd=tree)
                _, status, usage = os.wait4(child.pid, 0)
                if status:
                    raise SystemExit(f"run --once failed in {tree} (status {status})")
                results[tree].append((usage.ru_maxrss, time.perf_counter() - started))
    finally:
        server.terminate()
        server.wait(5)
    for tree, measured in results.items():
        print(f"{tree}: median peak RSS {statistics.median(r for r, _ in measured):,.0f} KB, median wall "
              f"{1000 * statistics.median(t for _, t in measured):.1f} ms ({len(measured)} runs)")


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) == 4 else 11)
