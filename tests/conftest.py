"""Fixtures: real redis-server processes, and real Sidekiq 7.3 as a reference. Helpers are in support/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from support import heroku_runtime
from support.commands import ROOT
from support.made_once import made_once
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
def reference_sidekiq(tmp_path_factory) -> dict[str, list[str]]:
    """Real Sidekiq 7.3 and 8.1 (../shared/reference-sidekiq): for each, the command that runs Ruby with it
    loaded ("7", "8") and the one that runs its server ("7-server", "8-server")."""
    if not (REFERENCE_SIDEKIQ / "setup.sh").exists():
        pytest.fail(f"{REFERENCE_SIDEKIQ} is missing: the tests need ../shared beside the checkout")
    target = made_once(tmp_path_factory, "reference-sidekiq", lambda target: subprocess.run(
        ["bash", str(REFERENCE_SIDEKIQ / "setup.sh"), str(target)], check=True, capture_output=True, timeout=300))
    values = {key: value.strip('"').split() for key, _, value in
              (line.partition("=") for line in (target / "env.sh").read_text().splitlines())
              if value and not key.startswith("#")}
    return {"7": values["SK7_RUBY"] + values["SK7_I"], "8": values["SK8_RUBY"] + values["SK8_I"],
            "7-server": values["SK7_RUBY"] + values["SK7_I"] + values["SK7_BIN"],
            "8-server": values["SK8_RUBY"] + values["SK8_I"] + values["SK8_BIN"]}


REFERENCE_VALKEY = ROOT.parent / "shared" / "reference-valkey"


@pytest.fixture(scope="session")
def valkey_binary(tmp_path_factory) -> str:
    """Real Valkey 8 (Heroku Key-Value Store runs Valkey): Debian trixie's valkey-server, unpacked by
    ../shared/reference-valkey/setup.sh and run through trixie's own loader."""
    if not (REFERENCE_VALKEY / "setup.sh").exists():
        pytest.fail(f"{REFERENCE_VALKEY} is missing: the tests need ../shared beside the checkout")
    target = made_once(tmp_path_factory, "reference-valkey", lambda target: subprocess.run(
        ["bash", str(REFERENCE_VALKEY / "setup.sh"), str(target)], check=True, capture_output=True, timeout=300))
    return str(target / "bin" / "valkey-server")


@pytest.fixture(scope="session")
def valkey(valkey_binary):
    server = RedisServer(binary=valkey_binary).start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def sidekiq7(reference_sidekiq) -> list[str]:
    """The command that runs Ruby with real Sidekiq 7.3 and its redis-client loaded."""
    return reference_sidekiq["7"]


@pytest.fixture(scope="session")
def runtime_archive(tmp_path_factory) -> Path:
    """A stand-in for Heroku's python-X.Y.Z-ubuntu-NN.04-ARCH.tar.zst (tests/support/heroku_runtime.py says
    what it reproduces of Heroku's archives and what it cannot), checked before any test uses it."""
    def make(target: Path) -> None:
        archive = heroku_runtime.build(target)
        heroku_runtime.check(archive, tmp_path_factory.mktemp("runtime-check"))

    return next(made_once(tmp_path_factory, "runtime", make).glob("*.tar.zst"))


@pytest.fixture(scope="session")
def wheel_mirror(tmp_path_factory) -> Path:
    """A directory holding the pinned wheels, as a user's mirror would."""
    requirements = ROOT / "lib/runtime-requirements.txt"
    return made_once(tmp_path_factory, "wheels", lambda mirror: subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--require-hashes",
         "--dest", str(mirror), "--requirement", str(requirements)], check=True, capture_output=True))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each `long` test first in one xdist worker's share, so that the longest waits overlap from the start
    rather than one of them starting last and setting the run's time. xdist's worksteal hands worker i the
    slice [start_i, start_i + (N - start_i) // (workers - i)) of the collection; each worker collects alike."""
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    long = [item for item in items if item.get_closest_marker("long")]
    if workers < 2 or not long:
        return
    rest = [item for item in items if not item.get_closest_marker("long")]
    ordered: list[pytest.Item] = []
    for worker in range(workers):
        share = (len(items) - len(ordered)) // (workers - worker)
        mine = long[worker::workers]
        ordered += mine + rest[:max(share - len(mine), 0)]
        del rest[:max(share - len(mine), 0)]
    items[:] = ordered + rest
