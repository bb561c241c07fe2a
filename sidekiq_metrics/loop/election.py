"""The election: which of the emitters that share a Redis lease is the active one, its terms, and the loop that
polls only within them (run --lease)."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable

from sidekiq_metrics.loop.poll import Poller
from sidekiq_metrics.loop.schedule import LAST_WORDS, Shutdown
from sidekiq_metrics.redact import describe_error
from sidekiq_metrics.redis.lease import Lease
from sidekiq_metrics.redis.resp import RedisError

LEASE_KEY = b"sidekiq-metrics:lease"
TERM_MARGIN = 0.1  # of the lease's TTL: a holder's own clock ends its term this much before Redis may


class Election:
    """Whether this emitter is the active one, among all that share the Redis lease (lease.py).

    The lease lives 1.5 intervals and is asked for every half interval, by the holder and by every standby
    alike: the holder renews it long before it ends, and when the holder dies without a word (SIGKILL, a lost
    dyno) another takes it within two intervals of its last renewal. A holder that stops gives it up at once.

    A term: from a successful take or renewal, the holder acts until its lease may have run out, by its own
    monotonic clock (the time it asked, plus the TTL, less TERM_MARGIN of it for clocks that run at slightly
    different rates). Redis starts the TTL only after the ask arrives, so a holder cut off from Redis, or paused,
    stops acting before any other can take over: never two printers at once, and never one that cannot renew
    printing `up=0` beside the new holder's readings. Each change is one line.
    """

    def __init__(self, name: str, lease: Lease, interval: float, log: Callable[[str], None],
                 secrets: tuple[str, ...], clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name  # this emitter's, as its lines say it (its dyno's)
        self.lease = lease
        self.ttl = 1.5 * interval
        self.log = log
        self.secrets = secrets
        self.clock = clock
        self.term_ends: float | None = None  # by our clock; None while another holds it (as far as we know)
        self._unreachable = False

    @property
    def holding(self) -> bool:
        return self.term_ends is not None

    def in_term(self) -> bool:
        """True while this emitter may act: it holds the lease, and the lease cannot have run out yet."""
        return self.term_left() > 0

    def term_left(self) -> float:
        """Seconds this emitter may still act for (0: none, it does not hold the lease)."""
        return 0.0 if self.term_ends is None else max(0.0, self.term_ends - self.clock())

    def check(self) -> bool:
        """Take or renew the lease; True while this emitter holds it. When Redis cannot be asked, a holder goes
        on until its term may have ended (its polls say that Redis is down), then stands down; others wait.

        A holder's ask waits at most half of what is left of its term: cut off from Redis, a wait as long as a
        read may take (up to 10 s) would leave its poll no time to say `up=0` before the term ends."""
        if self.holding and not self.in_term():
            self._stand_down()
        asked_at = self.clock()
        try:
            with self.lease.connection.within(self.term_left() / 2 if self.holding else math.inf):
                held = self.lease.hold(self.ttl)
        except (RedisError, OSError) as exc:
            if not self._unreachable:
                self._unreachable = True
                self.log(f"cannot ask Redis for the lease: {describe_error(exc, self.secrets)}; "
                         + ("polling on while the lease lasts" if self.holding else "waiting"))
            if self.holding and not self.in_term():
                self._stand_down()
            return self.holding
        self._unreachable = False
        if held and not self.holding:
            self.log(f"{self.name} took the lease: it is the active emitter now")
        elif self.holding and not held:
            holder = (self.lease.holder() or "another emitter").rsplit(":", 2)[0]
            self.log(f"{self.name} lost the lease to {holder}: it stops polling")
        self.term_ends = asked_at + self.ttl * (1 - TERM_MARGIN) if held else None
        return held

    def _stand_down(self) -> None:
        self.term_ends = None
        self.log(f"{self.name} could not renew the lease before it may have run out (paused, or cut off from "
                 "Redis): it stops polling")

    def resign(self) -> None:
        if self.holding:
            with contextlib.suppress(RedisError, OSError), self.lease.connection.within(LAST_WORDS):
                self.lease.release()
            self.term_ends = None


def run_elected(poller: Poller, election: Election, interval: float, shutdown: Shutdown,
                clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
    """Poll on the steady schedule of run_forever while this emitter holds the lease; ask for it every half
    interval, holding it or not, and sleep in between. Each term starts afresh (Poller.start_term)."""
    poller.lease_terms(election.term_left)
    next_poll = clock()
    holding = False
    try:
        while True:
            with shutdown.interruptible():
                active = election.check()
            if active != holding:
                holding = active
                if active:
                    poller.start_term()
                    next_poll = clock()  # a new holder polls at once
                else:
                    poller.end_term()
            now = clock()
            if active and next_poll <= now:
                poller.poll()
                next_poll += interval
                now = clock()
                if next_poll <= now:
                    next_poll += math.ceil((now - next_poll) / interval) * interval
            # A holder wakes when its term may end too, to stand down (and say so) then, not an ask's wait later.
            wake = min(next_poll, now + interval / 2, now + election.term_left()) if active else now + interval / 2
            with shutdown.interruptible():
                sleep(max(0.0, wake - now))
    finally:
        election.resign()
