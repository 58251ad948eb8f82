"""Anonymous call events: each step of a call, kept without the caller, so figures outlive purges.

Retention (requests/retention.py) erases callers' numbers after RETENTION_DAYS, and with them any
way to count what happened on a call from `calls` and `callback_requests`. These rows are made to
be kept for good, so they hold nothing a person could be found by:

- no number, no A-number, no CallSid. Steps of one call are tied together by `call_key`, a keyed
  one-way hash of the CallSid (HMAC with SECRET_KEY), and only while the call may still be going
  on: the hourly `settle` (tasks.py) sets it to NULL once SETTLE_AFTER has passed (so within
  7 hours of the step), with the precise time `at`. A settled event cannot be joined back to a
  call, not even with SECRET_KEY and Twilio's own call log (which holds the caller's number
  beside the CallSid).
- time only as the office's day, and the hour of day on the call's first two steps (for the
  calls-per-hour chart). A day with a single call still shows what that call did, to someone who
  also has Twilio's log for that day; nothing here narrows it further.

What the figures need from one call is decided while its key is known, on the row itself:
`is_first` (the call's first step of this kind: "reached a topic" counts calls, not listens) and
`is_last` (its latest step so far: where the caller hung up, as the app learns of no hang-up
otherwise; no call status callback is configured for the number).

Recording never slows or fails a call: one small read, update and insert in their own short
transaction, and a database fault is logged (without the CallSid) and dropped, like
`requests.missed.mark`. Skipped once the request has seen the database fail.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import sqlalchemy as sa
from flask import current_app, g, request
from sqlalchemy import Boolean, Date, DateTime, Index, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from ivr.calls.calendar import now  # the current moment; tests set CLOCK
from ivr.calls.twiml import prompts
from ivr.db import Model, as_utc, db
from ivr.settings import settings

SETTLE_AFTER = dt.timedelta(hours=6)  # no call lasts this long; an SMS status comes sooner
HOURLY = ("call", "language")  # steps that keep their hour of day once settled
WORDS_PER_SECOND = 2.5  # how fast a topic is said (about 150 words a minute), slow: 25 % slower
HEARD = 0.9  # listened to this share of a topic's estimated length: heard it to the end


class CallEvent(Model):
    """One step of one call: `kind` (see figures.py for the list), `detail` (a topic's number, a
    dial status, a Twilio error code), the call's language ('' before it chose one)."""

    __tablename__ = "call_events"
    # Every figure reads one period's events grouped by these columns: with all of them in the
    # index, a month is read from the index alone (bench/reports.py).
    __table_args__ = (
        Index(
            "ix_call_events_day_kind",
            "day",
            "kind",
            "language",
            "is_first",
            "is_last",
            "hour",
            "detail",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    call_key: Mapped[str | None] = mapped_column(String(16), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(String(16), default="")
    language: Mapped[str] = mapped_column(String(2), default="")
    day: Mapped[dt.date] = mapped_column(Date)
    hour: Mapped[int | None] = mapped_column(SmallInteger)
    is_first: Mapped[bool] = mapped_column(Boolean, default=True)
    is_last: Mapped[bool] = mapped_column(Boolean, default=False)
    at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


def call_key(call_sid: str) -> str:
    """A one-way, keyed hash of the CallSid: ties a call's steps together until settled."""
    secret = str(settings().secret_key).encode()
    return hmac.new(secret, b"call-event:" + call_sid.encode(), hashlib.sha256).hexdigest()[:16]


def record(kind: str, lang: str = "", detail: str = "") -> None:
    """Note that this webhook's call reached step `kind`; never lets a fault reach the caller."""
    if g.get("database_failed"):
        return
    sid = request.form.get("CallSid", "")
    try:
        _store(call_key(sid) if sid else None, kind, lang, detail, now())
    except sa.exc.SQLAlchemyError as exc:
        db.session.rollback()
        current_app.logger.warning("call event %s not recorded: %s", kind, type(exc).__name__)


def _store(key: str | None, kind: str, lang: str, detail: str, moment: dt.datetime) -> None:
    seen: set[str] = set()
    if key is not None:
        seen = set(db.session.scalars(sa.select(CallEvent.kind).where(CallEvent.call_key == key)))
        db.session.execute(
            sa.update(CallEvent)
            .where(CallEvent.call_key == key, CallEvent.is_last.is_(True))
            .values(is_last=False)
            .execution_options(synchronize_session=False)
        )
    local = moment.astimezone(settings().office_timezone)
    db.session.add(
        CallEvent(
            call_key=key,
            kind=kind,
            detail=detail[:16],
            language=lang[:2],
            day=local.date(),
            hour=local.hour,
            is_first=kind not in seen,
            is_last=key is not None,
            at=moment,
        )
    )
    db.session.commit()


def topic_left(lang: str, number: int) -> None:
    """The caller left topic `number`: heard to the end ("topic-end") when as
    much time went by since it began as saying it takes, else cut short ("topic-cut").

    Twilio does not say when in a `<Gather>` a key was pressed, so this is the time between the
    two webhooks against the topic's length estimated from its words (the options after it are
    not counted). Silence, the Gather's timeout, is always the end.
    """
    if g.get("database_failed"):
        return
    sid = request.form.get("CallSid", "")
    try:
        began = db.session.execute(
            sa.select(CallEvent.kind, CallEvent.at)
            .where(
                CallEvent.call_key == call_key(sid),
                CallEvent.kind.in_(("topic", "topic-slow")),
                CallEvent.detail == str(number),
            )
            .order_by(CallEvent.id.desc())
            .limit(1)
        ).first()
    except sa.exc.SQLAlchemyError as exc:
        db.session.rollback()
        current_app.logger.warning("call event topic-left not read: %s", type(exc).__name__)
        return
    heard = not request.form.get("Digits")
    topic = prompts().topic(lang, number)
    words = len(topic.body.split()) if topic is not None else 0
    if began is not None and began.at is not None and not heard:
        seconds = words / WORDS_PER_SECOND * (1.25 if began.kind == "topic-slow" else 1)
        heard = (now() - as_utc(began.at)).total_seconds() >= seconds * HEARD
    record("topic-end" if heard else "topic-cut", lang, str(number))


POLICY_CODES = {"21610", "21614", "30004", "30006", "30007"}  # opted out, not a mobile, blocked


def text_status(lang: str, status: str, error_code: str | None) -> None:
    """Twilio's delivery status of a reference text: delivered, failed, or refused by policy
    (the family opted out, a landline, a carrier's filter). It carries no CallSid."""
    if status == "delivered":
        record("text-delivered", lang)
    elif status in ("failed", "undelivered"):
        refused = (error_code or "") in POLICY_CODES
        record("text-refused" if refused else "text-failed", lang, error_code or "")


def settle(moment: dt.datetime | None = None) -> int:
    """Cut settled events loose from their call: no key, no precise time, and the hour of day
    only on the steps that need it. Returns how many events were settled. Commits."""
    cutoff = (moment or now()) - SETTLE_AFTER
    # Only rows still tied to a call (the call_key index), so the hourly run stays small.
    settled = sa.and_(CallEvent.call_key.is_not(None), CallEvent.at < cutoff)
    db.session.execute(
        sa.update(CallEvent)
        .where(settled, CallEvent.kind.not_in(HOURLY))
        .values(hour=None)
        .execution_options(synchronize_session=False)
    )
    result = db.session.execute(
        sa.update(CallEvent)
        .where(settled)
        .values(call_key=None, at=None)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return int(getattr(result, "rowcount", 0) or 0)
