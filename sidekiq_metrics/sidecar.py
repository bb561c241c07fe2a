"""`sidekiq-metrics sidecar -- COMMAND`: the app's command, and beside it an emitter that polls while it holds the
Redis lease, for Fir, where a Procfile line is the only way to run anything in a dyno (docs/design.md, "One
emitter on Fir").

The sidecar is the parent of both, and stays so for as long as the command runs:
- The command gets what it would have had without us: its environment (the launcher's LD_LIBRARY_PATH taken back
  out), stdin, every descriptor it was given, the working directory. Every signal the sidecar gets is passed on to
  it, once; the sidecar's exit status is the command's, and a command ended by a signal ends the sidecar by the same
  signal. SIGKILL to the sidecar, which nobody can pass on, ends the command too (PR_SET_PDEATHSIG), as when the
  command had the pid the sidecar now has.
- The emitter ends with the command: at its end, or at SIGTERM or SIGINT to the sidecar (the dyno is stopping:
  another emitter may take over at once), it gets SIGTERM and SIGCONT (a stopped one would never see the first),
  and it gives the lease up and ends within a second; past that it is killed. It cannot outlive the sidecar either:
  it dies with it (PR_SET_PDEATHSIG, SIGTERM). An emitter that crashes is started again with back-off, as the
  supervisor does on Cedar (lib/supervise.sh); one that stopped for a configuration error is not.
- On Fir the sidecar is PID 1 of its container: the one process the platform's SIGTERM reaches, whose end ends
  every other. So it installs a handler for every signal it passes on (PID 1 gets none it does not handle) and
  reaps every orphan that is handed to it.

The command runs in a process group of its own, given the terminal when the sidecar had it: Ctrl-C, or a process
manager signalling the sidecar's group, then reaches the command once, through the sidecar, rather than twice.

The `sidecar` command parses its line and execs `python -m sidekiq_metrics.sidecar -- COMMAND` (the same pid): the
process that lives beside the app for as long as it runs then holds the standard library's few modules it needs,
about 11 MB, not the CLI's 23 MB.

One process, one thread: a select loop on the signals' wakeup pipe. Nothing in it blocks: its few log lines are
written without waiting (dropped if stderr is full), children are reaped without waiting.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import resource
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from sidekiq_metrics.errors import EXIT_CONFIG

LOG_PREFIX = "sidekiq-metrics:"
STOP_GRACE = 1.0  # seconds an emitter has, after SIGTERM, to give the lease up and end; it is killed past that
STOPPING = {signal.SIGTERM, signal.SIGINT}  # the dyno or the user stopping us: the emitter ends at once
# Never passed on: those nobody can catch, the one we live on, and those the kernel sends for our own faults.
NOT_PASSED_ON = {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE,
                 signal.SIGILL, signal.SIGTRAP, signal.SIGSYS, signal.SIGABRT}
# The launcher's record of the app's LD_LIBRARY_PATH ("set:VALUE" or "unset"), which it changed for the runtime.
APP_LIBRARY_PATH = "SIDEKIQ_METRICS_APP_LD_LIBRARY_PATH"
PR_SET_PDEATHSIG = 1


USAGE = "usage: sidekiq-metrics sidecar -- COMMAND [ARGUMENT...]"


def interpreter() -> list[str]:
    """Our interpreter as we were started: -I in the launcher, and never the app's directory on sys.path (-P: `-m`
    would put it first, where a module of the app's could stand in for one of ours)."""
    isolation = ["-I"] if sys.flags.isolated else ["-P"] if sys.version_info >= (3, 11) else []
    return [sys.executable, *isolation, "-u"]


def become_sidecar(command: list[str]) -> int:
    """What the `sidecar` command does once it has parsed its line: become the lean sidecar process (see above)."""
    try:
        os.execv(sys.executable, [*interpreter(), "-m", "sidekiq_metrics.sidecar", "--", *command])
    except OSError:  # no interpreter to exec (an embedded one): this process will do
        return run_sidecar(command)


def main(argv: list[str]) -> int:
    """`python -m sidekiq_metrics.sidecar -- COMMAND [ARGUMENT...]`."""
    command = argv[1:] if argv[:1] == ["--"] else argv
    if not command:
        _say(USAGE)
        return EXIT_CONFIG
    return run_sidecar(command)


