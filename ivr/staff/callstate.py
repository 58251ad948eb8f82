"""The card's call-back region on its own: what a press of Call back (or of "how did it go?")
answers to htmx, and what the region's polling gets while a call-back is under way.

The state itself is the request service's (`calling.states`); this module only draws it. A plain
form post (no JavaScript) gets a flash and a redirect instead, as every staff form does.
"""

from __future__ import annotations

from flask import Response, render_template, request
from flask_login import current_user

from ivr.requests import listing
from ivr.requests.service import calling


def wanted() -> bool:
    """Did htmx send this request (so the answer is the region, not a redirect)?"""
    return request.headers.get("HX-Request") == "true"


def region(
    request_id: int | None,
    call_id: int | None,
    *,
    why: str | None,
    label: str,
    here: str,
    note: str | None = None,
    tone: str = "info",
    counts: bool = True,
) -> str | Response:
    """The region alone, with the header's waiting counts out of band (they follow an outcome)
    when the page shows them. A poll (GET) that says it has seen this state already gets 204:
    htmx then swaps nothing and polls on."""
    state = calling.state_of(request_id, call_id, current_user)
    if request.method == "GET" and request.args.get("seen") == state.digest:
        return Response(status=204)
    extra = {"waiting": listing.waiting_counts()} if counts else {}
    return render_template(
        "staff/_callstate_live.html",
        cb=state,
        why=why,
        cb_label=label,
        here=here,
        note=note,
        note_tone=tone,
        **extra,
    )


def press_words(press: calling.Press, whom: str = "family") -> tuple[str, str]:
    """What a press of Call back did, in words, and its tone."""
    if press.attempt is not None:
        return f"Your phone will ring in a moment. Press 1 to connect to the {whom}.", "ok"
    if press.holder == current_user.username:
        return f"You are already calling this {whom}.", "warn"
    if press.holder:
        return f"{press.holder} is calling this {whom} now.", "warn"
    return f"A call-back to this {whom} has just ended. Press Call back again if needed.", "warn"


def for_flash(message: str, why: str | None) -> str:
    """The same words after "Request 123 456: " (a reason stays as it is written)."""
    return why or message[0].lower() + message[1:]


def after_htmx(response: Response) -> Response:
    """The staff blueprint's after_request: an htmx request the staff pages refused (the session
    ended, so a redirect to the login page or a stale form token) must not put the login page
    inside a card. A poll stops quietly (286: htmx stops polling; the card stays as it was); a
    press reloads the whole page, which then says why."""
    if not wanted() or response.status_code < 300:
        return response
    if request.method == "GET":
        return Response(status=286)
    response.headers["HX-Refresh"] = "true"
    return response
