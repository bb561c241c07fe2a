"""`sidekiq-metrics sidecar -- COMMAND` with real processes, signals and a real Redis lease: the emitter ends with
the command, the command's status and signals are its own, and nothing of ours outlives it (issue 32.6, 32.19).

Every test runs the sidecar in a session of its own, so that every process it started, the command's and ours, can
be found (and, at the end, found gone) by its session id. Each runs it the ways a user does: the command of the
installed package, and the buildpack's launcher (lib/launcher.sh, in a directory laid out as the slug's and the
layer's are, its `python3` the test's own interpreter).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from sidekiq_metrics.sidecar import _seconds
from support.commands import ROOT, cli_env, console_script
from support.redis_server import wait_until
from support.shared_stdout import APP_LINE, APP_WRITING, L2MET_LINE, slow_reader
from support.sidekiq_data import seed

LEASE = b"sidekiq-metrics:lease"
# The promise: the emitter ends within a second (the sidecar kills it at its end). SLACK: for processes' own
# scheduling on a loaded machine, as in test_cnb and test_lease.
SECOND = 1.0 + 0.5
USAGE = "sidekiq-metrics: usage: sidekiq-metrics sidecar -- COMMAND [ARGUMENT...]\n"

# The app: says which signals it got, one line each, in its report file; `exit N` on stdin ends it with N.
# `--exit-on-term` makes SIGTERM end it with 0, as a server's graceful stop does.
APP = """
import os, signal, sys
report = open(sys.argv[1], "a", buffering=1)
def said(number, frame):
    report.write(signal.Signals(number).name + "\\n")
    if number == signal.SIGTERM and "--exit-on-term" in sys.argv:
        sys.exit(0)
for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGTTIN", "SIGTTOU", "SIGWINCH"):
    signal.signal(getattr(signal, name), said)
report.write("ready\\n")
for line in sys.stdin:
    if line.startswith("exit "):
        sys.exit(int(line.split()[1]))
"""


@pytest.fixture(scope="module")
def layer(tmp_path_factory) -> Path:
    """The launcher laid out as bin/build and bin/compile lay it out, with the test's Python as the runtime's."""
    home = tmp_path_factory.mktemp("layer")
    (home / "bin").mkdir()
    (home / "python/bin").mkdir(parents=True)
    for source, target in (("lib/launcher.sh", "bin/sidekiq-metrics"), ("lib/supervise.sh", "bin/supervise")):
        (home / target).write_bytes((ROOT / source).read_bytes())
        (home / target).chmod(0o755)
    python = home / "python/bin/python3"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')  # the venv's, found from its own path
    python.chmod(0o755)
    return home


@pytest.fixture(params=["package", "launcher"])
def entry(request, layer) -> list[str]:
    """`sidekiq-metrics` as the package installs it, or as the buildpack's launcher."""
    return [console_script()] if request.param == "package" else [str(layer / "bin/sidekiq-metrics")]


def session_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[3])


