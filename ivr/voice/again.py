"""Calling again: a caller with an open request hears it, and a new message joins it.

Many families call again the next day, anxious, and leave a second message. So a caller whose
number has an open request (not yet called back) from the last 14 days hears, after choosing a
language, "We have your message from Tuesday, reference 123 456. We will call you back.", and
the menu offers "to add to your message, press 8". What they record then is stored as a
`RequestMessage` on that request, flagged new for staff, instead of an unrelated request. One
call still makes one recording: the row is keyed by the CallSid, like a request.

Only a real caller ID is looked up (never 'Anonymous'). If the database fails, the call goes on
as for a first call: the lookup finds nothing, or the added message is kept by the fallback as a
request of its own, which staff see beside the first. The message is stored by the request
service (`service/callers.add_message`), which also queues its copy and its alerts.
"""

from __future__ import annotations

import datetime as dt

from flask import Blueprint

from ivr.calls.calendar import now, office
from ivr.calls.prompts import Line
from ivr.calls.twiml import prompts, twiml
from ivr.requests import lookup
from ivr.requests.models import CallbackRequest
from ivr.settings import DAYS
from ivr.voice import closing
from ivr.voice.connect import caller_id

bp = Blueprint("again", __name__, url_prefix="/<any(en, es):lang>/again")

OPEN_DAYS = 14


def open_request(number: str, call_sid: str) -> CallbackRequest | None:
    """The newest request from `number` not yet called back, from the last 14 days."""
    if not caller_id(number):
        return None
    return lookup.open_request(number, call_sid, since=now() - dt.timedelta(days=OPEN_DAYS))


def when_lines(lang: str, created_at: dt.datetime) -> list[Line]:
    """ "We have your message from Tuesday" (today, yesterday, a weekday, or over a week ago),
    counted in the office's days."""
    p = prompts()
    calendar = office()
    day = calendar.local(created_at).date()
    ago = (calendar.local(now()).date() - day).days
    if ago <= 0:
        return [p.line(lang, "again_from_today")]
    if ago == 1:
        return [p.line(lang, "again_from_yesterday")]
    if ago < 7:
        return [p.line(lang, "again_from_day"), p.line(lang, f"words/day_{DAYS[day.weekday()]}")]
    return [p.line(lang, "again_from_older")]


def announcement(lang: str, row: CallbackRequest) -> list[Line]:
    p = prompts()
    return [
        *when_lines(lang, row.created_at),
        p.line(lang, "again_reference"),
        *p.digits(lang, row.reference, (3, 3)),
        p.line(lang, "again_call_back"),
    ]


def with_add_option(lang: str, lines: list[Line]) -> list[Line]:
    """The menu, with "to add to your message, press 8" for "to leave a message, press 8"."""
    add = prompts().line(lang, "option_add")
    return [add if line.source == "option_callback" else line for line in lines]


@bp.post("/added")
def added(lang: str):
    """The ending for a message added to an open request: its reference, and the same
    questions as a first request (urgency, the reference by text)."""
    return twiml(closing.ending(lang, [prompts().line(lang, "added")]))
