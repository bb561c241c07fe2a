"""The loop's section of the settings: how often it polls, and whether only while elected (config.py assembles it)."""

from __future__ import annotations

import math

from sidekiq_metrics.errors import ConfigError
from sidekiq_metrics.parsing import MAX_SECONDS, NUMBER, parse_bool, quote
from sidekiq_metrics.setting import Setting

DEFAULT_INTERVAL = 30.0
MAX_INTERVAL = MAX_SECONDS


def parse_interval(raw: str, label: str) -> float:
    if NUMBER.fullmatch(raw):
        value = float(raw)
        if 0 < value <= MAX_INTERVAL and math.isfinite(value):
            return value
    raise ConfigError(label, f"must be a number of seconds above 0 and at most {MAX_INTERVAL:.0f}, "
                             f"e.g. 30, got {quote(raw)}")


# The loop's section: how often it polls, and whether only while elected.
LOOP_SETTINGS = (
    Setting("interval", ("SIDEKIQ_METRICS_INTERVAL",), DEFAULT_INTERVAL,
            f"seconds between polls; any number above 0, at most {MAX_INTERVAL:.0f} (below about 0.05, half an "
            "interval leaves Redis too little time to answer: polls fail, and a lease changes hands)", parse_interval,
            flag="--interval"),
    Setting("lease", ("SIDEKIQ_METRICS_LEASE",), False,
            "poll only while holding a lease in Redis (`sidekiq-metrics:lease`), so that of several emitters one "
            "is active and another takes over within two intervals when it stops; on by itself in the Cloud "
            "Native Buildpack's process and `sidecar`, and with SIDEKIQ_METRICS_DYNO naming a process type",
            parse_bool, flag="--lease"),
)
