"""When a form cannot be accepted (the session ended, or the page's CSRF token is stale): say so,
and give the typed note back.

A note typed for ten minutes and answered with a bare "Bad Request – The CSRF session token is
missing.", or a silent redirect to the login page, is a note lost. Both cases answer here with a
staff page that says the note was NOT saved and why, shows the note in a box to copy, and leads to
the login page (or back to the request) with the way back to its card. The page's script
(`staff.js`) also keeps the note as the request's draft in this browser, so the card has it again
once staff are logged in.
"""

from __future__ import annotations

from flask import render_template, request, session, url_for
from flask_login import current_user
from flask_wtf.csrf import CSRFError

from ivr.requests import lookup
from ivr.staff import feedback

ENDED = (
    "your session had ended (you logged out, maybe on another device, or your 12 hours were "
    "up), so the hotline could not accept the form."
)
STALE = (
    "this page was older than your login (you logged in again, maybe in another tab), so the "
    "hotline could not accept the form."
)


def not_saved(reason: str, status: int):
    """The page that gives back what was typed; nothing of the form was done."""
    request_id = (request.view_args or {}).get("request_id")
    if not isinstance(request_id, int):
        request_id = None
    # Nothing about the request for someone not logged in: only the id they posted to.
    reference = (
        lookup.reference_of(request_id)
        if request_id is not None and current_user.is_authenticated
        else None
    )
    card = (
        url_for("staff.requests.detail", request_id=request_id)
        if request_id is not None
        else url_for("staff.requests.index")
    )
    return render_template(
        "staff/not_saved.html",
        note=request.form.get("note", "")[:4000],
        reason=reason,
        request_id=request_id,
        reference=reference,
        card=card,
        login=url_for("staff.auth.login", next=card),
    ), status


OLD_PAGE = "the page had been open too long (its session had ended). Try again."


def csrf_failed(error: CSRFError):
    """Flask-WTF's CSRFError on a staff form (a webhook never raises it: not checked there)."""
    if request.endpoint and request.endpoint.startswith(("staff.auth.", "staff.twofactor.")):
        return not_saved(OLD_PAGE, 400)  # the login or code page itself: nothing to give back
    return not_saved(STALE if current_user.is_authenticated else ENDED, 400)


def session_ended() -> bool:
    """Was this browser logged in (Flask-Login's mark is in its session) and is no longer?"""
    return "_user_id" in session and not current_user.is_authenticated


def say_session_ended() -> None:
    """For the login page a stale session is sent to: why log in again."""
    feedback.say(
        "Your session has ended (you logged out, maybe on another device, or your 12 hours "
        "were up): log in again.",
        "warning",
    )
