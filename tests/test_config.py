"""Settings: precedence, Sidekiq's Redis URL rule, and one clear line (exit 2) for every bad value."""

import pytest

from sidekiq_metrics.config import load_settings
from sidekiq_metrics.errors import ConfigError
from sidekiq_metrics.redis.target import RedisTarget
from support.commands import cli


def test_defaults():
    s = load_settings({})
    assert s.redis == RedisTarget("redis", host="localhost", port=6379, db=0)
    assert (s.interval, s.queues, s.namespace, s.prefix, s.metric_type, s.source, s.tls_verify) == \
        (30.0, None, None, "sidekiq", "sample", None, False)
    assert s.origins["interval"] == "default"


def test_env_names_of_the_original_buildpack_and_ours():
    s = load_settings({"SIDEKIQ_METRICS_INTERVAL": "10", "SIDEKIQ_METRICS_TYPE": "measure",
                       "SIDEKIQ_METRICS_QUEUES": " default , mailers,,default ", "SIDEKIQ_METRICS_NAMESPACE": "myapp",
                       "SIDEKIQ_METRICS_PREFIX": "jobs", "SIDEKIQ_METRICS_SOURCE": "web.1",
                       "SIDEKIQ_METRICS_TLS_VERIFY": "true"})
    assert (s.interval, s.metric_type, s.queues, s.namespace, s.prefix, s.source, s.tls_verify) == \
        (10.0, "measure", ("default", "mailers"), "myapp", "jobs", "web.1", True)


def test_flags_win_over_env_and_empty_env_is_unset():
    s = load_settings({"SIDEKIQ_METRICS_INTERVAL": "10", "SIDEKIQ_METRICS_PREFIX": ""}, {"interval": "2.5"})
    assert s.interval == 2.5 and s.prefix == "sidekiq"
    assert s.origins["interval"] == "--interval"


@pytest.mark.parametrize("env, host, origin", [
    ({"REDIS_URL": "redis://a:1"}, "a", "REDIS_URL"),
    ({"REDIS_URL": "redis://a:1", "REDIS_PROVIDER": "REDISCLOUD_URL", "REDISCLOUD_URL": "redis://b:1"}, "b",
     "REDISCLOUD_URL (named by REDIS_PROVIDER)"),
    ({"REDIS_URL": "redis://a:1", "REDIS_PROVIDER": "UNSET_URL"}, "a", "REDIS_URL"),
    ({"REDIS_URL": "redis://a:1", "REDIS_PROVIDER": "REDISCLOUD_URL", "REDISCLOUD_URL": "redis://b:1",
      "SIDEKIQ_METRICS_REDIS_URL": "redis://c:1"}, "c", "SIDEKIQ_METRICS_REDIS_URL"),
])
def test_redis_url_follows_sidekiq_then_our_override(env, host, origin):
    s = load_settings(env)
    assert s.redis.host == host and s.origins["redis_url"] == origin


def test_redis_urls_parse_with_credentials_kept_out_of_display():
    t = load_settings({"REDIS_URL": "rediss://user:s%40cret@cache.example.com:25061/3"}).redis
    assert (t.scheme, t.host, t.port, t.db, t.username, t.password, t.tls) == \
        ("rediss", "cache.example.com", 25061, 3, "user", "s@cret", True)
    assert t.display == "rediss://***@cache.example.com:25061/3"
    assert "s@cret" not in repr(t)
    assert load_settings({"REDIS_URL": "unix:///tmp/r.sock?db=2"}).redis.display == "unix:///tmp/r.sock?db=2"


