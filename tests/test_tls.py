"""rediss:// against a real redis-server that speaks only TLS, with a self-signed certificate as Heroku's."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from support.commands import cli, parse_l2met, read_lines_until, spawn
from support.redis_server import RedisServer, free_port, wait_until
from support.sidekiq_data import job, push


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.fail("openssl is needed to make a certificate")
    certs = tmp_path_factory.mktemp("certs")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=ec2-1-2-3-4.compute-1.amazonaws.com", "-keyout", str(certs / "key.pem"),
                    "-out", str(certs / "cert.pem")], check=True, capture_output=True)
    tls_port = free_port()
    server = RedisServer("--tls-port", str(tls_port), "--tls-cert-file", str(certs / "cert.pem"),
                         "--tls-key-file", str(certs / "key.pem"), "--tls-auth-clients", "no",
                         "--requirepass", "tls-secret-pw")
    server.client = lambda **kw: RedisServer.client(server, password="tls-secret-pw", **kw)
    server.start()  # the plain port is for the test's own set-up; the emitter gets only TLS
    server.tls_url = f"rediss://:tls-secret-pw@127.0.0.1:{tls_port}/0"
    yield server
    server.cleanup()


def test_rediss_with_a_self_signed_certificate_works_by_default(tls_redis):
    r = tls_redis.client()
    push(r, "default", job(time.time() - 3.0))
    result = cli("run", "--once", env={"REDIS_URL": tls_redis.tls_url})
    assert result.returncode == 0, result.stderr
    measured = parse_l2met(result.stdout)
    assert measured["sample#sidekiq.default.size"] == "1"
    assert 3.0 <= float(measured["sample#sidekiq.default.latency"]) < 5


def test_verification_switched_on_refuses_it_clearly(tls_redis):
    result = cli("run", "--once", env={"REDIS_URL": tls_redis.tls_url, "SIDEKIQ_METRICS_TLS_VERIFY": "true"})
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("sidekiq-metrics: poll failed: the TLS certificate of 127.0.0.1:")
    assert "self-signed certificate" in lines[0] and "SIDEKIQ_METRICS_TLS_VERIFY" in lines[0]
    assert "tls-secret-pw" not in result.stderr + result.stdout


def test_a_wrong_password_is_one_line_without_either_password(tls_redis):
    url = tls_redis.tls_url.replace("tls-secret-pw", "wrong-guess-pw")
    result = cli("run", "--once", env={"REDIS_URL": url})
    assert result.returncode == 1
    assert result.stderr.startswith("sidekiq-metrics: poll failed: Redis at 127.0.0.1:")
    assert "refused the login (WRONGPASS): check the user name and password in the Redis URL" in result.stderr
    assert "wrong-guess-pw" not in result.stderr and "tls-secret-pw" not in result.stderr
    assert result.stdout == "sample#sidekiq.metrics.up=0 count#sidekiq.metrics.errors=1\n"


def test_ssl_cert_reqs_in_the_url_verifies_or_not_as_it_says(tls_redis):
    push(tls_redis.client(), "default")
    required = cli("run", "--once", env={"REDIS_URL": tls_redis.tls_url + "?ssl_cert_reqs=required"})
    assert required.returncode == 1 and "the TLS certificate of 127.0.0.1:" in required.stderr
    none = cli("run", "--once", env={"REDIS_URL": tls_redis.tls_url + "?ssl_cert_reqs=none"})
    assert none.returncode == 0, none.stderr
    # An explicit SIDEKIQ_METRICS_TLS_VERIFY wins over the URL's.
    overridden = cli("run", "--once", env={"REDIS_URL": tls_redis.tls_url + "?ssl_cert_reqs=required",
                                           "SIDEKIQ_METRICS_TLS_VERIFY": "false"})
    assert overridden.returncode == 0, overridden.stderr


def test_a_one_word_password_in_a_rediss_url(tls_redis):
    url = tls_redis.tls_url.replace("rediss://:tls-secret-pw@", "rediss://tls-secret-pw@")
    result = cli("run", "--once", env={"REDIS_URL": url})
    assert result.returncode == 0, result.stderr
    assert "tls-secret-pw" not in result.stdout + result.stderr


def test_a_tls_connection_is_kept_across_polls(tls_redis):
    """The check for a connection Redis closed must not take TLS's own traffic after the handshake (session
    tickets) for a close, and open a new connection, with a new handshake, every poll."""
    push(tls_redis.client(), "default")
    before = tls_redis.client().info("stats")["total_connections_received"]
    proc = spawn("run", env={"REDIS_URL": tls_redis.tls_url, "SIDEKIQ_METRICS_INTERVAL": "0.2"})
    try:
        lines = read_lines_until(proc, r"(?!)", 0)
        # Six polls, however long a busy machine takes to start the emitter (a fixed 1.6 s saw only five).
        assert wait_until(lambda: sum("metrics.up=1" in text for _, text in lines) >= 6, 30)
    finally:
        proc.terminate()
        proc.wait(5)
    assert tls_redis.client().info("stats")["total_connections_received"] - before <= 2  # ours, and this INFO's
