"""Cron expressions evaluated in a schedule's own time zone, with defined DST behaviour.

Expressions have 5 fields, or 6 with a leading seconds field (`*/5 * * * * *` = every 5 s).
Matching is done on local wall-clock time, then each match is mapped to one UTC instant:

- a local time that does not exist (spring-forward gap) runs once, at the transition instant
  (several skipped matches collapse into that one run);
- a local time that occurs twice (fall-back) runs once, at its first occurrence.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator

from croniter import CroniterBadDateError, croniter

UTC = dt.UTC
_MAX_STEPS = 200_000  # bound on candidates examined per call, whatever the expression


class CronError(ValueError):
    """An invalid cron expression or time zone, with a message meant for the user."""


def validate(expression: str, timezone: str) -> None:
    fields = expression.split()
    if len(fields) not in (5, 6):
        raise CronError(
            f"cron {expression!r} must have 5 fields (minute hour day month weekday) "
            "or 6 with a leading seconds field"
        )
    if not croniter.is_valid(expression, second_at_beginning=True):
        raise CronError(f"cron {expression!r} is not a valid cron expression")
    zone(timezone)
    try:
        croniter(expression, dt.datetime(2000, 1, 1), second_at_beginning=True).get_next(dt.datetime)
    except CroniterBadDateError as error:  # a date that does not exist, e.g. 31 February
        raise CronError(f"cron {expression!r} never fires (no date matches it)") from error


def zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise CronError(f"unknown time zone {name!r}") from error


def fire_times(
    expression: str, timezone: str, after: dt.datetime, until: dt.datetime, limit: int = 10_000
) -> list[dt.datetime]:
    """UTC fire instants t with after < t <= until, ascending, at most `limit`."""
    tz = zone(timezone)
    found: list[dt.datetime] = []
    for instant in _instants(expression, tz, _local(after, tz), forward=True):
        if instant > until or len(found) >= limit:
            break
        if instant > after and (not found or instant != found[-1]):
            found.append(instant)
    return found


def latest_fire_times(
    expression: str, timezone: str, after: dt.datetime, until: dt.datetime, limit: int
) -> list[dt.datetime]:
    """The `limit` latest UTC fire instants t with after < t <= until, ascending."""
    tz = zone(timezone)
    found: list[dt.datetime] = []
    start = _local(until, tz) + dt.timedelta(seconds=1)
    for instant in _instants(expression, tz, start, forward=False):
        if instant <= after or len(found) >= limit:
            break
        if instant <= until and (not found or instant != found[-1]):
            found.append(instant)
    return list(reversed(found))


def _local(instant: dt.datetime, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    return instant.astimezone(tz).replace(tzinfo=None, microsecond=0)


def _instants(
    expression: str, tz: zoneinfo.ZoneInfo, start: dt.datetime, forward: bool
) -> Iterator[dt.datetime]:
    matches = croniter(expression, start, second_at_beginning=True)
    step = matches.get_next if forward else matches.get_prev
    for _ in range(_MAX_STEPS):
        try:
            local = step(dt.datetime)
        except CroniterBadDateError:  # no (further) date matches: the schedule never fires
            return
        yield to_utc(local, tz)


def to_utc(local: dt.datetime, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    """The instant a local wall-clock match runs at (first occurrence; gap -> transition)."""
    first = local.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == local:
        return first
    # In a gap, fold=1 applies the offset after the transition and lands before it; fold=0
    # applies the offset before and lands after it. Bisect for the transition instant.
    low = local.replace(tzinfo=tz, fold=1).astimezone(UTC)
    high = first
    after_offset = high.astimezone(tz).utcoffset()
    while high - low > dt.timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).utcoffset() == after_offset:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)
