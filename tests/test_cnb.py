"""The Cloud Native Buildpack (Heroku Fir), built and launched by the stand-in lifecycle (support/cnb_lifecycle.py,
whose docstring lists what it reproduces of the two spec texts and what it does not).

The buildpack is the one `bin/package` makes, unpacked. The Python runtime is the stand-in of Heroku's archive
(support/heroku_runtime.py: no RUNPATH, starts only with LD_LIBRARY_PATH), served by a loopback HTTP server
under every target's archive name, which records what each build fetched. Builds run as a non-root user,
as a CNB lifecycle runs them. Processes are started as Fir starts them: DYNO=<type>-<hash>-<suffix>, no
.profile.d, a buildpack process directly, a Procfile line as `bash -c <line>`.
"""

from __future__ import annotations

import http.server
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import tomllib

from support.candidates import Candidate
from support.cnb_lifecycle import Lifecycle, StoredLayer, Target
from support.commands import ROOT
from support.redis_server import wait_until
from support.sidekiq_data import sidekiq

NOBODY = (65534, 65534)
PYTHON_VERSION = "3.13.15"
TARGETS = [Target("amd64", "ubuntu", "22.04"), Target("amd64", "ubuntu", "24.04"), Target("arm64", "ubuntu", "24.04"),
           Target("amd64", "ubuntu", "26.04"), Target("arm64", "ubuntu", "26.04")]
INTERVAL = 0.5
SLACK = 0.5  # for processes' own start and scheduling: the lease's timing is what is held to


def archive_name(target: Target) -> str:
    return f"python-{PYTHON_VERSION}-{target.distro}-{target.version}-{target.arch}.tar.zst"


class ArchiveServer:
    """Heroku's bucket on loopback: the stand-in runtime under every target's name; it records each request."""

    def __init__(self, archive: Path, directory: Path) -> None:
        for target in TARGETS:
            shutil.copy(archive, directory / archive_name(target))
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: object, **kwargs: object) -> None:
                super().__init__(*args, directory=str(directory), **kwargs)  # type: ignore[arg-type]

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.requests.append(self.path.lstrip("/"))
                super().do_GET()

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def open_to_all(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def shared(tmp_path_factory, runtime_archive, wheel_mirror):
    """The packaged buildpack, the wheel mirror and the archive server, in a directory any user may read."""
    root = open_to_all(Path(tempfile.mkdtemp(prefix="cnb-", dir="/tmp")))
    package = root / "sidekiq-metrics.tgz"
    made = subprocess.run([str(ROOT / "bin/package"), str(package)], capture_output=True, text=True, check=True)
    assert "the sidekiq-metrics buildpack, version" in made.stdout
    buildpack = open_to_all(root / "buildpack")
    subprocess.run(["tar", "--extract", "--file", str(package), "--directory", str(buildpack)], check=True)
    mirror = Path(shutil.copytree(wheel_mirror, root / "wheels"))
    for path in (buildpack, mirror, *buildpack.rglob("*"), *mirror.rglob("*")):
        path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
    server = ArchiveServer(runtime_archive, open_to_all(root / "bucket"))
    yield {"root": root, "buildpack": buildpack, "mirror": mirror, "server": server}
    server.close()
    shutil.rmtree(root, ignore_errors=True)


def new_app(shared, name: str, buildpack: Path | None = None) -> Lifecycle:
    """An app with a Gemfile, its config vars for the build (a mirror for the runtime and the wheels), built
    as the user nobody."""
    root = open_to_all(shared["root"] / name)
    lifecycle = Lifecycle(buildpack or shared["buildpack"], root, user=NOBODY)
    (lifecycle.workspace / "Gemfile").write_text("source 'https://rubygems.org'\ngem 'sidekiq'\n")
    lifecycle.set_env(SIDEKIQ_METRICS_PYTHON_BASE_URL=shared["server"].url, PIP_NO_INDEX="1",
                      PIP_FIND_LINKS=str(shared["mirror"]))
    for path in (root, lifecycle.workspace, lifecycle.platform, *lifecycle.platform.rglob("*"), lifecycle.store):
        os.chown(path, *NOBODY)
    return lifecycle


def build_env() -> dict[str, str]:
    """The build container's environment: a PATH and a HOME, nothing of this machine's pip or Python."""
    home = open_to_all(Path(tempfile.gettempdir()) / "cnb-home")
    os.chown(home, *NOBODY)
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}


