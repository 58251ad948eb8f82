"""Your profile: the phone a call-back through the hotline rings first, and your recovery codes.

A change of phone is audited (masked, through `accounts.manage`): it decides whose phone hears
families' voices, so an admin can see when and by whom it was changed.

Recovery codes can be renewed here (the old ones stop working), with a current code from the
authenticator app: a session left open on a shared computer is not enough to get a new set. The
code is rate-limited and counts towards the lock as at login (`guard`).
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, session, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import Length, ValidationError

from ivr.accounts import audit, manage
from ivr.accounts.manage import staff_phone
from ivr.accounts.models import StaffUser
from ivr.db import db
from ivr.staff import guard, twofactor

bp = Blueprint("profile", __name__)


class ProfileForm(FlaskForm):
    phone = StringField("Your phone", validators=[Length(max=40)])

    def validate_phone(self, field) -> None:
        if (field.data or "").strip() and staff_phone(field.data) is None:
            raise ValidationError(
                "That is not a phone number Twilio can call: type it with its country code, "
                "e.g. +1 312 555 0100."
            )


class RenewForm(FlaskForm):
    code = StringField("Code from your app", validators=[Length(max=32)])


def page(form: ProfileForm, renew: RenewForm | None = None, error: str | None = None):
    user = current_user
    left = twofactor.recovery_left(user) if user.totp_secret else None
    return render_template(
        "staff/profile.html",
        form=form,
        renew=renew or RenewForm(),
        recovery_left=left,
        recovery_total=twofactor.RECOVERY_CODES,
        renew_error=error,
    )


@bp.get("/profile")
def show():
    return page(ProfileForm(phone=current_user.phone or ""))


@bp.post("/profile/recovery-codes")
def recovery_codes():
    """New recovery codes, for a current code from the app; shown once."""
    form = RenewForm()
    profile = ProfileForm(phone=current_user.phone or "")
    user = db.session.get(StaffUser, current_user.id)
    if not user.totp_secret:
        return page(profile, form, "Set up two factors first."), 400
    if not form.validate_on_submit() or not (form.code.data or "").strip():
        return page(profile, form, "Type the 6-digit code your app shows now."), 400
    if not guard.admit_attempt(twofactor.limited_name(user)):
        guard.audit_limit(user.username, guard.CODES_LIMITED)
        return page(profile, form, "Too many wrong codes. Wait 15 minutes."), 429
    user = db.session.get(StaffUser, current_user.id)
    if not twofactor.use_totp(user, twofactor.normal_code(form.code.data or "")):
        db.session.rollback()
        guard.audit_failure(user.username, "wrong code to renew recovery codes")
        if guard.count_failure(user):
            session.clear()
            flash(guard.LOCKED)
            return redirect(url_for("staff.auth.login"))
        return page(profile, form, "Wrong code: use the newest code from your app."), 401
    codes = twofactor.new_recovery_codes(user)
    audit.record("account", user.username, detail="renewed their recovery codes")
    db.session.commit()
    return render_template(
        "staff/recovery_codes.html",
        codes=codes,
        next_url=url_for("staff.profile.show"),
        renewed=True,
    )


@bp.post("/profile")
def save():
    form = ProfileForm()
    if not form.validate_on_submit():
        return page(form), 400
    user = db.session.get(StaffUser, current_user.id)
    manage.set_phone(user.username, user, form.phone.data or "")  # validated above
    db.session.commit()
    flash(f"Your phone is now {user.phone}." if user.phone else "Your phone is removed.")
    return redirect(url_for("staff.profile.show"))
