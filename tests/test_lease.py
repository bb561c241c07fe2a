"""One active emitter among several (SIDEKIQ_METRICS_LEASE): real processes sharing a real Redis."""

from __future__ import annotations

import signal
import time

import pytest

from sidekiq_metrics.redis.lease import Lease
from sidekiq_metrics.redis.resp import Connection
from sidekiq_metrics.redis.target import parse_redis_url
from support.candidates import Candidate
from support.redis_server import wait_until
from support.sidekiq_data import push

INTERVAL = 1.0
SLACK = 0.5  # for the processes' own start and scheduling: the lease's timing is what is held to


def holders(candidates: list[Candidate], since: float, until: float) -> list[str]:
    return [c.name for c in candidates if c.polls(since, until)]


def test_one_emitter_polls_another_takes_over_after_sigkill_and_sigterm_hands_over(r, redis_server):
    push(r, "default")
    env = {"REDIS_URL": redis_server.url, "SIDEKIQ_METRICS_INTERVAL": str(INTERVAL)}
    candidates = [Candidate.emitter(name, **env) for name in ("web-1a2b3c4d5-aaaaa", "web-1a2b3c4d5-bbbbb",
                                                                 "sidekiq-metrics-9z8y7x6w5-ccccc")]
    try:
        assert wait_until(lambda: any(c.polls() for c in candidates), 15)
        time.sleep(3 * INTERVAL)
        now = time.monotonic()
        (first,) = [c for c in candidates if c.polls(now - 3 * INTERVAL, now)]  # one, and only one, polls
        assert len(first.polls(now - 3 * INTERVAL, now)) >= 2
        assert first.said(f"{first.name} took the lease: it is the active emitter now")
        # Killed without a word: the lease runs out, and another takes it within two intervals.
        killed_at = time.monotonic()
        first.proc.send_signal(signal.SIGKILL)
        rest = [c for c in candidates if c is not first]
        assert wait_until(lambda: any(c.said("took the lease") for c in rest), 10)
        (second,) = [c for c in rest if c.said("took the lease")]
        assert second.said("took the lease")[0] - killed_at <= 2 * INTERVAL + SLACK
        time.sleep(2 * INTERVAL)
        now = time.monotonic()
        assert holders(candidates, now - 2 * INTERVAL, now) == [second.name]
        # Stopped (SIGTERM): it ends within a second, gives the lease up, and the last one takes it at once.
        stopped_at = time.monotonic()
        second.proc.send_signal(signal.SIGTERM)
        second.proc.wait(1.0)
        assert second.proc.returncode == 0
        (third,) = [c for c in rest if c is not second]
        assert wait_until(lambda: third.said("took the lease"), 5)
        assert third.said("took the lease")[0] - stopped_at <= INTERVAL / 2 + SLACK
        # At any moment, one emitter: no poll of one falls between the first and last poll of another.
        spans = [(c.polls()[0], c.polls()[-1]) for c in candidates if c.polls()]
        for a in spans:
            for b in spans:
                assert a is b or a[1] < b[0] or b[1] < a[0], spans
    finally:
        for candidate in candidates:
            candidate.stop()
    assert all("Traceback" not in line for c in candidates for _, _, line in c.lines)


def test_the_lease_is_compare_and_set_and_released_only_by_its_owner(redis_server, r):
    def lease(owner: str) -> Lease:
        return Lease(Connection(parse_redis_url(redis_server.url, "url"), timeout=5), b"sidekiq-metrics:lease", owner)

    a, b = lease("a"), lease("b")
    assert a.hold(10) and not b.hold(10) and a.hold(10)  # taken, refused to another, renewed by its owner
    b.release()  # not b's: nothing happens
    assert r.get("sidekiq-metrics:lease") == b"a" and a.holder() == "a"
    a.release()
    assert r.get("sidekiq-metrics:lease") is None and b.hold(10)


@pytest.mark.parametrize("scripts", [True, False])
def test_the_lease_without_scripts_still_never_has_two_holders(redis_server, r, scripts):
    if not scripts:
        r.execute_command("ACL", "SETUSER", "noscript", "on", ">noscript-pass", "~*", "+@all", "-@scripting")
    url = redis_server.url if scripts else f"redis://noscript:noscript-pass@127.0.0.1:{redis_server.port}/0"
    try:
        a, b = (Lease(Connection(parse_redis_url(url, "url"), timeout=5), b"sidekiq-metrics:lease", o) for o in "ab")
        assert [a.hold(0.2), b.hold(0.2), a.hold(0.2)] == [True, False, True]
        time.sleep(0.3)
        assert [b.hold(10), a.hold(10)] == [True, False]
    finally:
        r.execute_command("ACL", "DELUSER", "noscript")
        r.delete("sidekiq-metrics:lease")
