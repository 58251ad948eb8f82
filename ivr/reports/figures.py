"""The Reports page's figures for one day, week or month, and the CSV of them.

Calls (what callers did, `journeys.py`) come from `call_events`, which outlive retention purges;
call-backs (how long families waited, `waits.py`) from requests and their history. The page, the
CSV and the weekly e-mail all read them through `build`; bench/reports.py measures it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from ivr.db import utcnow
from ivr.reports.charts import Chart, Period, number
from ivr.reports.journeys import CallFigures
from ivr.reports.waits import CallbackFigures


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


def build(period: Period, now: dt.datetime | None = None) -> Report:
    """Every figure of the Reports page for `period`."""
    report = Report(period)
    calls = CallFigures.read(period)
    backs = CallbackFigures.read(period, now or utcnow())
    report.charts = calls.charts(period) + backs.charts()
    report.headline = calls.headline() + backs.headline()
    return report
