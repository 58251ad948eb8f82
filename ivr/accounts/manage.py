"""Managing staff accounts: the one service behind `ivr staff …` and the admin's Accounts page.

Both used to (or would) check names, phones and roles and write the audit entry each in their own
way; here each change is one function that validates, changes, audits (who, what, to whom) and
leaves the commit to the caller, so the command line and the web cannot drift apart. A refusal is
an `AccountError` whose message is meant for the person who asked (the CLI prints it, the page
shows it beside the form).

Two rules hold on the web: an admin cannot remove or demote their own account (the one they are
using to do it), nor the last admin (nobody could manage the others from the web after). `cli`
(whoever has a shell on the server) is nobody's account and is not held to the second rule: the
server is where a lost admin is mended (`ivr staff add --admin`), so it may also remove the last.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from werkzeug.security import generate_password_hash

from ivr.accounts import audit
from ivr.accounts.models import ROLES, RecoveryCode, StaffUser, new_session_token
from ivr.db import db, utcnow
from ivr.edge import logmask
from ivr.phones import e164, parse_valid

CLI = "cli"  # the audit log's actor for changes made on the server
ENROL_HOURS = 24
MIN_PASSWORD = 10
USERNAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,79}")


class AccountError(ValueError):
    """A change refused, with the reason in words for whoever asked."""


def normal_username(name: str) -> str:
    return name.strip().lower()[:80]


def staff_phone(text: str) -> str | None:
    """E.164 for a real phone number (U.S. numbers may be typed without +1); None otherwise."""
    text = text.strip()
    number = parse_valid(text, None if text.startswith("+") else "US")
    return e164(number) if number is not None else None


def masked(number: str | None) -> str:
    """A staff phone as the logs show one (its last two digits): the audit log names no phone."""
    return logmask.mask(number) if number else "none"


def normal_code(text: str) -> str:
    return re.sub(r"[\s-]", "", text).lower()


def code_hash(code: str) -> str:
    return hashlib.sha256(normal_code(code).encode()).hexdigest()


def new_enrol_code(user: StaffUser) -> str:
    """A new one-time enrolment code for `user` (not committed); returned in clear, once."""
    raw = secrets.token_hex(6)
    user.enrol_code_hash = code_hash(raw)
    user.enrol_code_expires = utcnow() + dt.timedelta(hours=ENROL_HOURS)
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def reset_two_factors(user: StaffUser) -> str:
    """Forget the account's authenticator and recovery codes, end its sessions, unlock it, and
    return a new enrolment code (not committed)."""
    user.totp_secret = None
    user.totp_last_step = None
    user.session_token = new_session_token()
    user.locked_at, user.failures = None, 0
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    return new_enrol_code(user)


def initial_password() -> str:
    """A password to hand over once: 4 groups of 4 letters and digits (about 80 bits), easy to
    read aloud and type on a phone."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"  # nothing that reads as another character
    raw = "".join(secrets.choice(alphabet) for _ in range(16))
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"The password must be at least {MIN_PASSWORD} characters.")
    return password


def find(username: str) -> StaffUser | None:
    return db.session.scalar(sa.select(StaffUser).filter_by(username=normal_username(username)))


def admin_count() -> int:
    """The admins, their rows locked until the change commits: two admins demoting each other
    at once cannot both see the other one still there. SQLite has no FOR UPDATE: the no-op
    write first takes its database write lock, which serialises the two (the second waits, or
    fails rather than leave no admin)."""
    db.session.execute(
        sa.update(StaffUser)
        .where(StaffUser.role == "admin")
        .values(role=StaffUser.role)
        .execution_options(synchronize_session=False)
    )
    admins = db.session.scalars(
        sa.select(StaffUser.id).where(StaffUser.role == "admin").with_for_update()
    ).all()
    return len(admins)


@dataclass
class Added:
    user: StaffUser
    enrol_code: str
    password: str | None  # generated here, to be shown once; None when the caller chose it