def in_session(sid: int) -> list[int]:
    """Every live process of the session (zombies are gone already, as far as anyone can see)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and session_of(int(entry)) == sid:
            try:
                state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z":
                found.append(int(entry))
    return found


def pid_in_its_namespace(pid: int) -> int | None:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    return None


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def emitters(sid: int) -> list[int]:
    return [p for p in in_session(sid) if "sidekiq_metrics" in cmdline(p) and "run" in cmdline(p)]


def run(*args: str, timeout: float = 10, input: str | None = None, stdin: object = subprocess.DEVNULL,
        **kw: object) -> subprocess.CompletedProcess[str]:
    """A command to its end, in a session of its own; whatever it leaves behind is killed (and the test fails on
    it where that matters), so that no stray emitter holds the lease for the tests that follow."""
    proc = subprocess.Popen(args, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kw)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    finally:
        for pid in in_session(proc.pid):
            with _gone():
                os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait()
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


class Sidecar:
    """`sidekiq-metrics sidecar -- python APP` in a session of its own; stderr collected as it comes."""

    def __init__(self, entry: list[str], tmp_path: Path, redis_url: str, *app_args: str, command: list[str] | None
                 = None, env: dict[str, str] | None = None, **popen: object) -> None:
        self.report = tmp_path / "report"
        self.report.touch()
        command = command or [sys.executable, "-c", APP, str(self.report), *app_args]
        popen.setdefault("stdin", subprocess.PIPE)
        self.proc = subprocess.Popen(
            [*entry, "sidecar", "--", *command], stdout=popen.pop("stdout", subprocess.DEVNULL),
            stderr=subprocess.PIPE, text=True, start_new_session=True, cwd=tmp_path,
            env=cli_env(**{"REDIS_URL": redis_url, "SIDEKIQ_METRICS_INTERVAL": "1", **(env or {})}), **popen)
        self.sid = self.proc.pid
        self.err: list[str] = []
        self._reader = threading.Thread(target=lambda: self.err.extend(self.proc.stderr), daemon=True)
        self._reader.start()

    def said(self) -> list[str]:
        return self.report.read_text().splitlines()

    def tell(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stderr(self) -> str:
        self._reader.join(5)
        return "".join(self.err)

    def cleanup(self) -> None:
        for pid in in_session(self.sid):
            with _gone():
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(5)


class _gone:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, *_):
        return kind is ProcessLookupError


@pytest.fixture
def sidecars():
    started: list[Sidecar] = []
    yield started
    for sidecar in started:
        sidecar.cleanup()


def started(sidecars, *args, **kw) -> Sidecar:
    sidecar = Sidecar(*args, **kw)
    sidecars.append(sidecar)
    return sidecar


def holding(r, sidecar: Sidecar) -> None:
    """Until the app is up and the emitter holds the lease."""
    assert wait_until(lambda: "ready" in sidecar.said() and r.exists(LEASE), 20), (sidecar.said(), sidecar.err)


def test_sidecar_is_a_command_wherever_sidekiq_metrics_is(r, redis_server, layer, tmp_path):
    """Issue 32.19: the README's `sidekiq-metrics sidecar -- COMMAND` (and `python -m sidekiq_metrics`) answered
    "No such command 'sidecar'" with the package installed by pip."""
    for entry in ([console_script()], [sys.executable, "-m", "sidekiq_metrics"], [str(layer / "bin/sidekiq-metrics")]):
        done = run(*entry, "sidecar", "--", "sh", "-c", "exit 7", timeout=30, cwd=tmp_path,
                   env=cli_env(REDIS_URL=redis_server.url))
        assert done.returncode == 7, (entry, done.stderr)
        assert "No such command" not in done.stderr and "Traceback" not in done.stderr
        usage = run(*entry, "sidecar", timeout=30, cwd=tmp_path, env=cli_env(REDIS_URL=redis_server.url))
        assert (usage.returncode, usage.stderr) == (2, USAGE), entry
    assert not r.exists(LEASE)


def test_the_emitter_ends_with_the_command_within_a_second_and_gives_the_lease_up(r, redis_server, entry, tmp_path,
                                                                                 sidecars):
    """Issue 32.6: a command that exited left the supervisor and the emitter running as orphans, renewing the lease
    so that no other dyno's emitter could take over. The command's status is the sidecar's."""
    sidecar = started(sidecars, entry, tmp_path, redis_server.url)
    holding(r, sidecar)
    assert len(emitters(sidecar.sid)) == 1
    sidecar.tell("exit 7")
    assert sidecar.proc.wait(SECOND) == 7
    assert not r.exists(LEASE)  # given up, not left to run out
    assert in_session(sidecar.sid) == []
    assert "Traceback" not in sidecar.stderr()


