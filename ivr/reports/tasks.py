"""The reports' jobs, declared here in one place: settling call events, the weekly summary.

- `report-settle`, hourly: cuts settled call events loose from their call (`events.settle`).
- `report-summary`, weekly: the past week's headline figures and a link to the Reports page, by
  e-mail to each of REPORT_EMAIL_TO (the firm's admins), on Monday at SUMMARY_HOUR office time.
  One job per recipient, so a refused address does not send the others theirs twice.

Both are queued by the worker's housekeeping (`queue`, every minute); their keys hold the day or
the week, so however many workers ask, each is queued once an hour or once a week.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import current_app

from ivr.background import jobs
from ivr.db import utcnow
from ivr.messaging.transports import send_email
from ivr.reports import events, figures
from ivr.reports.charts import Period

SUMMARY_HOUR = 7  # Monday morning, before the office opens


def recipients() -> list[str]:
    config = current_app.config
    if not config["SMTP_URL"]:
        return []
    return [a.strip() for a in config["REPORT_EMAIL_TO"].split(",") if a.strip()]


def queue(now: dt.datetime | None = None) -> None:
    """Queue this hour's settling and last week's summary (the caller commits)."""
    now = now or utcnow()
    jobs.enqueue("report-settle", f"report-settle:{now:%Y-%m-%dT%H}", {})
    tz = current_app.config["OFFICE_TIMEZONE"]
    local = now.astimezone(tz).date()
    monday = local - dt.timedelta(days=local.weekday())
    week = (monday - dt.timedelta(days=7)).isoformat()
    send_at = dt.datetime.combine(monday, dt.time(SUMMARY_HOUR), tz)
    delay = max(0.0, (send_at - now).total_seconds())
    for to in recipients():
        jobs.enqueue(
            "report-summary", f"report-summary:{week}:{to}", {"week": week, "to": to}, delay=delay
        )


@jobs.handler("report-settle")
def settle_job(_payload: dict[str, Any]) -> None:
    current_app.logger.info("reports: settled %d call event(s)", events.settle())


def summary(period: Period) -> tuple[str, str]:
    """The e-mail's subject and text: headline figures, where callers hung up most, a link."""
    report = figures.build(period)
    lines = [f"Hotline summary: {period.label}", ""]
    lines += [f"{label}: {value}" for label, value in report.headline]
    hang_ups = next(c for c in report.charts if c.id == "hang-ups")
    ranked = sorted(hang_ups.rows(), key=lambda row: -sum(row[1]))
    if ranked and sum(ranked[0][1]):
        lines += ["", f"Where most callers hung up: {ranked[0][0]} ({int(sum(ranked[0][1]))})"]
    path = current_app.url_map.bind("").build(
        "staff.reports.index", {"period": "week", "start": period.start.isoformat()}
    )
    lines += [
        "",
        f"Charts and the figures as CSV: {current_app.config['PUBLIC_URL'].rstrip('/')}{path}",
    ]
    calls = dict(report.headline).get("Calls", "0")
    return f"Hotline week of {period.start:%d %b}: {calls} calls", "\n".join(lines) + "\n"


@jobs.handler("report-summary", max_attempts=6)
def summary_job(payload: dict[str, Any]) -> None:
    period = Period("week", dt.date.fromisoformat(payload["week"]))
    subject, body = summary(period)
    send_email(payload["to"], subject, body)