def run_sidecar(command: list[str], environ: dict[str, str] | None = None) -> int:
    """Run `command` and the emitter until the command ends; its exit status (or its end by its signal)."""
    environ = dict(os.environ if environ is None else environ)
    app_env, own_env = _environments(environ)
    _hold_closed_standard_descriptors()
    signals = _Signals()
    try:
        app = _start_command(command, app_env)
    except OSError as exc:
        signals.restore()
        _say(f"sidecar: cannot run {command[0]!r}: {exc.strerror or exc}")
        return 127 if exc.errno == errno.ENOENT else 126
    emitter = _Emitter(own_env)
    _say(f"starting the Sidekiq metrics emitter on {own_env.get('DYNO') or 'this dyno'}")
    emitter.start()
    status: int | None = None
    while status is None or emitter.running():
        for number in signals.received(emitter.next_event()):
            if status is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(app.pid, number)
            if number in STOPPING:
                emitter.stop()
        for pid, code in _reaped():
            if pid == app.pid:
                status = app.returncode = code
                emitter.stop()
            emitter.ended(pid, code)
        emitter.tick()
    signals.restore()
    return _pass_on(status)


def _environments(environ: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The command's environment, as the user gave it, and the emitter's (the runtime's library path kept)."""
    record = environ.pop(APP_LIBRARY_PATH, None)
    app = dict(environ)
    if record is not None:  # started by the launcher, which set LD_LIBRARY_PATH for the runtime alone
        if record.startswith("set:"):
            app["LD_LIBRARY_PATH"] = record.removeprefix("set:")
        else:
            app.pop("LD_LIBRARY_PATH", None)
    return app, environ


def _hold_closed_standard_descriptors() -> None:
    """Started with stdin, stdout or stderr closed, the next descriptor we open would take its number: the signals'
    pipe as our stderr (our log lines read back as signals), say. /dev/null holds each closed one, close-on-exec:
    the command and the emitter still get it closed, as it was given."""
    while (held := os.open(os.devnull, os.O_RDWR)) <= 2:  # non-inheritable, as every descriptor Python opens
        pass
    os.close(held)


def _start_command(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    terminal = _terminal()
    die_with_us = _death_signal(signal.SIGKILL)

    def in_the_child() -> None:
        os.setpgid(0, 0)
        if terminal is not None:  # reading it from a background group would stop the command (SIGTTIN)
            previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
            with contextlib.suppress(OSError):
                os.tcsetpgrp(terminal, os.getpgrp())
            signal.signal(signal.SIGTTOU, previous)
        die_with_us()

    # close_fds=False: the descriptors the command was given are its own (ours are not inheritable).
    return subprocess.Popen(command, env=env, close_fds=False, preexec_fn=in_the_child)


def _terminal() -> int | None:
    """stdin, if it is a terminal whose foreground is our group (then it becomes the command's)."""
    try:
        return 0 if os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp() else None
    except OSError:
        return None


def _death_signal(number: int) -> Callable[[], None]:
    """What a child runs before exec to get `number` when we die, however we die (Linux's PR_SET_PDEATHSIG; a
    no-op elsewhere, where an emitter left behind loses the lease when it runs out). Made here, in the parent:
    the child only calls it."""
    parent = os.getpid()
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None
    except (AttributeError, OSError):
        prctl = None

    def set_it() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, number, 0, 0, 0)
            if os.getppid() != parent:  # we died before it was set: it will never come
                os.kill(os.getpid(), number)
    return set_it


def _reaped() -> list[tuple[int, int]]:
    """Every child that has ended, ours and orphans handed to PID 1, with its status as Popen gives it (-N: signal
    N). Never waits."""
    ended: list[tuple[int, int]] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return ended
        if pid == 0:
            return ended
        ended.append((pid, os.waitstatus_to_exitcode(status)))


def _pass_on(status: int) -> int:
    """The command's exit status for ours; a signal that ended it ends us too (but for PID 1, which no signal of
    its own can end: then 128 + N, as a shell says it)."""
    if status >= 0:
        return status
    number = -status
    with contextlib.suppress(OSError):  # SIGKILL and SIGSTOP have no handler to reset
        signal.signal(number, signal.SIG_DFL)
    _, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (0, hard))  # the command's core, if any, is the one worth having
    os.kill(os.getpid(), number)
    time.sleep(0.1)  # delivered at once, unless we are PID 1
    return 128 + number


class _Signals:
    """Every signal that can be passed on, caught and queued on a pipe that select() watches; those ignored when we
    started are left ignored, as the command inherits them."""

    def __init__(self) -> None:
        self._read, write = os.pipe()
        os.set_blocking(write, False)
        os.set_blocking(self._read, False)
        self._previous_fd = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        self._write = write
        self._caught: dict[int, object] = {}
        for number in signal.valid_signals():
            if number in NOT_PASSED_ON - {signal.SIGCHLD}:
                continue
            try:
                if signal.getsignal(number) == signal.SIG_IGN and number != signal.SIGCHLD:
                    continue
                self._caught[number] = signal.signal(number, _noted)
            except (OSError, ValueError):  # the C library's own real-time signals
                continue

    def received(self, timeout: float | None) -> list[int]:
        """The signals received, waiting at most `timeout` seconds (None: until one comes)."""
        with contextlib.suppress(InterruptedError):
            select.select([self._read], [], [], timeout)
        try:
            data = os.read(self._read, 4096)
        except BlockingIOError:
            return []
        return [number for number in data if number != signal.SIGCHLD]

    def restore(self) -> None:
        signal.set_wakeup_fd(self._previous_fd)
        for number, handler in self._caught.items():
            signal.signal(number, handler)  # type: ignore[arg-type]
        os.close(self._read)
        os.close(self._write)


def _noted(number: int, frame: object) -> None:
    """A signal's handler: the wakeup pipe has its number; the loop does the rest."""


class _Emitter:
    """`sidekiq-metrics run --lease`, kept running until stopped, restarted after a crash with back-off."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.argv = [*interpreter(), "-m", "sidekiq_metrics", "run", "--lease"]
        self.first_delay = _seconds(env.get("SIDEKIQ_METRICS_RESTART_DELAY"), 10.0)
        self.max_delay = max(self.first_delay, _seconds(env.get("SIDEKIQ_METRICS_RESTART_MAX_DELAY"), 300.0))
        self.delay = self.first_delay
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.restart_at: float | None = None
        self.kill_at: float | None = None
        self.stopped = False

    def start(self) -> None:
        self.restart_at = None
        self.started_at = time.monotonic()
        die_with_us = _death_signal(signal.SIGTERM)
        try:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL, preexec_fn=die_with_us)
        except OSError as exc:
            _say(f"cannot start the emitter: {exc.strerror or exc}")
            self.stopped = True

    def running(self) -> bool:
        return self.proc is not None

    def stop(self) -> None:
        """SIGTERM, and a second to end; never started again."""
        self.stopped, self.restart_at = True, None
        if self.proc is not None and self.kill_at is None:
            self.kill_at = time.monotonic() + STOP_GRACE
            for number in (signal.SIGTERM, signal.SIGCONT):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, number)

    def ended(self, pid: int, code: int) -> None:
        if self.proc is None or pid != self.proc.pid:
            return
        self.proc.returncode = code
        self.proc, self.kill_at = None, None
        status = 128 - code if code < 0 else code  # as the supervisor's shell says it
        if self.stopped or status in (0, 130, 143):  # stopped by us, or by a signal meant for every process
            self.stopped = True
            return
        if status == 2:
            _say("not restarting the emitter: fix the setting named above")
            self.stopped = True
            return
        if time.monotonic() - self.started_at >= self.max_delay:
            self.delay = self.first_delay  # it ran long enough to count as healthy
        _say(f"the emitter exited with status {status}; restarting in {self.delay:g}s")
        self.restart_at = time.monotonic() + self.delay
        self.delay = min(self.max_delay, max(1.0, self.delay * 2))

    def next_event(self) -> float | None:
        """Seconds until a restart or a kill is due; None: nothing is."""
        due = [at for at in (self.restart_at, self.kill_at) if at is not None]
        return max(0.0, min(due) - time.monotonic()) if due else None

    def tick(self) -> None:
        now = time.monotonic()
        if self.kill_at is not None and now >= self.kill_at and self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.kill_at = None
        if self.restart_at is not None and now >= self.restart_at and not self.stopped:
            self.start()


def _seconds(text: str | None, default: float) -> float:
    """A delay as the supervisor reads it: seconds, to the millisecond, at most 99,999; anything else the default,
    so that a typo is no restart storm."""
    text = (text or "").strip()
    if not re.fullmatch(r"[0-9]{1,5}(\.[0-9]+)?", text):  # ASCII digits: \d takes any script's
        return default
    whole, _, fraction = text.partition(".")
    return (int(whole) * 1000 + int((fraction + "000")[:3])) / 1000  # in milliseconds: 1.001 stays 1.001


def _say(message: str) -> None:
    """One line on stderr, hardly waiting: a log reader that lags must not hold up the loop that passes signals
    on. RWF_NOWAIT also refuses a write while another process (the emitter, the app) is writing to the same pipe,
    so a refused line is tried again a few times, SAY_TRIES in all, SAY_PAUSE apart (seen dropped under load);
    on a pipe that stays full it is dropped."""
    data = f"{LOG_PREFIX} {message}\n".encode(errors="backslashreplace")
    for _ in range(SAY_TRIES):
        try:
            os.pwritev(2, [data], -1, os.RWF_NOWAIT)
            return
        except BlockingIOError:
            time.sleep(SAY_PAUSE)
        except (OSError, AttributeError):  # not a pipe (a terminal, a file, a socket), or no RWF_NOWAIT here
            with contextlib.suppress(OSError):
                os.write(2, data)
            return


SAY_TRIES, SAY_PAUSE = 5, 0.01  # at most 50 ms for a line


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
