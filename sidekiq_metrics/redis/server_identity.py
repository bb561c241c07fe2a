"""Which Redis server each shard reached, so that one Redis under two names (127.0.0.1 and localhost, one add-on
attached under two config vars) is never read as two shards, its jobs counted twice. Host text cannot tell; INFO
server's `run_id` (random, for each start of a server) can. Nor is a read replica of a shard's Redis read as another
shard: a replica has its own run_id, but shares its primary's replication id (INFO replication's `master_replid`).
Both are asked once a connection, in one round trip, after the read that opened it: at start, and after every
reconnect (a name may lead to another server then: DNS, a failover).

A Redis that refuses INFO (an ACL, INFO renamed away), or names no run_id, cannot be told apart: it is read as its own
shard, as before (the check of host, port and database at start still holds), and that is said once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from sidekiq_metrics.redis.resp import Connection, RedisError, ReplyError

_RUN_ID = re.compile(rb"^run_id:([0-9a-f]{40})\r?$", re.MULTILINE)
_REPLICATION_ID = re.compile(rb"^master_replid:([0-9a-f]{40})\r?$", re.MULTILINE)


class SameRedis(RedisError):
    """A shard reached the server and database that an earlier shard reads: it is not read."""


class ServerIdentities:
    """The server each shard's connection reached, learnt from its own thread, compared after every shard's read."""

    def __init__(self, log: Callable[[str], None]) -> None:
        # shard: (its connection's number, the run_id, the replication id)
        self._known: dict[str, tuple[int, bytes | None, bytes | None]] = {}
        self._said_unknown: set[str] = set()
        self.log = log

    def learn(self, shard: str, connection: Connection) -> None:
        """After a read: the server of the connection it used, asked only when that connection is new. Raises what
        asking raises (a lost connection: that shard's poll failed); a refusal is no error."""
        known = self._known.get(shard)
        if known is not None and known[0] == connection.opened:
            return
        reply, replication = connection.pipeline([["INFO", "server"], ["INFO", "replication"]])
        run_id, replid = _found(_RUN_ID, reply), _found(_REPLICATION_ID, replication)
        self._known[shard] = (connection.opened, run_id, replid)
        if run_id is None and shard not in self._said_unknown:
            self._said_unknown.add(shard)
            why = f"INFO server is refused ({reply.code})" if isinstance(reply, ReplyError) else \
                "INFO server names no run_id"
            self.log(f"cannot tell whether the shard {shard} is the same Redis as another: {why}; it is read as a "
                     "Redis of its own")

    def same_as(self, read: Sequence[tuple[str, int]]) -> dict[str, str]:
        """Of the shards read this poll, each (name, database) that reached the server, or a replica of the server,
        and the database of an earlier one: that earlier shard's name."""
        first: dict[tuple[bytes, int], str] = {}
        same: dict[str, str] = {}
        for name, db in read:
            _, run_id, replid = self._known.get(name, (0, None, None))
            ids = [(ident, db) for ident in (run_id, replid) if ident is not None]
            earlier = [first[key] for key in ids if key in first and first[key] != name]
            if earlier:
                same[name] = earlier[0]
            for key in ids:
                first.setdefault(key, name)
        return same


def _found(pattern: re.Pattern[bytes], reply: object) -> bytes | None:
    """An id INFO gives (all zeros: none), or None where it gives none or was refused."""
    found = pattern.search(reply) if isinstance(reply, bytes) else None
    return found[1] if found and found[1].strip(b"0") else None


def same_redis(shard: str, db: int) -> SameRedis:
    return SameRedis(f"it is the same Redis as the shard {shard!r} (one server by INFO's run_id, or a replica of it "
                     f"by its master_replid; database {db}, under two URLs): it is not read, or its jobs would be "
                     "counted twice; name each Redis once in SIDEKIQ_METRICS_SHARDS, and its primary, not a replica")