def built(shared, name: str, target: Target | None = None, buildpack: Path | None = None) -> Lifecycle:
    target = target or Target()
    app = new_app(shared, name, buildpack)
    assert app.detect(build_env(), target).returncode == 0
    result = app.build(build_env(), target)
    assert result.returncode == 0, result.stdout + result.stderr
    return app


def test_buildpack_toml_is_api_0_10_with_herokus_targets_and_our_version():
    descriptor = tomllib.loads((ROOT / "buildpack.toml").read_text())
    assert descriptor["api"] == "0.10"
    declared = {(t["arch"], d["name"], d["version"]) for t in descriptor["targets"] for d in t["distros"]}
    assert declared == {(t.arch, t.distro, t.version) for t in TARGETS}
    assert all(t["os"] == "linux" for t in descriptor["targets"])
    from sidekiq_metrics import __version__

    assert descriptor["buildpack"]["version"] == __version__


def test_package_says_one_line_with_the_buildpacks_own_version(tmp_path):
    """Issue 32.18: its sed also matched the targets' `version = "24.04"`: five stray lines after the version."""
    package = tmp_path / "sidekiq-metrics.tgz"
    made = subprocess.run([str(ROOT / "bin/package"), str(package)], capture_output=True, text=True, check=True)
    version = tomllib.loads((ROOT / "buildpack.toml").read_text())["buildpack"]["version"]
    assert (made.stdout, made.stderr) == (f"{package}: the sidekiq-metrics buildpack, version {version}\n", "")


def test_detect_passes_on_both_platforms(tmp_path):
    cnb = subprocess.run([str(ROOT / "bin/detect")], env={"PATH": "/usr/bin:/bin", "CNB_BUILD_PLAN_PATH":
                                                           str(tmp_path / "plan.toml")}, capture_output=True, text=True)
    classic = subprocess.run([str(ROOT / "bin/detect"), str(tmp_path)], capture_output=True, text=True)
    assert (cnb.returncode, classic.returncode, classic.stdout) == (0, 0, "Sidekiq Metrics\n")


@pytest.mark.long
def test_a_rebuild_reuses_the_layer_and_downloads_nothing_until_the_target_or_a_pin_changes(shared):
    server = shared["server"]
    before = len(server.requests)
    app = built(shared, "rebuilds")
    assert server.requests[before:] == [archive_name(Target())]
    layer = app.image["sidekiq-metrics"].contents
    # What the customer's processes get on their PATH: one command. No lib/ for LD_LIBRARY_PATH, no python3.
    # No supervisor either: the sidecar is the Python command's (sidekiq_metrics/sidecar.py).
    assert sorted(p.name for p in layer.iterdir()) == ["bin", "python"]
    assert [p.name for p in (layer / "bin").iterdir()] == ["sidekiq-metrics"]
    assert "downloads" in app.cache and "downloads" not in app.image
    # The same build again: the launch layer's metadata says it is the one it would make.
    again = app.build(build_env(), Target())
    assert again.returncode == 0, again.stderr
    assert "Reusing the sidekiq-metrics layer" in again.stdout and "Downloading" not in again.stdout
    assert server.requests[before:] == [archive_name(Target())]
    assert app.image["sidekiq-metrics"].contents == layer  # the previous image's layer, reused as it was
    # Another target: its own archive, fetched once.
    other = app.build(build_env(), Target("amd64", "ubuntu", "22.04"))
    assert other.returncode == 0 and "Downloading the Python runtime" in other.stdout
    assert server.requests[before:] == [archive_name(Target()), archive_name(Target("amd64", "ubuntu", "22.04"))]
    # A changed package pin: reinstalled, from the cached archive, nothing fetched.
    changed = Path(shutil.copytree(shared["buildpack"], shared["root"] / "buildpack-repinned"))
    changed.chmod(0o755)
    with (changed / "lib/runtime-requirements.txt").open("a") as requirements:
        requirements.write("# a pin changed\n")
    app.buildpack = changed
    repinned = app.build(build_env(), Target("amd64", "ubuntu", "22.04"))
    assert repinned.returncode == 0, repinned.stderr
    assert "Using the cached Python runtime" in repinned.stdout and "Installing the sidekiq-metrics emitter" in \
        repinned.stdout
    assert len(server.requests) - before == 2


