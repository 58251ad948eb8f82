"""Staff accounts: log in (the password, then `twofactor.py`), and log out.

Failed logins are counted in the database per username and address, and per username, so the limits
hold across every web process (`guard.py`, shared with the second factor). Those limits slow
guessing down; they do not stop it (about 1,900 guesses a day). So every wrong password,
enrolment code or code also counts on the account, in a row and from anywhere: at
STAFF_LOCK_AFTER the account locks until an admin unlocks it, and the staff alert recipients are
told (`guard.count_failure`; NIST SP 800-63B: no more than 100). A login starts a new
session and lasts PERMANENT_SESSION_LIFETIME (12 hours) from the moment it was made, however busy
the session. Logging out replaces the account's session token, which ends every session of that
account, including a copied cookie.
"""

from __future__ import annotations

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
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from ivr.accounts.manage import normal_username
from ivr.accounts.models import LoginAttempt, StaffUser, new_session_token
from ivr.db import db
from ivr.staff import expired, twofactor
from ivr.staff.guard import (
    LOCKED,
    RATE_LIMITED,
    address,
    admit_attempt,
    audit_failure,
    audit_limit,
    check_password,
    count_failure,
    safe_next,
)

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


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=80)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


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
    if request.method == "POST" and request.endpoint != "staff.auth.logout":
        # A form from before the session ended: give its note back.
        return expired.not_saved(expired.ENDED, 401)
    if expired.session_ended():
        expired.say_session_ended()
    return redirect(url_for("staff.auth.login", next=request.full_path.rstrip("?")))


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
        audit_limit(username, RATE_LIMITED)
        error = "Too many failed logins. Wait 15 minutes, then try again."
        return render_template("staff/login.html", form=form, error=error), 429
    user = check_password(username, form.password.data)
    if user is None:  # the attempt stays counted as a failure
        known = db.session.scalar(sa.select(StaffUser).filter_by(username=username))
        audit_failure(username, "wrong password" if known is not None else "no such account")
        if known is not None and not known.locked_at and count_failure(known):
            return render_template("staff/login.html", form=form, error=LOCKED), 403
        error = "Wrong username or password."
        return render_template("staff/login.html", form=form, error=error), 401
    if user.locked_at:
        audit_failure(username, "right password, but the account is locked")
        return render_template("staff/login.html", form=form, error=LOCKED), 403
    db.session.execute(sa.delete(LoginAttempt).filter_by(username=username, ip=address()))
    db.session.commit()
    return twofactor.after_password(user, request.args.get("next"))


@bp.post("/logout")
def logout():
    user = current_user._get_current_object()
    user.session_token = new_session_token()
    db.session.commit()
    logout_user()
    flash("You are logged out.")
    return redirect(url_for("staff.auth.login"))
