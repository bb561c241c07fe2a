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
    # Ours, and this INFO's; and one more for each poll that failed (a starved machine misses a 0.1 s deadline, and
    # a timed-out connection is never reused), which is not what this test is about.
    failed = sum("metrics.up=0" in text for _, text in lines)
    assert tls_redis.client().info("stats")["total_connections_received"] - before <= 2 + failed


def _tls_server(certs, name: str, password: str) -> RedisServer:
    tls_port = free_port()
    server = RedisServer("--tls-port", str(tls_port), "--tls-cert-file", str(certs / f"{name}.pem"),
                         "--tls-key-file", str(certs / f"{name}.key"), "--tls-auth-clients", "no")
    server.start()  # the plain port is for the test's own set-up; the emitter gets only TLS
    server.client().config_set("requirepass", password)
    server.client = lambda **kw: RedisServer.client(server, password=password, **kw)
    server.tls_url = f"rediss://:{password}@127.0.0.1:{tls_port}/0"
    return server


@pytest.fixture(scope="module")
def trusted_and_self_signed(tmp_path_factory):
    """Two TLS Redis: `trusted` with a certificate for 127.0.0.1 from a CA of the test's own (which the emitter
    trusts through SSL_CERT_FILE, as a system's CA store), `self_signed` with Heroku Key-Value Store's kind."""
    certs = tmp_path_factory.mktemp("shard-certs")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=certs)

    (certs / "ca.ext").write_text("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
                                  "subjectKeyIdentifier=hash\n")
    (certs / "leaf.ext").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                                    "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
                                    "authorityKeyIdentifier=keyid\n")
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=sidekiq-metrics test CA", "-keyout",
            "ca.key", "-out", "ca.csr")
    openssl("x509", "-req", "-in", "ca.csr", "-signkey", "ca.key", "-days", "2", "-extfile", "ca.ext", "-out", "ca.pem")
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "trusted.key",
            "-out", "trusted.csr")
    openssl("x509", "-req", "-in", "trusted.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", "leaf.ext", "-out", "trusted.pem")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=ec2-1-2-3-4.compute-1.amazonaws.com", "-keyout", "self_signed.key", "-out", "self_signed.pem")
    servers = {name: _tls_server(certs, name, f"{name}-pw-51d0") for name in ("trusted", "self_signed")}
    yield servers, str(certs / "ca.pem")
    for server in servers.values():
        server.cleanup()


@pytest.mark.parametrize(("default_query", "orders_query", "setting", "up"), [
    # Each shard's own ?ssl_cert_reqs= governs it alone.
    ("?ssl_cert_reqs=required", "", None, {"default": "1", "orders": "1"}),
    ("", "?ssl_cert_reqs=required", None, {"default": "1", "orders": "0"}),
    ("?ssl_cert_reqs=required", "?ssl_cert_reqs=none", None, {"default": "1", "orders": "1"}),
    # SIDEKIQ_METRICS_TLS_VERIFY, when set, holds for every shard, as it says.
    ("", "", "true", {"default": "1", "orders": "0"}),
    ("?ssl_cert_reqs=required", "?ssl_cert_reqs=required", "false", {"default": "1", "orders": "1"}),
])
def test_each_shards_own_url_says_whether_its_certificate_is_verified(trusted_and_self_signed, default_query,
                                                                      orders_query, setting, up):
    """Issue 32.8: the default shard's Redis has a certificate the dyno trusts, the orders shard's a self-signed one
    (Heroku Key-Value Store's). A shard whose URL asks for verification is verified; one that does not, is not,
    whatever another shard's URL says."""
    servers, ca = trusted_and_self_signed
    env = {"SSL_CERT_FILE": ca, "REDIS_URL": servers["trusted"].tls_url + default_query,
           "ORDERS_URL": servers["self_signed"].tls_url + orders_query,
           "SIDEKIQ_METRICS_SHARDS": "default:REDIS_URL,orders:ORDERS_URL",
           **({"SIDEKIQ_METRICS_TLS_VERIFY": setting} if setting else {})}
    result = cli("run", "--once", env=env)
    seen = parse_l2met(result.stdout)
    assert {name: seen[f"sample#sidekiq:{name}.metrics.up"] for name in up} == up, result.stderr
    refused = "poll failed (shard orders): the TLS certificate of 127.0.0.1:"
    assert (refused in result.stderr) == (up["orders"] == "0"), result.stderr
    assert "pw-51d0" not in result.stdout + result.stderr and "Traceback" not in result.stderr


def test_doctor_says_whether_each_shards_certificate_is_verified_and_why(trusted_and_self_signed):
    servers, ca = trusted_and_self_signed
    env = {"SSL_CERT_FILE": ca, "REDIS_URL": servers["trusted"].tls_url + "?ssl_cert_reqs=required",
           "ORDERS_URL": servers["self_signed"].tls_url, "DYNO": "web.1",
           "SIDEKIQ_METRICS_SHARDS": "default:REDIS_URL,orders:ORDERS_URL"}
    result = cli("doctor", env=env)
    assert "ok    tls (shard default): the certificate is verified (REDIS_URL's ?ssl_cert_reqs=)" in result.stdout
    assert "ok    tls (shard orders): the certificate is not verified (default)" in result.stdout, result.stdout
    assert result.returncode == 0 and "pw-51d0" not in result.stdout
    forced = cli("doctor", env={**env, "SIDEKIQ_METRICS_TLS_VERIFY": "true"})
    assert "ok    tls (shard orders): the certificate is verified (SIDEKIQ_METRICS_TLS_VERIFY)" in forced.stdout
    assert forced.returncode == 1 and "poll failed (shard orders): the TLS certificate of 127.0.0.1:" in forced.stdout
