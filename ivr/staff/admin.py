"""Admin pages and the audit of what staff do with personal data.

- `/staff/audit`: the audit log (admins only, see roles.py), filtered by kind and by who, a page
  at a time.
- `/staff/accounts`: staff accounts: add one (its initial password and enrolment code shown
  once), change its role or phone, reset its two factors (a new one-time enrolment code, shown
  once), unlock one locked after too many wrong passwords or codes, remove one (after a
  confirmation page). Every change goes through `accounts.manage`, as `ivr staff` does, which
  checks it and audits who changed what for whom.
- `POST /staff/requests/<id>/delete`: erase a request's personal data and recording now (and at
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

from ivr.accounts import audit, manage
from ivr.accounts.models import ROLES, StaffUser
from ivr.db import db, utcnow
from ivr.requests import lookup
from ivr.requests.service import handling
from ivr.staff import dashboard, display, feedback

bp = Blueprint("admin", __name__)
LISTENS = ("staff.requests.audio", "staff.requests.message_audio")
AUDIT_PAGE = 500
# The filters an export's audit entry names; `q` may be a phone number: only "(a search)".
EXPORT_FILTERS = ("status", "language", "start", "end", "mine", "unassigned", "urgent", "overdue")


def positive(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() and 0 < len(text) < 12 else None


@bp.get("/audit", endpoint="audit")
def audit_log():
    """Newest first, AUDIT_PAGE at a time (older pages by the id to start below: entries are
    only ever added, so a page never shifts under the reader), filtered by kind and by who."""
    action = request.args.get("action", "")
    action = action if action in audit.ACTIONS else ""
    actor = manage.normal_username(request.args.get("actor", ""))
    before = positive(request.args.get("before"))
    query = sa.select(audit.AuditEntry).order_by(audit.AuditEntry.id.desc())
    if action:
        query = query.where(audit.AuditEntry.action == action)
    if actor:
        query = query.where(sa.func.lower(audit.AuditEntry.actor) == actor)
    if before:
        query = query.where(audit.AuditEntry.id < before)
    entries = db.session.scalars(query.limit(AUDIT_PAGE + 1)).all()
    more = len(entries) > AUDIT_PAGE
    entries = entries[:AUDIT_PAGE]
    filters = {k: v for k, v in (("action", action), ("actor", actor)) if v}
    older = (
        url_for("staff.admin.audit", **filters, before=entries[-1].id) if more and entries else None
    )
    newest = url_for("staff.admin.audit", **filters) if before else None
    return render_template(
        "staff/audit.html",
        entries=entries,
        actions=audit.ACTIONS,
        fmt=display,
        page=AUDIT_PAGE,
        action=action,
        actor=actor,
        older=older,
        newest=newest,
    )


def accounts_page(
    code: str | None = None,
    code_for: str | None = None,
    *,
    password: str | None = None,
    errors: dict | None = None,
    typed: dict | None = None,
    status: int = 200,
):
    """The accounts page; `errors` by form ("add", or a user's id), shown beside that form."""
    users = db.session.scalars(sa.select(StaffUser).order_by(StaffUser.username)).all()
    page = render_template(
        "staff/accounts.html",
        users=users,
        code=code,
        code_for=code_for,
        password=password,
        errors=errors or {},
        typed=typed or {},
        roles=ROLES,
        fmt=display,
    )
    return page, status


def account_or_404(user_id: int) -> StaffUser:
    user = db.session.get(StaffUser, user_id)
    if user is None:
        abort(404)
    return user


def me() -> str:
    return current_user.username


@bp.get("/accounts")
def accounts():
    return accounts_page()


@bp.post("/accounts")
def add_account():
    """A new account: shown once, its initial password and its enrolment code."""
    typed = {k: request.form.get(k, "")[:200] for k in ("username", "role", "phone")}
    try:
        added = manage.add(me(), typed["username"], typed["role"] or "staff", typed["phone"])
    except manage.AccountError as exc:
        db.session.rollback()
        return accounts_page(errors={"add": str(exc)}, typed=typed, status=400)
    db.session.commit()
    return accounts_page(added.enrol_code, added.user.username, password=added.password)


@bp.post("/accounts/<int:user_id>/role")
def set_role(user_id: int):
    user = account_or_404(user_id)
    try:
        changed = manage.set_role(me(), user, request.form.get("role", ""))
    except manage.AccountError as exc:
        db.session.rollback()
        return accounts_page(errors={user_id: str(exc)}, status=400)
    db.session.commit()
    if changed:
        flash(f"{user.username} is now {user.role}; their sessions ended, so it applies at once.")
    return redirect(url_for("staff.admin.accounts") + f"#u{user_id}")


@bp.post("/accounts/<int:user_id>/phone")
def set_phone(user_id: int):
    user = account_or_404(user_id)
    try:
        changed = manage.set_phone(me(), user, request.form.get("phone", "")[:40])
    except manage.AccountError as exc:
        db.session.rollback()
        return accounts_page(errors={user_id: str(exc)}, status=400)
    db.session.commit()
    if changed:
        flash(f"Phone of {user.username}: {user.phone or 'none'}.")
    return redirect(url_for("staff.admin.accounts") + f"#u{user_id}")


@bp.get("/accounts/<int:user_id>/remove")
def remove_confirm(user_id: int):
    """The confirmation step, a page of its own: it works without JavaScript, and says first
    when the removal would be refused."""
    user = account_or_404(user_id)
    refusal = None
    try:
        manage.check_removable(me(), user)
    except manage.AccountError as exc:
        refusal = str(exc)
    return render_template("staff/account_remove.html", user=user, refusal=refusal)


@bp.post("/accounts/<int:user_id>/remove")
def remove(user_id: int):
    user = account_or_404(user_id)
    if request.form.get("confirm") != user.username:  # only the confirmation page sends it
        return redirect(url_for("staff.admin.remove_confirm", user_id=user_id))
    name = user.username
    try:
        manage.remove(me(), user)
    except manage.AccountError as exc:
        db.session.rollback()
        return accounts_page(errors={user_id: str(exc)}, status=400)
    db.session.commit()
    flash(f"Account {name} removed; its sessions ended.")
    return redirect(url_for("staff.admin.accounts"))


@bp.post("/accounts/<int:user_id>/reset-2fa")
def reset_two_factors(user_id: int):
    """A lost phone, or a new colleague: a new enrolment code, shown once on this page."""
    user = account_or_404(user_id)
    code = manage.reset_2fa(me(), user)
    db.session.commit()
    return accounts_page(code, user.username)


@bp.post("/accounts/<int:user_id>/unlock")
def unlock(user_id: int):
    user = account_or_404(user_id)
    manage.unlock(me(), user)
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
