"""The list of callback requests: filter, search, listen, mark handled, export.

Audio is always served by the app from the database copy, so the page never holds a Twilio URL.
The worker makes the copy (queued when the recording arrived); until then the audio URL answers
404 with what happened, and writes nothing.

A search is posted, never put in the URL: what staff search for is phone numbers and A-numbers,
and URLs end up in access logs, the router's logs and browser history. The filters (status,
language, dates, mine, unassigned, urgent, overdue), which identify nobody, are a GET form and
stay in the URL so a filtered list can be linked to; the search form carries them along.

What each action did is said inside the card it was done to (`feedback.py`), by kind: a conflict
is a warning, not a success.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import IntegerField, StringField, TextAreaField
from wtforms.validators import AnyOf, Length, Optional

from ivr.db import utcnow
from ivr.requests import history, listing, lookup, recordings
from ivr.requests.history import STATUS_LABELS, STATUSES
from ivr.requests.models import CallbackRequest
from ivr.requests.service import calling, handling
from ivr.settings import settings
from ivr.staff import callstate, display, feedback
from ivr.staff.guard import safe_next

bp = Blueprint("requests", __name__)
# A call-back region's tone (staff/_callstate.html) as the kind of message beside the card.
TONE_KINDS = {"ok": "success", "info": "info", "warn": "warning", "error": "error"}
PAGE = 200


class HandleForm(FlaskForm):
    # Plain fields checked against the list: SelectField's tuple choices are deprecated.
    status = StringField("Status", validators=[AnyOf(STATUSES, message="Choose a status.")])
    # What the page showed when it was loaded: a save changes only what this person changed.
    seen_status = StringField(
        "Seen status", validators=[AnyOf(STATUSES, message="Reload the page.")]
    )
    seen = IntegerField("Seen", default=0, validators=[Optional()])
    note = TextAreaField("Note", validators=[Length(max=4000)])


@dataclass
class Filters:
    status: str = ""
    language: str = ""
    start: dt.date | None = None
    end: dt.date | None = None
    q: str = ""
    mine: bool = False
    unassigned: bool = False
    urgent: bool = False
    overdue: bool = False

    @classmethod
    def from_request(cls) -> Filters:
        """From the posted form (a search), or from the URL's query (no search words there)."""
        args = request.form if request.method == "POST" else request.args
        return cls(
            status=args.get("status", "") if args.get("status") in STATUSES else "",
            language=args.get("language", "") if args.get("language") in display.LANGUAGES else "",
            start=parse_date(args.get("start")),
            end=parse_date(args.get("end")),
            q=request.form.get("q", "").strip()[:40],
            mine=args.get("mine") == "1",
            unassigned=args.get("unassigned") == "1",
            urgent=args.get("urgent") == "1",
            overdue=args.get("overdue") == "1",
        )

    def search(self) -> listing.Search:
        return listing.Search(
            status=self.status,
            language=self.language,
            since=display.day_bounds(self.start)[0] if self.start else None,
            until=display.day_bounds(self.end)[1] if self.end else None,
            q=self.q,
            claimed_by=current_user.username if self.mine else None,
            unassigned=self.unassigned,
            urgent=self.urgent,
            waiting=self.overdue,
        )

    def find(self, limit: int | None = None) -> Sequence[CallbackRequest]:
        """The requests that match, in the list's order; overdue ones are picked here, by the
        office calendar (among the waiting only, so the list to walk stays short)."""
        if not self.overdue:
            return listing.find(self.search(), limit=limit)
        now = utcnow()
        rows = [
            r
            for r in listing.find(self.search())
            if display.overdue(r.created_at, now, urgent=r.urgent)
        ]
        # The target is for a first call-back (as Reports counts it): once the family's phone
        # rang, the request is no longer overdue, however it went.
        tried = history.summaries([r.id for r in rows])
        rows = [r for r in rows if not tried[r.id].attempts]
        return rows[:limit] if limit is not None else rows

    def url_args(self) -> dict[str, Any]:
        """The filters that may go in a URL: all but the search words."""
        values = {
            "status": self.status,
            "language": self.language,
            "start": self.start.isoformat() if self.start else "",
            "end": self.end.isoformat() if self.end else "",
            "mine": "1" if self.mine else "",
            "unassigned": "1" if self.unassigned else "",
            "urgent": "1" if self.urgent else "",
            "overdue": "1" if self.overdue else "",
        }
        return {k: v for k, v in values.items() if v}


