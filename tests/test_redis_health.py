"""The Redis's own health (INFO), held to what Redis itself reports, and never a failed poll."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sidekiq_metrics.redis.resp import ReplyError
from sidekiq_metrics.sidekiq import redis_health
from sidekiq_metrics.sidekiq.readings import RedisHealth
from support.commands import Polling, cli, l2met_polls, parse_l2met


def test_evictions_per_poll_and_the_limits_are_what_redis_says(own_redis):
    client = own_redis.client()
    client.config_set("maxmemory", "4mb")
    client.config_set("maxmemory-policy", "allkeys-lru")
    client.set("stat:processed", 7)
    run = Polling({"REDIS_URL": own_redis.url, "SIDEKIQ_METRICS_INTERVAL": "0.5"})
    try:
        run.wait(2)
        for n in range(400):  # 8 MB into a 4 MB Redis: it evicts
            client.set(f"filler:{n}", b"x" * 20_000)
        evicted = client.info("stats")["evicted_keys"]
        run.wait(2)
    finally:
        lines, err = run.stop()
    seen = l2met_polls(lines)
    assert evicted > 0 and len(seen) >= 4
    assert all(float(p["sample#sidekiq.redis.memory.max"]) == 4.0 for p in seen)
    assert all(0 < float(p["sample#sidekiq.redis.memory.ratio"]) <= 1.1 for p in seen)
    totals = [int(p["sample#sidekiq.redis.evicted_keys"]) for p in seen]
    increases = [int(p.get("count#sidekiq.redis.evictions", "0")) for p in seen]
    assert totals[0] == 0 and totals[-1] == client.info("stats")["evicted_keys"] >= evicted
    assert sum(increases) == totals[-1] - totals[0]  # each poll's increase, none lost or counted twice
    assert err.count("maxmemory-policy allkeys-lru") == 1
    # The new measurements come after the ones the line always had, so that nothing already there moves.
    names = [token.split("=")[0] for token in lines[-1].split(" ")]
    assert names.index("count#sidekiq.jobs.failed") < names.index("sample#sidekiq.redis.memory.used")
    # (then what came later still: the paused queues' count)
    assert names[-3:] == ["count#sidekiq.redis.evictions", "sample#sidekiq.queues.paused", "sample#sidekiq.metrics.up"]


def test_an_acl_without_info_leaves_the_health_out_with_one_line_and_the_poll_up(own_redis):
    client = own_redis.client()
    client.execute_command("ACL", "SETUSER", "noinfo", "on", ">noinfo-pw", "~*", "+@all", "-info")
    result = cli("run", "--once", env={"REDIS_URL": f"redis://noinfo:noinfo-pw@127.0.0.1:{own_redis.port}/0"})
    seen = parse_l2met(result.stdout)
    assert result.returncode == 0 and seen["sample#sidekiq.metrics.up"] == "1"
    assert not any(".redis." in key for key in seen)
    assert result.stderr.count("refuses INFO (NOPERM)") == 1 and "noinfo-pw" not in result.stderr


@given(texts=st.lists(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode),
                                st.builds(lambda k, v: f"{k}:{v}\r\n".encode(),
                                          st.sampled_from(["used_memory", "maxmemory", "maxmemory_policy",
                                                           "connected_clients", "evicted_keys",
                                                           "instantaneous_ops_per_sec"]),
                                          st.text(max_size=30))), max_size=3))
def test_any_info_text_is_read_or_left_out_never_a_crash(texts):
    health = redis_health.parse(texts)
    assert isinstance(health, RedisHealth)
    for value in (health.used_memory, health.maxmemory, health.clients, health.evicted_keys, health.ops_per_second):
        assert value is None or (isinstance(value, int) and value >= 0)
    assert health.memory_ratio is None or health.memory_ratio >= 0
    # One section refused leaves out its own readings only (issue 32.15; it used to leave out every one)
    partial = redis_health.parse([b"used_memory:1\r\n", ReplyError("NOPERM no")])
    assert isinstance(partial, RedisHealth) and partial.used_memory == 1 and partial.refused == (("clients", "NOPERM"),)


MEMORY = ("redis.memory.used", "redis.memory.max", "redis.memory.ratio")


def test_an_acl_refusing_one_info_section_leaves_out_only_that_sections_metrics(own_redis):
    """Issue 32.15: with INFO clients and INFO stats allowed but not INFO memory, every redis.* metric was left out.
    Redis's ACLs take a first argument (`+info|clients`, Redis 6.0 on; still honoured by 7): Redis then answers
    NOPERM to `INFO memory` alone, as a provider restricting one section would."""
    client = own_redis.client()
    client.config_set("maxmemory", "64mb")
    client.execute_command("ACL", "SETUSER", "partial", "on", ">partial-pw", "~*", "+@all", "-info",
                           "+info|clients", "+info|stats")
    url = f"redis://partial:partial-pw@127.0.0.1:{own_redis.port}/0"
    run = Polling({"REDIS_URL": url, "SIDEKIQ_METRICS_INTERVAL": "0.2"})
    try:
        run.wait(3)
    finally:
        lines, err = run.stop()
    for poll in l2met_polls(lines)[:3]:
        assert poll["sample#sidekiq.metrics.up"] == "1"
        assert int(poll["sample#sidekiq.redis.clients"]) >= 1 and "sample#sidekiq.redis.ops_per_second" in poll
        assert poll["sample#sidekiq.redis.evicted_keys"] == "0"
        assert not any(f"sidekiq.{name}" in key for key in poll for name in MEMORY)
    assert err.count("refuses INFO memory (NOPERM): redis.memory.used, redis.memory.max and redis.memory.ratio "
                     "are left out") == 1, err
    assert "refuses INFO (" not in err and "partial-pw" not in err
    # doctor says the same, and still judges what it could read
    doctor = cli("doctor", env={"REDIS_URL": url})
    assert "warn  health: Redis refuses INFO memory (NOPERM): redis.memory.used, redis.memory.max and " \
           "redis.memory.ratio are left out" in doctor.stdout, doctor.stdout
    assert "with no maxmemory" not in doctor.stdout


def test_info_sections_refused_one_by_one_are_each_left_out_alone():
    memory = b"# Memory\r\nused_memory:1048576\r\nmaxmemory:2097152\r\nmaxmemory_policy:noeviction\r\n"
    clients = b"# Clients\r\nconnected_clients:7\r\n"
    stats = b"# Stats\r\nevicted_keys:3\r\ninstantaneous_ops_per_sec:12\r\n"
    refused = ReplyError("NOPERM this user has no permissions to run the 'info' command")
    health = redis_health.parse([refused, clients, stats])
    assert isinstance(health, RedisHealth) and health.refused == (("memory", "NOPERM"),)
    assert (health.used_memory, health.maxmemory, health.policy) == (None, None, None)
    assert (health.clients, health.evicted_keys, health.ops_per_second) == (7, 3, 12)
    health = redis_health.parse([memory, refused, stats])
    assert isinstance(health, RedisHealth) and health.refused == (("clients", "NOPERM"),)
    assert (health.used_memory, health.clients, health.evicted_keys) == (1048576, None, 3)
    assert redis_health.parse([refused, refused, refused]).code == "NOPERM"  # INFO itself: as before
