"""The health of the Redis under Sidekiq, from `INFO`: memory, clients, evictions, load.

`INFO` is a read any Redis (and Valkey, which Heroku Key-Value Store runs) answers, but an ACL may
refuse it and a managed Redis may rename it away; then these readings are left out, never the poll.
One section a command (`INFO memory`, `INFO clients`, `INFO stats`): Redis before 7 takes one at a
time, and the three are a few hundred bytes where a whole `INFO` is about 5 KB.
"""

from __future__ import annotations

from collections.abc import Sequence

from sidekiq_metrics.readings import RedisHealth
from sidekiq_metrics.resp import Command, Reply, ReplyError

COMMANDS: tuple[Command, ...] = (["INFO", "memory"], ["INFO", "clients"], ["INFO", "stats"])
SAFE_POLICY = "noeviction"  # the only maxmemory-policy under which Redis never drops one of Sidekiq's jobs


def parse(replies: Sequence[Reply]) -> RedisHealth | ReplyError:
    """The readings from the replies to COMMANDS, or the error of the first that was refused. A field that is
    missing or not a count is None: another server's INFO may differ, and a poll survives any text."""
    fields: dict[bytes, bytes] = {}
    for reply in replies:
        if isinstance(reply, ReplyError):
            return reply
        if isinstance(reply, bytes):
            for line in reply.splitlines():
                name, colon, value = line.partition(b":")
                if colon and not name.startswith(b"#"):
                    fields[name.strip()] = value.strip()

    def count(name: bytes) -> int | None:
        value = fields.get(name, b"")
        return int(value) if value.isdigit() and len(value) <= 20 else None

    policy = fields.get(b"maxmemory_policy")
    return RedisHealth(count(b"used_memory"), count(b"maxmemory"),
                       policy.decode("ascii", "replace")[:40] if policy else None, count(b"connected_clients"),
                       count(b"evicted_keys"), count(b"instantaneous_ops_per_sec"))
