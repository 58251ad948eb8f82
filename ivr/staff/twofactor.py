"""Two factors: after the password, a 6-digit code from an authenticator app (TOTP, RFC 6238).

A stolen or guessed password alone must not open recordings of families naming a detained
relative. So once the password is right, login (`after_password`) either logs in (two factors
optional and not enrolled) or keeps the account *pending* in the session for five minutes and
asks for a code, or, on first login when two factors are required, for enrolment: a QR code
(segno, inline SVG, no external service sees the secret) and one confirming code, then ten
one-time recovery codes shown once and stored as SHA-256 (they are random, 50 bits each, so a
fast hash is enough; the password's slow hash is for what people choose).

Codes are rate-limited like the password, in the same table and window, under the name
`2fa:<user>`: a right password clears the password's failures, not the code's. A code is good
for its 30-second step and one step either side (clock drift), once: the last step used is kept,
so a code read over a shoulder cannot log in again. `ivr staff reset-2fa NAME` is for a lost
phone.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from typing import Any, cast

import pyotp
import segno
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
from flask_login import current_user, login_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from sqlalchemy.engine import CursorResult
from werkzeug.wrappers import Response  # what redirect() returns: Flask's is a subclass
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from ivr.accounts import audit
from ivr.accounts.models import LoginAttempt, RecoveryCode, StaffUser
from ivr.db import db, utcnow
from ivr.settings import settings
from ivr.staff import guard

bp = Blueprint("twofactor", __name__, url_prefix="/login")
PENDING = "2fa_pending"
NEW_SECRET = "2fa_new_secret"
PENDING_SECONDS = 300
RECOVERY_CODES = 10
ISSUER = "Molina hotline"


class CodeForm(FlaskForm):
    code = StringField("Code", validators=[DataRequired(), Length(max=32)])


def required() -> bool:
    setting = settings().staff_2fa
    if setting == "auto":
        return not (current_app.debug or current_app.testing)
    return setting == "required"


def after_password(user: StaffUser, next_url: str | None) -> Response:
    """The password was right: log in now, or ask for the second factor first."""
    if not user.totp_secret and not required():
        return redirect(finish(user, next_url))
    session[PENDING] = {"user": user.get_id(), "at": int(time.time()), "next": next_url}
    target = "staff.twofactor.code" if user.totp_secret else "staff.twofactor.setup"
    return redirect(url_for(target))


def pending_user() -> StaffUser | None:
    data = session.get(PENDING)
    if not isinstance(data, dict) or time.time() - data.get("at", 0) > PENDING_SECONDS:
        return None
    token = str(data.get("user", ""))  # the session token: logout or a new password ends it
    return db.session.scalar(sa.select(StaffUser).filter_by(session_token=token))


def finish(user: StaffUser, next_url: str | None) -> str:
    """Log `user` in (every factor checked); return where to go."""
    # A new session: nothing from before the login (a CSRF secret an attacker planted with their
    # own cookie, the pending state) carries over into the logged-in one.
    session.clear()
    session.permanent = True  # the cookie expires after PERMANENT_SESSION_LIFETIME (12 hours)
    session["login_at"] = int(time.time())
    login_user(user)
    return guard.safe_next(next_url)


def limited_name(user: StaffUser) -> str:
    return f"2fa:{user.username}"[:80]


def normal_code(text: str) -> str:
    return re.sub(r"[\s-]", "", text).lower()


def totp_step(secret: str, code: str) -> int | None:
    """The time step `code` belongs to (now, or one step either side), or None."""
    if not re.fullmatch(r"\d{6}", code):
        return None
    totp = pyotp.TOTP(secret)
    now = totp.timecode(utcnow())
    for step in (now - 1, now, now + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def use_totp(user: StaffUser, code: str) -> bool:
    step = totp_step(user.totp_secret or "", code)
    if step is None:
        return False
    # Conditional, so two requests with one code cannot both pass.
    return (
        cast(
            CursorResult[Any],
            db.session.execute(
                sa.update(StaffUser)
                .where(
                    StaffUser.id == user.id,
                    sa.or_(StaffUser.totp_last_step.is_(None), StaffUser.totp_last_step < step),
                )
                .values(totp_last_step=step)
                .execution_options(synchronize_session=False)
            ),
        ).rowcount
        == 1
    )


def code_hash(code: str) -> str:
    return hashlib.sha256(normal_code(code).encode()).hexdigest()


def use_recovery_code(user: StaffUser, code: str) -> bool:
    return (
        cast(
            CursorResult[Any],
            db.session.execute(
                sa.update(RecoveryCode)
                .where(
                    RecoveryCode.user_id == user.id,
                    RecoveryCode.code_hash == code_hash(code),
                    RecoveryCode.used_at.is_(None),
                )
                .values(used_at=utcnow())
                .execution_options(synchronize_session=False)
            ),
        ).rowcount
        == 1
    )


def new_recovery_codes(user: StaffUser) -> list[str]:
    """Replace the account's recovery codes; return them in clear (shown once)."""
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [f"{c[:5]}-{c[5:]}" for c in (secrets.token_hex(5) for _ in range(RECOVERY_CODES))]
    db.session.add_all(RecoveryCode(user_id=user.id, code_hash=code_hash(c)) for c in codes)
    return codes


