"""The Reports page's figures for one day, week or month: from call events, requests, history.

Calls (what callers did) come from `call_events`, which outlive retention purges. Call-backs
(how long families waited, whether staff reached them) come from `callback_requests` and their
history (`requests/history.py`), whose rows stay after a purge too (only personal fields go).

Each figure is a `Chart`: labels, one series per language or measure, shown as a chart with
its numbers beside it and in the CSV. Every query reads one period by the events' (day, kind)
index or the requests' creation time, and groups in the database: a month of a busy year is a
few tens of thousands of rows, read in a handful of queries (bench/reports.py measures it).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import current_app

from ivr.db import db, utcnow
from ivr.reports.events import CallEvent
from ivr.requests.history import OUTCOMES, RequestEvent, as_utc
from ivr.requests.missed import topic_label
from ivr.requests.models import CallbackRequest

PERIODS = ("day", "week", "month")
LANGUAGES = {"en": "English", "es": "Spanish"}
NO_LANGUAGE = "No language chosen"

# Where a call can end (its last step), in call order: what each step means to a caller.
HANG_UPS = [
    ("Choosing a language", {"call"}),
    ("Main menu", {"language", "menu"}),
    ("Help menu (too many tries)", {"help"}),
    ("During a topic", {"topic", "topic-slow"}),
    ("After a topic (its options)", {"topic-end", "topic-cut"}),
    ("Ringing the firm", {"firm-tried"}),
    ("Talked with the firm", {"firm-answered"}),
    ("Offered a message (closed, no answer)", {"firm-closed", "firm-missed"}),
    ("Before recording a message", {"callback-started"}),
    ("Callback number", {"recorded"}),
    ("A-number", {"number"}),
    ("Reference and goodbye", {"complete", "added", "urgent"}),
    ("After the text offer", {"text-sent", "text-refused", "text-failed"}),
]
# A call that ends here was served: it reached the firm or left a request.
SERVED = {
    "firm-answered",
    "recorded",
    "added",
    "number",
    "complete",
    "urgent",
    "text-sent",
    "text-refused",
    "text-failed",
}
# How far calls got: calls that reached each step at least once.
REACHED = [
    ("Chose a language", ("language",)),
    ("Heard a topic", ("topic",)),
    ("Asked for the firm", ("firm-tried", "firm-closed")),
    ("Talked with the firm", ("firm-answered",)),
    ("Started a message", ("callback-started",)),
    ("Left a request", ("recorded", "added")),
    ("Gave every detail", ("complete",)),
]
DETAILED = ("topic", "topic-slow", "topic-end", "topic-cut")
STATUS_LABELS = {"new": "New", "trying": "Trying", "reached": "Reached", "handled": "Handled"}


@dataclass(frozen=True)
class Period:
    """A day, an ISO week (Monday first) or a calendar month, in the office's days."""

    kind: str
    start: dt.date

    @classmethod
    def around(cls, kind: str, day: dt.date) -> Period:
        if kind == "week":
            return cls(kind, day - dt.timedelta(days=day.weekday()))
        if kind == "month":
            return cls(kind, day.replace(day=1))
        return cls("day", day)

    @property
    def end(self) -> dt.date:
        """The first day after the period."""
        if self.kind == "week":
            return self.start + dt.timedelta(days=7)
        if self.kind == "month":
            return (self.start + dt.timedelta(days=32)).replace(day=1)
        return self.start + dt.timedelta(days=1)

    def previous(self) -> Period:
        return Period.around(self.kind, self.start - dt.timedelta(days=1))

    def next(self) -> Period:
        return Period(self.kind, self.end)

    @property
    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=n) for n in range((self.end - self.start).days)]

    @property
    def label(self) -> str:
        if self.kind == "week":
            last = self.end - dt.timedelta(days=1)
            return f"Week of {self.start:%a %d %b} to {last:%a %d %b %Y}"
        if self.kind == "month":
            return f"{self.start:%B %Y}"
        return f"{self.start:%A %d %B %Y}"

    def utc_bounds(self) -> tuple[dt.datetime, dt.datetime]:
        tz = current_app.config["OFFICE_TIMEZONE"]
        return (
            dt.datetime.combine(self.start, dt.time(0), tz).astimezone(dt.UTC),
            dt.datetime.combine(self.end, dt.time(0), tz).astimezone(dt.UTC),
        )


