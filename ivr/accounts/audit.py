"""The audit log: who listened to which recording, exported which rows, deleted or purged what,
and who logged in from where.

Append-only: the code only ever inserts, and the migration adds triggers that refuse UPDATE and
DELETE on both SQLite and PostgreSQL, so not even a bug (or a curious admin with `ivr shell`) can
rewrite history through the app's database user. Entries name requests by id and reference only,
never by phone number, A-number or note, so the log stays whole after retention purges the
requests themselves and holds no caller's personal data.
"""

from __future__ import annotations

import datetime as dt

from flask import has_request_context, request
from sqlalchemy import DateTime, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ivr.db import Model, db, utcnow

ACTIONS = {
    "login": "Logged in",
    "listen": "Listened to the recording",
    "export": "Exported CSV",
    "delete": "Deleted personal data and recording",
    "purge": "Purged (retention)",
    "account": "Changed an account",
}
SYSTEM = "retention"  # the actor of the daily purge


class AuditEntry(Model):
    """One thing a person (or the retention job) did to personal data. Never updated."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # A name, not a foreign key: the entry outlives the account.
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[int | None]
    reference: Mapped[str | None] = mapped_column(String(12))
    detail: Mapped[str] = mapped_column(Text, default="")
    ip: Mapped[str] = mapped_column(String(64), default="")


def record(
    action: str,
    actor: str,
    *,
    request_id: int | None = None,
    reference: str | None = None,
    detail: str = "",
) -> AuditEntry:
    """Add an entry to the current transaction (committed with what it describes)."""
    ip = (request.remote_addr or "")[:64] if has_request_context() else ""
    entry = AuditEntry(
        action=action,
        actor=actor[:80],
        request_id=request_id,
        reference=reference,
        detail=detail,
        ip=ip,
    )
    db.session.add(entry)
    return entry
