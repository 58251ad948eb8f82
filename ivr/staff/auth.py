"""Staff accounts: log in, log out, and the login rate limit.

Failed logins are counted in the database per username and address, so the limit holds across
every web process. Logging out bumps the account's session version, which ends every session of
that account, including a copied cookie.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import LoginManager, current_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from ..db import db, utcnow
from .models import LoginAttempt, StaffUser

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
login_manager.login_view = "staff.auth.login"
login_manager.login_message = None
PUBLIC_ENDPOINTS = {"staff.auth.login", "staff.auth.login_post",
                    # After the password, before the code (twofactor.py checks the session).
                    "staff.twofactor.code", "staff.twofactor.code_post",
                    "staff.twofactor.setup", "staff.twofactor.setup_post"}
MAX_FAILURES = 5
WINDOW = dt.timedelta(minutes=15)
# Checked when the username is unknown, so a wrong name takes as long as a wrong password.
DUMMY_HASH = generate_password_hash("not-a-real-password")


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=80)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


def normal_username(name: str) -> str:
    return name.strip().lower()[:80]


@login_manager.user_loader
def load_user(user_id: str) -> StaffUser | None:
    ident, _, version = user_id.partition(":")
    if not ident.isdigit() or not version.isdigit():
        return None
    user = db.session.get(StaffUser, int(ident))
    if user is None or user.session_version != int(version):
        return None
    return user


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


def too_many_failures(username: str) -> bool:
    since = utcnow() - WINDOW
    failures = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(LoginAttempt)
        .where(LoginAttempt.username == username, LoginAttempt.ip == address(),
               LoginAttempt.created_at >= since)
    )
    return failures >= current_app.config.get("LOGIN_MAX_FAILURES", MAX_FAILURES)


def record_failure(username: str) -> None:
    db.session.add(LoginAttempt(username=username, ip=address()))
    # Forget failures long past the window so the table stays small.
    old = utcnow() - 4 * WINDOW
    db.session.execute(sa.delete(LoginAttempt).where(LoginAttempt.created_at < old))
    db.session.commit()


def check_password(username: str, password: str) -> StaffUser | None:
    user = db.session.scalar(sa.select(StaffUser).filter_by(username=username))
    valid = check_password_hash(user.password_hash if user else DUMMY_HASH, password)
    return user if user and valid else None


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
    if too_many_failures(username):
        current_app.logger.warning("login rate limit hit for %r from %s", username, address())
        error = "Too many failed logins. Wait 15 minutes, then try again."
        return render_template("staff/login.html", form=form, error=error), 429
    user = check_password(username, form.password.data)
    if user is None:
        record_failure(username)
        error = "Wrong username or password."
        return render_template("staff/login.html", form=form, error=error), 401
    db.session.execute(sa.delete(LoginAttempt).filter_by(username=username, ip=address()))
    db.session.commit()
    from .twofactor import after_password  # imports this module

    return after_password(user, request.args.get("next"))


@bp.post("/logout")
def logout():
    user = current_user._get_current_object()
    user.session_version += 1
    db.session.commit()
    logout_user()
    flash("You are logged out.")
    return redirect(url_for("staff.auth.login"))