@pytest.mark.parametrize("target", [Target("arm64", "ubuntu", "24.04"), Target("amd64", "ubuntu", "22.04"),
                                    Target("arm64", "ubuntu", "26.04")])
def test_each_target_fetches_its_own_archive_name(shared, target):
    """The stand-in archive is this machine's CPU under every name: what is checked is the name fetched."""
    server = shared["server"]
    before = len(server.requests)
    app = built(shared, f"target-{target.arch}-{target.version}", target)
    assert server.requests[before:] == [archive_name(target)]
    assert app.image["sidekiq-metrics"].metadata["target"] == f"ubuntu-{target.version}-{target.arch}"


def test_a_target_heroku_has_no_runtime_for_and_an_archive_that_cannot_be_fetched_fail_with_one_clear_error(shared):
    app = new_app(shared, "unfetchable")
    unsupported = app.build(build_env(), Target("arm64", "ubuntu", "22.04"))
    assert unsupported.returncode == 1
    assert " !     Error: Heroku publishes no Python runtime for the target ubuntu 22.04 on arm64." in \
        unsupported.stderr
    app.set_env(SIDEKIQ_METRICS_PYTHON_BASE_URL=shared["server"].url + "/missing")
    missing = app.build(build_env(), Target())
    assert missing.returncode == 1
    errors = [line for line in missing.stderr.splitlines() if line.startswith(" !     Error")]
    assert errors == [" !     Error: could not download the Python runtime for sidekiq-metrics."], missing.stderr
    assert "Internal error" not in missing.stderr
    assert missing.stderr.rstrip().splitlines()[-1].startswith(" !     ")


WEB = ("sidekiq-metrics sidecar -- bash -c "
       "'printf \"%s|%s|%s|%s|%s\\n\" \"${LD_LIBRARY_PATH-unset}\" \"${PYTHONHOME-unset}\" \"${PYTHONPATH-unset}\" "
       "\"$(command -v python3 || echo none)\" \"$PATH\" >\"$ENV_REPORT\"; exec sleep 600'")


