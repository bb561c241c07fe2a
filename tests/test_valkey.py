"""Heroku Key-Value Store runs Valkey: the fidelity and compatibility checks of the other files, run again against
real Valkey 8 (../shared/reference-valkey), with Sidekiq's own API as the reference as there, and the health
readings and shards on Valkey."""

from __future__ import annotations

import pytest
import test_doctor
import test_emitter
import test_faults
import test_job_metrics
import test_running
import test_totals

from support.commands import cli, parse_l2met
from support.redis_server import RedisServer
from support.sidekiq_data import seed

# Each takes (a client of an empty database, the server) and checks our numbers against Sidekiq's or Redis's own.
CHECKS = [
    test_emitter.test_sizes_and_latencies_equal_sidekiqs_own_api,  # Sidekiq's API (Debian's 6.4.1)
    test_emitter.test_redis_namespace_of_sidekiq_6_apps,
    test_emitter.test_sidekiq_8_milliseconds_mixed_queues_and_fallbacks,
    test_emitter.test_one_bad_queue_never_hides_the_others,
    test_emitter.test_queue_names_that_are_not_utf8_or_not_printable,
    test_emitter.test_only_read_commands_reach_redis,  # MONITOR on Valkey: reads, our script, INFO
    test_emitter.test_a_queue_replaced_between_polls_is_seen_in_one_round_trip_more,
    test_faults.test_hostile_queue_names_and_jobs_never_break_a_poll_or_a_line,
    test_faults.test_a_redis_over_its_memory_limit_still_answers_every_read,
    test_faults.test_a_process_hash_with_a_number_of_thousands_of_digits_is_left_out_not_a_crash,
    test_totals.test_no_processes_no_utilization_and_zeros_with_no_queues,  # INFO's fields, as Valkey names them
    test_totals.test_a_set_the_user_may_not_read_is_unknown_not_zero,  # Valkey's ACLs
    test_doctor.test_a_correct_set_up,
    test_doctor.test_doctor_says_which_reads_redis_refuses_and_what_each_costs,
    test_job_metrics.test_a_class_named_other_is_summed_into_other_and_long_names_fit_librato,
    test_running.test_a_poll_reads_the_longest_running_job_and_the_paused_queues,  # our work script on Valkey's Lua
    test_running.test_records_past_a_calls_budget_take_one_more_round_trip_and_one_too_long_to_copy_is_never_read,
]


@pytest.fixture
def valkey_r(valkey):
    client = valkey.client()
    client.flushall()
    yield client
    client.flushall()


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__.removeprefix("test_"))
def test_on_valkey(check, valkey_r, valkey):
    check(valkey_r, valkey)


def test_the_reference_is_valkey(valkey):
    assert valkey.client().info("server")["valkey_version"].startswith("8.")


def test_a_shard_on_valkey_beside_one_on_redis(valkey, valkey_binary, redis_server, r):
    seed(r, {"default": (1.0, 2)})
    other = RedisServer(binary=valkey_binary).start()
    try:
        seed(other.client(), {"orders": (3.0, 4)})
        other.client().config_set("maxmemory-policy", "volatile-lru")
        result = cli("run", "--once", env={"REDIS_URL": redis_server.url, "ORDERS_URL": other.url,
                                           "SIDEKIQ_METRICS_SHARDS": "default:REDIS_URL,orders:ORDERS_URL"})
    finally:
        other.cleanup()
    seen = parse_l2met(result.stdout)
    assert result.returncode == 0 and seen["sample#sidekiq:orders.orders.size"] == "4"
    assert float(seen["sample#sidekiq:orders.redis.memory.used"]) > 0
    assert "sample#sidekiq:orders.redis.ops_per_second" in seen and seen["sample#sidekiq:all.enqueued"] == "6"
    assert result.stderr.count("maxmemory-policy volatile-lru") == 1
