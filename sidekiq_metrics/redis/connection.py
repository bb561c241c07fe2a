"""Opening Redis the way a guest on a production dyno should: short timeouts, no retries, no writes."""

from __future__ import annotations

from sidekiq_metrics.redis.resp import Connection
from sidekiq_metrics.redis.target import RedisTarget

# Longest a single connect or reply may take, whatever the interval: a poll of
# 10,000 queues takes milliseconds, so anything slower than this is a fault.
MAX_SOCKET_TIMEOUT = 10.0


def socket_timeout(interval: float) -> float:
    """Half the interval, so a hung Redis never makes a poll overrun its slot."""
    return min(MAX_SOCKET_TIMEOUT, interval / 2)


def connect(target: RedisTarget, interval: float) -> Connection:
    """A lazy connection: nothing is sent until the first poll.

    No retries (the next tick is the retry, so a dead Redis sees at most one
    connection attempt per interval). A rediss:// URL is encrypted; the certificate
    is verified only when the target says so (its URL's ?ssl_cert_reqs=, or
    SIDEKIQ_METRICS_TLS_VERIFY: redis/target.resolve_redis), since Heroku Key-Value Store
    presents a self-signed one (Sidekiq's own Heroku guidance does the same). Each Redis (the default one, or a
    shard's) is verified as its own URL says, never as another's. `interval`: the loop's, which bounds the timeouts.
    """
    return Connection(target, timeout=socket_timeout(interval), tls_verify=bool(target.tls_verify))
