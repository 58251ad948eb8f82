"""Your profile: the phone a call-back through the hotline rings first.

A change of phone is audited (masked, through `accounts.manage`): it decides whose phone hears
families' voices, so an admin can see when and by whom it was changed.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import Length, ValidationError

from ivr.accounts import manage
from ivr.accounts.manage import staff_phone
from ivr.accounts.models import StaffUser
from ivr.db import db

bp = Blueprint("profile", __name__)


class ProfileForm(FlaskForm):
    phone = StringField("Your phone", validators=[Length(max=40)])

    def validate_phone(self, field) -> None:
        if (field.data or "").strip() and staff_phone(field.data) is None:
            raise ValidationError(
                "That is not a phone number Twilio can call: type it with its country code, "
                "e.g. +1 312 555 0100."
            )


def page(form: ProfileForm):
    return render_template("staff/profile.html", form=form)


@bp.get("/profile")
def show():
    return page(ProfileForm(phone=current_user.phone or ""))


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
