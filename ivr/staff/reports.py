"""The Reports page (admins): what callers did and how long families waited, per day, week, month.

The figures are `ivr.reports.figures` (periods and charts: `ivr.reports.charts`); this module
picks the period from the query string (an unknown period or date falls back to this week) and
answers the page or its CSV. Nothing on either names a caller: the call figures come from
anonymous events, the call-back figures are counts and durations.
"""

from __future__ import annotations

import csv
import datetime as dt
import io

from flask import Blueprint, Response, render_template, request

from ivr.reports import charts, figures
from ivr.staff import display

bp = Blueprint("reports", __name__)


def chosen_period() -> charts.Period:
    kind = request.args.get("period", "week")
    if kind not in charts.PERIODS:
        kind = "week"
    try:
        day = dt.date.fromisoformat(request.args.get("start", ""))
    except ValueError:
        day = display.office_today()
    return charts.Period.around(kind, day)


@bp.get("/reports")
def index():
    period = chosen_period()
    report = figures.build(period)
    return render_template(
        "staff/reports.html",
        report=report,
        period=period,
        periods=charts.PERIODS,
        today=display.office_today(),
        charts=[chart.data() for chart in report.charts],
        number=charts.number,
    )


@bp.get("/reports.csv")
def export():
    period = chosen_period()
    out = io.StringIO()
    csv.writer(out).writerows(figures.build(period).csv_rows())
    name = f"hotline-report-{period.kind}-{period.start.isoformat()}.csv"
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
