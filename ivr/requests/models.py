"""What the hotline keeps: calls (for the staff chart) and callback requests with their recording.

A callback request is keyed by the Twilio CallSid, so the `<Record>` action and the recording
status callback, which may arrive in any order and more than once, always land on one row.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, DateTime, ForeignKey, LargeBinary, String, false, true
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from ivr.db import Model, utcnow

# The languages a caller can choose, as staff read them in alerts and on the dashboard.
LANGUAGE_NAMES = {"en": "English", "es": "Spanish"}


class Call(Model):
    """A call that chose a language; counted per day and language on the staff chart."""

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    language: Mapped[str] = mapped_column(String(2))
    from_number: Mapped[str] = mapped_column(String(255), default="")  # SIP addresses too
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CallbackRequest(Model):
    """A family's request to be called back, from the moment its recording exists."""

    __tablename__ = "callback_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    reference: Mapped[str] = mapped_column(String(12), unique=True)
    language: Mapped[str] = mapped_column(String(2))
    # SIP addresses too; indexed to find a caller's open request when they call again.
    caller_number: Mapped[str] = mapped_column(String(255), default="", index=True)
    callback_number: Mapped[str | None] = mapped_column(String(32))
    a_number: Mapped[str | None] = mapped_column(String(9))
    # How far the caller got: recorded, number (callback number given), complete.
    step: Mapped[str] = mapped_column(String(16), default="recorded")
    recording_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    recording_url: Mapped[str | None] = mapped_column(String(512))
    recording_duration: Mapped[int | None]
    # A durable copy of the recording, so staff can play it whatever Twilio keeps.
    audio: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    audio_type: Mapped[str | None] = mapped_column(String(64))
    # new, trying, reached or handled (`history.STATUSES`), moved only by `history.move_status`.
    status: Mapped[str] = mapped_column(String(16), default="new")
    # The caller pressed 1 for "a hearing within 7 days, or a transfer or deportation soon".
    urgent: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The reference by text message, only when the caller asked for it (`ivr/sms.py`): queued,
    # then Twilio's statuses (sent, delivered, undelivered, failed); the error when it failed.
    sms_status: Mapped[str | None] = mapped_column(String(16))
    sms_error: Mapped[str | None] = mapped_column(String(300))
    sms_sid: Mapped[str | None] = mapped_column(String(64))
    handled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # Set when its personal data was erased (retention or an admin): a tombstone that nothing
    # fills again (requests/erasure.py).
    erased_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # Indexed for the Reports page, which reads a period's requests (ivr/reports/figures.py).
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    # Messages the caller added by calling again (`voice/again.py`), oldest first.
    messages: Mapped[list[RequestMessage]] = relationship(
        order_by="RequestMessage.id", viewonly=True
    )


class RequestMessage(Model):
    """A later message from a caller who called again while their request was open.

    It joins the request's history instead of making an unrelated request (`ivr/again.py`);
    keyed by the CallSid of the later call, so one call adds at most one message. `is_new` until
    staff save the request.
    """

    __tablename__ = "request_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("callback_requests.id", ondelete="CASCADE"), index=True
    )
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    recording_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    recording_url: Mapped[str | None] = mapped_column(String(512))
    recording_duration: Mapped[int | None]
    audio: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    audio_type: Mapped[str | None] = mapped_column(String(64))
    is_new: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
