"""What every section of the settings parses with: a setting's value checked and turned into what the code uses,
or a ConfigError of one line that names the setting and never repeats a secret."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from sidekiq_metrics.errors import ConfigError

_HOST_RE = re.compile(r"[A-Za-z0-9.:_-]{1,253}")


def format_value(value: object) -> str:
    """A setting's value as a user would write it: `true`, `30`, `l2met,json`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def matching(pattern: re.Pattern[str], accepts: str) -> Callable[[str, str], str]:
    def parse(raw: str, label: str) -> str:
        if not pattern.fullmatch(raw):
            raise ConfigError(label, f"must be {accepts}, got {quote(raw)}")
        return raw
    return parse


def one_of(choices: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(raw: str, label: str) -> str:
        if raw not in choices:
            raise ConfigError(label, f"must be one of {', '.join(choices)}, got {quote(raw)}")
        return raw
    return parse



def host(accepts: str) -> Callable[[str, str], str]:
    """A host setting's parser: a name or an address, checked as DNS will take it."""
    plain = matching(_HOST_RE, accepts)
    return lambda raw, label: check_host(plain(raw, label), label)


def check_host(host: str, label: str) -> str:
    """A host name DNS can look up (each dot-separated label 1 to 63 characters, as IDNA encodes it) or an IP
    address. An empty label (`redis..example.com`) crashed the name lookup with a traceback at every poll."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return host
    except ValueError:
        pass
    try:
        encoded = host.encode("idna")
    except UnicodeError:
        raise ConfigError(label, "has a host name with an empty or over-long part (each part between dots must "
                                 "be 1 to 63 characters)") from None
    if len(encoded.rstrip(b".")) > 253:
        raise ConfigError(label, "has a host name over 253 characters")
    return host


def whole_number(raw: str) -> int | None:
    """Plain ASCII digits, and few enough for int() (which refuses more than 4,300): else None."""
    return int(raw) if raw.isdigit() and raw.isascii() and len(raw) <= 18 else None


def quote(raw: str, limit: int = 40) -> str:
    """A bad value, escaped and then shortened, so that it prints as one short harmless line."""
    shown = ascii(raw)[1:-1]
    return f"'{shown if len(shown) <= limit else shown[:limit] + '...'}'"


# A variable's name, as REDIS_PROVIDER and SIDEKIQ_METRICS_SHARDS must give one: the hook's rule too (profile.d:
# not `[0-9]*` nor `*[!A-Za-z0-9_]*`), held equal to it by tests/test_dyno_rule.py.
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")  # plain decimals: no sign, exponent, nan or inf
MAX_SECONDS = 86400.0  # a day: the most any setting of seconds takes
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def parse_bool(raw: str, label: str) -> bool:
    low = raw.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ConfigError(label, f"must be true or false (also 1/0, yes/no, on/off), got {quote(raw)}")


def parse_port(raw: str, label: str) -> int:
    if whole_number(raw) is not None and 0 < int(raw) < 65536:
        return int(raw)
    raise ConfigError(label, f"must be a port number from 1 to 65535, got {quote(raw)}")


def parse_seconds(raw: str, label: str) -> float:
    if NUMBER.fullmatch(raw) and float(raw) <= MAX_SECONDS:
        return float(raw)
    raise ConfigError(label, f"must be a number of seconds from 0 to {MAX_SECONDS:.0f}, e.g. 30, got {quote(raw)}")


def parse_queue_list(raw: str, label: str) -> tuple[str, ...]:
    names = [n.strip() for n in raw.split(",")]
    names = list(dict.fromkeys(n for n in names if n))  # keep order, drop repeats
    if not names:
        raise ConfigError(label, "must list queue names separated by commas, e.g. default,mailers")
    return tuple(names)


def text(raw: str, label: str) -> str:
    """Any text, as it is given."""
    return raw
