"""The office hours said aloud: closed now or today, when the office reopens, the weekly hours.

Whether the office is open, and when it opens next, is the office calendar's to say
(`calendar.py`); this module only puts its answers into words.

The hours a caller hears are built from OFFICE_HOURS, OFFICE_TIMEZONE and OFFICE_CLOSED_DATES,
never copied into a prompt file, so changing a setting changes what is said and nothing can
drift. Only the numbers come from here: the words around them (day and month names, "a.m.",
"de la mañana", the zone's name) are prompt files that staff edit like any other
(`office_hours`, `reopen`, and under `words/`: `day_mon`, `month_12`, `time_morning`,
`zone_chicago`, ...). Lines filled at call time have no rendered audio: they are said with `<Say>`.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import current_app

from ivr.calls.calendar import now, office
from ivr.calls.prompts import Line, PromptError
from ivr.calls.twiml import prompts, spoken_number
from ivr.settings import DAYS, OfficeHours, settings


def _fill(lang: str, name: str, **fields: object) -> str:
    return prompts().line(lang, name, **fields).text


def spoken_time(lang: str, time: dt.time) -> str:
    """'9 a.m.', '5:30 de la tarde': the 12-hour clock in the words of `time_<part of day>`."""
    if time in (dt.time(0), dt.time.max):  # 00:00, or 24:00 as OFFICE_HOURS writes a close
        return prompts().text(lang, "words/time_midnight")
    hour = time.hour % 12 or 12
    number = f"{hour}" if time.minute == 0 else f"{hour}:{time.minute:02d}"
    part = (
        "morning"
        if time.hour < 12
        else "noon"
        if time.hour == 12
        else "afternoon"
        if time.hour < 19
        else "evening"
    )
    return _fill(lang, f"words/time_{part}", time=number)


def spoken_days(lang: str, days: frozenset[int]) -> str:
    """'Monday to Friday' / 'de lunes a viernes' for a run of days (as OFFICE_HOURS allows)."""
    if len(days) == 7:
        return prompts().text(lang, "words/days_every")
    # OFFICE_HOURS is one run of days, possibly across Sunday (e.g. sat-mon): find its start.
    first = next(d for d in sorted(days) if (d - 1) % 7 not in days)
    last = (first + len(days) - 1) % 7
    if first == last:
        return _fill(lang, "words/days_one", day=prompts().text(lang, f"words/day_{DAYS[first]}"))
    return _fill(
        lang,
        "words/days_range",
        first=prompts().text(lang, f"words/day_{DAYS[first]}"),
        last=prompts().text(lang, f"words/day_{DAYS[last]}"),
    )


def zone_prompt(tz: ZoneInfo) -> str:
    """The prompt naming the time zone: America/Chicago → zone_chicago."""
    return "words/zone_" + str(tz.key).rsplit("/", 1)[-1].lower()


def spoken_zone(lang: str) -> str:
    tz: ZoneInfo = settings().office_timezone
    try:
        return prompts().text(lang, zone_prompt(tz))
    except PromptError:  # `ivr prompts check` reports it; a caller still hears the hours
        current_app.logger.warning(
            "no prompt %s/%s.txt: saying the zone's abbreviation", lang, zone_prompt(tz)
        )
        return office().local(now()).tzname() or ""


def hours_lines(lang: str) -> list[Line]:
    """'We are open Monday to Friday, from 9 a.m. to 5 p.m., Central time.'"""
    hours: OfficeHours | None = settings().office_hours
    if hours is None:  # always open: no hours to give
        return []
    line = prompts().line(
        lang,
        "office_hours",
        days=spoken_days(lang, hours.days),
        opens=spoken_time(lang, hours.opens),
        closes=spoken_time(lang, hours.closes),
        zone=spoken_zone(lang),
    )
    return [line]


def reopen_lines(lang: str) -> list[Line]:
    """'We reopen on Monday, December 28.' when holidays keep the office shut past its usual
    next opening; nothing otherwise (the weekly hours then say it)."""
    calendar, moment = office(), now()
    opening = calendar.next_opening(moment)
    if opening is None or opening == calendar.next_opening(moment, closures=False):
        return []
    day = opening.date()
    return [
        prompts().line(
            lang,
            "reopen",
            weekday=prompts().text(lang, f"words/day_{DAYS[day.weekday()]}"),
            month=prompts().text(lang, f"words/month_{day.month}"),
            day=day.day,
        )
    ]


def closed_lines(lang: str) -> list[Line]:
    """Why nobody can take the call now: closed today (a holiday) or right now, then when it
    opens again, then the hours."""
    calendar = office()
    reason = "closed_today" if calendar.closed_on(calendar.local(now()).date()) else "office_closed"
    return [prompts().line(lang, reason), *reopen_lines(lang), *hours_lines(lang)]


def promise_lines(lang: str, promise: str = "expect_call") -> list[Line]:
    """The callback promise (or 'call us again'), followed by when the office works; with a
    call-back promised, what a family needs before it: the number it comes from (when
    CALLBACK_FROM_NUMBER is set), what to have ready, that it stays with the legal team."""
    p = prompts()
    lines = [p.line(lang, promise), *reopen_lines(lang), *hours_lines(lang)]
    if promise != "expect_call":
        return lines
    number = settings().callback_from_number
    if number:
        lines += [p.line(lang, "callback_from"), *spoken_number(lang, number)]
    return lines + [p.line(lang, "before_callback"), p.line(lang, "confidential")]
