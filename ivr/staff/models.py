"""What the staff side keeps: accounts, login attempts (for rate limiting) and the alert outbox.

Login attempts and alerts live in the database, not in memory, because the app runs as several
processes: a limit or a "sent" flag held by one process would mean nothing to the others.
"""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import DateTime, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Model, utcnow

CHANNELS = ("sms", "email")
ALERT_STATUSES = ("pending", "sending", "sent", "failed")


def new_session_token() -> str:
    return secrets.token_urlsafe(32)  # 43 characters


class StaffUser(Model):
    """A person who may hear requests and mark them handled."""

    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    # What the session cookie names the account by: random, so a cookie of a removed account never
    # matches another (SQLite reuses row ids), and replaced on logout or password change, so a
    # copied cookie dies.
    session_token: Mapped[str] = mapped_column(String(64), unique=True, default=new_session_token)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    # Flask-Login's user protocol.
    is_active = True
    is_authenticated = True
    is_anonymous = False

    def get_id(self) -> str:
        return self.session_token


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


class Alert(Model):
    """One message to one recipient about one request: the outbox row that makes it sent once."""

    __tablename__ = "staff_alerts"
    __table_args__ = (UniqueConstraint("request_id", "channel", "recipient"),
                      Index("ix_staff_alerts_due", "status", "next_attempt_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("callback_requests.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(String(8))
    recipient: Mapped[str] = mapped_column(String(254))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
