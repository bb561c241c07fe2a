"""The RESP client against a real redis-server: replies the caller expected are recognised unparsed."""

from __future__ import annotations

import pytest

from sidekiq_metrics.config import parse_redis_url
from sidekiq_metrics.resp import UNCHANGED, Connection, encode_reply

NAMES = [f"queue_{i:05d}_{'x' * 12}".encode() for i in range(10_000)]  # ~270 KB: several socket reads


def connection(redis_server) -> Connection:
    # A short timeout: a skip that waited for bytes that never come would fail here, not hang.
    return Connection(parse_redis_url(redis_server.url, "url"), timeout=2)


def test_an_expected_reply_is_skipped_and_the_stream_stays_in_step(r, redis_server):
    r.sadd("queues", *NAMES)
    r.set("after", "next")
    conn = connection(redis_server)
    members = conn.pipeline([["SMEMBERS", "queues"]])[0]
    assert sorted(members) == NAMES
    raw = encode_reply(members)
    got = list(conn.replies([["SMEMBERS", "queues"], ["GET", "after"], ["SMEMBERS", "queues"]], expected={0: raw}))
    assert got == [UNCHANGED, b"next", members]
    assert list(conn.replies([["SMEMBERS", "queues"]], expected={0: raw})) == [UNCHANGED]  # the last reply too


@pytest.mark.parametrize("change", ["replaced, same length", "one more", "one fewer", "emptied"])
@pytest.mark.parametrize("last", [True, False])
def test_a_reply_that_differs_anywhere_is_parsed(r, redis_server, change, last):
    r.sadd("queues", *NAMES)
    conn = connection(redis_server)
    raw = encode_reply(conn.pipeline([["SMEMBERS", "queues"]])[0])
    if change == "replaced, same length":
        r.srem("queues", NAMES[7_777])
        r.sadd("queues", NAMES[7_777].replace(b"x", b"y"))
    elif change == "one more":
        r.sadd("queues", b"queue_99999_" + b"x" * 12)
    elif change == "one fewer":
        r.srem("queues", NAMES[9_999])
    else:
        r.delete("queues")
    commands = [["SMEMBERS", "queues"]] + ([] if last else [["PING"]])
    got = list(conn.replies(commands, expected={0: raw}))
    now = sorted(r.smembers("queues"))
    assert sorted(got[0]) == now != NAMES
    assert got[1:] == ([] if last else [b"PONG"])
    assert conn.pipeline([["GET", "nothing"]]) == [None]  # still in step