def parse_date(value: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None


@bp.context_processor
def helpers() -> dict:
    return {
        "fmt": display,
        "statuses": STATUS_LABELS,
        "languages": display.LANGUAGES,
        "history": history,
        "lookup": lookup,
    }


def page_context(rows: Sequence[CallbackRequest]) -> dict:
    return {
        "on_page": {r.id for r in rows},  # their messages show in their cards (feedback.py)
        "summaries": history.summaries([r.id for r in rows]),
        "callstates": calling.states([f"request:{r.id}" for r in rows], current_user),
        "calling": calling,
        "now": utcnow(),
        "waiting": listing.waiting_counts(),
    }


@bp.get("/")
def index():
    return page(Filters.from_request())


@bp.post("/")
def search():
    return page(Filters.from_request())


def page(filters: Filters) -> str:
    rows = filters.find(limit=PAGE + 1)
    days = display.daily_counts()
    # Marking a request handled comes back to the list, filtered as it was (less the search).
    here = url_for("staff.requests.index", **filters.url_args())
    return render_template(
        "staff/index.html",
        rows=rows[:PAGE],
        more=len(rows) > PAGE,
        filters=filters,
        chart=display.chart(days),
        days=days,
        here=here,
        **page_context(rows[:PAGE]),
    )


def get_or_404(request_id: int, *, with_audio: bool = False) -> CallbackRequest:
    row = lookup.request(request_id, with_audio=with_audio)
    if row is None:
        abort(404)
    return row


@bp.get("/requests/<int:request_id>")
def detail(request_id: int):
    row = get_or_404(request_id)
    return render_template(
        "staff/detail.html", row=row, here=request.full_path, full=True, **page_context([row])
    )


def back_to(row: CallbackRequest):
    """Back to the page the card was on, at the card (not the top of a long list)."""
    target = safe_next(request.args.get("next")).split("#")[0]
    return redirect(f"{target}#r{row.id}")


@bp.post("/requests/<int:request_id>")
def update(request_id: int):
    """Add a note and/or change the status, without undoing what a colleague did meanwhile."""
    row = get_or_404(request_id)
    form = HandleForm()
    if not form.validate_on_submit():
        return render_template(
            "staff/detail.html",
            row=row,
            form=form,
            here=request.path,
            full=True,
            **page_context([row]),
        ), 400
    wanted, seen_status = form.status.data, form.seen_status.data
    assert wanted is not None and seen_status is not None  # validated: AnyOf(STATUSES)
    saved = handling.save_card(
        row,
        current_user.username,
        note=(form.note.data or "").strip(),
        seen_status=seen_status,
        wanted=wanted,
        seen=form.seen.data or 0,
    )
    meanwhile, said, refused = saved.meanwhile, saved.said, saved.refused
    if meanwhile:
        changes = "; ".join(
            f"{e.actor or 'the hotline'}: {history.describe(e)}" for e in meanwhile[-5:]
        )
        feedback.say(
            f"Request {row.reference} changed while you had it open — {changes}.",
            "warning",
            row.id,
        )
    if refused:
        feedback.say(
            f"Request {row.reference}: your status was not applied, it is now "
            f"{STATUS_LABELS[row.status]}. Choose again if you still mean it.",
            "warning",
            row.id,
        )
    noted = "note added" in said
    if said:
        feedback.say(f"Request {row.reference}: {', '.join(said)}.", "success", row.id, noted)
    elif not refused:
        feedback.say(f"Request {row.reference}: nothing changed.", "info", row.id)
    return back_to(row)


@bp.post("/requests/<int:request_id>/claim")
def claim(request_id: int):
    row = get_or_404(request_id)
    holder = handling.claim(row.id, current_user.username)
    if holder == current_user.username:
        feedback.say(f"Request {row.reference}: it is yours now.", "success", row.id)
    elif holder is None:
        feedback.say(
            f"Request {row.reference} was let go meanwhile: press I'll take it again.",
            "warning",
            row.id,
        )
    else:
        feedback.say(f"Request {row.reference} is already taken by {holder}.", "warning", row.id)
    return back_to(row)


@bp.post("/requests/<int:request_id>/release")
def release(request_id: int):
    row = get_or_404(request_id)
    if handling.release(row.id, current_user.username):
        feedback.say(f"Request {row.reference}: you let it go.", "success", row.id)
    else:
        feedback.say(f"Request {row.reference} was not yours to let go.", "warning", row.id)
    return back_to(row)


@bp.post("/requests/<int:request_id>/call")
def call(request_id: int):
    """Reserve the request and queue a call-back through the hotline (the worker places it,
    never this page); a colleague's call-back under way is named instead."""
    row = get_or_404(request_id)
    why = calling.unavailable(row, current_user)
    if why:
        message, tone = why, "error"
    else:
        message, tone = callstate.press_words(calling.start_call(row, current_user))
    if callstate.wanted():
        return callstate_region(row, note=message, tone=tone)
    text = f"Request {row.reference}: {callstate.for_flash(message, why)}"
    feedback.say(text, TONE_KINDS[tone], row.id)
    return back_to(row)


@bp.get("/requests/<int:request_id>/callstate")
def callstate_view(request_id: int):
    """The card's call-back region alone: polled while a call-back is under way."""
    return callstate_region(get_or_404(request_id))


@bp.post("/requests/<int:request_id>/callstate")
def call_outcome(request_id: int):
    """How the call went, chosen on the card (the same four answers as on the phone)."""
    row = get_or_404(request_id)
    refused = calling.choose(
        request.form.get("attempt", 0, type=int),
        request.form.get("choice", ""),
        current_user,
        target=f"request:{row.id}",
    )
    message = refused or "Noted. Thank you."
    if callstate.wanted():
        return callstate_region(row, note=message, tone="warn" if refused else "ok")
    feedback.say(
        f"Request {row.reference}: {callstate.for_flash(message, None)}",
        "warning" if refused else "success",
        row.id,
    )
    return back_to(row)


def callstate_region(
    row: CallbackRequest, note: str | None = None, tone: str = "info"
) -> str | Response:
    return callstate.region(
        row.id,
        None,
        why=calling.unavailable(row, current_user),
        label=f"#{row.reference}",
        here=safe_next(request.args.get("next")),
        note=note,
        tone=tone,
    )


@bp.post("/requests/<int:request_id>/copy")
def retry_copy(request_id: int):
    """Retry copy: the recording is copied from Twilio again (a copy that failed for good too)."""
    row = get_or_404(request_id)
    if handling.retry_copy(row, current_user.username):
        feedback.say(
            f"Request {row.reference}: the recording will be copied again in a minute or two.",
            "success",
            row.id,
        )
    else:
        feedback.say(f"Request {row.reference}: there is no recording to copy.", "info", row.id)
    return back_to(row)


def listen_window() -> dt.timedelta:
    """A person's fetches of one recording within this long are one listen (a player fetches
    many byte ranges, starting anywhere when someone skips ahead)."""
    return dt.timedelta(minutes=settings().listen_audit_minutes)


def note_listen(row: CallbackRequest, text: str = "") -> None:
    """Record who listened in the request's history: the first fetch of any byte range per
    person and recording within the window (the audit log's entry is admin.audit_views')."""
    handling.note_listen(row.id, current_user.username, text=text, window=listen_window())


def not_copied(failure: str | None) -> Response:
    """No copy in the database: say why, and change nothing. The copy was queued by the request
    service when the recording arrived; the worker makes it (a page never waits on Twilio, whose
    web processes it shares with the callers' webhooks), and queues again, once a minute, any
    recording left without a copy (`recordings.queue_missing`)."""
    if failure:
        text = (
            "The recording is not copied from Twilio yet: the last try failed "
            f"({failure}). The worker tries again; if this stays, tell the admin."
        )
    else:
        text = "The recording is not copied from Twilio yet; try again in a minute."
    return Response(text, status=404, mimetype="text/plain")


@bp.get("/requests/<int:request_id>/audio")
def audio(request_id: int):
    row = get_or_404(request_id, with_audio=True)
    if row.audio is None:
        return not_copied(lookup.copy_failure(recordings.COPY_RECORDING, row.recording_sid))
    body, mimetype = row.audio, row.audio_type or "audio/mpeg"
    note_listen(row)
    return send_file(io.BytesIO(body), mimetype=mimetype, conditional=True, max_age=0)


@bp.get("/requests/<int:request_id>/messages/<int:message_id>/audio")
def message_audio(request_id: int, message_id: int):
    """A message the caller added by calling again, from the database copy."""
    row = lookup.message_of(request_id, message_id)
    if row is None:
        abort(404)
    if row.audio is None:
        return not_copied(lookup.copy_failure(recordings.COPY_MESSAGE, row.recording_sid))
    handling.note_listen(
        request_id,
        current_user.username,
        text=added_message_text(message_id),
        window=listen_window(),
    )
    return send_file(
        io.BytesIO(row.audio), mimetype=row.audio_type or "audio/mpeg", conditional=True, max_age=0
    )


def added_message_text(message_id: int) -> str:
    """How a listen to an added message is told apart from one to the request's recording."""
    return f"added message {message_id}"


CSV_COLUMNS = [
    "reference",
    "received",
    "language",
    "status",
    "caller_number",
    "callback_number",
    "a_number",
    "recording_seconds",
    "claimed_by",
    "call_attempts",
    "notes",
    "urgent",
    "reference_texted",
]
# What a spreadsheet may run as a formula: also after spaces, and in full-width forms.
FORMULA_START = re.compile(r"[\s\u3000]*[=+\-@\uff1d\uff0b\uff0d\uff20]|[\t\r|%]")


def csv_cell(value: object) -> str:
    """Keep a spreadsheet from running a cell as a formula (CSV injection)."""
    text = "" if value is None else str(value)
    if FORMULA_START.match(text):
        return "'" + text
    return text


def csv_phone(number: str | None) -> str:
    """A readable number that no spreadsheet takes for a formula or a sum: +52 55 … would need a
    guard apostrophe (which stays visible), so international numbers keep the 00 prefix form."""
    text = display.phone(number)
    return "00" + text[1:] if text.startswith("+") else text


def csv_text(value: str) -> str:
    """A cell a spreadsheet must keep as text: a number written as bare digits (one that would
    not parse, "0050212345678"; an A-number) would lose its leading zeros, so it is written as
    Excel's text formula ="…" (digits only inside, so nothing else can run)."""
    return f'="{value}"' if re.fullmatch(r"[0-9]+", value) else csv_cell(value)


@bp.route("/requests.csv", methods=["GET", "POST"])
def export():
    filters = Filters.from_request()
    rows = filters.find()
    summaries = history.summaries([r.id for r in rows])
    out = io.StringIO()
    out.write("\ufeff")  # the BOM: Excel then reads UTF-8 (Spanish notes) correctly
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        summary = summaries[row.id]
        notes = " | ".join(
            f"{display.local_time(e.created_at)} {e.actor}: {e.text}" for e in summary.notes
        )
        writer.writerow(
            [
                csv_cell(row.reference),
                csv_cell(display.local_title(row.created_at)),
                csv_cell(display.LANGUAGES.get(row.language, row.language)),
                csv_cell(STATUS_LABELS.get(row.status)),
                csv_text(csv_phone(row.caller_number)),
                csv_text(csv_phone(row.callback_number)),
                csv_text(display.a_number(row.a_number)),
                csv_cell(row.recording_duration or ""),
                csv_cell(summary.claimed_by),
                csv_cell(summary.attempts),
                csv_cell(notes),
                csv_cell("yes" if row.urgent else ""),
                csv_cell(row.sms_status or ""),
            ]
        )
    handling.note_export([row.id for row in rows], current_user.username)
    name = f"callback-requests-{utcnow():%Y%m%d-%H%M}.csv"
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f"attachment; filename={name}"},
    )
