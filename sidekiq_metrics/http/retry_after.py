"""Retry-After, as HTTP servers send it (RFC 9110 10.2.3): a whole number of seconds, or an HTTP date.

Both HTTP clients (the Platform API's, the otlp output's) read it here. Whatever a server sends,
the answer is a sane number of seconds or None: `nan`, `inf`, `²` (a digit to str.isdigit, not to
float) or a date in the past never make a retry loop spin or a sender thread die.
"""

from __future__ import annotations

import email.utils
import math
import time


def retry_after(value: str | None, *, least: float, most: float, now: float | None = None) -> float | None:
    """Seconds to wait, within [least, most]; None when the header is absent or not one of its two forms."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        seconds = float(value) if len(value) < 20 else most
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
            seconds = when.timestamp() - (time.time() if now is None else now)
        except (TypeError, ValueError, OverflowError, IndexError):
            return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, least), most)