def add(
    actor: str, username: str, role: str = "staff", phone: str = "", password: str | None = None
) -> Added:
    """Create an account (not committed). The first account is an admin whatever was asked, so
    somebody can always manage the others. Without `password`, one is made up and returned once."""
    name = normal_username(username)
    if not USERNAME.fullmatch(name):
        raise AccountError(
            "A username is letters, digits, '.', '_', '@' or '-' (up to 80), starting with a "
            "letter or digit."
        )
    if find(name) is not None:
        raise AccountError(f"An account {name} already exists.")
    if role not in ROLES:
        raise AccountError(f"The role is one of: {', '.join(ROLES)}.")
    number = staff_phone(phone) if phone.strip() else None
    if phone.strip() and number is None:
        raise AccountError(
            f"{phone.strip()!r} is not a phone number: give it with its country code, "
            "e.g. +13125550100."
        )
    first = db.session.scalar(sa.select(StaffUser.id).limit(1)) is None
    role = "admin" if first else role
    made_up = initial_password() if password is None else None
    user = StaffUser(
        username=name,
        phone=number,
        role=role,
        password_hash=generate_password_hash(made_up or check_password(password or "")),
    )
    db.session.add(user)
    db.session.flush()  # its id: part of what the enrolment code sets up
    code = new_enrol_code(user)
    detail = f"added {name} ({role})" + (f", phone {masked(number)}" if number else "")
    audit.record("account", actor, detail=detail)
    return Added(user, code, made_up)


def _not_self(actor: str, user: StaffUser, what: str) -> None:
    if actor == user.username:
        raise AccountError(f"You cannot {what} your own account: ask another admin.")


def _not_last_admin(actor: str, user: StaffUser, what: str) -> None:
    if actor != CLI and user.role == "admin" and admin_count() <= 1:
        raise AccountError(
            f"{user.username} is the only admin: make another account admin before you {what} it."
        )


def set_role(actor: str, user: StaffUser, role: str) -> bool:
    """Make `user` staff or admin; its sessions end, so the new role applies at once. Returns
    whether anything changed."""
    if role not in ROLES:
        raise AccountError(f"The role is one of: {', '.join(ROLES)}.")
    if role == user.role:
        return False
    if role != "admin":
        _not_self(actor, user, "demote")
        _not_last_admin(actor, user, "demote")
    user.role = role
    user.session_token = new_session_token()
    audit.record("account", actor, detail=f"{user.username} is now {role}")
    return True


def set_phone(actor: str, user: StaffUser, text: str) -> bool:
    """Set (or, with an empty text, remove) the phone a call-back rings first. The audit says
    that it changed, with the number masked as the logs mask it. Returns whether it changed."""
    number = staff_phone(text) if text.strip() else None
    if text.strip() and number is None:
        raise AccountError(
            "That is not a phone number Twilio can call: type it with its country code, "
            "e.g. +1 312 555 0100."
        )
    if number == user.phone:
        return False
    whose = "their own" if actor == user.username else f"{user.username}'s"
    was, now = masked(user.phone), masked(number)
    user.phone = number
    audit.record("phone", actor, detail=f"changed {whose} phone: {was} → {now}")
    return True


def set_password(actor: str, user: StaffUser, password: str) -> None:
    """A new password; every session of the account ends."""
    user.password_hash = generate_password_hash(check_password(password))
    user.session_token = new_session_token()
    audit.record("account", actor, detail=f"new password for {user.username}")


def reset_2fa(actor: str, user: StaffUser) -> str:
    code = reset_two_factors(user)
    audit.record("account", actor, detail=f"reset two factors of {user.username}")
    return code


def unlock(actor: str, user: StaffUser) -> None:
    user.locked_at, user.failures = None, 0
    audit.record("account", actor, detail=f"unlocked {user.username}")


def check_removable(actor: str, user: StaffUser) -> None:
    """Raise AccountError if `actor` may not remove `user` (asked before the confirmation)."""
    _not_self(actor, user, "remove")
    _not_last_admin(actor, user, "remove")


def remove(actor: str, user: StaffUser) -> None:
    """Delete the account; its sessions end at once (the cookie names a token no row has)."""
    check_removable(actor, user)
    # Explicitly: SQLite does not enforce the foreign key's cascade, and a later account may get
    # the same id.
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    db.session.delete(user)
    audit.record("account", actor, detail=f"removed {user.username} ({user.role})")
