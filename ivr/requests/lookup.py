"""What the call's steps read about requests: the voice views ask here, never query rows.

Each lookup only makes a call better (hearing an open request, not recording twice), so a
database that fails is noted for the rest of the webhook (`callers.database_failed`) and the
call goes on as for a first call, never waiting on the database twice.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from flask import g

from ivr.db import db
from ivr.requests import history
from ivr.requests.models import Call, CallbackRequest, RequestMessage
from ivr.requests.service.callers import database_failed


def open_request(number: str, call_sid: str, since: dt.datetime) -> CallbackRequest | None:
    """The newest request from `number` not yet called back, made after `since` (detached)."""
    if g.get("database_failed"):
        return None
    try:
        row = db.session.scalar(
            sa.select(CallbackRequest)
            .where(
                CallbackRequest.caller_number == number,
                CallbackRequest.status.in_(history.OPEN),  # the family still waits
                CallbackRequest.call_sid != call_sid,
                CallbackRequest.created_at >= since,
            )
            .order_by(CallbackRequest.created_at.desc(), CallbackRequest.id.desc())
            .limit(1)
        )
        if row is not None:
            db.session.expunge(row)
        db.session.commit()
        return row
    except sa.exc.SQLAlchemyError:
        db.session.rollback()
        database_failed()
        return None  # the database is failing: the call goes on as a first call


def added_reference(call_sid: str) -> str | None:
    """The reference of the request this call already added its message to, if it did."""
    if g.get("database_failed"):
        return None
    try:
        return db.session.scalar(
            sa.select(CallbackRequest.reference)
            .join(RequestMessage)
            .where(RequestMessage.call_sid == call_sid, RequestMessage.recording_sid.is_not(None))
        )
    except sa.exc.SQLAlchemyError:
        db.session.rollback()
        database_failed()
        return None


def recorded_reference(call_sid: str) -> str | None:
    """The reference of this call's request when its message is already recorded."""
    try:
        return db.session.scalar(
            sa.select(CallbackRequest.reference).where(
                CallbackRequest.call_sid == call_sid, CallbackRequest.recording_sid.is_not(None)
            )
        )
    except sa.exc.SQLAlchemyError:
        db.session.rollback()
        database_failed()
        return None  # the database is failing: recording again is the safe side


def calling_number(call_sid: str) -> str | None:
    """The number the call came from, as noted when it chose its language."""
    try:
        return db.session.scalar(sa.select(Call.from_number).filter_by(call_sid=call_sid))
    except sa.exc.SQLAlchemyError:
        db.session.rollback()
        return None
