"""Opening Redis the way a guest on a production dyno should: short timeouts, no retries, no writes."""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from sidekiq_metrics.config import Settings

# Longest a single connect or reply may take, whatever the interval: a poll of
# 10,000 queues takes milliseconds, so anything slower than this is a fault.
MAX_SOCKET_TIMEOUT = 10.0


def socket_timeout(interval: float) -> float:
    """Half the interval, so a hung Redis never makes a poll overrun its slot."""
    return min(MAX_SOCKET_TIMEOUT, interval / 2)


def connect(settings: Settings) -> redis.Redis:
    """A lazy client: nothing is sent until the first command.

    No retries (the next tick is the retry, so a dead Redis sees at most one
    connection attempt per interval) and no CLIENT SETINFO on connect, so an ACL
    user that may only read Sidekiq's keys can use it.
    """
    target = settings.redis
    timeout = socket_timeout(settings.interval)
    common = {
        "db": target.db,
        "username": target.username,
        "password": target.password,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
        "driver_info": None,
        "health_check_interval": 0,
        # RESP2: no HELLO handshake, so Redis 4 and 5 (still sold by some providers) work too.
        "protocol": 2,
    }
    if target.unix_path:
        return redis.Redis(unix_socket_path=target.unix_path, **common)
    if target.tls:
        # Heroku Key-Value Store presents a self-signed certificate, so by default we
        # encrypt without verifying, as Sidekiq's Heroku guidance does.
        common.update(
            ssl=True,
            ssl_cert_reqs="required" if settings.tls_verify else "none",
            ssl_check_hostname=settings.tls_verify,
        )
    return redis.Redis(host=target.host, port=target.port, **common)


def describe_error(exc: BaseException, secrets: tuple[str, ...] = ()) -> str:
    """One short line for a failed poll, with any credential scrubbed out."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if len(text) > 300:
        text = text[:300] + "..."
    for secret in secrets:
        text = text.replace(secret, "***")
    return f"{type(exc).__name__}: {text}"
