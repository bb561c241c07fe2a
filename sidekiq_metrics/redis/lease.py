"""A Redis lease: a key of ours that one owner holds for a while, taken when free, renewed while held.

Two things use it: the autoscaler's lock (one change per cool-down across emitters) and the election
of the one active emitter where several run at once (Fir's dynos, or every web dyno on Cedar with
SIDEKIQ_METRICS_DYNO=web). Its keys begin `sidekiq-metrics:`, which no Sidekiq key does; they are the
only keys we ever write.

Compare-and-set, so that no two owners ever both hold it, and so that the owner renews it: one script
takes the key when it is free or already ours (restarting its TTL), another deletes it only when it is
ours. Where Redis refuses scripts (an ACL without @scripting, a provider that renames EVAL), a
transaction does the same in two round trips: WATCH the key and GET it, then, when it is free or ours,
MULTI, SET (or DEL) and EXEC, which Redis refuses to run if the key changed in between. Where Redis
refuses both, the lease cannot be held safely: that is an error, said as such, never a guess.
"""

from __future__ import annotations

import os
import secrets

from sidekiq_metrics.redis.resp import Connection, RedisError, Reply, ReplyError, refuses_scripts

# A key of ours without a TTL is nobody's lease (restored from a backup, set by hand): every holder sets one.
TAKE = ("local holder = redis.call('GET', KEYS[1]) "
        "if holder == false or holder == ARGV[1] or redis.call('PTTL', KEYS[1]) == -1 then "
        "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end return 0")
RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


def unique_owner(name: str) -> str:
    """An owner of a lease that no other process shares: a dyno name and a pid are not enough (during Cedar's
    preboot two `web.1` containers run side by side, and their emitters can have the same pid)."""
    return f"{printable(name)}:{os.getpid()}:{secrets.token_hex(4)}"


def printable(name: str) -> str:
    """A name from the environment (DYNO, a host name) as one line of ASCII, escaped where it is not: bytes that are
    not UTF-8 could not be sent to Redis, and a newline would start a line of its own in the logs."""
    return ascii(name)[1:-1]


class Lease:
    def __init__(self, connection: Connection, key: bytes, owner: str) -> None:
        self.connection = connection
        self.key = key
        self.owner = owner
        self.scripts = True

    def hold(self, ttl: float) -> bool:
        """True if we hold the lease now, for `ttl` seconds more from when Redis was asked. Raises RedisError
        when Redis cannot be asked (or refuses both ways of asking)."""
        ms = max(1, int(ttl * 1000))
        if self.scripts:
            reply = self.connection.pipeline([["EVAL", TAKE, 1, self.key, self.owner, ms]])[0]
            if isinstance(reply, ReplyError) and refuses_scripts(reply):
                self.scripts = False
            else:
                return _checked(reply) == 1
        return self._transaction(["SET", self.key, self.owner, "PX", ms], free_too=True)

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
            else:
                self._transaction(["DEL", self.key], free_too=False)
        except (RedisError, OSError):
            pass

    def _transaction(self, change: list[bytes | str | int], *, free_too: bool) -> bool:
        """Make `change` when the key is ours (or free, with `free_too`), and only if nobody changed it between
        our look and our change: True when made. UNWATCH first: a watch left by an earlier look that found the
        key another's would otherwise make this EXEC fail for a change made before this look."""
        _, _, holder, ttl = (_checked(reply) for reply in self.connection.pipeline(
            [["UNWATCH"], ["WATCH", self.key], ["GET", self.key], ["PTTL", self.key]]))
        if holder != self.owner.encode() and not (free_too and (holder is None or ttl == -1)):
            return False  # (the watch left on our connection is undone by the next look's UNWATCH)
        # MULTI is in WATCH's ACL category (@transaction), so a WATCH that was allowed means it is too, and the
        # change runs inside the transaction, never on its own.
        _, _, done = (_checked(reply) for reply in self.connection.pipeline([["MULTI"], change, ["EXEC"]]))
        return isinstance(done, list) and not any(isinstance(reply, ReplyError) for reply in done)


def _checked(reply: Reply) -> Reply:
    """The reply, or the error it is raised (a refusal of WATCH or MULTI too: then the lease cannot be held)."""
    if isinstance(reply, ReplyError) and refuses_scripts(reply):
        raise RedisError(f"Redis refuses both scripts and transactions to this user ({reply.code}): the lease "
                         "needs one of them (ACL categories @scripting or @transaction)")
    if isinstance(reply, RedisError):
        raise reply
    return reply
