"""Your profile: the phone a call-back through the hotline rings first."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import Length, ValidationError

from ivr.accounts.models import StaffUser
from ivr.db import db
from ivr.phones import e164, parse_valid

bp = Blueprint("profile", __name__)


def staff_phone(text: str) -> str | None:
    """E.164 for a real phone number (U.S. numbers may be typed without +1); None otherwise."""
    text = text.strip()
    number = parse_valid(text, None if text.startswith("+") else "US")
    return e164(number) if number is not None else None


class ProfileForm(FlaskForm):
    phone = StringField("Your phone", validators=[Length(max=40)])

    def validate_phone(self, field) -> None:
        if (field.data or "").strip() and staff_phone(field.data) is None:
            raise ValidationError(
                "That is not a phone number Twilio can call: type it with its country code, "
                "e.g. +1 312 555 0100."
            )


@bp.get("/profile")
def show():
    return render_template("staff/profile.html", form=ProfileForm(phone=current_user.phone or ""))


@bp.post("/profile")
def save():
    form = ProfileForm()
    if not form.validate_on_submit():
        return render_template("staff/profile.html", form=form), 400
    user = db.session.get(StaffUser, current_user.id)
    user.phone = staff_phone(form.phone.data) if (form.phone.data or "").strip() else None
    db.session.commit()
    flash(f"Your phone is now {user.phone}." if user.phone else "Your phone is removed.")
    return redirect(url_for("staff.profile.show"))
