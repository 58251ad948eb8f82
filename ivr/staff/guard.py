"""What both login steps check: attempts counted per account and address, and the password.

The password (`auth.py`) and the second factor (`twofactor.py`) are one flow; the limits and the
checks they share live here, below both, so neither imports the other back.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from flask import current_app, request, url_for
from werkzeug.security import check_password_hash, generate_password_hash

from ivr.accounts import audit
from ivr.accounts.models import LoginAttempt, StaffUser, new_session_token
from ivr.db import db, utcnow
from ivr.requests import alerts
from ivr.settings import settings

# Failed logins allowed per WINDOW: for one account from one address, and for one account from
# everywhere (many addresses, e.g. a botnet, still get only this many guesses between them).
MAX_FAILURES = 5
ACCOUNT_MAX_FAILURES = 20
WINDOW = dt.timedelta(minutes=15)
# Checked when the username is unknown, so a wrong name takes as long as a wrong password.
DUMMY_HASH = generate_password_hash("not-a-real-password")


def safe_next(target: str | None) -> str:
    """Follow `next` only to a staff page of this site."""
    if target and target.startswith("/staff/") and not target.startswith("//"):
        return target
    return url_for("staff.requests.index")


def address() -> str:
    return (request.remote_addr or "unknown")[:64]


def admit_attempt(username: str) -> bool:
    """Count a login attempt, unless the limits are reached: then refuse it, uncounted.

    The attempt is written before the password is checked, and counted with every attempt before
    it in the same transaction, so parallel tries cannot all pass the check together: on SQLite
    the INSERT takes the one write lock first; on PostgreSQL the account's row is locked (an
    unknown username has no row to lock, and no password to find).
    """
    db.session.rollback()  # a fresh transaction that starts with the write
    db.session.add(LoginAttempt(username=username, ip=address()))
    db.session.flush()
    db.session.execute(sa.select(StaffUser.id).filter_by(username=username).with_for_update())
    since = utcnow() - WINDOW
    recent = (
        sa.select(sa.func.count())
        .select_from(LoginAttempt)
        .where(LoginAttempt.username == username, LoginAttempt.created_at >= since)
    )
    here = db.session.execute(recent.where(LoginAttempt.ip == address())).scalar_one()
    anywhere = db.session.execute(recent).scalar_one()
    if here > MAX_FAILURES or anywhere > ACCOUNT_MAX_FAILURES:
        db.session.rollback()
        return False
    # Forget attempts long past the window so the table stays small.
    old = utcnow() - 4 * WINDOW
    db.session.execute(sa.delete(LoginAttempt).where(LoginAttempt.created_at < old))
    db.session.commit()
    return True


def audit_failure(username: str, why: str) -> None:
    """A failed login in the audit log (committed): the username as typed, normalised, and why;
    never the password. An unknown name is logged too: a run of them is someone guessing."""
    db.session.rollback()
    audit.record("failed_login", username or "(empty)", detail=why)
    db.session.commit()


def audit_limit(username: str, why: str) -> None:
    """A login refused by the rate limit, in the audit log (committed): once per account and
    WINDOW, not once per refused try, so a script hammering one name cannot flood the log."""
    db.session.rollback()
    recent = db.session.scalar(
        sa.select(audit.AuditEntry.id)
        .where(
            audit.AuditEntry.action == "lockout",
            audit.AuditEntry.actor == username[:80],
            audit.AuditEntry.detail == why,
            audit.AuditEntry.created_at > utcnow() - WINDOW,
        )
        .limit(1)
    )
    if recent is None:
        audit.record("lockout", username, detail=why)
        db.session.commit()


def check_password(username: str, password: str) -> StaffUser | None:
    user = db.session.scalar(sa.select(StaffUser).filter_by(username=username))
    valid = check_password_hash(user.password_hash if user else DUMMY_HASH, password)
    return user if user and valid else None


# The audit log's words for a refused attempt (guard.audit_limit), password and code.
RATE_LIMITED = "too many failed logins: refused for 15 minutes"
CODES_LIMITED = "too many wrong codes: refused for 15 minutes"
LOCKED = (
    "This account is locked after too many wrong passwords or codes. Ask an admin to unlock it."
)


def count_failure(user: StaffUser) -> bool:
    """Count a wrong password or code against the account (committed); lock it, audit and alert
    when the count reaches STAFF_LOCK_AFTER. Returns whether the account is locked now."""
    db.session.rollback()
    db.session.execute(
        sa.update(StaffUser)
        .where(StaffUser.id == user.id)
        .values(failures=StaffUser.failures + 1)
        .execution_options(synchronize_session=False)
    )
    failures, locked_at = db.session.execute(
        sa.select(StaffUser.failures, StaffUser.locked_at).where(StaffUser.id == user.id)
    ).one()
    limit = settings().staff_lock_after
    if locked_at is None and failures >= limit:
        locked = db.session.execute(
            sa.update(StaffUser)
            .where(StaffUser.id == user.id, StaffUser.locked_at.is_(None))
            .values(locked_at=utcnow(), session_token=new_session_token())
            .execution_options(synchronize_session=False)
        )
        if locked.rowcount:  # type: ignore[attr-defined]
            audit.record(
                "lockout",
                user.username,
                detail=f"locked after {failures} wrong passwords or codes in a row",
            )
            alerts.account_locked(user.username, failures)
            current_app.logger.error(
                "staff account %r locked after %d wrong passwords or codes", user.username, failures
            )
        locked_at = utcnow()
    db.session.commit()
    return locked_at is not None
