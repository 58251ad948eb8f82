"""The reports' jobs, declared here in one place: settling call events, the weekly summary.

- `report-settle`, hourly: cuts settled call events loose from their call (`events.settle`).
- `report-summary`, weekly: the past week's headline figures and a link to the Reports page, by
  e-mail to each of REPORT_EMAIL_TO (the firm's admins), on Monday at SUMMARY_HOUR office time.
  One job per recipient, so a refused address does not send the others theirs twice.

Both are declared here as `jobs.JobKind`s (SETTLE, SUMMARY) and handed to `jobs.init_app` by
`create_app`, with `queue` among the worker's every-minute chores; their keys hold the hour or the
week, so however many workers ask, each is queued once an hour or once a week.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import current_app

from ivr.background import jobs
from ivr.db import utcnow
from ivr.messaging.email import send_email
from ivr.reports import events, figures
from ivr.reports.charts import Period
from ivr.settings import settings

SUMMARY_HOUR = 7  # Monday morning, before the office opens


def recipients() -> list[str]:
    config = settings()
    if not config.smtp_url:
        return []
    return [a.strip() for a in config.report_email_to.split(",") if a.strip()]


def queue(now: dt.datetime | None = None) -> None:
    """Queue this hour's settling and last week's summary (the caller commits)."""
    now = now or utcnow()
    SETTLE.enqueue(hour=f"{now:%Y-%m-%dT%H}")
    tz = settings().office_timezone
    local = now.astimezone(tz).date()
    monday = local - dt.timedelta(days=local.weekday())
    week = (monday - dt.timedelta(days=7)).isoformat()
    send_at = dt.datetime.combine(monday, dt.time(SUMMARY_HOUR), tz)
    delay = max(0.0, (send_at - now).total_seconds())
    for to in recipients():
        SUMMARY.enqueue(week=week, to=to, delay=delay)


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
        f"Charts and the figures as CSV: {settings().public_url.rstrip('/')}{path}",
    ]
    calls = dict(report.headline).get("Calls", "0")
    return f"Hotline week of {period.start:%d %b}: {calls} calls", "\n".join(lines) + "\n"


def summary_job(payload: dict[str, Any]) -> None:
    period = Period("week", dt.date.fromisoformat(payload["week"]))
    subject, body = summary(period)
    send_email(payload["to"], subject, body)


SETTLE = jobs.JobKind(
    "report-settle",
    settle_job,
    key=lambda hour: f"report-settle:{hour}",
    time_limit=110,  # the database only, rows still keyed
)
SUMMARY = jobs.JobKind(
    "report-summary",
    summary_job,
    key=lambda week, to: f"report-summary:{week}:{to}",
    payload=("week", "to"),
    max_attempts=6,
    time_limit=100,  # the week's figures, then several SMTP steps each bounded by SMTP_TIMEOUT
)
