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
from dataclasses import dataclass

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    abort,
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
from wtforms import StringField, TextAreaField
from wtforms.validators import AnyOf, Length

from .. import recordings
from ..db import db, utcnow
from ..models import STATUSES, CallbackRequest, RequestMessage
from . import display
from .auth import safe_next

bp = Blueprint("requests", __name__)
PAGE = 200


class HandleForm(FlaskForm):
    # A plain field checked against the list: SelectField's tuple choices are deprecated.
    status = StringField("Status", validators=[AnyOf(STATUSES)])
    note = TextAreaField("Note", validators=[Length(max=4000)])


@dataclass
class Filters:
    status: str = ""
    language: str = ""
    start: dt.date | None = None
    end: dt.date | None = None
    q: str = ""

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
        if self.q:
            digits = re.sub(r"\D", "", self.q)
            found = [CallbackRequest.reference == self.q]
            if len(digits) >= 3:
                found += [CallbackRequest.reference == digits,
                          CallbackRequest.caller_number.contains(digits, autoescape=True),
                          CallbackRequest.callback_number.contains(digits, autoescape=True),
                          CallbackRequest.a_number == digits.rjust(9, "0")]
            query = query.where(sa.or_(*found))
        # Urgent ones first (a hearing within 7 days, a transfer soon: `urgency.py`), then the
        # rest not yet called back, newest first.
        unhandled_first = sa.case(
            (sa.and_(CallbackRequest.status == "new", CallbackRequest.urgent), 0),
            (CallbackRequest.status == "new", 1), else_=2)
        return query.order_by(unhandled_first, CallbackRequest.created_at.desc(),
                              CallbackRequest.id.desc())

    def url_args(self) -> dict[str, str]:
        """The filters that may go in a URL: all but the search words."""
        values = {"status": self.status, "language": self.language,
                  "start": self.start.isoformat() if self.start else "",
                  "end": self.end.isoformat() if self.end else ""}
        return {k: v for k, v in values.items() if v}


def parse_date(value: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None


@bp.context_processor
def helpers() -> dict:
    return {"fmt": display, "statuses": display.STATUS_LABELS, "languages": display.LANGUAGES}


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
        "staff/index.html", rows=rows[:PAGE], more=len(rows) > PAGE, filters=filters,
        chart=display.chart(days), days=days, form=HandleForm(), here=here,
    )


def get_or_404(request_id: int, *options) -> CallbackRequest:
    row = db.session.get(CallbackRequest, request_id, options=list(options))
    if row is None:
        abort(404)
    return row


@bp.get("/requests/<int:request_id>")
def detail(request_id: int):
    row = get_or_404(request_id)
    form = HandleForm(status=row.status, note=row.note)
    return render_template("staff/detail.html", row=row, form=form, here=request.full_path)


@bp.post("/requests/<int:request_id>")
def update(request_id: int):
    row = get_or_404(request_id)
    form = HandleForm()
    if not form.validate_on_submit():
        return render_template("staff/detail.html", row=row, form=form, here=request.path), 400
    row.status = form.status.data
    row.note = form.note.data.strip()
    row.handled_by = current_user.username
    row.handled_at = utcnow()
    # Saving the request is staff's word that they have seen its added messages too.
    db.session.execute(sa.update(RequestMessage).where(RequestMessage.request_id == row.id)
                       .values(is_new=False).execution_options(synchronize_session=False))
    db.session.commit()
    flash(f"Request {row.reference}: {display.STATUS_LABELS[row.status].lower()}.")
    return redirect(safe_next(request.args.get("next")))


@bp.get("/requests/<int:request_id>/audio")
def audio(request_id: int):
    row = get_or_404(request_id, undefer(CallbackRequest.audio))
    if row.audio is None:
        # The worker copies it from Twilio; a page never waits on Twilio (it shares the web
        # processes with the callers' webhooks). Queue it again in case the copy gave up.
        if row.recording_sid:
            recordings.queue_missing()
        return Response("The recording is not copied from Twilio yet; try again in a minute.",
                        status=404, mimetype="text/plain")
    return send_file(io.BytesIO(row.audio), mimetype=row.audio_type or "audio/mpeg",
                     conditional=True, max_age=0)


@bp.get("/requests/<int:request_id>/messages/<int:message_id>/audio")
def message_audio(request_id: int, message_id: int):
    """A message the caller added by calling again, from the database copy."""
    row = db.session.get(RequestMessage, message_id, options=[undefer(RequestMessage.audio)])
    if row is None or row.request_id != request_id:
        abort(404)
    if row.audio is None:
        return Response("The recording is not copied from Twilio yet; try again in a minute.",
                        status=404, mimetype="text/plain")
    return send_file(io.BytesIO(row.audio), mimetype=row.audio_type or "audio/mpeg",
                     conditional=True, max_age=0)


CSV_COLUMNS = ["reference", "received", "language", "status", "caller_number", "callback_number",
               "a_number", "recording_seconds", "handled_by", "handled_at", "note", "urgent",
               "reference_texted"]


def csv_cell(value: object) -> str:
    """Keep a spreadsheet from running a cell as a formula (CSV injection)."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r", "|", "%"):
        return "'" + text
    return text


@bp.route("/requests.csv", methods=["GET", "POST"])
def export():
    filters = Filters.from_request()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in db.session.scalars(filters.query()):
        writer.writerow(csv_cell(v) for v in (
            row.reference, display.local_time(row.created_at), row.language, row.status,
            display.phone(row.caller_number), display.phone(row.callback_number),
            display.a_number(row.a_number), row.recording_duration or "", row.handled_by,
            display.local_time(row.handled_at), row.note, "yes" if row.urgent else "",
            row.sms_status or "",
        ))
    name = f"callback-requests-{utcnow():%Y%m%d-%H%M}.csv"
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f"attachment; filename={name}"})