@pytest.mark.parametrize("command, status", [("no-such-command-32", 127), ("/etc/hostname", 126)])
def test_a_command_that_cannot_run_ends_the_sidecar_at_once_with_the_shells_status(r, redis_server, entry, tmp_path,
                                                                                   command, status):
    """Issue 32.6: a command not found exited 127 but left the emitter, started first, running (and holding stderr
    open: a caller reading it waited until the emitter died). No emitter is started for a command that cannot run."""
    done = run(*entry, "sidecar", "--", command, "--flag", cwd=tmp_path, env=cli_env(REDIS_URL=redis_server.url))
    assert done.returncode == status
    assert done.stderr.count("\n") == 1 and command in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not r.exists(LEASE)


def test_sigterm_to_the_sidecar_as_pid_1_of_its_container_ends_the_emitter_and_gives_the_lease_up(
        r, redis_server, entry, tmp_path, sidecars):
    """Issue 32.6: on Fir the Procfile's command is PID 1 of its container, and the platform's SIGTERM goes to PID 1
    alone. The command had the sidecar's pid: the emitter never heard of the SIGTERM, and was SIGKILLed with the
    container when PID 1 ended, the lease left to run out (up to 45 s at the default interval)."""
    container = ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--mount-proc", *entry]
    sidecar = started(sidecars, container, tmp_path, redis_server.url, "--exit-on-term")
    holding(r, sidecar)
    (pid_1,) = [p for p in in_session(sidecar.sid) if pid_in_its_namespace(p) == 1]
    os.kill(pid_1, signal.SIGTERM)
    assert sidecar.proc.wait(SECOND) == 0  # unshare's status is its PID 1's
    assert sidecar.said() == ["ready", "SIGTERM"]
    assert not r.exists(LEASE)
    assert in_session(sidecar.sid) == []


def test_sigterm_stops_the_emitter_at_once_and_the_command_as_it_chooses(r, redis_server, entry, tmp_path,
                                                                         sidecars):
    """The platform's SIGTERM is passed on once, the emitter ends within a second giving the lease up (the dyno is
    going away: another may take over now), and the sidecar waits for the command's own end and status."""
    sidecar = started(sidecars, entry, tmp_path, redis_server.url)
    holding(r, sidecar)
    os.kill(sidecar.proc.pid, signal.SIGTERM)
    assert wait_until(lambda: not r.exists(LEASE) and emitters(sidecar.sid) == [], SECOND)
    assert wait_until(lambda: sidecar.said() == ["ready", "SIGTERM"], 5), sidecar.said()
    assert sidecar.proc.poll() is None  # the command has not ended: neither has the sidecar
    sidecar.tell("exit 3")
    assert sidecar.proc.wait(5) == 3
    assert in_session(sidecar.sid) == []
    assert sidecar.said() == ["ready", "SIGTERM"]  # once, not once more for the emitter's sake


def test_signals_to_the_sidecar_reach_the_command_once_each_and_leave_the_emitter_be(r, redis_server, entry,
                                                                                     tmp_path, sidecars):
    """Puma's phased restart (USR1), worker counts (TTIN, TTOU), log reopening (HUP), thread dumps (QUIT) and the
    rest: passed to the command as they came, once each, and the emitter goes on."""
    sidecar = started(sidecars, entry, tmp_path, redis_server.url)
    holding(r, sidecar)
    (emitter,) = emitters(sidecar.sid)
    names = ["SIGHUP", "SIGUSR1", "SIGUSR2", "SIGTTIN", "SIGTTOU", "SIGQUIT", "SIGWINCH"]
    for number, name in enumerate(names, start=2):
        os.kill(sidecar.proc.pid, getattr(signal, name))
        assert wait_until(lambda n=number: len(sidecar.said()) >= n, 5), sidecar.said()
    time.sleep(0.2)  # a signal passed twice would be in by now
    assert sidecar.said() == ["ready", *names]
    assert emitters(sidecar.sid) == [emitter] and r.exists(LEASE)
    sidecar.tell("exit 0")
    assert sidecar.proc.wait(5) == 0


