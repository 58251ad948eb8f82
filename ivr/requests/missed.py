"""Missed calls: callers the firm did not reach and who left no request.

A caller who asked for the firm while nobody accepted, or who hung up after choosing a language
without leaving a request, leaves no callback request, yet may need the firm most. These calls are
listed apart from requests: phones are shared and borrowed, so whether to call back is for staff
to judge, and the list says only what the hotline knows (number, language, when, what was heard).

The call's webhooks mark what happened (`mark`): one small insert, and a failure to store it
never changes what the caller hears (it is logged and dropped; this list is a courtesy).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import current_app
from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from ivr.db import Model, db, utcnow
from ivr.requests.models import Call, CallbackRequest
from ivr.settings import settings

DAYS = 14
SETTLE = dt.timedelta(minutes=10)  # a younger call may still be on the line
LIMIT = 200


class CallMark(Model):
    """Something a call did that the missed-calls list needs: firm-missed | firm-answered |
    topic (detail: the topic's number)."""

    __tablename__ = "call_marks"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(String(40), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def mark(call_sid: str, kind: str, detail: str = "") -> None:
    """Note what a call did; never lets a database fault reach the caller."""
    try:
        db.session.add(CallMark(call_sid=call_sid[:64], kind=kind, detail=detail[:40]))
        db.session.commit()
    except sa.exc.SQLAlchemyError as exc:
        db.session.rollback()
        current_app.logger.warning(
            "could not mark call %s %s: %s", call_sid, kind, type(exc).__name__
        )


@dataclass
class Missed:
    call: Call
    firm_missed: bool = False
    topics: list[str] = field(default_factory=list)


def missed_calls(now: dt.datetime | None = None) -> list[Missed]:
    """Settled calls of the last DAYS days with no request and no answer from the firm."""
    now = now or utcnow()
    has_request = sa.exists().where(CallbackRequest.call_sid == Call.call_sid)
    answered = sa.exists().where(
        CallMark.call_sid == Call.call_sid, CallMark.kind == "firm-answered"
    )
    calls = db.session.scalars(
        sa.select(Call)
        .where(
            Call.created_at >= now - dt.timedelta(days=DAYS),
            Call.created_at < now - SETTLE,
            ~has_request,
            ~answered,
        )
        .order_by(Call.created_at.desc())
        .limit(LIMIT)
    ).all()
    found = {c.call_sid: Missed(c) for c in calls}
    if not found:
        return []
    for m in db.session.scalars(
        sa.select(CallMark).where(CallMark.call_sid.in_(found)).order_by(CallMark.id)
    ):
        missed = found[m.call_sid]
        if m.kind == "firm-missed":
            missed.firm_missed = True
        elif m.kind == "topic":
            label = topic_label(m.detail)
            if label not in missed.topics:
                missed.topics.append(label)
    return list(found.values())


def topic_label(number: str) -> str:
    """The topic's menu label, in the staff's language, for the list."""
    prompts = current_app.extensions["ivr.calls.prompts"]
    try:
        topic = prompts.topic(settings().staff_language, int(number))
    except ValueError:
        topic = None
    return topic.label if topic else f"topic {number}"
