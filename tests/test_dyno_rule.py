"""Does the emitter start on this dyno? One rule, written twice: in the hook (bash, where it must be cheap
and run before the app) and in config.why_no_emitter (what `doctor` reports). These tests hold the two
equal: the real hook is sourced by bash for every environment, with a supervisor that only says it ran."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidekiq_metrics.heroku.dynos import elected_by_type, why_no_emitter
from support.commands import ROOT

HOOK = ROOT / "profile.d/sidekiq-metrics.sh"


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """An app directory whose supervisor only leaves a mark (the real one would start the emitter)."""
    home = tmp_path_factory.mktemp("app")
    supervise = home / ".sidekiq-metrics/bin/supervise"
    supervise.parent.mkdir(parents=True)
    supervise.write_text('#!/bin/bash\nprintf %s "${SIDEKIQ_METRICS_LEASE:-}" >"${HOME}/started"\n')
    supervise.chmod(0o755)
    return home


def hook_run(home: Path, env: dict[str, str]) -> str | None:
    """What the hook started: None for nothing, else the SIDEKIQ_METRICS_LEASE its supervisor was given."""
    mark = home / "started"
    mark.unlink(missing_ok=True)
    # capture_output: run() returns once every holder of the output pipes has closed them, the supervisor
    # the hook started in the background included, so the mark is there by then if it ever will be.
    subprocess.run(["/bin/bash", "-c", 'source "$1"', "boot", str(HOOK)], check=True, timeout=10,
                   env={**env, "HOME": str(home), "PATH": "/usr/bin:/bin"}, capture_output=True)
    return mark.read_text() if mark.exists() else None


def hook_starts(home: Path, env: dict[str, str]) -> bool:
    return hook_run(home, env) is not None


def test_the_stand_in_supervisor_marks_when_the_hook_starts_it(home):
    assert hook_starts(home, {"DYNO": "web.1", "REDIS_URL": "redis://h:1/0"})
    assert not hook_starts(home, {"DYNO": "worker.1", "REDIS_URL": "redis://h:1/0"})


blank = st.sampled_from(["", " ", "\t"])
url = blank | st.just("redis://h:1/0")
environments = st.fixed_dictionaries(
    {"DYNO": st.sampled_from(["web.1", "web.2", "web.12", "web.", "web.x1", "web.1.1", "worker.1", "run.1234", ""])},
    optional={"SIDEKIQ_METRICS_DYNO": blank | st.sampled_from(["web.1", "worker.1", "web", "run", "we", "web.*"]),
              "SIDEKIQ_METRICS_DISABLE": blank | st.just("1"),
              "SIDEKIQ_METRICS_REDIS_URL": url, "REDIS_URL": url,
              "REDIS_PROVIDER": blank | st.sampled_from(["REDISCLOUD_URL", " REDISCLOUD_URL ", "redis://x", "9NAME",
                                                         "MISSING_URL", "LONG_" * 30 + "URL"]),
              "SIDEKIQ_METRICS_SHARDS": blank | st.just("default:REDISCLOUD_URL,orders:LONG_URL"),
              "LONG_" * 30 + "URL": url,
              "REDISCLOUD_URL": url})


@settings(max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "300")), deadline=None,
          derandomize=bool(os.environ.get("CI")))
@given(env=environments)
def test_the_hook_and_the_python_rule_agree_on_every_environment(home, env):
    started = hook_run(home, env)
    assert (started is not None) == (why_no_emitter(env) == []), env
    # A process type named: each of its dynos runs an emitter that polls only while it holds the lease.
    wanted = env.get("SIDEKIQ_METRICS_DYNO") or "web.1"
    assert started is None or started == ("" if env["DYNO"] == wanted else "1"), env
    assert started is None or (started == "1") == elected_by_type(env), env


def test_naming_a_process_type_starts_a_leased_emitter_on_each_of_its_dynos(home):
    """Issue 26.3: the lease as an opt-in alternative to the web.1 rule on Cedar."""
    env = {"REDIS_URL": "redis://h:1/0", "SIDEKIQ_METRICS_DYNO": "web"}
    assert [hook_run(home, {**env, "DYNO": d}) for d in ("web.1", "web.7", "worker.1")] == ["1", "1", None]
    assert hook_run(home, {**env, "SIDEKIQ_METRICS_DYNO": "web.1", "DYNO": "web.1"}) == ""


def test_shards_without_redis_url_start_the_emitter(home):
    """Found in review of issue 32: with SIDEKIQ_METRICS_SHARDS naming every Redis (`default:REDISCLOUD_URL`) and no
    REDIS_URL, the hook started nothing, silently. The shards are the Redis configuration then; the emitter itself
    says in one line what is wrong with them, as it does for a REDIS_PROVIDER that is no variable's name."""
    env = {"DYNO": "web.1", "SIDEKIQ_METRICS_SHARDS": "default:REDISCLOUD_URL", "REDISCLOUD_URL": "redis://h:1/0"}
    assert hook_starts(home, env)
    assert why_no_emitter(env) == []
