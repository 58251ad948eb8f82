"""The office calendar: when the firm works, in one place.

Everything that depends on the office being open asks this module: what a caller hears ("we
are closed today", "we reopen on Monday"), the callback promise, the hours in a text, whether
"talk with our office now" is offered, and the dashboard's Overdue flag (office hours a request
has waited). Three copies of this arithmetic used to disagree: the dashboard's ignored
OFFICE_CLOSED_DATES, so a request left before a holiday showed Overdue during it.

The settings are parsed in `ivr/settings.py` (OFFICE_HOURS into an `OfficeHours`, the closures
into dates, the zone into a ZoneInfo); here is only the arithmetic over them. No library: the
`holidays` package knows countries' public holidays, but the firm's closures are its own list
of dates (it may work on a federal holiday and close on Christmas Eve); `businesstimedelta`
does count business hours with holidays, but has not been released since 2019 and works through
pytz, and what we need of it is one bounded walk over days (`hours_between`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from ivr import clock
from ivr.db import as_utc
from ivr.settings import OfficeHours, settings

# How far a walk over days goes: past any run of holidays anyone would configure, and a request
# waiting longer is overdue anyway.
HORIZON_DAYS = 400

Interval = tuple[dt.datetime, dt.datetime]


def now() -> dt.datetime:
    """The current moment, from the app's one clock (`ivr/clock.py`; tests set CLOCK)."""
    return clock.now()


@dataclass(frozen=True)
class Calendar:
    """The weekly hours (None: always open), the closed days, and the zone they are written in."""

    hours: OfficeHours | None
    closed: frozenset[dt.date]
    tz: ZoneInfo

    def local(self, moment: dt.datetime) -> dt.datetime:
        """`moment` in the office's time zone (a naive one is UTC, as the database stores it)."""
        return as_utc(moment).astimezone(self.tz)

    def closed_on(self, day: dt.date) -> bool:
        """A whole day off (one of OFFICE_CLOSED_DATES)."""
        return day in self.closed

    def opening(self, day: dt.date, closures: bool = True) -> Interval | None:
        """When the office opens and closes on local `day`; None when it does not open."""
        if closures and self.closed_on(day):
            return None
        if self.hours is None:
            return (
                dt.datetime.combine(day, dt.time(0), self.tz),
                dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), self.tz),
            )
        if day.weekday() not in self.hours.days:
            return None
        return (
            dt.datetime.combine(day, self.hours.opens, self.tz),
            dt.datetime.combine(day, self.hours.closes, self.tz),
        )

    def is_open(self, moment: dt.datetime) -> bool:
        """Open by the weekly hours, and not on a closed day."""
        local = self.local(moment)
        interval = self.opening(local.date())
        return interval is not None and interval[0] <= local < interval[1]

    def next_opening(self, moment: dt.datetime, closures: bool = True) -> dt.datetime | None:
        """The first moment from `moment` on when the office is open (with or without the
        closed days: the two differ while a holiday delays the usual opening)."""
        local = self.local(moment)
        for day in self._days(local.date()):
            interval = self.opening(day, closures)
            if interval is not None and local < interval[1]:
                return max(interval[0], local)
        return None

    def hours_between(self, start: dt.datetime, end: dt.datetime) -> float:
        """Hours the office was open between two instants, closed days left out: a request
        left on Friday evening is not overdue on Monday at 9, nor during a holiday."""
        start, end = as_utc(start), as_utc(end)
        if end <= start:
            return 0.0
        last = self.local(end).date()
        total = 0.0
        for day in self._days(self.local(start).date()):
            if day > last:
                break
            interval = self.opening(day)
            if interval is not None:
                # In UTC: both ends in the office's zone would subtract as wall-clock times, and a
                # day of a clock change (23 or 25 hours when always open) would count as 24.
                opens, closes = (moment.astimezone(dt.UTC) for moment in interval)
                overlap = min(closes, end) - max(opens, start)
                total += max(overlap.total_seconds(), 0) / 3600
        return total

    def _days(self, first: dt.date) -> Iterator[dt.date]:
        return (first + dt.timedelta(days=ahead) for ahead in range(HORIZON_DAYS))


def office() -> Calendar:
    """The calendar of the running app, from OFFICE_HOURS, OFFICE_CLOSED_DATES, OFFICE_TIMEZONE."""
    config = settings()
    hours, closed = config.office_hours, config.office_closed_dates
    return Calendar(hours, closed, config.office_timezone)


def office_open(moment: dt.datetime | None = None) -> bool:
    """Whether the office is open now (or at `moment`)."""
    return office().is_open(moment or now())


def today() -> dt.date:
    """The office's date now."""
    return office().local(now()).date()