@pytest.mark.parametrize("name", ["SIGKILL", "SIGUSR1", "SIGSEGV"])
def test_a_command_ended_by_a_signal_ends_the_sidecar_by_the_same_signal(r, redis_server, entry, tmp_path, name):
    number = getattr(signal, name)
    done = run(*entry, "sidecar", "--", "sh", "-c", f"ulimit -c 0; kill -{number} $$", cwd=tmp_path,
               env=cli_env(REDIS_URL=redis_server.url))
    assert done.returncode == -number, done.stderr
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.glob("core*"))


def test_sigkill_of_the_sidecar_ends_the_emitter_and_the_command_with_it(r, redis_server, entry, tmp_path,
                                                                        sidecars):
    """The sidecar's pid was the command's: SIGKILL to it ended the command. It still does, and the emitter, which
    must never outlive it, ends too (PR_SET_PDEATHSIG), giving the lease up."""
    sidecar = started(sidecars, entry, tmp_path, redis_server.url)
    holding(r, sidecar)
    os.kill(sidecar.proc.pid, signal.SIGKILL)
    assert wait_until(lambda: in_session(sidecar.sid) == [], SECOND), [cmdline(p) for p in in_session(sidecar.sid)]
    assert not r.exists(LEASE)


def test_the_command_gets_its_environment_descriptors_and_stdin_untouched(redis_server, entry, tmp_path):
    """Nothing of the app's changes but the one command on PATH: not its environment (the launcher's
    LD_LIBRARY_PATH, set or not, is the runtime's alone), not the descriptors it was given, not its stdin."""
    probe = ("import json, os, sys; json.dump({'env': dict(os.environ), 'fd': os.read(int(sys.argv[2]), 100).decode(), "
             "'stdin': sys.stdin.read()}, open(sys.argv[1], 'w'))")
    for library_path in (None, "", "/app/.heroku/vendor/lib"):
        env = cli_env(REDIS_URL="redis://127.0.0.1:1/0", PYTHONPATH="/app/lib")
        env.pop("LD_LIBRARY_PATH", None)
        if library_path is not None:
            env["LD_LIBRARY_PATH"] = library_path
        reader, writer = os.pipe()
        os.write(writer, b"given to the app")
        os.close(writer)
        try:
            done = run(*entry, "sidecar", "--", sys.executable, "-c", probe, str(tmp_path / "seen"), str(reader),
                       stdin=subprocess.PIPE, input="the app's stdin", env=env, pass_fds=(reader,), cwd=tmp_path)
        finally:
            os.close(reader)
        assert done.returncode == 0, done.stderr
        seen = json.loads((tmp_path / "seen").read_text())
        assert seen["fd"] == "given to the app" and seen["stdin"] == "the app's stdin"
        shells_own = ("PWD", "SHLVL", "_")  # bash's, the launcher's shell's: as they were before the sidecar
        assert {k: v for k, v in seen["env"].items() if k not in shells_own} == \
            {k: v for k, v in env.items() if k not in shells_own}


def test_an_emitter_that_crashes_is_started_again_and_one_that_is_misconfigured_is_not(r, redis_server, entry,
                                                                                      tmp_path, sidecars):
    sidecar = started(sidecars, entry, tmp_path, redis_server.url, env={"SIDEKIQ_METRICS_RESTART_DELAY": "0.1"})
    holding(r, sidecar)
    (first,) = emitters(sidecar.sid)
    os.kill(first, signal.SIGKILL)  # the OOM killer, say
    assert wait_until(lambda: len(emitters(sidecar.sid)) == 1 and emitters(sidecar.sid) != [first], 10)
    sidecar.tell("exit 0")
    assert sidecar.proc.wait(5) == 0
    assert "sidekiq-metrics: the emitter exited with status 137; restarting in 0.1s\n" in sidecar.stderr()

    broken = started(sidecars, entry, tmp_path, redis_server.url, env={"SIDEKIQ_METRICS_INTERVAL": "often"})
    assert wait_until(lambda: "not restarting" in "".join(broken.err), 10), broken.err
    assert broken.proc.poll() is None and emitters(broken.sid) == []  # the app runs on without it
    broken.tell("exit 4")
    assert broken.proc.wait(5) == 4