def test_on_fir_one_emitter_polls_among_the_process_and_two_web_dynos_and_hands_over(shared, r, redis_server):
    """Issue 26: the sidekiq-metrics process and two `bash -c` web processes, booted with Fir's environment
    against real Redis and real Sidekiq data: the metric lines, one emitter at any moment, SIGTERM ending the
    process within a second, takeover after the holder is SIGKILLed, and nothing of ours in the customer's
    processes but the one command."""
    app = built(shared, "fir")
    app.install_image()
    sidekiq(redis_server.url, [{"push": {"queue": "default"}}, {"push": {"queue": "mailers"}}])
    fir = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(app.workspace), "REDIS_URL": redis_server.url,
           "SIDEKIQ_METRICS_INTERVAL": str(INTERVAL), "PORT": "5000", "LANG": "C.UTF-8"}
    started: list[Candidate] = []

    def boot(dyno: str, process: str | None, line: str | None = None) -> Candidate:
        # Each dyno its own /tmp, as each Fir dyno has its own filesystem.
        tmp = open_to_all(app.root / "dynos" / dyno)
        env = {**fir, "DYNO": dyno, "ENV_REPORT": str(app.root / f"{dyno}.env"), "TMPDIR": str(tmp)}
        candidate = Candidate(dyno, app.start(process, env, line, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                              start_new_session=True))
        started.append(candidate)
        return candidate

    try:
        emitter = boot("sidekiq-metrics-5d8f7c9b4-x7k2p", "sidekiq-metrics")
        assert wait_until(lambda: emitter.said("took the lease"), 15), emitter.lines
        webs = [boot(f"web-1a2b3c4d5-{suffix}", None, WEB) for suffix in ("q2w3e", "r4t5y")]
        assert wait_until(lambda: all((app.root / f"{w.name}.env").exists() for w in webs), 15)
        time.sleep(4 * INTERVAL)
        now = time.monotonic()
        assert [c.name for c in started if c.polls(now - 3 * INTERVAL, now)] == [emitter.name]
        polls = [line for _, kind, line in emitter.lines if kind == "out"]
        assert any("sample#sidekiq.default.size=1" in line for line in polls)
        assert any("sample#sidekiq.mailers.size=1" in line for line in polls)
        # SIGTERM: the process ends within a second, gives the lease up, and a web dyno's emitter takes it.
        stopped_at = time.monotonic()
        emitter.proc.send_signal(signal.SIGTERM)
        emitter.proc.wait(1.0)
        assert emitter.proc.returncode == 0
        assert wait_until(lambda: any(w.said("took the lease") for w in webs), 10)
        (holder,) = [w for w in webs if w.said("took the lease")]
        assert holder.said("took the lease")[0] - stopped_at <= INTERVAL / 2 + SLACK
        assert wait_until(lambda: holder.polls(), 5)
        # SIGKILL of the holder's dyno, every process of it: the other web dyno takes over within two intervals.
        killed_at = time.monotonic()
        os.killpg(holder.proc.pid, signal.SIGKILL)
        (other,) = [w for w in webs if w is not holder]
        assert wait_until(lambda: other.said("took the lease"), 10)
        assert other.said("took the lease")[0] - killed_at <= 2 * INTERVAL + SLACK
        assert wait_until(lambda: other.polls(since=killed_at), 5)
        spans = [(c.polls()[0], c.polls()[-1]) for c in started if c.polls()]
        for a in spans:
            for b in spans:
                assert a is b or a[1] < b[0] or b[1] < a[0], spans  # never two emitters polling at once
    finally:
        for candidate in started:
            with_group = candidate.proc.poll() is None
            if with_group:
                os.killpg(candidate.proc.pid, signal.SIGKILL)
            candidate.proc.wait(10)
    layer = str(app.layers)
    for web in webs:
        ld_library_path, pythonhome, pythonpath, python3, path = \
            (app.root / f"{web.name}.env").read_text().strip().split("|")
        assert (ld_library_path, pythonhome, pythonpath) == ("unset", "unset", "unset")
        assert not python3.startswith(layer)
        ours = [entry for entry in path.split(":") if entry.startswith(layer)]
        assert ours == [f"{layer}/sidekiq-metrics/bin"]
    assert all("Traceback" not in line for c in started for _, _, line in c.lines)


def test_the_stand_in_lifecycle_applies_env_files_and_exec_d_as_the_spec_says(tmp_path):
    """Check the stand-in before trusting it: suffixes, the POSIX path rule and exec.d's fd 3."""
    app = Lifecycle(ROOT, tmp_path)
    layer = app.layers / "tool"
    for sub in ("bin", "env", "env.launch/web", "exec.d"):
        (layer / sub).mkdir(parents=True)
    (layer / "env/GREETING.default").write_text("hello")
    (layer / "env/LIST.prepend").write_text("first")
    (layer / "env/LIST.delim").write_text(",")
    (layer / "env.launch/web/MODE.override").write_text("web")
    program = layer / "exec.d/late"
    program.write_text('#!/bin/sh\nprintf \'FROM_EXEC_D = "%s"\\n\' "$GREETING" >&3\n')
    program.chmod(0o755)
    app.image = {"tool": StoredLayer(layer, {}, {"launch": True})}
    env = app.launch_env({"PATH": "/usr/bin", "LIST": "second", "CNB_LAYERS_DIR": "x"}, "web")
    assert env["PATH"] == f"{layer}/bin:/usr/bin" and "LD_LIBRARY_PATH" not in env  # no lib/: not set
    assert (env["GREETING"], env["LIST"], env["MODE"], env["FROM_EXEC_D"]) == ("hello", "first,second", "web",
                                                                               "hello")
    assert "CNB_LAYERS_DIR" not in env
    assert "MODE" not in app.launch_env({"PATH": "/usr/bin"}, "worker")


def test_sidecar_without_a_command_is_one_line_and_exit_2():
    result = subprocess.run(["bash", str(ROOT / "lib/launcher.sh"), "sidecar", "--"], capture_output=True, text=True)
    assert (result.returncode, result.stderr) == (2, "sidekiq-metrics: usage: sidekiq-metrics sidecar -- COMMAND "
                                                     "[ARGUMENT...]\n")
