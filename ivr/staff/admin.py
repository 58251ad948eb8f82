"""Admin pages and the audit of what staff do with personal data.

- `/staff/audit`: the audit log (admins only, see roles.py).
- `/staff/accounts`: staff accounts; reset an account's two factors (a new one-time enrolment
  code, shown once) or unlock one locked after too many wrong passwords or codes.
- `/staff/requests/<id>/delete`: erase a request's personal data and recording now (and at
  Twilio), e.g. when a family asks; the anonymous row stays for the counts (see retention.py).
  The request's page links to it (GET, a confirmation); only its POST deletes.
- Listening and exporting are audited here, after the dashboard's own views answered, so the
  dashboard needs no audit code and an entry is written only for a recording or a file that was
  really sent. Logins are audited from Flask-Login's `user_logged_in` signal.
"""

from __future__ import annotations

import csv
import io

import sqlalchemy as sa
from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, user_logged_in

from ivr.accounts import audit
from ivr.accounts.models import StaffUser
from ivr.db import db, utcnow
from ivr.requests import lookup
from ivr.requests.service import handling
from ivr.staff import dashboard, display, feedback, twofactor

bp = Blueprint("admin", __name__)
LISTENS = ("staff.requests.audio", "staff.requests.message_audio")
AUDIT_PAGE = 500
# The filters an export's audit entry names; `q` may be a phone number: only "(a search)".
EXPORT_FILTERS = ("status", "language", "start", "end", "mine", "unassigned", "urgent", "overdue")


@bp.get("/audit", endpoint="audit")
def audit_log():
    entries = db.session.scalars(
        sa.select(audit.AuditEntry).order_by(audit.AuditEntry.id.desc()).limit(AUDIT_PAGE)
    ).all()
    return render_template(
        "staff/audit.html", entries=entries, actions=audit.ACTIONS, fmt=display, page=AUDIT_PAGE
    )


def accounts_page(code: str | None = None, code_for: str | None = None):
    users = db.session.scalars(sa.select(StaffUser).order_by(StaffUser.username)).all()
    return render_template(
        "staff/accounts.html", users=users, code=code, code_for=code_for, fmt=display
    )


@bp.get("/accounts")
def accounts():
    return accounts_page()


@bp.post("/accounts/<int:user_id>/reset-2fa")
def reset_two_factors(user_id: int):
    """A lost phone, or a new colleague: a new enrolment code, shown once on this page."""
    user = db.session.get(StaffUser, user_id)
    if user is None:
        abort(404)
    code = twofactor.reset_two_factors(user)
    audit.record("account", current_user.username, detail=f"reset two factors of {user.username}")
    db.session.commit()
    response = accounts_page(code, user.username)
    return response


@bp.post("/accounts/<int:user_id>/unlock")
def unlock(user_id: int):
    user = db.session.get(StaffUser, user_id)
    if user is None:
        abort(404)
    user.locked_at, user.failures = None, 0
    audit.record("account", current_user.username, detail=f"unlocked {user.username}")
    db.session.commit()
    flash(f"{user.username} unlocked.")
    return redirect(url_for("staff.admin.accounts"))


@bp.get("/requests/<int:request_id>/delete")
def confirm_delete(request_id: int):
    """The second step: deleting cannot be undone, so one click on the request's page only
    asks (a page of its own, so it works without JavaScript)."""
    row = lookup.request(request_id)
    if row is None:
        abort(404)
    return render_template("staff/confirm_delete.html", row=row)


@bp.post("/requests/<int:request_id>/delete")
def delete(request_id: int):
    """Erase now; the request service closes the request and says so in its history."""
    reference = lookup.reference_of(request_id)
    if reference is None:
        abort(404)
    handling.erase([request_id], current_user.username, "delete")
    feedback.say(
        f"Request {reference}: personal data and recording deleted; the request is closed.",
        "success",
        request_id,
    )
    return redirect(url_for("staff.requests.detail", request_id=request_id))


def audit_views(response: Response) -> Response:
    """The staff blueprint's after_request: audit a recording heard or a CSV sent."""
    if request.endpoint in LISTENS and response.status_code in (200, 206):
        # The first fetch of any byte range, per person and recording, within the window: a
        # player asks for many ranges as it plays, and may start anywhere.
        assert request.view_args is not None  # the endpoint matched, so its arguments are set
        request_id = request.view_args["request_id"]
        message_id = request.view_args.get("message_id")
        detail = dashboard.added_message_text(message_id) if message_id else ""
        me = current_user.username
        recent = db.session.scalar(
            sa.select(audit.AuditEntry.id)
            .where(
                audit.AuditEntry.action == "listen",
                audit.AuditEntry.actor == me,
                audit.AuditEntry.request_id == request_id,
                audit.AuditEntry.detail == detail,
                audit.AuditEntry.created_at > utcnow() - dashboard.listen_window(),
            )
            .limit(1)
        )
        if recent is None:
            reference = lookup.reference_of(request_id)
            audit.record("listen", me, request_id=request_id, reference=reference, detail=detail)
            db.session.commit()
    elif request.endpoint == "staff.requests.export" and response.status_code == 200:
        rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))[1:]
        references = [row[0] for row in rows if row]
        filters = {k: request.values[k] for k in EXPORT_FILTERS if request.values.get(k)}
        if request.values.get("q"):
            filters["q"] = "(a search)"
        detail = (
            f"{len(references)} rows; filters: "
            f"{', '.join(f'{k}={v}' for k, v in filters.items()) or 'none'}; "
            f"references: {' '.join(references)}"
        )
        audit.record("export", current_user.username, detail=detail)
        db.session.commit()
    return response


def audit_login(_app: Flask, user, **_extra) -> None:
    audit.record("login", user.username)
    db.session.commit()


def init_app(app: Flask) -> None:
    user_logged_in.connect(audit_login, app)
