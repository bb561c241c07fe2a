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
