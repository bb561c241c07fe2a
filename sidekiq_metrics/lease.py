"""A Redis lease: a key of ours that one owner holds for a while, taken when free, renewed while held.

Two things use it: the autoscaler's lock (one change per cool-down across emitters) and the election
of the one active emitter where several run at once (Fir's dynos, or every web dyno on Cedar with
SIDEKIQ_METRICS_DYNO=web). Its keys begin `sidekiq-metrics:`, which no Sidekiq key does; they are the
only keys we ever write.

Compare-and-set, so that no two owners ever both hold it: one script takes the key when it is free or
already ours (restarting its TTL), another deletes it only when it is ours. Where Redis refuses
scripts, SET NX and a GET in one pipeline take it (our own is recognised, its TTL not restarted), and
release is left to the TTL.
"""

from __future__ import annotations

from sidekiq_metrics.resp import Connection, RedisError, ReplyError
from sidekiq_metrics.sidekiq_reader import refuses_scripts

TAKE = ("local holder = redis.call('GET', KEYS[1]) "
        "if holder == false or holder == ARGV[1] then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) "
        "return 1 end return 0")
RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class Lease:
    def __init__(self, connection: Connection, key: bytes, owner: str) -> None:
        self.connection = connection
        self.key = key
        self.owner = owner
        self.scripts = True

    def hold(self, ttl: float) -> bool:
        """True if we hold the lease now, for `ttl` seconds more. Raises RedisError when Redis cannot be asked."""
        ms = max(1, int(ttl * 1000))
        if self.scripts:
            reply = self.connection.pipeline([["EVAL", TAKE, 1, self.key, self.owner, ms]])[0]
            if isinstance(reply, ReplyError) and refuses_scripts(reply):
                self.scripts = False
            elif isinstance(reply, RedisError):
                raise reply
            else:
                return reply == 1
        taken, holder = self.connection.pipeline([["SET", self.key, self.owner, "NX", "PX", ms], ["GET", self.key]])
        for reply in (taken, holder):
            if isinstance(reply, RedisError):
                raise reply
        return taken == b"OK" or holder == self.owner.encode()

    def holder(self) -> str | None:
        """Who holds it now (None: nobody, or Redis cannot say)."""
        try:
            reply = self.connection.pipeline([["GET", self.key]])[0]
        except (RedisError, OSError):
            return None
        return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else None

    def release(self) -> None:
        """Give it up if it is ours, so that another owner takes over at once. Never raises."""
        try:
            if self.scripts:
                self.connection.pipeline([["EVAL", RELEASE, 1, self.key, self.owner]])
        except (RedisError, OSError):
            pass
