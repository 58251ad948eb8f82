"""What the staff side keeps: accounts (with their role and second factor), recovery codes, and
login attempts (for rate limiting).

Login attempts live in the database, not in memory, because the app runs as several
processes: a limit held by one process would mean nothing to the others.
"""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import DateTime, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from ivr.db import Model, utcnow

ROLES = ("staff", "admin")


def new_session_token() -> str:
    return secrets.token_urlsafe(32)  # 43 characters


class StaffUser(Model):
    """A person who may hear requests and mark them handled; an admin may also manage accounts,
    export, delete and read the audit log (see roles.py)."""

    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    # What the session cookie names the account by: random, so a cookie of a removed account never
    # matches another (SQLite reuses row ids), and replaced on logout or password change, so a
    # copied cookie dies.
    session_token: Mapped[str] = mapped_column(String(64), unique=True, default=new_session_token)
    role: Mapped[str] = mapped_column(String(16), default="staff")
    # The TOTP secret once enrolled, encrypted with DATA_KEYS (a Fernet token, edge/keys.py), and
    # the last time step used, so a code seen over a shoulder cannot be used a second time (see
    # twofactor.py).
    totp_secret: Mapped[str | None] = mapped_column(String(255))
    totp_last_step: Mapped[int | None]
    # E.164; a call-back through the hotline rings this phone first (requests/service/calling.py).
    phone: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Enrolling two factors needs a one-time code handed over out of band (`ivr staff add`,
    # `reset-2fa`, the admin's accounts page): its SHA-256, and when it stops working.
    enrol_code_hash: Mapped[str | None] = mapped_column(String(64))
    enrol_code_expires: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # Wrong passwords and codes in a row, from anywhere; at STAFF_LOCK_AFTER the account locks.
    failures: Mapped[int] = mapped_column(default=0, server_default="0")
    locked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    # Flask-Login's user protocol.
    is_active = True
    is_authenticated = True
    is_anonymous = False

    def get_id(self) -> str:
        return self.session_token

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class LoginAttempt(Model):
    """A login attempt, counted per username (and address) over a sliding window.

    Written before the password is checked; a successful login deletes its address's rows, so
    what remains are failures (and attempts being checked right now).
    """

    __tablename__ = "staff_login_attempts"
    __table_args__ = (Index("ix_staff_login_attempts_lookup", "username", "ip", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80))
    ip: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RecoveryCode(Model):
    """A one-time code that stands in for a lost phone; only its SHA-256 is kept."""

    __tablename__ = "staff_recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("staff_users.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
