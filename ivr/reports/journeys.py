"""What callers did, from the anonymous call events: how far calls got, where they hung up,
topics, Call Now, texts, missed calls.

Each query reads one period through the events' covering (day, kind, ...) index and groups in the
database, so a month of a busy year is a few tens of thousands of index entries.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import current_app

from ivr.db import db
from ivr.reports.charts import LANGUAGES, Chart, Period, Series, by_language
from ivr.reports.events import CallEvent
from ivr.requests.missed import topic_label
from ivr.settings import settings

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
    return prompts.topics(settings().staff_language)
