"""Two factors: after the password, a 6-digit code from an authenticator app (TOTP, RFC 6238).

A stolen or guessed password alone must not open recordings of families naming a detained
relative. So once the password is right, login (`after_password`) either logs in (two factors
optional and not enrolled) or keeps the account *pending* in the session for five minutes and
asks for a code, or, on first login when two factors are required, for enrolment.

Enrolment must not trust whoever logs in first with the password: it starts with a one-time
enrolment code that `ivr staff add`, `ivr staff reset-2fa` and the admin's accounts page hand out
(to be passed on out of band, valid ENROL_HOURS, only its SHA-256 kept). Then a QR code (segno,
inline SVG, no external service sees the secret) and one confirming code, then ten one-time
recovery codes shown once and stored as SHA-256 (they are random, 50 bits each, so a fast hash is
enough; the password's slow hash is for what people choose).

The TOTP secret is stored encrypted (DATA_KEYS, MultiFernet, edge/keys.py) and never put in the
session cookie, which is signed but readable: while enrolling, the secret being set up is derived
from the enrolment code's hash with a key only the app has, so nothing needs to be carried
between the page with the QR code and the confirming post.

Codes are rate-limited like the password, in the same table and window, under the name
`2fa:<user>`: a right password clears the password's failures, not the code's. A code is good
for its 30-second step and one step either side (clock drift), once: the last step used is kept,
so a code read over a shoulder cannot log in again. Every wrong password, enrolment code or code
also counts towards STAFF_LOCK_AFTER in a row, from anywhere, which locks the account and alerts
(guard.count_failure). `ivr staff reset-2fa NAME` is for a lost phone.
"""

from __future__ import annotations

import base64
import datetime as dt
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
from ivr.accounts.manage import (  # noqa: F401  (new_enrol_code, reset_two_factors: re-exported)
    ENROL_HOURS,
    code_hash,
    new_enrol_code,
    normal_code,
    reset_two_factors,
)
from ivr.accounts.models import LoginAttempt, RecoveryCode, StaffUser
from ivr.db import db, utcnow
from ivr.edge import keys
from ivr.settings import settings
from ivr.staff import guard

bp = Blueprint("twofactor", __name__, url_prefix="/login")
PENDING = "2fa_pending"
ENROL = "2fa_enrol"  # the enrolment code was right: {"user": session token, "at": time}
PENDING_SECONDS = 300
RECOVERY_CODES = 10
ISSUER = "Molina hotline"


class CodeForm(FlaskForm):
    code = StringField("Code", validators=[DataRequired(), Length(max=32)])


class EnrolForm(FlaskForm):
    enrol_code = StringField("Enrolment code", validators=[DataRequired(), Length(max=64)])


def enrol_code_valid(user: StaffUser) -> bool:
    expires = user.enrol_code_expires
    if not user.enrol_code_hash or expires is None:
        return False
    if expires.tzinfo is None:  # SQLite gives it back without its zone (UTC)
        expires = expires.replace(tzinfo=dt.UTC)
    return expires > utcnow()


def enrol_code_ok(user: StaffUser, code: str) -> bool:
    return enrol_code_valid(user) and hmac.compare_digest(
        user.enrol_code_hash or "", code_hash(code)
    )


def enrol_tag(user: StaffUser) -> str:
    """Names the enrolment code in the session without revealing anything about it."""
    return keys.derive("enrol session", f"{user.id}:{user.enrol_code_hash}")[:12].hex()


def enrol_secret(user: StaffUser) -> str:
    """The secret being set up: a function of this enrolment code, computable by the app only."""
    digest = keys.derive("totp enrolment", f"{user.id}:{user.enrol_code_hash}")
    return base64.b32encode(digest[:20]).decode()


def secret_of(user: StaffUser) -> str:
    return keys.decrypt(user.totp_secret) if user.totp_secret else ""


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
    user = db.session.scalar(sa.select(StaffUser).filter_by(session_token=token))
    return None if user is None or user.locked_at else user