@dataclass
class Series:
    name: str
    values: Sequence[float]


@dataclass
class Chart:
    """One figure: `labels` along one axis, a bar per series; `target` draws a line."""

    id: str
    title: str
    labels: list[str]
    series: list[Series]
    note: str = ""
    stacked: bool = False
    horizontal: bool = False
    unit: str = ""
    target: float | None = None

    def rows(self) -> list[tuple[str, list[float]]]:
        """The numbers beside the chart: one row per label, a value per series."""
        return [(label, [s.values[i] for s in self.series]) for i, label in enumerate(self.labels)]

    def data(self) -> dict:
        """What the page's script draws (reports.js), as JSON."""
        return {
            "id": self.id,
            "labels": self.labels,
            "series": [{"name": s.name, "values": s.values} for s in self.series],
            "stacked": self.stacked,
            "horizontal": self.horizontal,
            "unit": self.unit,
            "target": self.target,
        }


@dataclass
class Report:
    period: Period
    headline: list[tuple[str, str]] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)

    def csv_rows(self) -> list[list[str]]:
        """Every aggregate, one per line: chart, label, series, value (no row is a person)."""
        rows = [["period", "chart", "label", "series", "value"]]
        when = f"{self.period.kind} {self.period.start.isoformat()}"
        rows += [[when, "headline", label, "", value] for label, value in self.headline]
        for chart in self.charts:
            for label, values in chart.rows():
                for series, value in zip(chart.series, values, strict=True):
                    rows.append([when, chart.id, label, series.name, number(value)])
        return rows


def number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile (the median at 0.5): a value some request really had."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


MONDAY = dt.date(2001, 1, 1)  # the office clock counts open hours from this Monday on


