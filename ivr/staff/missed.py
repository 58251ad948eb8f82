"""The staff page of missed calls (the list itself is `ivr.requests.missed`)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from ivr.db import utcnow
from ivr.requests import history, lookup
from ivr.requests.missed import missed_calls
from ivr.requests.service import calling
from ivr.staff import display

bp = Blueprint("missed", __name__)


@bp.get("/missed")
def index():
    rows = missed_calls()
    return render_template(
        "staff/missed.html",
        rows=rows,
        now=utcnow(),
        calling=calling,
        lookup=lookup,
        summaries=history.summaries([m.call.id for m in rows], by="call"),
        fmt=display,
        languages=display.LANGUAGES,
        history=history,
        here=request.full_path,
    )


@bp.post("/missed/<int:call_id>/call")
def call(call_id: int):
    row = lookup.call(call_id)
    target = url_for("staff.missed.index")
    if row is None:
        flash("That call is no longer in the list.")
        return redirect(target)
    why = calling.unavailable_for(row.from_number, current_user)
    if why:
        flash(f"Missed call: {why}")
        return redirect(f"{target}#c{row.id}")
    calling.start_missed_call(row, current_user)
    flash("Your phone will ring in a moment. Press 1 to connect to the caller.")
    return redirect(f"{target}#c{row.id}")
