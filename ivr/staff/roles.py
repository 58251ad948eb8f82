"""Who may open which staff page: one table, checked for every /staff request.

Two roles: staff hear requests, call back and mark them handled; an admin may do that too, and
also export, delete personal data, read the audit log and the reports, and manage accounts (on
the Accounts page, or with `ivr staff` on the server). The table is the whole policy at a
glance, and it fails closed: a view added later without a line here is refused to everyone
(and tests/test_roles.py fails), so nobody can forget to decide who may see it.
"""

from __future__ import annotations

from flask import current_app, render_template, request
from flask_login import current_user

PUBLIC, STAFF, ADMIN = "public", "staff", "admin"

REQUIRED = {
    "staff.auth.login": PUBLIC,
    "staff.auth.login_post": PUBLIC,
    "staff.auth.logout": STAFF,
    # Reached after the password; each checks the half-logged-in session itself.
    "staff.twofactor.code": PUBLIC,
    "staff.twofactor.code_post": PUBLIC,
    "staff.twofactor.setup": PUBLIC,
    "staff.twofactor.setup_post": PUBLIC,
    "staff.requests.index": STAFF,
    "staff.requests.search": STAFF,
    "staff.requests.detail": STAFF,
    "staff.requests.update": STAFF,
    "staff.requests.audio": STAFF,
    "staff.requests.claim": STAFF,
    "staff.requests.release": STAFF,
    "staff.requests.call": STAFF,
    "staff.requests.callstate_view": STAFF,  # a card's live call-back state (issue 21)
    "staff.requests.call_outcome": STAFF,
    "staff.requests.retry_copy": STAFF,  # a recording's copy from Twilio, again (issue 21)
    "staff.missed.index": STAFF,
    "staff.missed.call": STAFF,
    "staff.missed.note": STAFF,
    "staff.missed.done": STAFF,
    "staff.missed.callstate_view": STAFF,
    "staff.missed.call_outcome": STAFF,
    "staff.profile.show": STAFF,
    "staff.profile.save": STAFF,
    "staff.profile.recovery_codes": STAFF,
    "staff.requests.message_audio": STAFF,  # a message added by calling again (issue 13)
    "staff.requests.export": ADMIN,
    "staff.admin.audit": ADMIN,
    "staff.admin.confirm_delete": ADMIN,  # the question; only its POST deletes (issue 21)
    "staff.admin.delete": ADMIN,
    "staff.admin.accounts": ADMIN,
    "staff.admin.reset_two_factors": ADMIN,
    "staff.admin.unlock": ADMIN,
    "staff.admin.add_account": ADMIN,
    "staff.admin.set_role": ADMIN,
    "staff.admin.set_phone": ADMIN,
    "staff.admin.remove_confirm": ADMIN,
    "staff.admin.remove": ADMIN,
    "staff.reports.index": ADMIN,  # figures only, no caller (issue 24)
    "staff.reports.export": ADMIN,
}


def allowed(endpoint: str | None, role: str | None) -> bool:
    """May an account with `role` (None: not logged in) open `endpoint`?"""
    needed = REQUIRED.get(endpoint or "")
    if needed == PUBLIC:
        return True
    if role is None or needed is None:
        return False
    return needed == STAFF or role == ADMIN


def check() -> tuple[str, int] | None:
    """The staff blueprint's before_request, after the login check: 403 for the wrong role, as
    a page with the header and a way back rather than a bare line."""
    if not current_user.is_authenticated:
        return None  # require_login has answered already, or the page is public
    if allowed(request.endpoint, current_user.role):
        return None
    if request.endpoint not in REQUIRED:
        current_app.logger.error("no role declared for %s in staff/roles.py", request.endpoint)
    return render_template("staff/403.html"), 403
