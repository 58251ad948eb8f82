"""The staff page of missed calls (the list itself is `ivr.requests.missed`).

Each missed call is a small ticket: notes (append-only, in the same history as requests' notes,
by call id), a Done mark that folds it away and takes it out of the count, and Undo. Writes go
through the request service (`handling.note_missed`, `mark_missed`), reads through `lookup`.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from ivr.db import utcnow
from ivr.requests import history, lookup
from ivr.requests.service import calling, handling
from ivr.staff import callstate, display

bp = Blueprint("missed", __name__)


@bp.get("/missed")
def index():
    found = lookup.missed_calls()
    every = found.open + found.done
    return render_template(
        "staff/missed.html",
        rows=found.open,
        done=found.done,
        now=utcnow(),
        calling=calling,
        lookup=lookup,
        summaries=found.summaries,
        callstates=calling.states([f"call:{m.call.id}" for m in every], current_user),
        fmt=display,
        languages=display.LANGUAGES,
        history=history,
        here=request.full_path,
        note_max=handling.NOTE_MAX,
    )


@bp.post("/missed/<int:call_id>/call")
def call(call_id: int):
    """Call a missed caller back: the same reservation and live state as a request's."""
    row = lookup.call(call_id)
    target = url_for("staff.missed.index")
    if row is None:
        flash("That call is no longer in the list.")
        return redirect(target)
    why = calling.unavailable_for(row.from_number, current_user)
    if why:
        message, tone = why, "error"
    else:
        message, tone = callstate.press_words(
            calling.start_missed_call(row, current_user), "caller"
        )
    if callstate.wanted():
        return region(row.id, row.from_number, note=message, tone=tone)
    flash(f"Missed call: {why or message}")
    return redirect(f"{target}#c{row.id}")


@bp.post("/missed/<int:call_id>/note")
def note(call_id: int):
    row = lookup.call(call_id)
    target = url_for("staff.missed.index")
    if row is None:
        flash("That call is no longer in the list.")
        return redirect(target)
    text = request.form.get("note", "")
    if len(text.strip()) > handling.NOTE_MAX:
        flash(f"Missed call: the note is longer than {handling.NOTE_MAX} characters, not saved.")
    elif handling.note_missed(row.id, current_user.username, text):
        flash("Missed call: note added.")
    else:
        flash("Missed call: the note was empty, nothing saved.")
    return redirect(f"{target}#c{row.id}")


@bp.post("/missed/<int:call_id>/done")
def done(call_id: int):
    """Done, or (with undo=1) open again."""
    row = lookup.call(call_id)
    target = url_for("staff.missed.index")
    if row is None:
        flash("That call is no longer in the list.")
        return redirect(target)
    undo = request.form.get("undo") == "1"
    changed = handling.mark_missed(row.id, current_user.username, done=not undo)
    # No number in the message: flashed messages travel in the (readable) session cookie.
    if not changed:
        flash(f"That missed call was already {'open' if undo else 'done'}.")
    elif undo:
        flash("Missed call open again.")
    else:
        flash("Missed call marked done: it is folded away at the bottom of the page.")
    return redirect(f"{target}#c{row.id}")


@bp.get("/missed/<int:call_id>/callstate")
def callstate_view(call_id: int):
    """The card's call-back region alone: polled while a call-back is under way."""
    row = lookup.call(call_id)
    if row is None:
        abort(404)
    return region(row.id, row.from_number)


@bp.post("/missed/<int:call_id>/callstate")
def call_outcome(call_id: int):
    """How the call went, chosen on the card."""
    row = lookup.call(call_id)
    if row is None:
        abort(404)
    refused = calling.choose(
        request.form.get("attempt", 0, type=int),
        request.form.get("choice", ""),
        current_user,
        target=f"call:{row.id}",
    )
    message = refused or "Noted. Thank you."
    if callstate.wanted():
        return region(row.id, row.from_number, note=message, tone="warn" if refused else "ok")
    flash(f"Missed call: {message}")
    return redirect(url_for("staff.missed.index") + f"#c{row.id}")


def region(
    call_id: int, number: str | None, note: str | None = None, tone: str = "info"
) -> str | Response:
    return callstate.region(
        None,
        call_id,
        why=calling.unavailable_for(number, current_user),
        label=display.phone(number),
        here=url_for("staff.missed.index"),
        note=note,
        tone=tone,
        counts=False,  # the missed-calls page shows no waiting counts
    )
