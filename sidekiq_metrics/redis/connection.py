"""Opening Redis the way a guest on a production dyno should: short timeouts, no retries, no writes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sidekiq_metrics.redis.resp import Connection
from sidekiq_metrics.redis.target import RedisTarget

if TYPE_CHECKING:
    from sidekiq_metrics.config import Settings

# Longest a single connect or reply may take, whatever the interval: a poll of
# 10,000 queues takes milliseconds, so anything slower than this is a fault.
MAX_SOCKET_TIMEOUT = 10.0


def socket_timeout(interval: float) -> float:
    """Half the interval, so a hung Redis never makes a poll overrun its slot."""
    return min(MAX_SOCKET_TIMEOUT, interval / 2)


def connect(settings: Settings, target: RedisTarget | None = None) -> Connection:
    """A lazy connection: nothing is sent until the first poll.

    No retries (the next tick is the retry, so a dead Redis sees at most one
    connection attempt per interval). A rediss:// URL is encrypted; the certificate
    is verified only when the target says so (its URL's ?ssl_cert_reqs=, or
    SIDEKIQ_METRICS_TLS_VERIFY: redis_target.resolve_redis), since Heroku Key-Value Store
    presents a self-signed one (Sidekiq's own Heroku guidance does the same). `target`: a shard's Redis,
    instead of the default one. Each Redis is verified as its own URL says, never as another's.
    """
    target = target or settings.redis
    return Connection(target, timeout=socket_timeout(settings.interval), tls_verify=bool(target.tls_verify))
