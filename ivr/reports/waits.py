"""How long families waited for a call-back and what came of it: from requests and their history
(`requests/history.py`), whose rows stay after a retention purge (only personal fields go).

Waits are counted in office hours, as the dashboard counts "overdue", against
CALLBACK_TARGET_HOURS.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

import sqlalchemy as sa

from ivr.calls import calendar
from ivr.db import as_utc, db
from ivr.reports.charts import Chart, Period, Series, percentile
from ivr.requests.history import OUTCOMES, RequestEvent
from ivr.requests.models import CallbackRequest
from ivr.settings import settings

STATUS_LABELS = {"new": "New", "trying": "Trying", "reached": "Reached", "handled": "Handled"}


MONDAY = dt.date(2001, 1, 1)  # the office clock counts open hours from this Monday on

Day = tuple[dt.timedelta, dt.datetime, dt.datetime]


class OfficeClock:
    """Office hours between two instants by the office calendar (`calls/calendar.py`: the weekly
    OFFICE_HOURS, every hour when "always", OFFICE_CLOSED_DATES left out), counted as the
    dashboard counts them for "overdue", but for thousands of requests at once: the open hours
    since a fixed Monday are whole weeks plus at most six days, less the closed days before, so a
    wait is two look-ups instead of a walk over each of its days."""

    def __init__(self, office: calendar.Calendar | None = None) -> None:
        self.calendar = office or calendar.office()
        self.tz = self.calendar.tz
        self.day = [self._length(MONDAY + dt.timedelta(days=d)) for d in range(7)]
        self.week = sum(self.day, dt.timedelta(0))
        # The hours each closed day would have had, summed in date order (bisected per day).
        self.closed = sorted(day for day in self.calendar.closed if day >= MONDAY)
        self.lost = [dt.timedelta(0)]
        for day in self.closed:
            self.lost.append(self.lost[-1] + self.day[day.weekday()])
        self.days: dict[dt.date, Day] = {}

    def _open(self, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
        """The weekly hours of `day` (closures aside); equal ends when it does not open."""
        interval = self.calendar.opening(day, closures=False)
        if interval is None:
            midnight = dt.datetime.combine(day, dt.time(0), self.tz)
            return midnight, midnight
        return interval

    def _length(self, day: dt.date) -> dt.timedelta:
        opens, closes = self._open(day)
        return closes - opens

    def _since_monday(self, moment: dt.datetime) -> dt.timedelta:
        local = moment.astimezone(self.tz)
        before, opens, closes = self._day(local.date())
        return before + min(max(local - opens, dt.timedelta(0)), closes - opens)

    def _day(self, day: dt.date) -> Day:
        """Open hours before `day`, and its opening and closing (equal when it is closed)."""
        found = self.days.get(day)
        if found is None:
            weeks, days = divmod((day - MONDAY).days, 7)
            before = self.week * weeks + sum(self.day[:days], dt.timedelta(0))
            before -= self.lost[bisect.bisect_left(self.closed, day)]
            opens, closes = self._open(day)
            if self.calendar.closed_on(day):
                closes = opens
            found = self.days[day] = (before, opens, closes)
        return found

    def between(self, start: dt.datetime, end: dt.datetime) -> float:
        start, end = as_utc(start), as_utc(end)
        if end <= start:
            return 0.0
        if self.calendar.hours is None:  # always open: the real hours, closed days left out
            return (end - start - self._closed_between(start, end)).total_seconds() / 3600
        return (self._since_monday(end) - self._since_monday(start)).total_seconds() / 3600

    def _closed_between(self, start: dt.datetime, end: dt.datetime) -> dt.timedelta:
        """Real time (a day of a clock change is 23 or 25 hours) of closed days in the span."""
        first, last = self.calendar.local(start).date(), self.calendar.local(end).date()
        lost = dt.timedelta(0)
        for day in self.closed[bisect.bisect_left(self.closed, first) :]:
            if day > last:
                break
            opens, closes = self._open(day)
            lost += max(min(closes, end) - max(opens, start), dt.timedelta(0))
        return lost


@dataclass
class Waited:
    created: dt.datetime
    status: str
    urgent: bool
    language: str
    attempt: float | None  # office hours to the first attempt
    reached: float | None  # office hours to reaching the family
    open_for: float  # office hours since the request, while no attempt was made


@dataclass
class CallbackFigures:
    """How long families waited for a call-back and what came of it, for requests left in the
    period (their history may run past it)."""

    requests: list[Waited] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)
    target: float = 0
    urgent_target: float = 0  # URGENT_TARGET_HOURS: the dashboard's shorter target (issue 21)

    @classmethod
    def read(cls, period: Period, now: dt.datetime) -> CallbackFigures:
        config = settings()
        found = cls(target=config.callback_target_hours, urgent_target=config.urgent_target_hours)
        start, end = period.utc_bounds()
        r, e = CallbackRequest, RequestEvent
        in_period = sa.and_(r.created_at >= start, r.created_at < end)
        attempted = sa.or_(
            e.kind.in_(("call", "outcome")),
            sa.and_(e.kind == "status", e.status_to.in_(("trying", "reached"))),
        )
        reached = sa.or_(
            sa.and_(e.kind == "status", e.status_to == "reached"), e.outcome == "reached"
        )
        history = (
            sa.select(
                e.request_id,
                sa.func.min(sa.case((attempted, e.created_at))).label("attempt"),
                sa.func.min(sa.case((reached, e.created_at))).label("reached"),
            )
            .join(r, r.id == e.request_id)
            .where(in_period)
            .group_by(e.request_id)
            .subquery()
        )
        rows = db.session.execute(
            sa.select(
                r.created_at, r.status, r.urgent, r.language, history.c.attempt, history.c.reached
            )
            .outerjoin(history, history.c.request_id == r.id)
            .where(in_period)
        )
        clock = OfficeClock()
        for created, status, urgent, language, attempt, reached_at in rows:
            found.requests.append(
                Waited(
                    created,
                    status,
                    bool(urgent),
                    language,
                    clock.between(created, attempt) if attempt else None,
                    clock.between(created, reached_at) if reached_at else None,
                    0.0 if attempt else clock.between(created, now),
                )
            )
        for outcome, count in db.session.execute(
            sa.select(e.outcome, sa.func.count())
            .join(r, r.id == e.request_id)
            .where(in_period, e.kind == "outcome")
            .group_by(e.outcome)
        ):
            found.outcomes[outcome or "?"] += count
        return found

    def waits(self, which: str) -> list[float]:
        return [w for w in (getattr(q, which) for q in self.requests) if w is not None]

    def overdue(self, urgent: bool | None = None) -> int:
        """Still waiting for a first attempt, for longer than its target (the shorter one for an
        urgent request, as the dashboard's countdown)."""
        return sum(
            1
            for q in self.requests
            if q.attempt is None
            and q.status in ("new", "trying")
            and q.open_for > (self.urgent_target if q.urgent else self.target)
            and urgent in (None, q.urgent)
        )

    def headline(self) -> list[tuple[str, str]]:
        median = percentile(self.waits("attempt"), 0.5)
        urgent = sum(q.urgent for q in self.requests)
        share = f"{urgent / len(self.requests):.0%}" if self.requests else "–"
        return [
            (
                "Median wait for a first call-back",
                f"{median:.1f} office hours (target {self.target:g})"
                if median is not None
                else "–",
            ),
            ("Families reached", str(len(self.waits("reached")))),
            ("Overdue now", str(self.overdue())),
            ("Urgent", f"{urgent} of {len(self.requests)} ({share})"),
        ]

    def charts(self) -> list[Chart]:
        measures = [("To the first attempt", "attempt"), ("To reaching the family", "reached")]
        waits = [self.waits(which) for _, which in measures]
        late = sum(1 for w in self.waits("attempt") if w > self.target)
        statuses = list(STATUS_LABELS)
        outcome_keys = list(OUTCOMES)
        return [
            Chart(
                "callback-wait",
                "Waiting for a call-back",
                [label for label, _ in measures],
                [
                    Series("Median", [round(percentile(w, 0.5) or 0, 1) for w in waits]),
                    Series("90th percentile", [round(percentile(w, 0.9) or 0, 1) for w in waits]),
                ],
                note=f"Office hours, for requests left in this period; the line is the target "
                f"({self.target:g} h). Attempts after the target: {late}.",
                unit="h",
                target=self.target,
            ),
            Chart(
                "callback-status",
                "Requests by status now",
                [STATUS_LABELS[s] for s in statuses] + ["Overdue now"],
                [
                    Series(
                        "Urgent",
                        [sum(q.urgent for q in self.requests if q.status == s) for s in statuses]
                        + [self.overdue(urgent=True)],
                    ),
                    Series(
                        "Not urgent",
                        [
                            sum(not q.urgent for q in self.requests if q.status == s)
                            for s in statuses
                        ]
                        + [self.overdue(urgent=False)],
                    ),
                ],
                note="Requests left in this period. Overdue: no attempt yet, past the target "
                f"({self.target:g} h; urgent {self.urgent_target:g} h).",
                stacked=True,
            ),
            Chart(
                "callback-outcomes",
                "Call-back attempts",
                [OUTCOMES[k] for k in outcome_keys],
                [Series("Attempts", [self.outcomes[k] for k in outcome_keys])],
                horizontal=True,
            ),
        ]
