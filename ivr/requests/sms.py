"""The reference by text message: asked for with a key, queued with the request, sent once.

A relative leaving a message is often driving or holding a child; the reference read twice is
gone by the end of the call. So after hearing it they may press 1 to get it by SMS. The text is
made from prompt files in the caller's language (`prompts/<lang>/sms/`): the reference, the
firm's number and when to expect a call, from OFFICE_HOURS, and nothing else: phones are shared,
so no names and no legal detail.

It goes only to the number the call came from (never a withheld one), and only when the number
policy allows texting it (`messaging/policy.py`: a mobile in TEXT_COUNTRIES, never premium or
satellite numbers): a caller ID can be set to anything, and SMS pumping fraud sets it to numbers
that pay the fraudster. The caps of `messaging/caps.py` apply: one text per number in 24 hours
and TEXTS_PER_DAY in all, past which the offer is not made and the alert recipients are told
once that day (`CAP_NOTICE`, here). It is sent from the hotline's number or Messaging Service,
as a `once` job: never sent twice, even when a worker dies mid-send. A failure that cannot have
sent it (Twilio 5xx or 429, refused connection) is retried; one that will not change (21610
opted out, 21614 not a mobile number) is recorded on the request. The text is queued by the
request service (`service/callers.text_reference`), with the policy and the caps; Twilio's
delivery statuses come back to a signed webhook (`voice/closing.py`, `sms_status`) and are
recorded by `service/callers.record_text_status`.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from flask import current_app

from ivr.background import jobs
from ivr.calls.calendar import now, office
from ivr.calls.hours import spoken_days
from ivr.calls.twiml import prompts
from ivr.db import db
from ivr.messaging import policy
from ivr.messaging.email import send_email
from ivr.messaging.gateway import MaybeSent, Refused, Unreachable, gateway
from ivr.phones import phone
from ivr.requests import alerts, erasure
from ivr.requests.erasure import REDACT_MESSAGE
from ivr.requests.models import Call, CallbackRequest
from ivr.settings import settings

# Twilio's message statuses in the order they happen; a late or repeated callback never moves a
# message back (Twilio does not promise the order of its callbacks).
ORDER = {
    "queued": 0,
    "accepted": 0,
    "scheduled": 0,
    "sending": 1,
    "sent": 2,
    "delivered": 3,
    "undelivered": 3,
    "failed": 3,
    "read": 4,
}


def enabled() -> bool:
    """Whether the hotline can send texts at all; the offer is not made otherwise."""
    config = settings()
    return bool(config.twilio_account_sid and (config.sms_from or config.sms_messaging_service_sid))


def clock(lang: str, moment: dt.time) -> str:
    """A time as U.S. readers write it: 9 am, 5 pm, 12:30 pm ("9 a. m." in Spanish); the
    am/pm words are prompts (`sms/am`, `sms/pm`)."""
    if moment == dt.time.max:
        moment = dt.time(0)
    hour = moment.hour % 12 or 12
    minutes = f":{moment.minute:02d}" if moment.minute else ""
    half = prompts().text(lang, "sms/am" if moment.hour < 12 else "sms/pm")
    return f"{hour}{minutes} {half}"


def zone_text(lang: str) -> str:
    """The office's zone in words ("Central" / "hora del centro"), short enough for a text
    (`sms/zone_<city>`); its abbreviation when no prompt names it."""
    calendar = office()
    tz = settings().office_timezone
    name = "sms/zone_" + str(tz.key).rsplit("/", 1)[-1].lower()
    if name in prompts().names(lang):
        return prompts().text(lang, name)
    return calendar.local(now()).strftime("%Z")


def hours_text(lang: str) -> str:
    """When to expect a call, from OFFICE_HOURS: the days in the words the call uses
    (`hours.spoken_days`), the times on a 12-hour clock and the zone in words (issue 23: "17:00"
    and "CST" meant nothing to the families)."""
    calendar = office()
    hours = calendar.hours
    if hours is None:
        return prompts().text(lang, "sms/always")
    return (
        prompts()
        .line(
            lang,
            "sms/hours",
            days=spoken_days(lang, hours.days),
            opens=clock(lang, hours.opens),
            closes=clock(lang, hours.closes),
            zone=zone_text(lang),
        )
        .text
    )


def grouped(reference: str) -> str:
    """The reference in the groups it was spoken in: 959 024."""
    return " ".join(reference[i : i + 3] for i in range(0, len(reference), 3))


# Letters of Spanish outside GSM-7 (é, ñ and ü are in it). One of them makes the whole text UCS-2,
# 70 characters a segment; written plain, the text is one 160-character segment. A documented
# choice (issue 23): "miercoles" is read without trouble, a text in three pieces is not.
PLAIN = str.maketrans("áíóúÁÍÓÚ¿¡", "aiouAIOU  ")


def plain(text: str) -> str:
    return " ".join(text.translate(PLAIN).split())


def body(lang: str, reference: str) -> str:
    """The text: the firm's name, the reference grouped, the number the call will come from
    (CALLBACK_FROM_NUMBER, else the firm's), when. One segment in each language: the Spanish
    words avoid letters outside GSM-7 (no "número"), so a segment holds 160 characters."""
    config = settings()
    return plain(
        prompts()
        .line(
            lang,
            "sms/reference",
            reference=grouped(reference),
            from_number=phone(config.callback_from_number or config.firm_phone_number),
            firm_number=phone(config.firm_phone_number),
            hours=hours_text(lang),
        )
        .text
    )


class TextQueued(enum.Enum):
    """What became of a caller's "press 1 for a text" (`service/callers.text_reference`)."""

    QUEUED = "queued"
    ALREADY = "already"  # this number got a reference text in the last 24 hours
    FAILED = "failed"  # refused by the policy, today's texts used up, or the database failed

    def __bool__(self) -> bool:
        return self is TextQueued.QUEUED


def cap_notice(day: str) -> tuple[str, str]:
    cap = settings().texts_per_day
    title = f"Reference texts stopped for {day}: {cap} sent (TEXTS_PER_DAY)"
    return title, (
        f"{title}. Callers are no longer offered the reference by text today. "
        "More texts than usual can mean SMS pumping fraud: see the README, "
        "'Toll fraud and SMS pumping'."
    )


def cap_notice_sms(payload: dict[str, Any]) -> None:
    alerts.sms(payload["recipient"], cap_notice(payload["day"])[1])


def cap_notice_email(payload: dict[str, Any]) -> None:
    title, text = cap_notice(payload["day"])
    send_email(payload["recipient"], title, text + "\n")


def cap_notice_key(channel: str):
    return lambda recipient, day, **_: f"text-cap:{day}:{channel}:{recipient}"


# Once per recipient and office day (the key has the date); the SMS at most once, like alerts.
CAP_NOTICE = {
    "sms": jobs.JobKind(
        "text-cap-sms",
        cap_notice_sms,
        key=cap_notice_key("sms"),
        payload=("recipient", "day"),
        once=True,
        max_attempts=5,
        time_limit=60,
    ),
    "email": jobs.JobKind(
        "text-cap-email",
        cap_notice_email,
        key=cap_notice_key("email"),
        payload=("recipient", "day"),
        max_attempts=5,
        time_limit=100,
    ),
}


def status_url(request_id: int, lang: str) -> str | None:
    public = settings().public_url.rstrip("/")
    if not public:
        return None  # no public address: Twilio's statuses cannot reach us
    return public + current_app.url_map.bind("").build(
        "voice.closing.sms_status", {"lang": lang, "request_id": request_id}
    )


def record(request_id: int, status: str | None, error: str | None, sid: str | None = None) -> None:
    values: dict[str, Any] = {"sms_error": error[:300] if error else None}
    if status:
        values["sms_status"] = status
    if sid:
        values["sms_sid"] = sid
    db.session.execute(
        sa.update(CallbackRequest)
        .where(CallbackRequest.id == request_id, CallbackRequest.erased_at.is_(None))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def recipient(request_id: int, call_sid: str) -> str | None:
    """The number the asking call came from: its row in `calls`, or the request's own caller
    number for the request's own call. None once erased (the tombstone, requests/erasure.py)."""
    if erasure.is_erased(call_sid):
        return None
    number = db.session.scalar(sa.select(Call.from_number).where(Call.call_sid == call_sid))
    if not number:
        number = db.session.scalar(
            sa.select(CallbackRequest.caller_number).where(
                CallbackRequest.id == request_id,
                CallbackRequest.call_sid == call_sid,
                CallbackRequest.erased_at.is_(None),
            )
        )
    return number or None


def send_reference(payload: dict[str, Any]) -> None:
    request_id = payload["request_id"]
    row = db.session.execute(
        sa.select(CallbackRequest.language, CallbackRequest.reference).where(
            CallbackRequest.id == request_id, CallbackRequest.erased_at.is_(None)
        )
    ).first()
    to = recipient(request_id, payload.get("call_sid", "")) if row is not None else None
    db.session.commit()  # hold no connection while Twilio answers
    if row is None or to is None:
        return  # the request was deleted or erased: nothing to send, nobody to send it to
    refused = policy.for_texts(to)
    if not refused.allowed:  # the policy changed since, or the job was queued by other means
        record(request_id, "refused", refused.why)
        raise jobs.Permanent(refused.why)
    config = settings()
    sender = (
        {"messaging_service_sid": config.sms_messaging_service_sid}
        if config.sms_messaging_service_sid
        else {"from_": config.sms_from}
    )
    callback = status_url(request_id, row.language)
    try:
        message = gateway().send_sms(
            to,
            body(row.language, row.reference),
            **sender,
            **({"status_callback": callback} if callback else {}),
        )
    except Unreachable as exc:
        record(request_id, None, str(exc))
        raise  # nothing was sent: try again
    except Refused as exc:  # 21610 opted out, 21614 not a mobile: final
        record(request_id, "failed", str(exc))
        raise
    except MaybeSent as exc:
        record(request_id, "unknown", str(exc))
        raise
    sent = db.session.get(CallbackRequest, request_id)
    if sent is not None and sent.erased_at is not None:  # erased while Twilio answered
        REDACT_MESSAGE.enqueue(message_sid=message.sid)
    elif sent is not None:
        # Twilio's first status callback may have come before this answer: never move back.
        same = sent.sms_sid == message.sid
        if not same or ORDER.get(sent.sms_status or "", -1) <= ORDER.get(message.status or "", 0):
            sent.sms_status = message.status or "queued"
        sent.sms_sid, sent.sms_error = message.sid, None
    db.session.commit()


def not_sent_late(payload: dict[str, Any]) -> None:
    """A text not started within an hour of the call is dropped: say so on the request."""
    record(payload["request_id"], "failed", "not sent: the worker was down for over an hour")


# At most once; dropped rather than sent hours after the call (the caller wrote it down by then,
# or calls again), and the request says so.
REFERENCE_SMS = jobs.JobKind(
    "reference-sms",
    send_reference,
    key=lambda request_id, call_sid, **_: f"reference-sms:{request_id}:{call_sid}",
    payload=("request_id", "call_sid"),
    once=True,
    max_attempts=5,
    time_limit=60,
    stale_after=60 * 60,
    on_stale=not_sent_late,
)
