"""Who is calling a family back right now: one reservation per request (or missed call), taken
atomically in the database, and the live progress of that call-back.

Two staff who both loaded a request and both pressed Call back used to ring the family twice
(staff-UI review #1): a claim ("I'll take it") says who works a request, but did not stop a call.
Now pressing Call back first takes the reservation, and only then queues the call. The rule is
the database's, not a read-then-write in Python: `callbacks` has a unique index on (`target`,
`open_slot`), `open_slot` is 1 while a reservation holds and NULL once it ended, and the row is
added with INSERT … ON CONFLICT DO NOTHING. Of two presses at once, in one web process or
several, on SQLite or PostgreSQL, exactly one inserts; the other reads who holds it. NULLs are
distinct in a unique index on both databases, so ended rows (kept: they carry the call's
progress) never get in the way.

A reservation ends with the call-back's outcome (`release`), or when it has held for
CALLBACK_RESERVATION_MINUTES without one (a worker that died, a webhook that never came): the
next press ends the stale one with a conditional UPDATE, then inserts as usual.

The row also carries what the staff leg's webhooks learnt (`state`): queued → placing → ringing
(the staff phone) → answered → dialling (the family) → connected → asking (the family's leg
ended, waiting for the staff member to say how it went) → done. The card shows it live.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Mapped, mapped_column

from ivr.db import Model, as_utc, db, utcnow
from ivr.settings import settings

# The order a call-back goes through; a webhook that arrives late never moves it back.
PROGRESS = ("queued", "placing", "ringing", "answered", "dialling", "connected", "asking")
FINAL = ("done", "expired")


class CallBack(Model):
    """One press of Call back that took the reservation, and how far the call got."""

    __tablename__ = "callbacks"
    __table_args__ = (UniqueConstraint("target", "open_slot"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # "request:<id>" or "call:<id>" (a missed call): what is reserved.
    target: Mapped[str] = mapped_column(String(32))
    open_slot: Mapped[int | None] = mapped_column(Integer)  # 1 while reserved, NULL after
    request_id: Mapped[int | None] = mapped_column(
        ForeignKey("callback_requests.id", ondelete="CASCADE"), index=True
    )
    call_id: Mapped[int | None] = mapped_column(index=True)
    # The "call" event of the request's history this press added (set in the same transaction).
    attempt_id: Mapped[int | None] = mapped_column(unique=True)
    username: Mapped[str] = mapped_column(String(80))
    state: Mapped[str] = mapped_column(String(16), default="queued")
    # How the family's leg ended (Dial's DialCallStatus) and how long it lasted.
    dial_status: Mapped[str | None] = mapped_column(String(16))
    duration: Mapped[int | None]
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


def target_of(request_id: int | None, call_id: int | None) -> str:
    return f"request:{request_id}" if request_id is not None else f"call:{call_id}"


def hold_for() -> dt.timedelta:
    return dt.timedelta(minutes=settings().callback_reservation_minutes)


def _updated(statement: Any) -> int:
    result = db.session.execute(statement.execution_options(synchronize_session=False))
    return cast(CursorResult[Any], result).rowcount


def reserve(
    request_id: int | None,
    call_id: int | None,
    username: str,
    *,
    stale_queued: dt.datetime | None = None,
) -> CallBack | None:
    """Take the reservation in the current transaction (not committed); None when someone
    holds it. A reservation past its time is ended first, and so is one still queued since
    before `stale_queued` (its job will be dropped, not placed late: the worker was down)."""
    target = target_of(request_id, call_id)
    now = utcnow()
    stale = CallBack.expires_at < now
    if stale_queued is not None:
        stale = sa.or_(
            stale, sa.and_(CallBack.state == "queued", CallBack.started_at < stale_queued)
        )
    _updated(
        sa.update(CallBack)
        .where(CallBack.target == target, CallBack.open_slot == 1, stale)
        .values(open_slot=None, state="expired", updated_at=now)
    )
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    new_id = db.session.scalar(
        insert(CallBack)
        .values(
            target=target,
            open_slot=1,
            request_id=request_id,
            call_id=call_id,
            username=username,
            state="queued",
            started_at=now,
            updated_at=now,
            expires_at=now + hold_for(),
        )
        .on_conflict_do_nothing(index_elements=["target", "open_slot"])
        .returning(CallBack.id)
    )
    return db.session.get(CallBack, new_id) if new_id is not None else None


def holder(request_id: int | None, call_id: int | None) -> CallBack | None:
    """The reservation holding now, if any (one past its time counts as none)."""
    row = db.session.scalar(
        sa.select(CallBack).where(
            CallBack.target == target_of(request_id, call_id), CallBack.open_slot == 1
        )
    )
    if row is None or as_utc(row.expires_at) < utcnow():
        return None
    return row


def of_attempt(attempt_id: int) -> CallBack | None:
    return db.session.scalar(sa.select(CallBack).where(CallBack.attempt_id == attempt_id))


# A call with the family may last long (a lawyer's call; Twilio ends a <Dial> after 4 hours):
# while connected, the reservation holds that long, so nobody else rings a family on the line.
CONNECTED_HOLD = dt.timedelta(hours=4)


def advance(attempt_id: int, state: str, **fields: Any) -> bool:
    """Move a call-back's progress forward to `state` (never back: Twilio's webhooks may arrive
    out of order or twice), and hold the reservation again from now: each step is news that
    the call goes on (review: a 20-minute call used to lose its hold after 15). Not committed."""
    earlier = PROGRESS[: PROGRESS.index(state)]
    now = utcnow()
    hold = CONNECTED_HOLD if state == "connected" else hold_for()
    return bool(
        _updated(
            sa.update(CallBack)
            .where(CallBack.attempt_id == attempt_id, CallBack.state.in_(earlier))
            .values(state=state, updated_at=now, expires_at=now + hold, **fields)
        )
    )


def hold_until(attempt_id: int, until: dt.datetime) -> None:
    """Let a reservation still held end sooner (news that may never come). Not committed."""
    _updated(
        sa.update(CallBack)
        .where(CallBack.attempt_id == attempt_id, CallBack.open_slot == 1)
        .values(expires_at=until, updated_at=utcnow())
    )


def is_live(attempt_id: int) -> bool:
    """Does this attempt still hold its reservation (not ended, not taken over)?"""
    return bool(
        db.session.scalar(
            sa.select(CallBack.id).where(
                CallBack.attempt_id == attempt_id,
                CallBack.open_slot == 1,
                CallBack.expires_at >= utcnow(),
            )
        )
    )


def release(attempt_id: int) -> None:
    """End the reservation of this attempt: its outcome is recorded. Not committed."""
    _updated(
        sa.update(CallBack)
        .where(CallBack.attempt_id == attempt_id)
        .values(open_slot=None, state="done", updated_at=utcnow())
    )


def latest(targets: list[str]) -> dict[str, CallBack]:
    """The newest call-back of each target (a page of cards at once, in one query)."""
    if not targets:
        return {}
    newest = (
        sa.select(sa.func.max(CallBack.id))
        .where(CallBack.target.in_(targets))
        .group_by(CallBack.target)
        .scalar_subquery()
    )
    rows = db.session.scalars(sa.select(CallBack).where(CallBack.id.in_(newest)))
    return {row.target: row for row in rows}
