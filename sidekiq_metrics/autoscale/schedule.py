"""Time windows that override a process type's MIN and MAX, in a time zone of the user's choosing.

    SIDEKIQ_METRICS_AUTOSCALE_WORKER_SCHEDULE="Mon-Fri 08:00-18:00 min=3; Sat,Sun 00:00-24:00 max=2"
    SIDEKIQ_METRICS_AUTOSCALE_TIMEZONE=Europe/Berlin

Windows are in local wall-clock time (zoneinfo: a window keeps its hours across daylight-saving
changes); the first window that covers a moment sets the bounds it names, the rule's MIN and MAX
the others. A window whose end is not after its start runs past midnight into the next day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW = re.compile(r"(?P<days>[A-Za-z,\-]+)\s+(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2})"
                     r"(?P<bounds>(?:\s+(?:min|max)=\d{1,4})*)")


class ScheduleError(ValueError):
    """What is wrong with a schedule, said without quoting it whole."""


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 is Monday
    start: int  # minutes after midnight
    end: int  # minutes after midnight, up to 1440; not after `start`: it runs into the next day
    min_dynos: int | None
    max_dynos: int | None
    text: str  # as written, for the log

    def covers(self, local: datetime) -> bool:
        minute, day = local.hour * 60 + local.minute, local.weekday()
        if self.start < self.end:
            return day in self.days and self.start <= minute < self.end
        return (day in self.days and minute >= self.start) or ((day - 1) % 7 in self.days and minute < self.end)


def window_at(windows: tuple[Window, ...], zone: str, at: float) -> Window | None:
    """The first window that covers the moment `at` (epoch seconds), in the time zone `zone`."""
    if not windows:
        return None
    local = datetime.fromtimestamp(at, ZoneInfo(zone))
    return next((w for w in windows if w.covers(local)), None)


def parse_schedule(raw: str) -> tuple[Window, ...]:
    windows = []
    for n, text in enumerate((part.strip() for part in raw.split(";") if part.strip()), 1):
        match = _WINDOW.fullmatch(text)
        if not match:
            raise ScheduleError(f"window {n} is not `<days> <HH:MM>-<HH:MM> [min=N] [max=N]`, e.g. "
                                "`Mon-Fri 08:00-18:00 min=3`")
        bounds = dict(item.split("=") for item in match["bounds"].split())
        if not bounds:
            raise ScheduleError(f"window {n} sets neither min= nor max=")
        start, end = _minutes(match["start"], n), _minutes(match["end"], n)
        if start == 1440:
            raise ScheduleError(f"window {n} starts at 24:00; write 00:00 of the next day")
        windows.append(Window(_days(match["days"], n), start, end,
                              int(bounds["min"]) if "min" in bounds else None,
                              int(bounds["max"]) if "max" in bounds else None, text))
    if not windows:
        raise ScheduleError("lists no window")
    return tuple(windows)


def _minutes(clock: str, n: int) -> int:
    hours, minutes = map(int, clock.split(":"))
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        raise ScheduleError(f"window {n} has a time that is not one: {clock}")
    return hours * 60 + minutes


def _days(text: str, n: int) -> frozenset[int]:
    days: set[int] = set()
    for part in text.lower().split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise ScheduleError(f"window {n} names a day that is not one of {', '.join(d.title() for d in DAYS)}")
        a, b = DAYS.index(first), DAYS.index(last or first)
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])  # Sat-Mon wraps
    return frozenset(days)
