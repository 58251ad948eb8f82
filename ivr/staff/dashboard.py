"""The list of callback requests: filter, search, listen, mark handled, export.

Audio is always served by the app from the database copy (fetched from Twilio with the account's
credentials the first time if need be), so the page never holds a Twilio URL.

A search is posted, never put in the URL: what staff search for is phone numbers and A-numbers,
and URLs end up in access logs, the router's logs and browser history. Status, language and
dates, which identify nobody, stay in the URL so a filtered list can be linked to.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy.orm import selectinload, undefer
from wtforms import IntegerField, StringField, TextAreaField
from wtforms.validators import AnyOf, Length, Optional

from ivr.db import db, utcnow
from ivr.requests import calling, history, recordings
from ivr.requests.history import OPEN, STATUS_LABELS, STATUSES, RequestClaim
from ivr.requests.models import CallbackRequest, RequestMessage
from ivr.staff import display
from ivr.staff.auth import safe_next

bp = Blueprint("requests", __name__)
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
        )

    def query(self) -> sa.Select:
        query = sa.select(CallbackRequest)
        if self.status:
            query = query.where(CallbackRequest.status == self.status)
        if self.language:
            query = query.where(CallbackRequest.language == self.language)
        if self.start:
            query = query.where(CallbackRequest.created_at >= display.day_bounds(self.start)[0])
        if self.end:
            query = query.where(CallbackRequest.created_at < display.day_bounds(self.end)[1])
        if self.mine:
            query = query.join(RequestClaim, RequestClaim.request_id == CallbackRequest.id).where(
                RequestClaim.username == current_user.username
            )
        if self.q:
            digits = re.sub(r"\D", "", self.q)
            found = [CallbackRequest.reference == self.q.lstrip("#")]
            if len(digits) >= 3:
                found += [
                    CallbackRequest.reference == digits,
                    CallbackRequest.caller_number.contains(digits, autoescape=True),
                    CallbackRequest.callback_number.contains(digits, autoescape=True),
                    CallbackRequest.a_number == digits.rjust(9, "0"),
                ]
            query = query.where(sa.or_(*found))
        # Families still waiting first, urgent ones (a hearing within 7 days, a transfer soon:
        # `urgency.py`) before the rest, the longest wait at the top; then reached, then handled,
        # the latest first.
        waiting = CallbackRequest.status.in_(OPEN)
        group = sa.case(
            (sa.and_(waiting, CallbackRequest.urgent), 0),
            (waiting, 1),
            (CallbackRequest.status == "reached", 2),
            else_=3,
        )
        oldest_waiting = sa.case((waiting, CallbackRequest.created_at), else_=None)
        return query.order_by(
            group,
            oldest_waiting.asc(),
            CallbackRequest.created_at.desc(),
            CallbackRequest.id.desc(),
        )

    def url_args(self) -> dict[str, Any]:
        """The filters that may go in a URL: all but the search words."""
        values = {
            "status": self.status,
            "language": self.language,
            "start": self.start.isoformat() if self.start else "",
            "end": self.end.isoformat() if self.end else "",
            "mine": "1" if self.mine else "",
        }
        return {k: v for k, v in values.items() if v}


def parse_date(value: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None


def waiting_counts() -> dict[str, int]:
    """Requests whose family still waits, per language, for the header and the page title."""
    rows = db.session.execute(
        sa.select(CallbackRequest.language, sa.func.count())
        .where(CallbackRequest.status.in_(OPEN))
        .group_by(CallbackRequest.language)
    )
    return {language: count for language, count in rows}


@bp.context_processor
def helpers() -> dict:
    return {
        "fmt": display,
        "statuses": STATUS_LABELS,
        "languages": display.LANGUAGES,
        "history": history,
    }


def page_context(rows: Sequence[CallbackRequest]) -> dict:
    return {
        "summaries": history.summaries([r.id for r in rows]),
        "calling": calling,
        "now": utcnow(),
        "waiting": waiting_counts(),
    }


@bp.get("/")
def index():
    return listing(Filters.from_request())


@bp.post("/")
def search():
    return listing(Filters.from_request())


def listing(filters: Filters) -> str:
    query = filters.query().options(selectinload(CallbackRequest.messages))
    rows = db.session.scalars(query.limit(PAGE + 1)).all()
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


def get_or_404(request_id: int, *options) -> CallbackRequest:
    row = db.session.get(CallbackRequest, request_id, options=list(options))
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
    me = current_user.username
    seen = form.seen.data or 0
    meanwhile = [e for e in history.events(row.id, after=seen) if e.actor != me]
    note = (form.note.data or "").strip()
    said = []
    if note:
        history.add(row.id, "note", me, text=note)
        said.append("note added")
    wanted, seen_status = form.status.data, form.seen_status.data
    assert wanted is not None and seen_status is not None  # validated: AnyOf(STATUSES)
    refused = False
    if wanted != seen_status:
        if history.move_status(row.id, seen_status, wanted, me):
            said.append(f"status {STATUS_LABELS[wanted].lower()}")
        else:
            refused = True
    # Saving the request is staff's word that they have seen its added messages too.
    db.session.execute(
        sa.update(RequestMessage)
        .where(RequestMessage.request_id == row.id)
        .values(is_new=False)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    if meanwhile:
        changes = "; ".join(
            f"{e.actor or 'the hotline'}: {history.describe(e)}" for e in meanwhile[-5:]
        )
        flash(f"Request {row.reference} changed while you had it open — {changes}.")
    if refused:
        db.session.refresh(row)
        flash(
            f"Request {row.reference}: your status was not applied, it is now "
            f"{STATUS_LABELS[row.status]}. Choose again if you still mean it."
        )
    if said:
        flash(f"Request {row.reference}: {', '.join(said)}.")
    elif not refused:
        flash(f"Request {row.reference}: nothing changed.")
    return back_to(row)


@bp.post("/requests/<int:request_id>/claim")
def claim(request_id: int):
    row = get_or_404(request_id)
    holder = history.claim(row.id, current_user.username)
    db.session.commit()
    if holder != current_user.username:
        flash(f"Request {row.reference} is already taken by {holder}.")
    return back_to(row)


@bp.post("/requests/<int:request_id>/release")
def release(request_id: int):
    row = get_or_404(request_id)
    history.release(row.id, current_user.username)
    db.session.commit()
    return back_to(row)


@bp.post("/requests/<int:request_id>/call")
def call(request_id: int):
    """Queue a call-back through the hotline; the worker places it, never this page."""
    row = get_or_404(request_id)
    why = calling.unavailable(row, current_user)
    if why:
        flash(f"Request {row.reference}: {why}")
        return back_to(row)
    calling.start(row, current_user)
    db.session.commit()
    flash(
        f"Request {row.reference}: your phone will ring in a moment. Press 1 to connect to "
        f"the family."
    )
    return back_to(row)


def listen_window() -> dt.timedelta:
    """A person's fetches of one recording within this long are one listen (a player fetches
    many byte ranges, starting anywhere when someone skips ahead)."""
    return dt.timedelta(minutes=current_app.config.get("LISTEN_AUDIT_MINUTES", 60))


def note_listen(row: CallbackRequest, text: str = "") -> None:
    """Record who listened in the request's history: the first fetch of any byte range per
    person and recording within the window (the audit log's entry is admin.audit_views')."""
    me = current_user.username
    recent = db.session.scalar(
        sa.select(history.RequestEvent.id)
        .where(
            history.RequestEvent.request_id == row.id,
            history.RequestEvent.kind == "listen",
            history.RequestEvent.actor == me,
            history.RequestEvent.text == text,
            history.RequestEvent.created_at > utcnow() - listen_window(),
        )
        .limit(1)
    )
    if recent is None:
        history.add(row.id, "listen", me, text=text)
        db.session.commit()


@bp.get("/requests/<int:request_id>/audio")
def audio(request_id: int):
    row = get_or_404(request_id, undefer(CallbackRequest.audio))
    if row.audio is None:
        # The worker copies it from Twilio; a page never waits on Twilio (it shares the web
        # processes with the callers' webhooks). Queue it if it never was; a copy that gave up
        # for good is queued again only by `ivr callbacks copy-recordings`.
        if row.recording_sid:
            recordings.queue_missing()
        return Response(
            "The recording is not copied from Twilio yet; try again in a minute.",
            status=404,
            mimetype="text/plain",
        )
    body, mimetype = row.audio, row.audio_type or "audio/mpeg"
    note_listen(row)
    return send_file(io.BytesIO(body), mimetype=mimetype, conditional=True, max_age=0)


@bp.get("/requests/<int:request_id>/messages/<int:message_id>/audio")
def message_audio(request_id: int, message_id: int):
    """A message the caller added by calling again, from the database copy."""
    row = db.session.get(RequestMessage, message_id, options=[undefer(RequestMessage.audio)])
    if row is None or row.request_id != request_id:
        abort(404)
    if row.audio is None:
        return Response(
            "The recording is not copied from Twilio yet; try again in a minute.",
            status=404,
            mimetype="text/plain",
        )
    request_row = get_or_404(request_id)
    note_listen(request_row, text=added_message_text(message_id))
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


@bp.route("/requests.csv", methods=["GET", "POST"])
def export():
    filters = Filters.from_request()
    rows = db.session.scalars(filters.query()).all()
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
            csv_cell(v)
            for v in (
                row.reference,
                display.local_title(row.created_at),
                display.LANGUAGES.get(row.language, row.language),
                STATUS_LABELS.get(row.status),
                csv_phone(row.caller_number),
                csv_phone(row.callback_number),
                display.a_number(row.a_number),
                row.recording_duration or "",
                summary.claimed_by,
                summary.attempts,
                notes,
                "yes" if row.urgent else "",
                row.sms_status or "",
            )
        )
        history.add(row.id, "export", current_user.username)
    db.session.commit()
    name = f"callback-requests-{utcnow():%Y%m%d-%H%M}.csv"
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f"attachment; filename={name}"},
    )
