"""The few exceptions the emitter raises on purpose."""


class ConfigError(ValueError):
    """A setting has a value we cannot use. The CLI prints it as one line and exits 2."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting} {message}")
        self.setting = setting  # the flag or variable, as the user wrote it
        self.field: str | None = None  # the settings field it is for, where the caller knows it


class OutputUnavailable(Exception):  # noqa: N818 - a state, said as one line
    """An output cannot start (its port is taken, say). The message names the setting to change.

    The emitter runs on with the other outputs: a failing optional output must not take the
    l2met lines down with it.
    """


class OutputFailed(Exception):  # noqa: N818 - a state, said as one line
    """stdout cannot be written (a full disk, an I/O error): the run ends with EXIT_OUTPUT and one line.
    (A reader that went away, BrokenPipeError, is a stop, not this.)"""


EXIT_CONFIG = 2  # bad settings or input: one line saying which and what it accepts
EXIT_OUTPUT = 74  # sysexits' EX_IOERR: not 0, so the hook's supervisor retries later, with backoff


class StopRequested(BaseException):  # noqa: N818 - it is a request, not an error
    """Raised by the signal handler to leave a Redis call that hangs.

    A BaseException, like KeyboardInterrupt, so that no `except Exception` on the
    way up mistakes a shutdown for a failed poll.
    """
