"""What every figure is made of: a period of office days, and charts of labelled series.

A `Chart` is drawn by the page's script (its `data()`), shown as a table beside it (`rows()`), and
written to the CSV; the figures in `journeys.py` and `waits.py` fill them.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from ivr.settings import settings

PERIODS = ("day", "week", "month")
LANGUAGES = {"en": "English", "es": "Spanish"}
NO_LANGUAGE = "No language chosen"


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
        tz = settings().office_timezone
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


def number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile (the median at 0.5): a value some request really had."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def by_language(counts: Counter, keys: list, with_none: bool = False) -> list[Series]:
    """A series per language (and one for calls that chose none), over `keys`."""
    series = [
        Series(name, [counts[(key, lang)] for key in keys]) for lang, name in LANGUAGES.items()
    ]
    if with_none:
        series.append(Series(NO_LANGUAGE, [counts[(key, "")] for key in keys]))
    return series
