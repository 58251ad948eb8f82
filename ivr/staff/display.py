"""How the staff pages show a request: readable numbers, local times, and the per-day chart."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from ivr import phones
from ivr.background import jobs
from ivr.calls import calendar
from ivr.db import as_utc, db, utcnow
from ivr.requests import lookup, recordings
from ivr.requests.models import LANGUAGE_NAMES, Call, CallbackRequest
from ivr.settings import settings

# The core's own, named here for the templates (`fmt.phone`) and the staff pages.
LANGUAGES = LANGUAGE_NAMES
phone = phones.phone


def office_tz() -> ZoneInfo:
    return calendar.office().tz


def office_today() -> dt.date:
    return calendar.now().astimezone(office_tz()).date()


def local_time(moment: dt.datetime | None) -> str:
    if moment is None:
        return ""
    return as_utc(moment).astimezone(office_tz()).strftime("%Y-%m-%d %H:%M")


def age(moment: dt.datetime, now: dt.datetime | None = None) -> str:
    """How long ago, as staff say it: "just now", "25 min ago", "2 h ago", "3 days ago"."""
    seconds = ((now or utcnow()) - as_utc(moment)).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 48 * 3600:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} days ago"


def target_hours(urgent: bool = False) -> int:
    """Office hours a request may wait for a first call-back: URGENT_TARGET_HOURS for an urgent
    one (a hearing within 7 days, a transfer soon), CALLBACK_TARGET_HOURS for the rest."""
    config = settings()
    return config.urgent_target_hours if urgent else config.callback_target_hours


def overdue(created_at: dt.datetime, now: dt.datetime | None = None, urgent: bool = False) -> bool:
    """Waiting longer than its target in office hours (the office calendar's: closed days do
    not count)."""
    return calendar.office().hours_between(created_at, now or utcnow()) > target_hours(urgent)


@dataclass(frozen=True)
class Due:
    """How long until a waiting request is overdue (negative: how long it has been), in office
    hours: what a card says beside its age."""

    hours_left: float

    @property
    def late(self) -> bool:
        return self.hours_left < 0

    @property
    def text(self) -> str:
        """ "due in 3 h", "due in 40 min", "overdue by 2 h" (office hours, rounded down)."""
        left = abs(self.hours_left)
        amount = f"{int(left)} h" if left >= 1 else f"{int(left * 60)} min"
        return f"overdue by {amount}" if self.late else f"due in {amount}"


def due(created_at: dt.datetime, now: dt.datetime | None = None, urgent: bool = False) -> Due:
    waited = calendar.office().hours_between(created_at, now or utcnow())
    return Due(target_hours(urgent) - waited)


@dataclass(frozen=True)
class Missing:
    """Why a request's recording cannot be played, in staff's words, and whether Retry copy is
    offered (the worker's log, which staff cannot read, is no answer)."""

    text: str
    lost: bool = False  # Twilio no longer has it: only the family can say it again
    retry: bool = False


def missing_recording(row: CallbackRequest) -> Missing | None:
    """None when there is a copy to play, or no recording at all."""
    if row.audio_type or not row.recording_url:
        return None
    job = lookup.copy_job(recordings.COPY_RECORDING, row.recording_sid)
    error = job.last_error if job is not None else None
    if job is None or job.status is not jobs.JobStatus.failed:
        if job is None or not error:
            return Missing(
                "The recording is not copied from Twilio yet: the hotline copies it within a "
                "minute or two."
            )
        return Missing(
            f"The recording is not copied from Twilio yet: the last try failed ({error}). The "
            f"hotline tries again by itself (try {job.attempts} of {job.max_attempts})."
        )
    if "404" in (error or ""):
        return Missing(
            "Recording lost – Twilio no longer has it. Ask the family to call again (or ask "
            "them on the call-back what they said).",
            lost=True,
            retry=True,
        )
    return Missing(
        f"The recording could not be copied from Twilio ({error}) and the hotline has stopped "
        "trying. Press Retry copy; if it fails again, tell the admin.",
        retry=True,
    )


def clock_time(moment: dt.datetime) -> str:
    """Office time as staff say it: "10:42" today, "Mon 10:42" on another day."""
    local = as_utc(moment).astimezone(office_tz())
    return local.strftime("%H:%M" if local.date() == office_today() else "%a %H:%M")


def local_title(moment: dt.datetime) -> str:
    """The office-time-zone time with its zone, for hovering over an age."""
    return as_utc(moment).astimezone(office_tz()).strftime("%a %Y-%m-%d %H:%M %Z")


def a_number(value: str | None) -> str:
    if not value:
        return ""
    return f"{value[:3]}-{value[3:6]}-{value[6:]}" if len(value) == 9 else value


def duration(seconds: int | None) -> str:
    if not seconds:
        return ""
    return f"{seconds // 60}:{seconds % 60:02d}"


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The UTC instants where `day` starts and ends in the office's time zone."""
    start = dt.datetime.combine(day, dt.time.min, office_tz())
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min, office_tz())
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


@dataclass
class Day:
    day: dt.date
    calls: Counter
    requests: Counter


def daily_counts(days: int = 14, today: dt.date | None = None) -> list[Day]:
    """Calls and callback requests per local day and language, oldest first."""
    today = today or office_today()
    first = today - dt.timedelta(days=days - 1)
    since = day_bounds(first)[0]
    table = {
        first + dt.timedelta(days=i): Day(first + dt.timedelta(days=i), Counter(), Counter())
        for i in range(days)
    }
    for model, field in ((Call, "calls"), (CallbackRequest, "requests")):
        # Grouped here rather than in SQL: "day in Chicago" is not portable SQL, and a
        # fortnight of calls is small.
        rows = db.session.execute(
            sa.select(model.created_at, model.language).where(model.created_at >= since)
        )
        for created_at, language in rows:
            local_day = as_utc(created_at).astimezone(office_tz()).date()
            if local_day in table:
                getattr(table[local_day], field)[language] += 1
    return list(table.values())


def chart(days: list[Day], width: int = 320, row: int = 22) -> dict:
    """Bar geometry for the inline SVG: per day, a calls bar and a requests bar by language."""
    label, gap = 52, 6
    half = (width - label - gap) // 2
    totals = [sum(d.calls.values()) for d in days] + [sum(d.requests.values()) for d in days]
    top = max(totals + [1])
    rows = []
    for i, d in enumerate(days):
        bars = []
        for column, counts in enumerate((d.calls, d.requests)):
            x: float = label + column * (half + gap)
            for language in ("en", "es"):
                w = round(half * counts[language] / top, 1)
                bars.append({"x": x, "width": w, "language": language, "count": counts[language]})
                x += w
        rows.append(
            {
                "y": i * row + 20,
                "label": d.day.strftime("%a %d"),
                "bars": bars,
                "calls": sum(d.calls.values()),
                "requests": sum(d.requests.values()),
            }
        )
    return {
        "width": width,
        "height": len(days) * row + 24,
        "half": half,
        "label": label,
        "gap": gap,
        "row": row,
        "rows": rows,
        "top": top,
    }
