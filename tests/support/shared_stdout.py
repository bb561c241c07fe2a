"""A stdout shared by the emitter and the app, as on a dyno: the app's lines, ours, and a reader that lags."""

from __future__ import annotations

import os
import re
import time

# Another process on the same pipe, as the app is beside the emitter on a dyno's stdout: it writes whole lines of
# its own, one write(2) each, as fast as the pipe takes them, until it is stopped.
APP_WRITING = """
import os, sys
n = 0
while True:
    os.write(1, b"app: request %08d served in 12ms status=200 path=/orders/%08d\\n" % (n, n))
    n += 1
"""
L2MET_LINE = re.compile(r"(sample|count|measure)#sidekiq\.[A-Za-z0-9_.:-]+=[0-9.]+(ms|s)?"
                        r"( (sample|count|measure)#sidekiq\.[A-Za-z0-9_.:-]+=[0-9.]+(ms|s)?)*")  # job classes: A-Z
APP_LINE = r"app: request (\d{8}) served in 12ms status=200 path=/orders/\1"


def slow_reader(fd: int, got: list[bytes]) -> None:
    """Reads less than a poll at a time, with a pause between reads: the pipe stays full, as a log shipper that
    lags leaves it, and a large write goes in by parts, each taken as room is made."""
    while chunk := os.read(fd, 4096):
        got.append(chunk)
        time.sleep(0.001)