def test_a_stopped_emitter_still_ends_with_the_command(r, redis_server, entry, tmp_path, sidecars):
    """An emitter paused with SIGSTOP (a debugger, a cgroup freeze) never sees a SIGTERM: it is continued too."""
    sidecar = started(sidecars, entry, tmp_path, redis_server.url)
    holding(r, sidecar)
    (emitter,) = emitters(sidecar.sid)
    os.kill(emitter, signal.SIGSTOP)
    sidecar.tell("exit 5")
    assert sidecar.proc.wait(SECOND) == 5
    assert in_session(sidecar.sid) == []
    assert not r.exists(LEASE)


@pytest.mark.parametrize("closed", [1, 2])
def test_a_closed_stdout_or_stderr_changes_nothing_for_the_command_or_the_signals(r, redis_server, entry, tmp_path,
                                                                                 sidecars, closed):
    """Started with stdout or stderr closed (a daemon manager may do it): the command gets it closed, as it was
    given; and no descriptor of ours takes its number, where the command would write into it, or our own log line
    would land in the pipe that carries our signals."""
    sidecar = started(sidecars, entry, tmp_path, redis_server.url, env={"SIDEKIQ_METRICS_RESTART_DELAY": "0.1"},
                      preexec_fn=lambda: os.close(closed))
    holding(r, sidecar)
    (emitter,) = emitters(sidecar.sid)
    os.kill(emitter, signal.SIGKILL)  # its restart is logged, on stderr
    assert wait_until(lambda: emitters(sidecar.sid) not in ([], [emitter]), 10)
    wrapper = sidecar.proc.pid
    held = Path(f"/proc/{wrapper}/fd/{closed}")  # nothing, /dev/null, or (bash's, with stderr closed) the launcher
    assert not held.exists() or not os.readlink(held).startswith(("pipe:", "socket:", "anon_inode:"))
    os.kill(wrapper, signal.SIGUSR1)
    assert wait_until(lambda: len(sidecar.said()) == 2, 5)
    time.sleep(0.2)
    assert sidecar.said() == ["ready", "SIGUSR1"]  # nothing but what was sent
    sidecar.tell("exit 6")
    assert sidecar.proc.wait(2) == 6
    assert in_session(sidecar.sid) == []


def test_the_process_beside_the_app_holds_only_the_standard_library(r, redis_server, tmp_path, sidecars):
    """It lives as long as the app, on a dyno that pays for every MB: the CLI (click, the settings: 23 MB) execs
    into `python -m sidekiq_metrics.sidecar` (11 MB), in the same process."""
    sidecar = started(sidecars, [console_script()], tmp_path, redis_server.url)
    holding(r, sidecar)
    assert cmdline(sidecar.proc.pid)[1:6] == ["-P", "-u", "-m", "sidekiq_metrics.sidecar", "--"]
    loaded = subprocess.run([sys.executable, "-I", "-c", "import sys, sidekiq_metrics.sidecar; print(' '.join(sorted("
                             "m for m in sys.modules if m.split('.')[0] in ('click', 'redis', 'sidekiq_metrics'))))"],
                            capture_output=True, text=True, check=True, cwd=tmp_path).stdout.split()
    assert loaded == ["sidekiq_metrics", "sidekiq_metrics.errors", "sidekiq_metrics.sidecar"]