@pytest.mark.parametrize("env, message", [
    ({"SIDEKIQ_METRICS_INTERVAL": "abc"}, "SIDEKIQ_METRICS_INTERVAL must be a number of seconds above 0"),
    ({"SIDEKIQ_METRICS_INTERVAL": "0"}, "SIDEKIQ_METRICS_INTERVAL must be a number of seconds above 0"),
    ({"SIDEKIQ_METRICS_INTERVAL": "-5"}, "SIDEKIQ_METRICS_INTERVAL must be a number"),
    ({"SIDEKIQ_METRICS_INTERVAL": "1e400"}, "SIDEKIQ_METRICS_INTERVAL must be a number"),
    ({"SIDEKIQ_METRICS_INTERVAL": "99999999"}, "SIDEKIQ_METRICS_INTERVAL must be a number"),
    ({"SIDEKIQ_METRICS_INTERVAL": "nan"}, "SIDEKIQ_METRICS_INTERVAL must be a number"),
    ({"SIDEKIQ_METRICS_TYPE": "gauge"}, "SIDEKIQ_METRICS_TYPE must be one of sample, measure, count, got 'gauge'"),
    ({"SIDEKIQ_METRICS_PREFIX": "a b"}, "SIDEKIQ_METRICS_PREFIX must be 1 to 64 of"),
    ({"SIDEKIQ_METRICS_PREFIX": ".x"}, "SIDEKIQ_METRICS_PREFIX must be 1 to 64 of"),
    ({"SIDEKIQ_METRICS_SOURCE": "web 1"}, "SIDEKIQ_METRICS_SOURCE must be 1 to 255 of"),
    ({"SIDEKIQ_METRICS_QUEUES": " , ,"}, "SIDEKIQ_METRICS_QUEUES must list queue names"),
    ({"SIDEKIQ_METRICS_TLS_VERIFY": "maybe"}, "SIDEKIQ_METRICS_TLS_VERIFY must be true or false"),
    ({"REDIS_URL": "http://h:p@host"}, "REDIS_URL must be a redis://, rediss:// or unix:// URL"),
    ({"REDIS_URL": "redis://:pw@host:notaport"}, "REDIS_URL must be a redis://"),
    ({"REDIS_URL": "redis://:pw@host/zero"}, "REDIS_URL must end in a database number"),
    ({"REDIS_URL": "redis://:pw@"}, "REDIS_URL must be a redis://"),
    ({"REDIS_PROVIDER": "redis://h:6379"}, "REDIS_PROVIDER must be the name of the variable"),
    ({"REDIS_PROVIDER": "MY_URL", "MY_URL": "redis://h:99999"}, "MY_URL must be a redis://"),
])
def test_bad_values_name_the_variable_and_what_it_accepts(env, message):
    with pytest.raises(ConfigError) as err:
        load_settings(env)
    assert str(err.value).startswith(message)


@pytest.mark.parametrize("env", [
    {"SIDEKIQ_METRICS_INTERVAL": "abc"},
    {"SIDEKIQ_METRICS_TYPE": "count;rm -rf /"},
    {"SIDEKIQ_METRICS_PREFIX": "\u00e9\n$(id)"},
    {"REDIS_URL": "redis://user:hunter2-secret@host:99999999/0"},
    {"REDIS_URL": "ftp://user:hunter2-secret@host"},
    # Issue 25.14: an empty or over-long label crashed the name lookup with two tracebacks and exit 1, for ever.
    {"REDIS_URL": "redis://:hunter2-secret@redis..example.com:6379"},
    {"REDIS_URL": "rediss://:hunter2-secret@" + "a" * 64 + ".example.com:6379"},
    {"SIDEKIQ_METRICS_OUTPUT": "statsd", "DD_AGENT_HOST": "agent..local"},
    {"SIDEKIQ_METRICS_OUTPUT": "prometheus", "SIDEKIQ_METRICS_PROMETHEUS_HOST": ".local"},
])
def test_cli_bad_config_is_one_line_exit_2_no_secret(env):
    result = cli("run", "--once", env=env)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sidekiq-metrics: ")
    assert "Traceback" not in result.stderr and "hunter2" not in result.stderr


def test_cli_flag_errors_name_the_flag():
    result = cli("run", "--once", "--interval", "-1")
    assert result.returncode == 2
    assert result.stderr.startswith("sidekiq-metrics: --interval must be a number of seconds")
