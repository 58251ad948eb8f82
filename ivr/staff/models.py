"""What the staff side keeps: accounts and login attempts (for rate limiting).

Login attempts live in the database, not in memory, because the app runs as several
processes: a limit held by one process would mean nothing to the others.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Model, utcnow


class StaffUser(Model):
    """A person who may hear requests and mark them handled."""

    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    # Part of the session cookie: bumped on logout or password change, so a copied cookie dies.
    session_version: Mapped[int] = mapped_column(default=1)
    # E.164; a call-back through the hotline rings this phone first (see staff/calling.py).
    phone: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    # Flask-Login's user protocol.
    is_active = True
    is_authenticated = True
    is_anonymous = False

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"


class LoginAttempt(Model):
    """A failed login, counted per username and address over a sliding window."""

    __tablename__ = "staff_login_attempts"
    __table_args__ = (Index("ix_staff_login_attempts_lookup", "username", "ip", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80))
    ip: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
