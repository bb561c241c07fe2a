"""The health of the Redis under Sidekiq, from `INFO`: memory, clients, evictions, load.

`INFO` is a read any Redis (and Valkey, which Heroku Key-Value Store runs) answers, but an ACL may
refuse it and a managed Redis may rename it away; then these readings are left out, never the poll. An ACL
may also allow some sections and not others (`+info|clients`): only the refused section's are left out.
One section a command (`INFO memory`, `INFO clients`, `INFO stats`): Redis before 7 takes one at a
time, and the three are a few hundred bytes where a whole `INFO` is about 5 KB.
"""

from __future__ import annotations

from collections.abc import Sequence

from sidekiq_metrics.catalogue import (
    REDIS_CLIENTS,
    REDIS_EVICTED,
    REDIS_EVICTIONS,
    REDIS_MEMORY_MAX,
    REDIS_MEMORY_RATIO,
    REDIS_MEMORY_USED,
    REDIS_OPS,
    Metric,
)
from sidekiq_metrics.redis.resp import Command, Reply, ReplyError
from sidekiq_metrics.sidekiq.readings import RedisHealth

# Each section asked for, and the metrics that come from it alone.
SECTIONS: dict[str, tuple[Metric, ...]] = {"memory": (REDIS_MEMORY_USED, REDIS_MEMORY_MAX, REDIS_MEMORY_RATIO),
                                           "clients": (REDIS_CLIENTS,),
                                           "stats": (REDIS_EVICTED, REDIS_EVICTIONS, REDIS_OPS)}
COMMANDS: tuple[Command, ...] = tuple(["INFO", section] for section in SECTIONS)
SAFE_POLICY = "noeviction"  # the only maxmemory-policy under which Redis never drops one of Sidekiq's jobs


def parse(replies: Sequence[Reply]) -> RedisHealth | ReplyError:
    """The readings from the replies to COMMANDS. A section Redis refuses leaves out its own readings only (an ACL
    may allow `INFO clients` but not `INFO memory`): RedisHealth.refused names it. The error itself when every
    section was refused (INFO is: an ACL without it, a provider that renamed it away). A field that is missing or
    not a count is None: another server's INFO may differ, and a poll survives any text."""
    fields: dict[bytes, bytes] = {}
    refused: list[tuple[str, str]] = []
    for section, reply in zip(SECTIONS, replies, strict=False):  # (a reply missing: that section unread)
        if isinstance(reply, ReplyError):
            refused.append((section, reply.code[:20]))
        elif isinstance(reply, bytes):
            for line in reply.splitlines():
                name, colon, value = line.partition(b":")
                if colon and not name.startswith(b"#"):
                    fields[name.strip()] = value.strip()
    if refused and len(refused) == len(replies):
        return next(r for r in replies if isinstance(r, ReplyError))

    def count(name: bytes) -> int | None:
        value = fields.get(name, b"")
        return int(value) if value.isdigit() and len(value) <= 20 else None

    policy = fields.get(b"maxmemory_policy")
    return RedisHealth(count(b"used_memory"), count(b"maxmemory"),
                       policy.decode("ascii", "replace")[:40] if policy else None, count(b"connected_clients"),
                       count(b"evicted_keys"), count(b"instantaneous_ops_per_sec"), tuple(refused))


def refusal(health: RedisHealth) -> str | None:
    """What the sections Redis refused cost, for one line: `INFO memory (NOPERM): redis.memory.used, ... are left
    out`; None when none was."""
    if not health.refused:
        return None
    sections = " and ".join(section for section, _ in health.refused)
    codes = ", ".join(dict.fromkeys(code for _, code in health.refused))
    names = [metric.name for section, _ in health.refused for metric in SECTIONS[section]]
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    return f"INFO {sections} ({codes}): {listed} {'is' if len(names) == 1 else 'are'} left out"
