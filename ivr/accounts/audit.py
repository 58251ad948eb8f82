"""The audit log: who listened to which recording, exported which rows, deleted or purged what,
who logged in from where, and the security events around accounts: failed logins, lockouts,
account and phone changes.

Append-only, and tamper-evident. The code only ever inserts; the migrations add triggers that
refuse UPDATE, DELETE, TRUNCATE and (on SQLite) an INSERT OR REPLACE over an existing id. Triggers
stop a bug, not someone who can drop them, so each entry also carries an HMAC over its own content
and the previous entry's HMAC, with a key kept outside the database (AUDIT_KEY, see edge/keys.py),
and a one-row `audit_head` holds the HMAC of the last entry and the count, itself keyed. Whoever
rewrites, deletes or inserts an entry, or empties the table, cannot compute the HMACs that would
hide it: `ivr audit verify` names the first entry that does not match. On PostgreSQL, a role that
owns the tables and an app role with only SELECT and INSERT on the log make it append-only for the
app's own user too (README, "Data protection"). Each entry is also written to the log (without the
address), so the platform's log drain holds a copy that the database cannot rewrite.

Entries name requests by id and reference only, never by phone number, A-number or note, so the
log stays whole after retention purges the requests themselves and holds no caller's personal
data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass

import sqlalchemy as sa
from flask import has_request_context, request
from sqlalchemy import DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ivr.db import Model, db, utcnow
from ivr.edge import keys

ACTIONS = {
    "login": "Logged in",
    # The username as typed (normalised), never the password; an unknown name too.
    "failed_login": "Failed login",
    # Locked by STAFF_LOCK_AFTER wrong tries in a row, or refused by the 15-minute rate limit.
    "lockout": "Locked out",
    "listen": "Listened to the recording",
    "export": "Exported CSV",
    "delete": "Deleted personal data and recording",
    "purge": "Purged (retention)",
    "account": "Changed an account",
    "phone": "Changed a phone",  # masked as the logs mask numbers: it changed, not to what
}
SYSTEM = "retention"  # the actor of the daily purge
log = logging.getLogger("ivr.audit")


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
    # HMAC-SHA256 (hex) over the previous entry's mac and this entry's content (see `seal`).
    mac: Mapped[str | None] = mapped_column(String(64))


class AuditHead(Model):
    """One row: how many entries there are, the last one's id and mac, and an HMAC over those,
    so that emptying the table or cutting its tail shows."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    last_id: Mapped[int] = mapped_column(Integer, default=0)
    last_mac: Mapped[str] = mapped_column(String(64), default="")
    mac: Mapped[str] = mapped_column(String(64), default="")


def _moment(value: dt.datetime) -> str:
    """The time as stored: SQLite gives it back without its zone (always UTC here)."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds")


def content(entry: AuditEntry) -> bytes:
    return json.dumps(
        [
            entry.id,
            _moment(entry.created_at),
            entry.actor,
            entry.action,
            entry.request_id,
            entry.reference,
            entry.detail,
            entry.ip,
        ],
        ensure_ascii=True,
        separators=(",", ":"),
    ).encode()


def _hmac(key: bytes, *parts: bytes) -> str:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        mac.update(len(part).to_bytes(4, "big") + part)
    return mac.hexdigest()


def seal(key: bytes, previous_mac: str, entry: AuditEntry) -> str:
    return _hmac(key, b"entry", previous_mac.encode(), content(entry))


def head_mac(key: bytes, count: int, last_id: int, last_mac: str) -> str:
    return _hmac(key, b"head", str(count).encode(), str(last_id).encode(), last_mac.encode())


def _lock_head() -> AuditHead:
    """The head row, locked: on PostgreSQL the row lock, on SQLite the UPDATE takes the one write
    lock before the previous mac is read, so two entries never chain onto the same one."""
    updated = db.session.execute(
        sa.update(AuditHead)
        .where(AuditHead.id == 1)
        .values(count=AuditHead.count)
        .execution_options(synchronize_session=False)
    )
    if not updated.rowcount:  # type: ignore[attr-defined]
        db.session.add(AuditHead(id=1, count=0, last_id=0, last_mac="", mac=""))
        db.session.flush()
    head = db.session.execute(
        sa.select(AuditHead).where(AuditHead.id == 1).execution_options(populate_existing=True)
    ).scalar_one()
    return head


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
    key = keys.audit_key()
    head = _lock_head()
    # The id is part of what is sealed, and an entry is never updated: take the next id under
    # the head's lock rather than from the database after the insert.
    last = db.session.execute(sa.select(sa.func.max(AuditEntry.id))).scalar_one()
    next_id = (last or 0) + 1
    entry = AuditEntry(
        id=next_id,
        action=action,
        actor=actor[:80],
        request_id=request_id,
        reference=reference,
        detail=detail,
        ip=ip,
        created_at=utcnow(),
    )
    entry.mac = seal(key, head.last_mac, entry)
    db.session.add(entry)
    head.count += 1
    head.last_id, head.last_mac = entry.id, entry.mac
    head.mac = head_mac(key, head.count, head.last_id, head.last_mac)
    db.session.flush()
    # The drain's copy: no address (a staff member's), nothing else personal by design.
    log.info(
        "AUDIT %s",
        json.dumps(
            {
                "id": entry.id,
                "at": _moment(entry.created_at),
                "actor": entry.actor,
                "action": entry.action,
                "request_id": entry.request_id,
                "reference": entry.reference,
                "detail": entry.detail,
                "mac": entry.mac,
            },
            ensure_ascii=False,
        ),
    )
    return entry


@dataclass
class Problem:
    entry_id: int | None
    why: str

    def __str__(self) -> str:
        where = f"entry {self.entry_id}" if self.entry_id is not None else "the log"
        return f"{where}: {self.why}"


def verify() -> Problem | None:
    """Walk the chain in id order; the first entry (or the head) that does not match, or None."""
    key = keys.audit_key()
    previous = ""
    count = 0
    last_id = 0
    for entry in db.session.scalars(sa.select(AuditEntry).order_by(AuditEntry.id)).all():
        if entry.mac is None or not hmac.compare_digest(entry.mac, seal(key, previous, entry)):
            return Problem(
                entry.id,
                "does not match its HMAC: it was changed or inserted, or the entry before it "
                "was deleted",
            )
        previous, count, last_id = entry.mac, count + 1, entry.id
    head = db.session.get(AuditHead, 1)
    if head is None or (head.count == 0 and not head.mac):
        if count:
            return Problem(None, f"{count} entries but no head: the head row was removed")
        return None  # nothing audited yet
    if not hmac.compare_digest(head.mac, head_mac(key, head.count, head.last_id, head.last_mac)):
        return Problem(None, "the head row was changed")
    if count == 0:
        return Problem(
            None, f"the table is empty but {head.count} entries were written: it was emptied"
        )
    if (head.count, head.last_id, head.last_mac) != (count, last_id, previous):
        return Problem(
            head.last_id,
            f"the log ends at entry {last_id} with {count} entries, but {head.count} were "
            f"written ending at entry {head.last_id}: entries were deleted or added",
        )
    return None
