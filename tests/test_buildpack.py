"""The buildpack as Heroku drives it, simulated on this machine.

The Python runtime archive is a stand-in for Heroku's (tests/support/heroku_runtime.py, whose docstring
lists every property of Heroku's archives it reproduces and those it cannot): built --enable-shared with
no RUNPATH and a libpython nothing else on the machine provides, so that, like Heroku's, its interpreter
starts only with LD_LIBRARY_PATH, which the `runtime_archive` fixture checks before any test uses it.
It is served by SIDEKIQ_METRICS_PYTHON_URL=file://...; the pinned wheels by pip's own mirror settings
(PIP_NO_INDEX + PIP_FIND_LINKS in ENV_DIR). bin/compile builds a slug, the slug is moved elsewhere, and a
dyno is booted the way Heroku boots one: HOME is the slug, config vars are in the environment, bash
sources every .profile.d/*.sh (in whatever state an earlier script left the shell), then execs the
process command.

Not reproduced of a real Heroku build: Heroku's build system itself (its build image, its caching of
CACHE_DIR, its slug compression and size limit), the dyno manager's startup shell (bash --login and
/etc/profile; here bash -c), Logplex, the stacks' own images (every stack here is this machine), and
downloads from Heroku's bucket over HTTPS.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from support import heroku_runtime
from support.commands import ROOT
from support.made_once import made_once
from support.otlp_receiver import OtlpReceiver
from support.redis_server import free_port, wait_until
from support.sidekiq_data import job, push

STACKS = ["heroku-22", "heroku-24", "heroku-26"]
APP_ENV_SENTINELS = {"PYTHONHOME": "/app/.heroku/python", "PYTHONPATH": "/app/lib",
                     "LD_LIBRARY_PATH": "/app/.heroku/vendor/lib", "PATH": "/app/bin:/usr/local/bin:/usr/bin:/bin"}


def test_the_stand_in_runtime_needs_ld_library_path_like_herokus(runtime_archive, tmp_path):
    """The property that once hid a broken build: without LD_LIBRARY_PATH the interpreter does not start."""
    heroku_runtime.check(runtime_archive, tmp_path)


def build_env(stack: str | None) -> dict[str, str]:
    """The build's environment: STACK set, no pip settings of this machine, no DYNO."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "SIDEKIQ_METRICS_", "DYNO", "STACK"))}
    return env if stack is None else {**env, "STACK": stack}


def write_env_dir(env_dir: Path, **config: str) -> Path:
    env_dir.mkdir(parents=True, exist_ok=True)
    for name, value in config.items():
        (env_dir / name).write_text(value)
    return env_dir


Compiled = tuple[subprocess.CompletedProcess[str], Path, Path]


def compile_app(tmp: Path, stack: str | None, build_name: str = "build", mounts: tuple[str, ...] = (),
                env: dict[str, str] | None = None, **config: str) -> Compiled:
    """bin/compile as Heroku runs it. `mounts`: shell lines run first in a mount namespace of the build's
    own (tmpfs caches that are full or read-only), with $BUILD and $CACHE set."""
    build, cache = tmp / build_name, tmp / "cache"
    build.mkdir(parents=True, exist_ok=True)
    cache.mkdir(exist_ok=True)
    (build / "Gemfile").write_text("source 'https://rubygems.org'\ngem 'sidekiq'\n")
    env_dir = write_env_dir(tmp / "env", **config)
    command = [str(ROOT / "bin/compile"), str(build), str(cache), str(env_dir)]
    if mounts:
        script = "; ".join([*mounts, 'exec "$@"'])
        command = ["unshare", "--mount", "--propagation", "private", "bash", "-ec", script, "compile", *command]
    build_environment = build_env(stack) if env is None else env
    result = subprocess.run(command, env={**build_environment, "BUILD": str(build), "CACHE": str(cache)},
                            capture_output=True, text=True, timeout=300)
    return result, build, cache


def assert_ends_in_an_error_block(stderr: str) -> None:
    """Heroku's form: every failure ends with a ` !     ` block saying what to do."""
    last = [line for line in stderr.splitlines() if line.strip()][-1]
    assert last.startswith(" !     "), stderr


