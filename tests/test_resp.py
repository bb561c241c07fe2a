"""The RESP client against a real redis-server, and the reader's bet on unchanged sets above it."""

from __future__ import annotations

import json
import time

import pytest

from sidekiq_metrics.redis.resp import Connection
from sidekiq_metrics.redis.target import parse_redis_url
from sidekiq_metrics.sidekiq.reader import SidekiqReader

NAMES = [f"queue_{i:05d}_{'x' * 12}".encode() for i in range(10_000)]  # ~270 KB: several socket reads


def connection(redis_server) -> Connection:
    # A short timeout: a read that waited for bytes that never come would fail here, not hang.
    return Connection(parse_redis_url(redis_server.url, "url"), timeout=2)


def test_replies_come_in_order_across_many_socket_reads(r, redis_server):
    r.sadd("queues", *NAMES)
    r.set("after", "next")
    conn = connection(redis_server)
    got = list(conn.replies([["SMEMBERS", "queues"], ["GET", "after"], ["SMEMBERS", "queues"], ["GET", "none"]]))
    assert sorted(got[0]) == NAMES and got[2] == got[0]
    assert got[1::2] == [b"next", None]


def test_a_caller_that_stops_reading_leaves_no_half_read_stream(r, redis_server):
    r.sadd("queues", *NAMES)
    r.set("after", "next")
    conn = connection(redis_server)
    replies = conn.replies([["SMEMBERS", "queues"], ["SMEMBERS", "queues"], ["GET", "after"]])
    assert len(next(replies)) == len(NAMES)
    replies.close()  # two replies unread: the connection is dropped, never reused out of step
    assert conn.pipeline([["GET", "after"]]) == [b"next"]


@pytest.mark.parametrize("change", ["replaced, same length", "one more", "one fewer", "emptied"])
def test_the_reader_sees_any_change_of_the_queues_set(r, redis_server, change):
    now = time.time()
    for name in NAMES[:2000]:
        r.lpush(b"queue:" + name, json.dumps({"enqueued_at": now}))
    r.sadd("queues", *NAMES[:2000])
    reader = SidekiqReader(connection(redis_server))
    assert [q.name.encode() for q in reader.read().queues] == NAMES[:2000]
    if change == "replaced, same length":
        r.srem("queues", NAMES[777])
        r.sadd("queues", NAMES[777].replace(b"x", b"y"))
    elif change == "one more":
        r.sadd("queues", b"queue_99999_" + b"x" * 12)
    elif change == "one fewer":
        r.srem("queues", NAMES[1999])
    else:
        r.delete("queues")
    after = reader.read()
    assert [q.name.encode() for q in after.queues] == sorted(r.smembers("queues"))
    assert [q.name for q in reader.read().queues] == [q.name for q in after.queues]  # and the poll after
