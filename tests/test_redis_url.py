"""A Redis URL that works for the app's Sidekiq works for us, read the same way (redis-client, Sidekiq 7+)."""

from __future__ import annotations

import subprocess

import pytest

from sidekiq_metrics.errors import ConfigError
from sidekiq_metrics.redis.target import parse_redis_url
from support.commands import cli
from support.redis_server import RedisServer

PING = 'require "sidekiq"; Sidekiq.configure_client { |c| c.redis = { url: ENV["URL"] } }; ' \
       'puts Sidekiq.redis { |c| c.call("PING") }'


@pytest.fixture(scope="module")
def acl_redis():
    """The default user has a password (as requirepass sets it), and there is a named ACL user."""
    server = RedisServer("--requirepass", "one-word-pw")
    server.client = lambda **kw: RedisServer.client(server, password="one-word-pw", **kw)
    server.start()
    server.client().execute_command("ACL", "SETUSER", "metrics", "on", ">metrics-pw", "~*", "+@all")
    yield server
    server.cleanup()


@pytest.mark.parametrize("auth", ["one-word-pw@", ":one-word-pw@", "default:one-word-pw@", "metrics:metrics-pw@"])
def test_every_url_form_sidekiq_accepts_works_for_us(sidekiq7, acl_redis, auth):
    url = f"redis://{auth}127.0.0.1:{acl_redis.port}/0"
    theirs = subprocess.run([*sidekiq7, "-e", PING], env={"URL": url, "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=60)
    assert theirs.stdout.splitlines()[-1:] == ["PONG"], theirs.stderr[-500:]  # Sidekiq 7 logs in with this URL
    ours = cli("run", "--once", env={"REDIS_URL": url})
    assert ours.returncode == 0, ours.stderr
    assert "sample#sidekiq.metrics.up=1" in ours.stdout


@pytest.mark.parametrize("url, expected", [
    ("redis://secret@h:1/0", (None, "secret")),
    ("redis://:secret@h:1/0", (None, "secret")),
    ("redis://user:secret@h:1/0", ("user", "secret")),
    ("redis://user%40x:p%3Aw@h:1/0", ("user@x", "p:w")),
    ("redis://h:1/0", (None, None)),
])
def test_user_and_password_as_redis_client_reads_them(url, expected):
    target = parse_redis_url(url, "REDIS_URL")
    assert (target.username, target.password) == expected


@pytest.mark.parametrize("query, verify", [("ssl_cert_reqs=none", False), ("ssl_cert_reqs=CERT_NONE", False),
                                           ("ssl_cert_reqs=required", True), ("ssl_cert_reqs=optional", True),
                                           ("db=3", None)])
def test_ssl_cert_reqs_in_the_url_is_honoured(query, verify):
    assert parse_redis_url(f"rediss://h:1/?{query}", "REDIS_URL").tls_verify is verify


@pytest.mark.parametrize("url, message", [
    ("rediss://h:1/0?ssl_cert_reqs=maybe", "with a value other than none, optional or required"),
    ("redis://h:1/0?ssl_cert_reqs=none", "means something only for a rediss:// URL"),
    ("rediss://h:1/0?ssl_ca_certs=/etc/ca.pem", "has a query option we do not know: 'ssl_ca_certs'"),
    ("redis://h:1/0?password=hunter2", "has a query option we do not know: 'password'"),
    # Found in review of issue 32: the last of two won (`required&...=none` verified nothing), where redis-py
    # takes the first: a URL that says two things is refused.
    ("rediss://h:1/0?ssl_cert_reqs=required&ssl_cert_reqs=none", "gives the query option 'ssl_cert_reqs' twice"),
    ("redis://h:1/?db=3&db=4", "gives the query option 'db' twice"),
])
def test_query_options_we_cannot_honour_are_refused_not_ignored(url, message):
    with pytest.raises(ConfigError, match=message) as caught:
        parse_redis_url(url, "REDIS_URL")
    assert "hunter2" not in str(caught.value)


def test_a_query_option_that_may_be_a_secret_is_not_named():
    with pytest.raises(ConfigError) as caught:
        parse_redis_url("redis://h:1/0?Hunter2-pw", "REDIS_URL")
    assert "Hunter2" not in str(caught.value) and "(not shown)" in str(caught.value)