class OfficeClock:
    """Office hours between two instants, counted as the dashboard counts them for "overdue"
    (`staff/display.office_hours_between`: the weekly OFFICE_HOURS, every hour when "always"),
    for thousands of requests at once: the open hours since a fixed Monday are whole weeks plus
    at most six days, so a wait is two look-ups instead of a walk over each of its days."""

    def __init__(self) -> None:
        self.hours = current_app.config["OFFICE_HOURS"]
        self.tz = current_app.config["OFFICE_TIMEZONE"]
        self.days: dict[dt.date, tuple[dt.timedelta, dt.datetime, dt.datetime]] = {}
        if self.hours is not None:
            length = self._open(MONDAY)[1] - self._open(MONDAY)[0]
            self.day = [length if d in self.hours.days else dt.timedelta(0) for d in range(7)]
            self.week = sum(self.day, dt.timedelta(0))

    def _open(self, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
        return (
            dt.datetime.combine(day, self.hours.opens, self.tz),
            dt.datetime.combine(day, self.hours.closes, self.tz),
        )

    def _since_monday(self, moment: dt.datetime) -> dt.timedelta:
        local = moment.astimezone(self.tz)
        before, opens, closes = self._day(local.date())
        return before + min(max(local - opens, dt.timedelta(0)), closes - opens)

    def _day(self, day: dt.date) -> tuple[dt.timedelta, dt.datetime, dt.datetime]:
        """Open hours before `day`, and its opening and closing (equal when it is closed)."""
        found = self.days.get(day)
        if found is None:
            weeks, days = divmod((day - MONDAY).days, 7)
            before = self.week * weeks + sum(self.day[:days], dt.timedelta(0))
            opens, closes = self._open(day)
            found = self.days[day] = (before, opens, closes if days in self.hours.days else opens)
        return found

    def between(self, start: dt.datetime, end: dt.datetime) -> float:
        start, end = as_utc(start), as_utc(end)
        if end <= start:
            return 0.0
        if self.hours is None:
            return (end - start).total_seconds() / 3600
        return (self._since_monday(end) - self._since_monday(start)).total_seconds() / 3600


def build(period: Period, now: dt.datetime | None = None) -> Report:
    """Every figure of the Reports page for `period`."""
    report = Report(period)
    calls = CallFigures.read(period)
    backs = CallbackFigures.read(period, now or utcnow())
    report.charts = calls.charts(period) + backs.charts()
    report.headline = calls.headline() + backs.headline()
    return report


def by_language(counts: Counter, keys: list, with_none: bool = False) -> list[Series]:
    """A series per language (and one for calls that chose none), over `keys`."""
    series = [
        Series(name, [counts[(key, lang)] for key in keys]) for lang, name in LANGUAGES.items()
    ]
    if with_none:
        series.append(Series(NO_LANGUAGE, [counts[(key, "")] for key in keys]))
    return series


@dataclass
class CallFigures:
    """What callers did, from call events: counts by (kind, language)."""

    events: Counter = field(default_factory=Counter)  # (kind, lang) → every event
    firsts: Counter = field(default_factory=Counter)  # (kind, lang) → calls that reached it
    lasts: Counter = field(default_factory=Counter)  # (kind, lang) → calls that ended there
    hours: Counter = field(default_factory=Counter)  # (hour, lang) → calls
    per_day: Counter = field(default_factory=Counter)  # (day, lang) → calls
    details: Counter = field(default_factory=Counter)  # (kind, detail) → events

    @classmethod
    def read(cls, period: Period) -> CallFigures:
        found = cls()
        e = CallEvent
        in_period = sa.and_(e.day >= period.start, e.day < period.end)
        for kind, lang, first, last, count in db.session.execute(
            sa.select(e.kind, e.language, e.is_first, e.is_last, sa.func.count())
            .where(in_period)
            .group_by(e.kind, e.language, e.is_first, e.is_last)
        ):
            found.events[(kind, lang)] += count
            if first:
                found.firsts[(kind, lang)] += count
            if last:
                found.lasts[(kind, lang)] += count
        # A call is counted once: when it chose a language, or (never chose one) when it began.
        counted = sa.or_(
            sa.and_(e.kind == "language", e.is_first.is_(True)),
            sa.and_(e.kind == "call", e.is_last.is_(True)),
        )
        for day, hour, lang, count in db.session.execute(
            sa.select(e.day, e.hour, e.language, sa.func.count())
            .where(in_period, counted)
            .group_by(e.day, e.hour, e.language)
        ):
            found.per_day[(day, lang)] += count
            found.hours[(hour, lang)] += count
        for kind, detail, count in db.session.execute(
            sa.select(e.kind, e.detail, sa.func.count())
            .where(in_period, e.kind.in_(DETAILED))
            .group_by(e.kind, e.detail)
        ):
            found.details[(kind, detail)] += count
        return found

    def total(self, counter: Counter, *kinds: str) -> int:
        return sum(n for (kind, _lang), n in counter.items() if kind in kinds)

    def calls(self) -> int:
        return self.total(self.firsts, "language") + self.lasts[("call", "")]

    def missed(self) -> Counter:
        """Calls that chose a language and ended neither with the firm nor with a request."""
        found: Counter = Counter()
        for (kind, lang), n in self.lasts.items():
            if lang and kind not in SERVED:
                asked = kind in ("firm-closed", "firm-missed", "firm-tried")
                found[("Asked for the firm" if asked else "Left no request", lang)] += n
        return found

    def headline(self) -> list[tuple[str, str]]:
        missed = sum(self.missed().values())
        return [
            ("Calls", str(self.calls())),
            ("Heard a topic", str(self.total(self.firsts, "topic"))),
            ("Asked for the firm", str(self.total(self.firsts, "firm-tried", "firm-closed"))),
            ("Left a request", str(self.total(self.firsts, "recorded", "added"))),
            ("Missed calls", str(missed)),
        ]

    def charts(self, period: Period) -> list[Chart]:
        charts = [
            Chart(
                "calls-hour",
                "Calls by hour of day",
                [f"{hour:02d}:00" for hour in range(24)],
                by_language(self.hours, list(range(24)), with_none=True),
                note="Office time. A call counts once, in the language it chose.",
                stacked=True,
            )
        ]
        if period.kind != "day":
            charts.append(
                Chart(
                    "calls-day",
                    "Calls per day",
                    [f"{day:%a %d}" for day in period.days],
                    by_language(self.per_day, period.days, with_none=True),
                    stacked=True,
                )
            )
        reached: Counter = Counter()
        for label, kinds in REACHED:
            for lang in LANGUAGES:
                reached[(label, lang)] = sum(self.firsts[(kind, lang)] for kind in kinds)
        charts.append(
            Chart(
                "reached",
                "How far calls got",
                [label for label, _ in REACHED],
                by_language(reached, [label for label, _ in REACHED]),
                note="Calls that reached each step at least once.",
            )
        )
        ended: Counter = Counter()
        for label, ends in HANG_UPS:
            for lang in ("", *LANGUAGES):
                ended[(label, lang)] = sum(self.lasts[(kind, lang)] for kind in ends)
        labels = [label for label, _ in HANG_UPS]
        charts.append(
            Chart(
                "hang-ups",
                "Where callers hang up",
                labels,
                by_language(ended, labels, with_none=True),
                note="Each call's last step: the prompt that loses callers has the longest bar.",
                stacked=True,
                horizontal=True,
            )
        )
        charts.append(self.topics_chart())
        now_kinds = ["firm-tried", "firm-answered", "firm-missed", "firm-closed"]
        now_labels = ["Tried", "Answered", "Not answered", "Outside office hours"]
        counts = Counter(
            {
                (label, lang): self.events[(kind, lang)]
                for kind, label in zip(now_kinds, now_labels, strict=True)
                for lang in LANGUAGES
            }
        )
        charts.append(Chart("call-now", "Call Now", now_labels, by_language(counts, now_labels)))
        text_kinds = ["text-sent", "text-delivered", "text-refused", "text-failed"]
        text_labels = ["Sent", "Delivered", "Refused by policy", "Failed"]
        texts = Counter(
            {
                (label, lang): self.events[(kind, lang)]
                for kind, label in zip(text_kinds, text_labels, strict=True)
                for lang in LANGUAGES
            }
        )
        charts.append(
            Chart(
                "texts",
                "Reference texts",
                text_labels,
                by_language(texts, text_labels),
                note="Refused: no caller ID to text, or the phone refuses texts (opted out, a "
                "landline, a carrier's filter).",
            )
        )
        missed = self.missed()
        missed_labels = ["Asked for the firm", "Left no request"]
        charts.append(
            Chart(
                "missed",
                "Missed calls",
                missed_labels,
                by_language(missed, missed_labels),
                note="Calls that chose a language but neither talked with the firm nor left a "
                "request.",
                stacked=True,
            )
        )
        return charts

    def topics_chart(self) -> Chart:
        numbers = sorted(
            {int(d) for (_kind, d) in self.details if d.isdigit()}
            | {t.number for t in topics_listed()}
        )
        labels = [f"{n} · {topic_label(str(n))}" for n in numbers]
        measures = [
            ("Heard", ("topic", "topic-slow")),
            ("To the end", ("topic-end",)),
            ("Cut short", ("topic-cut",)),
            ("Again more slowly", ("topic-slow",)),
        ]
        return Chart(
            "topics",
            "Topics",
            labels,
            [
                Series(name, [sum(self.details[(k, str(n))] for k in kinds) for n in numbers])
                for name, kinds in measures
            ],
            note="Both languages. To the end: the caller stayed for as long as the topic takes "
            "to say (estimated from its words); cut short: a key before that.",
            horizontal=True,
        )


def topics_listed():
    prompts = current_app.extensions["ivr.calls.prompts"]
    return prompts.topics(current_app.config["STAFF_LANGUAGE"])


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

    @classmethod
    def read(cls, period: Period, now: dt.datetime) -> CallbackFigures:
        found = cls(target=current_app.config["CALLBACK_TARGET_HOURS"])
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
        """Still waiting for a first attempt, for longer than the target."""
        return sum(
            1
            for q in self.requests
            if q.attempt is None
            and q.status in ("new", "trying")
            and q.open_for > self.target
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
                note="Requests left in this period. Overdue: no attempt yet, past the target.",
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