def mirror_config(archive: Path, mirror: Path) -> dict[str, str]:
    return {"SIDEKIQ_METRICS_PYTHON_URL": f"file://{archive}", "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(mirror)}


def build_slug(tmp: Path, runtime_archive: Path, wheel_mirror: Path) -> None:
    """A slug built for heroku-24 twice (the second from the cache), then moved away from its build path; the
    builds' outputs are kept beside it in builds.json."""
    config = mirror_config(runtime_archive, wheel_mirror)
    first, build, cache = compile_app(tmp, "heroku-24", **config)
    assert first.returncode == 0, first.stdout + first.stderr
    # The second build must download nothing: both sources are gone now.
    shutil.rmtree(build)
    archive_copy = tmp / "moved-away.tar.zst"
    shutil.copy(runtime_archive, archive_copy)
    empty_mirror = tmp / "empty-mirror"
    empty_mirror.mkdir()
    second, build, cache = compile_app(tmp, "heroku-24", **{**config, "PIP_FIND_LINKS": str(empty_mirror)})
    assert second.returncode == 0, second.stdout + second.stderr
    shutil.move(str(build), str(tmp / "app"))  # the build ran in .../build; dynos run the slug from another path
    outputs = {"first": first.stdout, "second": second.stdout, "build": str(build)}
    (tmp / "builds.json").write_text(json.dumps(outputs))


@pytest.fixture(scope="module")
def slug(tmp_path_factory, runtime_archive, wheel_mirror) -> dict:
    """The slug, built once a run (every xdist worker would otherwise build its own: some 7 s of CPU each), and
    hard-linked into a directory of this module's own: the dynos write pid files and their environments there, and
    a test of another worker must not see them. (Nothing writes into a file of the slug: new files only.)"""
    built = made_once(tmp_path_factory, "slug", lambda tmp: build_slug(tmp, runtime_archive, wheel_mirror))
    outputs = json.loads((built / "builds.json").read_text())
    app = tmp_path_factory.mktemp("slug") / "app"
    subprocess.run(["cp", "--archive", "--link", str(built / "app"), str(app)], check=True)
    return {"first": outputs["first"], "second": outputs["second"], "build": Path(outputs["build"]), "app": app}


def test_detect_always_applies(tmp_path):
    result = subprocess.run([str(ROOT / "bin/detect"), str(tmp_path)], capture_output=True, text=True)
    assert (result.returncode, result.stdout) == (0, "Sidekiq Metrics\n")


def test_release_declares_nothing(tmp_path):
    result = subprocess.run([str(ROOT / "bin/release"), str(tmp_path)], capture_output=True, text=True)
    assert (result.returncode, result.stdout) == (0, "--- {}\n")


def test_compile_output_and_cache(slug):
    first, second = slug["first"], slug["second"]
    assert first.startswith("-----> Downloading the Python runtime\n       file://")
    packages = "click, redis, opentelemetry-proto, protobuf"
    assert f"-----> Downloading packages ({packages})\n-----> Installing the sidekiq-metrics emitter\n" in first
    assert "       sidekiq-metrics, version 0.1.0\n" in first
    assert second.startswith(f"-----> Using the cached Python runtime\n-----> Using cached packages ({packages})\n")
    assert "Downloading" not in second


def test_slug_holds_no_build_path_and_no_console_scripts(slug):
    needle = str(slug["build"]).encode()
    offenders = [p for p in slug["app"].rglob("*") if p.is_file() and not p.is_symlink() and needle in p.read_bytes()]
    assert offenders == []
    site = next(slug["app"].glob(".sidekiq-metrics/python/lib/python3.*/site-packages"))
    assert {"click", "redis", "sidekiq_metrics"} <= {p.name for p in site.iterdir()}
    assert not (site / "bin").exists()


class Dyno:
    """One booted dyno: bash sources .profile.d/*.sh, then execs the process command (our fake app)."""

    def __init__(self, home: Path, dyno: str, config: dict[str, str], run_for: float = 30, shell_state: str = "",
                 source_times: int = 1) -> None:
        """`shell_state`: what an earlier .profile.d script or the boot left in the startup shell (set -o posix,
        set -eu, an IFS...). `config` may set PATH (default: the app's sentinel PATH)."""
        self.env_file = home.parent / f"app-env-{dyno}-{time.monotonic_ns()}.json"
        app = (f"import json, os, time; json.dump(dict(os.environ), open({str(self.env_file)!r}, 'w')); "
               f"time.sleep({run_for})")
        sourcing = 'for f in .profile.d/*.sh; do source "${f}"; done; ' * source_times
        boot = (f'{shell_state}\ncd "${{HOME}}"; {sourcing}'
                f'exec {sys.executable} -I -c "{app}"')  # -I: our sentinel PYTHONHOME must not break it
        env = {"HOME": str(home), "DYNO": dyno, "PORT": "5000", **APP_ENV_SENTINELS, **config}
        self.proc = subprocess.Popen(["/bin/bash", "-c", boot], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.stdout = ""
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        for line in self.proc.stdout:
            self.stdout += line

    def app_env(self, timeout: float = 10) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return json.loads(self.env_file.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                time.sleep(0.02)
        raise AssertionError("the app process never started")

    def ours(self) -> list[int]:
        """Every live process of the dyno besides the app itself: ours. (The dyno runs in a session of
        its own, which every process the hook starts inherits, even once the app is gone.)"""
        return [pid for pid in session_members(self.proc.pid) if pid != self.proc.pid]

    def sigterm_all(self) -> None:
        """What Heroku does at shutdown: SIGTERM to every process of the dyno."""
        for pid in [self.proc.pid, *self.ours()]:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def read_stdout_until(self, text: str, timeout: float) -> str:
        """The dyno's stdout from now on, until `text` appears in it."""
        start = len(self.stdout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and text not in self.stdout[start:]:
            time.sleep(0.05)
        return self.stdout[start:]

    def stop(self) -> str:
        self.sigterm_all()
        try:
            self.proc.wait(5)
        finally:
            deadline = time.monotonic() + 3
            while self.ours() and time.monotonic() < deadline:
                time.sleep(0.05)
            kill_session(self.proc.pid)
        return self.proc.stderr.read()


def session_members(sid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:
            members.append(int(stat.parent.name))
    return members


def kill_session(sid: int) -> None:
    """SIGKILL every process of the session until none is left: one listing may miss a child forked just after
    it (by a supervisor killed just after), which would live on, orphaned (seen once after a full run)."""
    deadline = time.monotonic() + 5
    while (members := session_members(sid)) and time.monotonic() < deadline:
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)
    assert not session_members(sid), "a process of the session outlived SIGKILL"


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def redis_config(redis_server, **extra: str) -> dict[str, str]:
    return {"REDIS_URL": redis_server.url, "SIDEKIQ_METRICS_INTERVAL": "0.5", **extra}


def test_web_1_reports_within_seconds_and_leaves_the_app_env_alone(slug, r, redis_server):
    push(r, "default", job(time.time() - 2.0))
    config = redis_config(redis_server)
    dyno = Dyno(slug["app"], "web.1", config)
    try:
        with_hook = dyno.app_env()
        out = dyno.read_stdout_until(".latency=", 8)
        assert "sample#sidekiq.default.size=1\nsample#sidekiq.default.latency=" in out
        # at least the 2 s the job had waited; never its digits, which grow with a busy machine's delays
        assert float(out.split("sample#sidekiq.default.latency=")[1].split()[0]) >= 2.0
        assert len(dyno.ours()) >= 2  # the supervisor and the emitter
    finally:
        stderr = dyno.stop()
    assert "sidekiq-metrics: starting the Sidekiq metrics emitter on web.1" in stderr

    # The same boot without our hook: the app must see exactly the same environment.
    hookless = slug["app"].parent / "hookless"
    shutil.copytree(slug["app"], hookless, symlinks=True)
    (hookless / ".profile.d/sidekiq-metrics.sh").unlink()
    plain = Dyno(hookless, "web.1", config)
    try:
        without_hook = plain.app_env()
    finally:
        plain.stop()
    normalise = {"HOME", "PWD", "OLDPWD"}
    assert {k: v for k, v in with_hook.items() if k not in normalise} == \
        {k: v for k, v in without_hook.items() if k not in normalise}
    for name, value in APP_ENV_SENTINELS.items():
        assert with_hook[name] == value


def test_the_slug_exports_otlp_with_its_pinned_protobuf(slug, r, redis_server):
    """The otlp output from the slug: the pinned opentelemetry-proto and protobuf wheels (protobuf's C
    extension among them) load in the relocated runtime, and a receiver decodes what it sends."""
    push(r, "default", job(time.time() - 2.0))
    receiver = OtlpReceiver()
    dyno = Dyno(slug["app"], "web.1", redis_config(redis_server, SIDEKIQ_METRICS_OUTPUT="l2met,otlp",
                                                    OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
                                                    HEROKU_APP_NAME="shop"))
    try:
        (export, *_) = receiver.wait_for(1, 15) or [None]
    finally:
        stderr = dyno.stop()
        receiver.close()
    assert export is not None, stderr
    assert export.resource()["service.name"] == "shop" and "sidekiq.queue.latency" in export.metrics()


@pytest.mark.parametrize("dyno, config", [
    ("worker.1", {}),
    ("run.1234", {}),
    ("web.2", {}),
    ("web.1", {"SIDEKIQ_METRICS_DISABLE": "1"}),
    ("web.1", {"REDIS_URL": ""}),
    ("web.1", {"REDIS_URL": "", "REDIS_PROVIDER": "REDISCLOUD_URL"}),  # names a variable that is unset
])
def test_no_emitter_where_it_should_not_run(slug, redis_server, dyno, config):
    d = Dyno(slug["app"], dyno, {**redis_config(redis_server), **config})
    try:
        d.app_env()
        time.sleep(0.5)
        assert d.ours() == []
    finally:
        stderr = d.stop()
    assert stderr == ""


def test_sidekiq_metrics_dyno_moves_it(slug, r, redis_server):
    d = Dyno(slug["app"], "worker.3", redis_config(redis_server, SIDEKIQ_METRICS_DYNO="worker.3"))
    try:
        d.app_env()
        assert len(d.ours()) >= 1
    finally:
        d.stop()


def source_time(hook: Path, dyno: str, config: dict[str, str], tmp: Path) -> float:
    """Seconds bash spends sourcing the hook, in a shell with `set -eu` that must live on afterwards."""
    script = 'start=${EPOCHREALTIME}; source "$1"; end=${EPOCHREALTIME}; echo "alive $(( ${end/./} - ${start/./} ))"'
    env = {"HOME": str(hook.parent.parent), "DYNO": dyno, "PATH": "/usr/bin:/bin", **config}
    out = tmp / f"source-{dyno}.out"
    with out.open("w") as sink:  # a file, not a pipe: a started emitter keeps writing to it
        shell = subprocess.Popen(["bash", "-c", f"set -eu; {script}", "boot", str(hook)], env=env, stdout=sink,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
        shell.wait(10)
    kill_session(shell.pid)  # the emitter it started, if any
    first = out.read_text().splitlines()[0]
    assert shell.returncode == 0 and first.startswith("alive "), first  # it returned; the shell lived on
    return int(first.split()[1]) / 1e6


def test_sourcing_the_hook_is_instant_and_never_ends_the_shell(slug, tmp_path):
    hook = slug["app"] / ".profile.d/sidekiq-metrics.sh"
    # The best of five: one wall-clock reading on a loaded 2-core machine measures the scheduler as
    # much as the hook. Alone, worker.1 takes one test (no fork) and web.1 a subshell's fork and exit
    # (0.7-3 ms); a full run on two busy cores once stretched web.1 past 50 ms three times in a row.
    assert min(source_time(hook, "worker.1", {}, tmp_path) for _ in range(5)) < 0.02
    config = {"REDIS_URL": "redis://127.0.0.1:1/0", "SIDEKIQ_METRICS_INTERVAL": "60"}
    assert min(source_time(hook, "web.1", config, tmp_path) for _ in range(5)) < 0.05


def test_a_crashed_emitter_is_restarted_but_nothing_survives_sigterm(slug, r, redis_server):
    push(r, "default")
    d = Dyno(slug["app"], "web.1", redis_config(redis_server, SIDEKIQ_METRICS_RESTART_DELAY="0.5"))
    try:
        assert ".size=0" in d.read_stdout_until(".size=0", 8)
        first = emitters(d)
        assert len(first) == 1
        os.kill(first[0], signal.SIGKILL)  # e.g. the OOM killer
        time.sleep(0.3)
        assert d.read_stdout_until(".size=0", 8).count(".size=0") >= 1  # reporting again
        restarted = emitters(d)
        assert len(restarted) == 1 and restarted != first
        ours = d.ours()
        d.sigterm_all()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and any(alive(p) for p in ours):
            time.sleep(0.05)
        assert not any(alive(p) for p in ours)
        time.sleep(1.0)  # longer than the restart delay: nothing came back
        assert d.ours() == [] or not any(alive(p) for p in d.ours())
    finally:
        stderr = d.stop()
    assert "sidekiq-metrics: the emitter exited with status 137; restarting in 0.5s" in stderr
    assert stderr.count("restarting") == 1


def test_a_bad_restart_delay_falls_back_to_10_seconds_not_a_restart_storm(slug, r, redis_server):
    push(r, "default")
    d = Dyno(slug["app"], "web.1", redis_config(redis_server, SIDEKIQ_METRICS_RESTART_DELAY="soon; rm -rf /"))
    try:
        assert ".size=0" in d.read_stdout_until(".size=0", 8)
        emitter = next(iter(emitters(d)))
        os.kill(emitter, signal.SIGKILL)
        time.sleep(1.0)
        assert not emitters(d)
    finally:
        stderr = d.stop()
    assert stderr.count("restarting in 10s") == 1


def test_a_configuration_error_is_said_once_and_not_restarted(slug, redis_server):
    d = Dyno(slug["app"], "web.1", redis_config(redis_server, SIDEKIQ_METRICS_INTERVAL="soon",
                                                SIDEKIQ_METRICS_RESTART_DELAY="0.1"))
    try:
        d.app_env()
        time.sleep(1.5)
        assert d.ours() == []
    finally:
        stderr = d.stop()
    assert stderr.count("SIDEKIQ_METRICS_INTERVAL must be a number") == 1
    assert "not restarting the emitter: fix the setting named above" in stderr


@pytest.mark.parametrize("stack", STACKS)
def test_every_supported_stack_builds_and_reports(tmp_path, runtime_archive, wheel_mirror, r, redis_server, stack):
    push(r, "default")
    result, build, _ = compile_app(tmp_path, stack, **mirror_config(runtime_archive, wheel_mirror))
    assert result.returncode == 0, result.stderr
    assert_moved_slug_reports(build, tmp_path / "app", redis_server)


def assert_moved_slug_reports(build: Path, app: Path, redis_server) -> None:
    """The slug, moved away from its build path as Heroku runs it, boots web.1 and reports."""
    shutil.move(str(build), str(app))
    d = Dyno(app, "web.1", redis_config(redis_server))
    try:
        assert "sample#sidekiq.default.size=0" in d.read_stdout_until(".size=0", 8)
    finally:
        d.stop()


def archive_url(stack: str, arch: str) -> subprocess.CompletedProcess[str]:
    ubuntu = stack.removeprefix("heroku-") + ".04"  # as bin/compile names the stack's distribution
    script = f'source lib/output.sh; source lib/python.sh; python::archive_url ubuntu "{ubuntu}" "{arch}"'
    return subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"]})


@pytest.mark.parametrize("stack, arch, ubuntu", [("heroku-22", "amd64", "22.04"), ("heroku-24", "arm64", "24.04"),
                                                 ("heroku-26", "amd64", "26.04")])
def test_heroku_runtime_url_per_stack_and_cpu(stack, arch, ubuntu):
    result = archive_url(stack, arch)
    assert result.stdout.strip() == ("https://heroku-buildpack-python.s3.dualstack.us-east-1.amazonaws.com/"
                                     f"python-3.13.15-ubuntu-{ubuntu}-{arch}.tar.zst")


def test_unsupported_stack_fails_clearly(tmp_path):
    result, _, _ = compile_app(tmp_path, "heroku-20")
    assert result.returncode == 1
    assert " !     Error: sidekiq-metrics does not support the stack heroku-20." in result.stderr


def test_a_mirror_url_with_credentials_never_shows_them(tmp_path, wheel_mirror):
    url = f"http://mirror-user:S3cret-pw@127.0.0.1:{free_port()}/python.tar.zst"  # nothing listens there
    result, _, _ = compile_app(tmp_path, "heroku-24", SIDEKIQ_METRICS_PYTHON_URL=url, PIP_NO_INDEX="1",
                               PIP_FIND_LINKS=str(wheel_mirror))
    assert result.returncode == 1
    assert "S3cret-pw" not in result.stdout + result.stderr and "mirror-user" not in result.stdout + result.stderr
    assert f" !     From: http://***@127.0.0.1:{url.rsplit(':', 1)[1]}" in result.stderr
    assert_ends_in_an_error_block(result.stderr)


def test_failed_download_names_the_url_and_the_override(tmp_path, wheel_mirror):
    result, _, cache = compile_app(tmp_path, "heroku-24", SIDEKIQ_METRICS_PYTHON_URL="file:///nonexistent/python.tar.zst",
                                   PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheel_mirror))
    assert result.returncode == 1
    assert " !     Error: could not download the Python runtime for sidekiq-metrics." in result.stderr
    assert " !     From: file:///nonexistent/python.tar.zst" in result.stderr
    assert "SIDEKIQ_METRICS_PYTHON_URL" in result.stderr
    assert not list(cache.rglob("*.tar.zst*"))  # nothing half-downloaded is kept


def test_checksum_is_enforced_when_pinned(tmp_path, runtime_archive, wheel_mirror):
    config = mirror_config(runtime_archive, wheel_mirror)
    bad, _, cache = compile_app(tmp_path / "bad", "heroku-24", **config, SIDEKIQ_METRICS_PYTHON_SHA256="0" * 64)
    assert bad.returncode == 1
    assert " !     Error: the Python runtime archive for sidekiq-metrics failed its checksum." in bad.stderr
    assert not list(cache.rglob("*.tar.zst"))
    good_sum = hashlib.sha256(runtime_archive.read_bytes()).hexdigest()
    good, _, _ = compile_app(tmp_path / "good", "heroku-24", **config, SIDEKIQ_METRICS_PYTHON_SHA256=good_sum)
    assert good.returncode == 0 and "       SHA-256 verified\n" in good.stdout


def test_failed_package_download_tells_what_to_set(tmp_path, runtime_archive):
    empty = tmp_path / "empty"
    empty.mkdir()
    result, _, _ = compile_app(tmp_path, "heroku-24", SIDEKIQ_METRICS_PYTHON_URL=f"file://{runtime_archive}",
                               PIP_NO_INDEX="1", PIP_FIND_LINKS=str(empty))
    assert result.returncode == 1
    assert " !     Error: could not download the Python packages sidekiq-metrics needs." in result.stderr
    assert "PIP_INDEX_URL" in result.stderr



def test_runtime_over_http_and_pip_mirror_from_the_build_environment(tmp_path, runtime_archive, wheel_mirror):
    """A mirror reached over HTTP, and pip settings given to the build itself rather than as config vars."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                               "--directory", str(runtime_archive.parent)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/{runtime_archive.name}"
        build, cache, env_dir = tmp_path / "build", tmp_path / "cache", write_env_dir(tmp_path / "env")
        build.mkdir()
        env = {**build_env("heroku-24"), "SIDEKIQ_METRICS_PYTHON_URL": url, "PIP_NO_INDEX": "1",
               "PIP_FIND_LINKS": str(wheel_mirror)}
        for _ in range(50):  # the server is up once it answers
            if subprocess.run(["curl", "--silent", "--fail", "--head", url], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        result = subprocess.run([str(ROOT / "bin/compile"), str(build), str(cache), str(env_dir)], env=env,
                                capture_output=True, text=True, timeout=300)
    finally:
        server.terminate()
        server.wait(5)
    assert result.returncode == 0, result.stderr
    assert f"-----> Downloading the Python runtime\n       {url}\n" in result.stdout
    assert (build / ".sidekiq-metrics/bin/sidekiq-metrics").exists()


# --- The startup shell in any state: the hook never ends it and works the same ----------------------------------

SHELL_STATES = {
    "posix mode": "set -o posix",
    "POSIXLY_CORRECT": "",  # set in the environment below: bash starts in POSIX mode
    "set -euo pipefail": "set -euo pipefail",
    "nullglob": "shopt -s nullglob",
    "failglob": "shopt -s failglob",
    "odd IFS": "IFS=/.=_",
    "everything": "set -euo pipefail -o posix; shopt -s failglob; IFS=/.=_",
}


@pytest.mark.parametrize("state", SHELL_STATES)
def test_the_hook_works_and_the_app_starts_whatever_state_the_startup_shell_is_in(slug, r, redis_server, state):
    push(r, "default")
    config = redis_config(redis_server)
    if state == "POSIXLY_CORRECT":
        config["POSIXLY_CORRECT"] = "1"
    web = Dyno(slug["app"], "web.1", config, shell_state=SHELL_STATES[state])
    worker = Dyno(slug["app"], "worker.1", config, shell_state=SHELL_STATES[state])
    try:
        assert "sample#sidekiq.default.size=0" in web.read_stdout_until(".size=0", 8), web.proc.poll()
        web.app_env(), worker.app_env()  # both apps started: the shell lived on past the hook
        assert worker.ours() == []
    finally:
        web_stderr, worker_stderr = web.stop(), worker.stop()
    assert worker_stderr == ""
    assert web_stderr.startswith("sidekiq-metrics: starting the Sidekiq metrics emitter on web.1\n"), web_stderr


def cmdline(pid: int) -> bytes:
    """A process's command line; empty once it has gone (it may, between listing and reading)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def emitters(dyno: Dyno) -> list[int]:
    return [p for p in dyno.ours() if b"sidekiq_metrics" in cmdline(p)]


def supervisors(dyno: Dyno) -> list[int]:
    return [p for p in dyno.ours() if b"bin/supervise" in cmdline(p)]



def fresh_slug(slug: dict, tmp_path: Path) -> Path:
    """A copy of the slug as Heroku unpacks one for each dyno: nothing left from an earlier boot."""
    app = tmp_path / "app"
    shutil.copytree(slug["app"], app, symlinks=True)
    (app / ".sidekiq-metrics/supervisor.pid").unlink(missing_ok=True)
    return app


def test_sourcing_the_hook_twice_starts_one_emitter(slug, r, redis_server, tmp_path):
    push(r, "default")
    d = Dyno(fresh_slug(slug, tmp_path), "web.1", redis_config(redis_server), source_times=2)
    try:
        out = d.read_stdout_until(".size=0", 8)
        time.sleep(1.2)  # two more polls at 0.5 s: a second emitter would have printed its own
        out += d.stdout[len(out):]
        assert len(emitters(d)) == 1 and len(supervisors(d)) == 1
    finally:
        stderr = d.stop()
    assert stderr.count("starting the Sidekiq metrics emitter") == 1
    assert "already running on this dyno" in stderr
    polls = [line for line in d.stdout.splitlines() if ".size=0" in line]
    assert len(polls) <= 5  # one emitter at 0.5 s over ~1.7 s; two would print twice as many


def test_a_stale_supervisor_pid_file_does_not_stop_the_emitter(slug, r, redis_server, tmp_path):
    """A reused slug directory may hold the pid of a supervisor long gone, now any other process's."""
    push(r, "default")
    app = fresh_slug(slug, tmp_path)
    (app / ".sidekiq-metrics/supervisor.pid").write_text(f"{os.getpid()}\n")  # alive, but not a supervisor
    d = Dyno(app, "web.1", redis_config(redis_server))
    try:
        assert ".size=0" in d.read_stdout_until(".size=0", 8)
    finally:
        d.stop()


def test_restarts_back_off_exponentially_and_start_over_after_a_healthy_run(slug, r, redis_server, tmp_path):
    push(r, "default")
    config = redis_config(redis_server, SIDEKIQ_METRICS_RESTART_DELAY="0.1", SIDEKIQ_METRICS_RESTART_MAX_DELAY="1.5")
    d = Dyno(fresh_slug(slug, tmp_path), "web.1", config)
    try:
        for pause in (0, 0, 0, 1.8):  # the last run lasts longer than the longest delay: a healthy run
            assert wait_until(lambda: len(emitters(d)) == 1, 8)
            time.sleep(pause)
            os.kill(emitters(d)[0], signal.SIGKILL)
            assert wait_until(lambda: not emitters(d), 3)
        assert wait_until(lambda: len(emitters(d)) == 1, 3)
    finally:
        stderr = d.stop()
    delays = [line.rsplit(" ", 1)[1] for line in stderr.splitlines() if "restarting in" in line]
    assert delays == ["0.1s", "1s", "1.5s", "0.1s"], stderr


def test_a_persistent_failure_is_restarted_slowly_with_one_line_each(slug, redis_server, tmp_path):
    """A slug whose Python is gone fails at every start; a delay of 0 must not become a restart storm."""
    app = fresh_slug(slug, tmp_path)
    for python in (app / ".sidekiq-metrics/python/bin").glob("python3*"):
        python.unlink()
    d = Dyno(app, "web.1", redis_config(redis_server, SIDEKIQ_METRICS_RESTART_DELAY="0"))
    try:
        d.app_env()
        time.sleep(3.5)
    finally:
        stderr = d.stop()
    restarts = [line for line in stderr.splitlines() if line.startswith("sidekiq-metrics: the emitter exited")]
    # Failures at about 0, 0, 1 and 3 s: one line each, the waits doubling (a storm made ~40 lines).
    assert [line.rsplit(" ", 1)[1] for line in restarts] == ["0s", "1s", "2s", "4s"][:len(restarts)]
    assert 3 <= len(restarts) <= 4, stderr


def test_a_path_without_usr_bin_neither_stops_the_emitter_nor_makes_a_restart_storm(slug, r, redis_server, tmp_path):
    push(r, "default")
    config = redis_config(redis_server, PATH="/nonexistent", SIDEKIQ_METRICS_RESTART_DELAY="0.5")
    d = Dyno(fresh_slug(slug, tmp_path), "web.1", config)
    try:
        assert ".size=0" in d.read_stdout_until(".size=0", 8)
        os.kill(emitters(d)[0], signal.SIGKILL)
        time.sleep(0.2)
        assert ".size=0" in d.read_stdout_until(".size=0", 8)  # restarted: `sleep` ran without the app's PATH
    finally:
        stderr = d.stop()
    assert stderr.count("restarting in") == 1, stderr


def test_sighup_to_the_supervisor_stops_the_emitter_too(slug, r, redis_server, tmp_path):
    push(r, "default")
    d = Dyno(fresh_slug(slug, tmp_path), "web.1", redis_config(redis_server, SIDEKIQ_METRICS_RESTART_DELAY="0.2"))
    try:
        assert ".size=0" in d.read_stdout_until(".size=0", 8)
        ours = d.ours()
        os.kill(supervisors(d)[0], signal.SIGHUP)
        assert wait_until(lambda: not any(alive(p) for p in ours), 2)  # nothing of ours left unsupervised
        time.sleep(0.5)
        assert d.ours() == []
    finally:
        stderr = d.stop()
    assert "restarting" not in stderr


def test_sighup_to_the_emitter_stops_it_like_sigterm(slug, r, redis_server, tmp_path):
    push(r, "default")
    d = Dyno(fresh_slug(slug, tmp_path), "web.1", redis_config(redis_server, SIDEKIQ_METRICS_RESTART_DELAY="0.2"))
    try:
        assert ".size=0" in d.read_stdout_until(".size=0", 8)
        os.kill(emitters(d)[0], signal.SIGHUP)
        assert wait_until(lambda: d.ours() == [], 2)
    finally:
        stderr = d.stop()
    assert "restarting" not in stderr


# --- bin/compile: the app's files, odd paths, and a " !     " block for every failure -----------------------------

def test_a_symlinked_hook_in_the_app_is_replaced_not_written_through(tmp_path, runtime_archive, wheel_mirror):
    build = tmp_path / "build"
    (build / "config").mkdir(parents=True)
    (build / "config/boot.sh").write_text("echo the app's own boot script\n")
    (build / ".profile.d").mkdir()
    (build / ".profile.d/sidekiq-metrics.sh").symlink_to("../config/boot.sh")
    result, build, _ = compile_app(tmp_path, "heroku-24", **mirror_config(runtime_archive, wheel_mirror))
    assert result.returncode == 0, result.stderr
    assert (build / "config/boot.sh").read_text() == "echo the app's own boot script\n"
    hook = build / ".profile.d/sidekiq-metrics.sh"
    assert not hook.is_symlink() and hook.read_bytes() == (ROOT / "profile.d/sidekiq-metrics.sh").read_bytes()


def test_build_paths_are_names_not_patterns(tmp_path, runtime_archive, wheel_mirror, r, redis_server):
    push(r, "default")
    odd = tmp_path / "a [b] * c?"
    odd.mkdir()
    (tmp_path / "a b").mkdir()  # what the pattern "a [b] * c?" would match
    result, build, _ = compile_app(odd, "heroku-24", build_name="build [1] *?",
                                   **mirror_config(runtime_archive, wheel_mirror))
    assert result.returncode == 0, result.stderr
    assert_moved_slug_reports(build, tmp_path / "app", redis_server)


def test_a_read_only_build_cache_is_said_plainly(tmp_path, runtime_archive, wheel_mirror):
    result, _, _ = compile_app(tmp_path, "heroku-24", mounts=('mount -t tmpfs -o ro tmpfs "$CACHE"',),
                               **mirror_config(runtime_archive, wheel_mirror))
    assert result.returncode == 1
    assert " !     Error: sidekiq-metrics cannot write to the build cache." in result.stderr
    assert "Read-only file system" in result.stderr
    assert "network" not in result.stderr and "Internal error" not in result.stderr
    assert_ends_in_an_error_block(result.stderr)


def test_a_full_build_cache_is_said_plainly(tmp_path, runtime_archive, wheel_mirror):
    result, _, cache = compile_app(tmp_path, "heroku-24", mounts=('mount -t tmpfs -o size=1m tmpfs "$CACHE"',),
                                   **mirror_config(runtime_archive, wheel_mirror))
    assert result.returncode == 1
    assert " !     Error: could not write the Python runtime for sidekiq-metrics into the build cache." in result.stderr
    assert "network" not in result.stderr and "Internal error" not in result.stderr
    assert_ends_in_an_error_block(result.stderr)


def test_an_unexpected_failure_is_an_internal_error_with_the_failed_command(tmp_path, runtime_archive, wheel_mirror):
    """A build directory that cannot be written is no mistake of the app's: an internal error, told apart."""
    result, _, _ = compile_app(tmp_path, "heroku-24", mounts=('mount -t tmpfs -o ro tmpfs "$BUILD"',),
                               **mirror_config(runtime_archive, wheel_mirror))
    assert result.returncode != 0
    assert " !     Internal error: the sidekiq-metrics buildpack failed unexpectedly" in result.stderr
    assert " !     This command failed: mkdir -p " in result.stderr
    assert_ends_in_an_error_block(result.stderr)


def test_an_unsupported_cpu_is_named_before_any_download(tmp_path, runtime_archive, wheel_mirror):
    """`dpkg` stands in for a riscv64 machine's; no download may be tried for it."""
    fake_bin = tmp_path / "riscv64-bin"
    fake_bin.mkdir()
    (fake_bin / "dpkg").write_text("#!/bin/sh\n[ \"$1\" = --print-architecture ] && echo riscv64\n")
    (fake_bin / "dpkg").chmod(0o755)
    env = {**build_env("heroku-24"), "PATH": f"{fake_bin}:{os.environ['PATH']}"}
    result, _, cache = compile_app(tmp_path, None, env=env)
    assert result.returncode == 1
    assert " !     Error: Heroku publishes no Python runtime for heroku-24 on the CPU architecture riscv64." \
        in result.stderr
    assert " !     Supported: amd64 on heroku-22; amd64 and arm64 on heroku-24 and heroku-26." in result.stderr
    assert "Downloading" not in result.stdout and "riscv64.tar.zst" not in result.stdout + result.stderr
    assert_ends_in_an_error_block(result.stderr)
    # With a runtime of one's own, any CPU builds.
    own, _, _ = compile_app(tmp_path, None, env=env, **mirror_config(runtime_archive, wheel_mirror))
    assert own.returncode == 0, own.stderr


def test_stack_unset_is_a_heroku_style_error(tmp_path):
    result, _, _ = compile_app(tmp_path, None)
    assert result.returncode == 1
    assert " !     Error: the environment variable STACK is not set." in result.stderr
    assert "unbound variable" not in result.stderr
    assert_ends_in_an_error_block(result.stderr)


def test_a_pasted_checksum_with_white_space_or_capitals_is_the_same_checksum(tmp_path, runtime_archive, wheel_mirror):
    good = hashlib.sha256(runtime_archive.read_bytes()).hexdigest()
    value = f" \t{good.upper()}\r\n"  # a space, a tab, capitals, a carriage return: one build for all of them
    result, _, _ = compile_app(tmp_path, "heroku-24", **mirror_config(runtime_archive, wheel_mirror),
                               SIDEKIQ_METRICS_PYTHON_SHA256=value)
    assert result.returncode == 0, result.stderr
    assert "       SHA-256 verified\n" in result.stdout


def test_a_checksum_that_is_not_one_is_said_so(tmp_path, runtime_archive, wheel_mirror):
    result, _, _ = compile_app(tmp_path, "heroku-24", **mirror_config(runtime_archive, wheel_mirror),
                               SIDEKIQ_METRICS_PYTHON_SHA256="sha256:abc")
    assert result.returncode == 1
    assert " !     Error: SIDEKIQ_METRICS_PYTHON_SHA256 is not a SHA-256 checksum." in result.stderr
    assert_ends_in_an_error_block(result.stderr)


def test_bin_compile_without_its_three_arguments_says_how_it_is_called(tmp_path):
    result = subprocess.run([str(ROOT / "bin/compile"), str(tmp_path)], env=build_env("heroku-24"),
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert " !     Error: usage: bin/compile BUILD_DIR CACHE_DIR ENV_DIR" in result.stderr
    assert_ends_in_an_error_block(result.stderr)
