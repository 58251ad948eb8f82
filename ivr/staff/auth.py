"""Staff accounts: log in, log out, and the login rate limits.

Failed logins are counted in the database per username and address, and per username, so the
limits hold across every web process. Those limits slow guessing down; they do not stop it (about
1,900 guesses a day). So every wrong password, enrolment code or code also counts on the account,
in a row and from anywhere: at STAFF_LOCK_AFTER the account locks until an admin unlocks it, and
the staff alert recipients are told (NIST SP 800-63B: no more than 100). A login starts a new
session and lasts PERMANENT_SESSION_LIFETIME (12 hours) from the moment it was made, however busy
the session. Logging out replaces the account's session token, which ends every session of that
account, including a copied cookie.
"""

from __future__ import annotations

import datetime as dt
import time

import sqlalchemy as sa
from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import LoginManager, current_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from ivr.accounts import audit
from ivr.accounts.models import LoginAttempt, StaffUser, new_session_token
from ivr.db import db, utcnow
from ivr.requests import alerts

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
login_manager.login_view = "staff.auth.login"
login_manager.login_message = None
PUBLIC_ENDPOINTS = {
    "staff.auth.login",
    "staff.auth.login_post",
    # After the password, before the code (twofactor.py checks the session).
    "staff.twofactor.code",
    "staff.twofactor.code_post",
    "staff.twofactor.setup",
    "staff.twofactor.setup_post",
}
# Failed logins allowed per WINDOW: for one account from one address, and for one account from
# everywhere (many addresses, e.g. a botnet, still get only this many guesses between them).
MAX_FAILURES = 5
ACCOUNT_MAX_FAILURES = 20
WINDOW = dt.timedelta(minutes=15)
# Checked when the username is unknown, so a wrong name takes as long as a wrong password.
DUMMY_HASH = generate_password_hash("not-a-real-password")


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=80)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


def normal_username(name: str) -> str:
    return name.strip().lower()[:80]


@login_manager.user_loader
def load_user(session_token: str) -> StaffUser | None:
    """The account this session belongs to, while its login is younger than the lifetime.

    The signed cookie is re-issued as the session is used, so its own age cannot tell: the time
    of login, kept in the session at login, does.
    """
    login_at = session.get("login_at")
    lifetime = current_app.permanent_session_lifetime.total_seconds()
    if not isinstance(login_at, int) or not 0 <= time.time() - login_at < lifetime:
        return None
    return db.session.scalar(sa.select(StaffUser).filter_by(session_token=session_token))


@login_manager.unauthorized_handler
def unauthorized():
    # Media and downloads answer 401: a redirect would hand an <audio> element an HTML page.
    if request.endpoint in ("staff.requests.audio", "staff.requests.export"):
        return "Log in to the staff pages first.", 401
    return redirect(url_for("staff.auth.login", next=request.full_path.rstrip("?")))


def safe_next(target: str | None) -> str:
    """Follow `next` only to a staff page of this site."""
    if target and target.startswith("/staff/") and not target.startswith("//"):
        return target
    return url_for("staff.requests.index")


def address() -> str:
    return (request.remote_addr or "unknown")[:64]


def admit_attempt(username: str) -> bool:
    """Count a login attempt, unless the limits are reached: then refuse it, uncounted.

    The attempt is written before the password is checked, and counted with every attempt before
    it in the same transaction, so parallel tries cannot all pass the check together: on SQLite
    the INSERT takes the one write lock first; on PostgreSQL the account's row is locked (an
    unknown username has no row to lock, and no password to find).
    """
    db.session.rollback()  # a fresh transaction that starts with the write
    db.session.add(LoginAttempt(username=username, ip=address()))
    db.session.flush()
    db.session.execute(sa.select(StaffUser.id).filter_by(username=username).with_for_update())
    since = utcnow() - WINDOW
    recent = (
        sa.select(sa.func.count())
        .select_from(LoginAttempt)
        .where(LoginAttempt.username == username, LoginAttempt.created_at >= since)
    )
    here = db.session.execute(recent.where(LoginAttempt.ip == address())).scalar_one()
    anywhere = db.session.execute(recent).scalar_one()
    if here > MAX_FAILURES or anywhere > ACCOUNT_MAX_FAILURES:
        db.session.rollback()
        return False
    # Forget attempts long past the window so the table stays small.
    old = utcnow() - 4 * WINDOW
    db.session.execute(sa.delete(LoginAttempt).where(LoginAttempt.created_at < old))
    db.session.commit()
    return True


def check_password(username: str, password: str) -> StaffUser | None:
    user = db.session.scalar(sa.select(StaffUser).filter_by(username=username))
    valid = check_password_hash(user.password_hash if user else DUMMY_HASH, password)
    return user if user and valid else None


LOCKED = (
    "This account is locked after too many wrong passwords or codes. Ask an admin to unlock it."
)


def count_failure(user: StaffUser) -> bool:
    """Count a wrong password or code against the account (committed); lock it, audit and alert
    when the count reaches STAFF_LOCK_AFTER. Returns whether the account is locked now."""
    db.session.rollback()
    db.session.execute(
        sa.update(StaffUser)
        .where(StaffUser.id == user.id)
        .values(failures=StaffUser.failures + 1)
        .execution_options(synchronize_session=False)
    )
    failures, locked_at = db.session.execute(
        sa.select(StaffUser.failures, StaffUser.locked_at).where(StaffUser.id == user.id)
    ).one()
    limit = current_app.config["STAFF_LOCK_AFTER"]
    if locked_at is None and failures >= limit:
        locked = db.session.execute(
            sa.update(StaffUser)
            .where(StaffUser.id == user.id, StaffUser.locked_at.is_(None))
            .values(locked_at=utcnow(), session_token=new_session_token())
            .execution_options(synchronize_session=False)
        )
        if locked.rowcount:  # type: ignore[attr-defined]
            audit.record(
                "account",
                user.username,
                detail=f"locked after {failures} wrong passwords or codes in a row",
            )
            alerts.account_locked(user.username, failures)
            current_app.logger.error(
                "staff account %r locked after %d wrong passwords or codes", user.username, failures
            )
        locked_at = utcnow()
    db.session.commit()
    return locked_at is not None


@bp.get("/login")
def login():
    if current_user.is_authenticated:
        return redirect(safe_next(request.args.get("next")))
    return render_template("staff/login.html", form=LoginForm())


@bp.post("/login")
def login_post():
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("staff/login.html", form=form), 400
    username = normal_username(form.username.data)
    if not admit_attempt(username):
        current_app.logger.warning("login rate limit hit for %r from %s", username, address())
        error = "Too many failed logins. Wait 15 minutes, then try again."
        return render_template("staff/login.html", form=form, error=error), 429
    user = check_password(username, form.password.data)
    if user is None:  # the attempt stays counted as a failure
        known = db.session.scalar(sa.select(StaffUser).filter_by(username=username))
        if known is not None and not known.locked_at and count_failure(known):
            return render_template("staff/login.html", form=form, error=LOCKED), 403
        error = "Wrong username or password."
        return render_template("staff/login.html", form=form, error=error), 401
    if user.locked_at:
        return render_template("staff/login.html", form=form, error=LOCKED), 403
    db.session.execute(sa.delete(LoginAttempt).filter_by(username=username, ip=address()))
    db.session.commit()
    from ivr.staff.twofactor import after_password  # imports this module

    return after_password(user, request.args.get("next"))


@bp.post("/logout")
def logout():
    user = current_user._get_current_object()
    user.session_token = new_session_token()
    db.session.commit()
    logout_user()
    flash("You are logged out.")
    return redirect(url_for("staff.auth.login"))