def finish(user: StaffUser, next_url: str | None) -> str:
    """Log `user` in (every factor checked); return where to go."""
    # A new session: nothing from before the login (a CSRF secret an attacker planted with their
    # own cookie, the pending state) carries over into the logged-in one.
    session.clear()
    session.permanent = True  # the cookie expires after PERMANENT_SESSION_LIFETIME (12 hours)
    session["login_at"] = int(time.time())
    db.session.execute(
        sa.update(StaffUser)
        .where(StaffUser.id == user.id)
        .values(failures=0)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    login_user(user)
    return guard.safe_next(next_url)


def limited_name(user: StaffUser) -> str:
    return f"2fa:{user.username}"[:80]


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
    step = totp_step(secret_of(user), code)
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


def recovery_left(user: StaffUser) -> int:
    """How many of the account's recovery codes are still unused."""
    return db.session.execute(
        sa.select(sa.func.count())
        .select_from(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
    ).scalar_one()


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
        guard.audit_limit(user.username, guard.CODES_LIMITED)
        error = "Too many wrong codes. Wait 15 minutes, then try again."
        return render_template("staff/twofactor.html", form=form, error=error), 429
    text = normal_code(form.code.data)
    recovery = False
    if not use_totp(user, text):
        recovery = use_recovery_code(user, text)
        if not recovery:  # the attempt stays counted as a failure
            db.session.rollback()
            guard.audit_failure(user.username, "wrong code")
            if guard.count_failure(user):
                return restart(guard.LOCKED)
            error = "Wrong code. Use the newest code from your app, or a recovery code."
            return render_template("staff/twofactor.html", form=form, error=error), 401
    db.session.execute(sa.delete(LoginAttempt).filter_by(username=name, ip=guard.address()))
    if recovery:
        audit.record("account", user.username, detail="logged in with a recovery code")
    db.session.commit()
    target = finish(user, (session.get(PENDING) or {}).get("next"))
    if recovery:  # after finish: a new session starts there
        left = recovery_left(user)
        flash(
            f"You used a recovery code; each works once, and {left} are left (new ones: your "
            "profile). If your phone is lost, ask an admin to reset your two factors."
        )
    return redirect(target)


def enrolling_user() -> StaffUser | None:
    """Who may enrol now: the pending account without a secret, or a logged-in one without."""
    user = current_user if current_user.is_authenticated else pending_user()
    return user if user is not None and not user.totp_secret else None


def enrol_started(user: StaffUser) -> bool:
    """Whether this session gave the account's current enrolment code (still valid)."""
    data = session.get(ENROL)
    return (
        isinstance(data, dict)
        and data.get("user") == user.get_id()
        and time.time() - data.get("at", 0) < PENDING_SECONDS
        and enrol_code_valid(user)
        and hmac.compare_digest(str(data.get("tag", "")), enrol_tag(user))
    )


def enrol_page(form: EnrolForm, error: str | None = None):
    return render_template("staff/twofactor_enrol.html", form=form, error=error)


def setup_page(user: StaffUser, form: CodeForm, error: str | None = None):
    secret = enrol_secret(user)
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=ISSUER)
    qr = Markup(segno.make(uri, error="m").svg_inline(scale=5, title="Scan with your app"))
    spaced = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    return render_template(
        "staff/twofactor_setup.html", form=form, qr=qr, secret=spaced, uri=uri, error=error
    )


@bp.get("/setup")
def setup():
    user = enrolling_user()
    if user is None:
        return restart("Log in again.")
    if not enrol_started(user):
        return enrol_page(EnrolForm())
    return setup_page(user, CodeForm())


@bp.post("/setup")
def setup_post():
    user = enrolling_user()
    if user is None:
        return restart("That took too long: log in again.")
    name = limited_name(user)
    if not enrol_started(user):
        return enrol_code_post(user, name)
    form = CodeForm()
    if not form.validate_on_submit():
        return setup_page(user, form), 400
    if not guard.admit_attempt(name):
        guard.audit_limit(user.username, guard.CODES_LIMITED)
        return setup_page(user, form, "Too many wrong codes. Wait 15 minutes."), 429
    user = db.session.get(StaffUser, user.id)
    secret = enrol_secret(user)
    step = totp_step(secret, normal_code(form.code.data))
    if step is None:
        guard.audit_failure(user.username, "wrong code while setting up two factors")
        if guard.count_failure(user):
            return restart(guard.LOCKED)
        return setup_page(
            user, form, "That code does not match: check the phone's clock and try the newest code."
        ), 401
    db.session.execute(sa.delete(LoginAttempt).filter_by(username=name, ip=guard.address()))
    user.totp_secret, user.totp_last_step = keys.encrypt(secret), step
    user.enrol_code_hash = user.enrol_code_expires = None  # used: it cannot enrol again
    codes = new_recovery_codes(user)
    audit.record("account", user.username, detail="enrolled two factors")
    db.session.commit()
    pending = session.get(PENDING) or {}
    next_url = finish(user, pending.get("next"))
    return render_template("staff/recovery_codes.html", codes=codes, next_url=next_url)


def enrol_code_post(user: StaffUser, name: str):
    form = EnrolForm()
    if not form.validate_on_submit():
        return enrol_page(form), 400
    if not guard.admit_attempt(name):
        guard.audit_limit(user.username, guard.CODES_LIMITED)
        return enrol_page(form, "Too many wrong codes. Wait 15 minutes."), 429
    user = db.session.get(StaffUser, user.id) or user
    if not enrol_code_ok(user, form.enrol_code.data or ""):
        guard.audit_failure(user.username, "wrong enrolment code")
        if guard.count_failure(user):
            return restart(guard.LOCKED)
        error = (
            "That enrolment code is wrong or has expired (they last 24 hours). Ask an admin "
            "for a new one."
        )
        return enrol_page(form, error), 401
    session[ENROL] = {"user": user.get_id(), "at": int(time.time()), "tag": enrol_tag(user)}
    return redirect(url_for("staff.twofactor.setup"))


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