def restart(message: str) -> Response:
    session.pop(PENDING, None)
    flash(message)
    return redirect(url_for("staff.auth.login"))


@bp.get("/code")
def code():
    if pending_user() is None:
        return restart("Log in again.")
    return render_template("staff/twofactor.html", form=CodeForm())


@bp.post("/code")
def code_post():
    user = pending_user()
    if user is None or not user.totp_secret:
        return restart("That took too long: log in again.")
    form = CodeForm()
    if not form.validate_on_submit():
        return render_template("staff/twofactor.html", form=form), 400
    name = limited_name(user)
    if not guard.admit_attempt(name):  # counted before it is checked, as a password is
        current_app.logger.warning("code rate limit hit for %r from %s", name, guard.address())
        error = "Too many wrong codes. Wait 15 minutes, then try again."
        return render_template("staff/twofactor.html", form=form, error=error), 429
    text = normal_code(form.code.data)
    recovery = False
    if not use_totp(user, text):
        recovery = use_recovery_code(user, text)
        if not recovery:  # the attempt stays counted as a failure
            db.session.rollback()
            error = "Wrong code. Use the newest code from your app, or a recovery code."
            return render_template("staff/twofactor.html", form=form, error=error), 401
    db.session.execute(sa.delete(LoginAttempt).filter_by(username=name, ip=guard.address()))
    if recovery:
        audit.record("account", user.username, detail="logged in with a recovery code")
    db.session.commit()
    target = finish(user, (session.get(PENDING) or {}).get("next"))
    if recovery:  # after finish: a new session starts there
        flash(
            "You used a recovery code; each works once. If your phone is lost, ask an admin "
            "to reset your two factors."
        )
    return redirect(target)


def enrolling_user() -> StaffUser | None:
    """Who may enrol now: the pending account without a secret, or a logged-in one without."""
    user = current_user if current_user.is_authenticated else pending_user()
    return user if user is not None and not user.totp_secret else None


def setup_page(user: StaffUser, form: CodeForm, error: str | None = None):
    secret = session.setdefault(NEW_SECRET, pyotp.random_base32())
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=ISSUER)
    qr = Markup(segno.make(uri, error="m").svg_inline(scale=5, title="Scan with your app"))
    spaced = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    return render_template(
        "staff/twofactor_setup.html", form=form, qr=qr, secret=spaced, error=error
    )


@bp.get("/setup")
def setup():
    user = enrolling_user()
    if user is None:
        return restart("Log in again.")
    return setup_page(user, CodeForm())


@bp.post("/setup")
def setup_post():
    user = enrolling_user()
    secret = session.get(NEW_SECRET)
    if user is None or not secret:
        return restart("That took too long: log in again.")
    form = CodeForm()
    if not form.validate_on_submit():
        return setup_page(user, form), 400
    name = limited_name(user)
    if not guard.admit_attempt(name):
        return setup_page(user, form, "Too many wrong codes. Wait 15 minutes."), 429
    step = totp_step(secret, normal_code(form.code.data))
    if step is None:
        return setup_page(
            user, form, "That code does not match: check the phone's clock and try the newest code."
        ), 401
    db.session.execute(sa.delete(LoginAttempt).filter_by(username=name, ip=guard.address()))
    user = db.session.get(StaffUser, user.id)
    user.totp_secret, user.totp_last_step = secret, step
    codes = new_recovery_codes(user)
    audit.record("account", user.username, detail="enrolled two factors")
    db.session.commit()
    pending = session.get(PENDING) or {}
    next_url = finish(user, pending.get("next"))
    return render_template("staff/recovery_codes.html", codes=codes, next_url=next_url)


def enforce() -> Response | None:
    """The staff blueprint's before_request: a session from before two factors were required
    (or from an account enrolled nowhere) must enrol before it sees anything else."""
    if (
        current_user.is_authenticated
        and not current_user.totp_secret
        and required()
        and not (request.endpoint or "").startswith(("staff.twofactor.", "staff.auth."))
    ):
        return redirect(url_for("staff.twofactor.setup"))
    return None
