"""Fixtures: real redis-server processes, and real Sidekiq 7.3 as a reference. Helpers are in support/."""

from __future__ import annotations

import subprocess

import pytest

from support.commands import ROOT
from support.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture
def r(redis_server):
    """An empty database on the shared server."""
    client = redis_server.client()
    client.flushall()
    yield client
    client.flushall()


@pytest.fixture
def own_redis():
    """A server this test alone may stop, pause and restart."""
    server = RedisServer().start()
    yield server
    server.cleanup()


REFERENCE_SIDEKIQ = ROOT.parent / "shared" / "reference-sidekiq"


@pytest.fixture(scope="session")
def sidekiq7(tmp_path_factory) -> list[str]:
    """The command that runs Ruby with real Sidekiq 7.3 and its redis-client loaded (../shared/reference-sidekiq)."""
    if not (REFERENCE_SIDEKIQ / "setup.sh").exists():
        pytest.fail(f"{REFERENCE_SIDEKIQ} is missing: the tests need ../shared beside the checkout")
    target = tmp_path_factory.mktemp("reference-sidekiq")
    subprocess.run(["bash", str(REFERENCE_SIDEKIQ / "setup.sh"), str(target)], check=True, capture_output=True,
                   timeout=300)
    values = dict(line.split("=", 1) for line in (target / "env.sh").read_text().splitlines()
                  if "=" in line and not line.startswith("#"))
    return [values["SK7_RUBY"].strip('"'), *values["SK7_I"].strip('"').split()]