def test_on_a_terminal_the_command_has_it_and_ctrl_c_reaches_it_once(r, redis_server, entry, tmp_path, sidecars):
    """`heroku run sidekiq-metrics sidecar -- rails console`: the command reads the terminal (from a background group
    it would be stopped by SIGTTIN), and Ctrl-C reaches it once (not once from the terminal and once more passed on
    by the sidecar), and leaves the emitter be."""
    master, slave = os.openpty()

    def controlling_terminal() -> None:  # after setsid: the terminal becomes the new session's
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    report = tmp_path / "report"
    report.touch()
    sidecar = started(sidecars, entry, tmp_path, redis_server.url, command=[sys.executable, "-c", APP, str(report)],
                      stdin=slave, preexec_fn=controlling_terminal)
    os.close(slave)
    try:
        holding(r, sidecar)
        (emitter,) = emitters(sidecar.sid)
        (app,) = [p for p in in_session(sidecar.sid) if p not in (sidecar.proc.pid, emitter)]
        assert os.tcgetpgrp(master) == os.getpgid(app) != os.getpgid(sidecar.proc.pid)
        os.write(master, b"\x03")
        assert wait_until(lambda: len(sidecar.said()) == 2, 5), sidecar.said()
        time.sleep(0.5)
        assert sidecar.said() == ["ready", "SIGINT"]
        assert emitters(sidecar.sid) == [emitter] and r.exists(LEASE)
        os.write(master, b"exit 9\n")
        assert sidecar.proc.wait(5) == 9
    finally:
        os.close(master)
    assert in_session(sidecar.sid) == []


def test_the_emitters_lines_and_the_apps_stay_whole_on_the_stdout_they_share(r, redis_server, entry, tmp_path,
                                                                             sidecars):
    """Issue 32.7 as the sidecar makes it: the app and the emitter at 400 queues on one stdout, read slowly."""
    seed(r, {f"queue_{n:03d}_{'q' * 40}": (5.0, 1) for n in range(400)})
    reader, writer = os.pipe()
    got: list[bytes] = []
    collector = threading.Thread(target=slow_reader, args=(reader, got), daemon=True)
    collector.start()
    sidecar = started(sidecars, entry, tmp_path, redis_server.url, command=[sys.executable, "-c", APP_WRITING],
                      stdout=writer, env={"SIDEKIQ_METRICS_INTERVAL": "0.2"})
    os.close(writer)
    assert wait_until(lambda: b"".join(got).count(b"sidekiq.metrics.up=1") >= 10, 60)
    os.kill(sidecar.proc.pid, signal.SIGTERM)  # the app writes on, to its end by the signal
    assert sidecar.proc.wait(5) == -signal.SIGTERM
    collector.join(30)
    lines = b"".join(got).decode().splitlines()
    torn = [line for line in lines if not (L2MET_LINE.fullmatch(line) or re.fullmatch(APP_LINE, line))]
    assert torn == [], f"{len(torn)} torn lines of {len(lines)}, e.g. {torn[:2]}"


def test_the_emitter_ends_with_the_command_even_while_redis_hangs(own_redis, entry, tmp_path, sidecars):
    """Redis stopped answering (SIGSTOP: a failover, a full network buffer) just as the command ends: the emitter's
    release cannot be answered, and it still ends within its second, or is killed at its end."""
    r = own_redis.client()
    sidecar = started(sidecars, entry, tmp_path, own_redis.url)
    holding(r, sidecar)
    own_redis.proc.send_signal(signal.SIGSTOP)
    try:
        began = time.monotonic()
        sidecar.tell("exit 7")
        assert sidecar.proc.wait(5) == 7
        assert time.monotonic() - began < SECOND
        assert in_session(sidecar.sid) == []
    finally:
        own_redis.proc.send_signal(signal.SIGCONT)


@example("1.001")
@example("\u0663")  # an Arabic-Indic 3: a digit to Python's \\d, not to the shell
@given(st.text(max_size=12))
def test_a_restart_delay_is_read_as_the_cedar_supervisor_reads_it(text):
    """Seconds to the millisecond, at most 99,999; anything else (negative, exponent, words, a lone dot) the default,
    so that a typo is never a restart storm."""
    value = _seconds(text, 10.0)
    if re.fullmatch(r"[0-9]{1,5}(\.[0-9]+)?", text.strip()):
        assert value == int(text.strip().split(".")[0]) + int((text.strip().partition(".")[2] + "000")[:3]) / 1000
    else:
        assert value == 10.0
