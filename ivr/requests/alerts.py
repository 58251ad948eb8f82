"""Alert staff to each new callback request by SMS and e-mail, once, off the caller's path.

This module is the one place that decides when an alert goes out; the request service
(`service/callers.py`) calls it, inside the transaction of the write that calls for an alert:
- a new request (the recording is in): one job per recipient, so a request is never stored without
  its alerts, and the job's key makes a second alert impossible. The alerts are not due yet: the
  caller is still choosing the callback number and typing the A-number (`queue_new`);
- the caller finished the last step: the request's alerts need wait no longer (`due_now`); a
  caller who hangs up mid-way is alerted after ALERT_GRACE_SECONDS (3 minutes);
- the caller said it is urgent: an alert not sent yet simply says URGENT (written at send time);
  one already sent gets a second, URGENT one (`queue_urgent`);
- a message added by calling again: one short alert per recipient (`queue_added`).

SMS are `once` jobs: sent at most once even if the worker dies mid-send (a duplicate SMS is
noticed; a lost one still leaves the e-mail and the dashboard). E-mails are retried until sent.

A burst of calls (or someone making the line send texts on purpose) must not become a burst of
staff texts: each recipient gets at most ALERTS_PER_HOUR alerts in a clock hour
(`messaging/caps.py`); the rest are held, and one digest at the end of the hour says how many
came ("7 new requests") with the dashboard's address.
While the database is down, `fallback.py` calls `alert_directly` with what callers gave.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app

from ivr.background import jobs
from ivr.db import db, utcnow
from ivr.messaging import caps
from ivr.messaging.email import send_email
from ivr.messaging.gateway import gateway
from ivr.requests.models import LANGUAGE_NAMES, CallbackRequest
from ivr.settings import settings

GRACE_SECONDS = 180  # how long a request may stay unfinished before its alerts go anyway


def sms_recipients() -> list[str]:
    config = settings()
    if config.alert_sms_from and config.twilio_account_sid:
        return list(config.alert_sms_to)
    return []


def email_recipients() -> list[str]:
    config = settings()
    if not config.smtp_url:
        return []
    return [a.strip() for a in config.alert_email_to.split(",") if a.strip()]


def init_app(app: Flask) -> None:
    with app.app_context():
        sms, email = sms_recipients(), email_recipients()
    if settings(app).alert_sms_to and not sms:
        app.logger.warning(
            "ALERT_SMS_TO is set but ALERT_SMS_FROM or TWILIO_ACCOUNT_SID is not: no SMS alerts"
        )
    if settings(app).alert_email_to and not email:
        app.logger.warning("ALERT_EMAIL_TO is set but SMTP_URL is not: no e-mail alerts")
    if sms or email:
        app.logger.info(
            "alerts on: %d SMS and %d e-mail recipients, sent by the worker", len(sms), len(email)
        )
    else:
        app.logger.info(
            "alerts are off: set ALERT_SMS_TO and ALERT_SMS_FROM, or ALERT_EMAIL_TO "
            "and SMTP_URL, to alert staff to new callback requests"
        )


def grace() -> float:
    return float(settings().alert_grace_seconds)


def recipients() -> list[tuple[str, str]]:
    return [("sms", to) for to in sms_recipients()] + [("email", to) for to in email_recipients()]


def key(request_id: int) -> str:
    """What the keys of every alert of a request start with."""
    return f"alert:{request_id}:"


def queue_new(request: CallbackRequest) -> None:
    """Queue a new request's alerts in its own transaction, due after the grace; never commit."""
    for channel, recipient in recipients():
        KINDS[channel].enqueue(request_id=request.id, recipient=recipient, delay=grace())


def due_now(request: CallbackRequest) -> None:
    """The caller finished: the request's alerts need wait no longer. Inside its transaction."""
    db.session.execute(
        sa.update(jobs.Job)
        .where(
            jobs.Job.key.startswith(key(request.id)),
            jobs.Job.status == jobs.JobStatus.pending,
            jobs.Job.attempts == 0,
        )
        .values(run_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def queue_urgent(request: CallbackRequest) -> None:
    """The request became urgent: each recipient whose alert already went (or is being sent)
    gets one more, now saying URGENT, under a key of its own so a repeated key press alerts no
    one twice. A pending alert needs nothing: it is written at send time. Never commits."""
    for channel, recipient in recipients():
        kind = KINDS[channel]
        first = db.session.scalar(
            sa.select(jobs.Job.status).where(
                jobs.Job.key == kind.job_key(request_id=request.id, recipient=recipient)
            )
        )
        if first not in (None, jobs.JobStatus.pending):
            kind.enqueue(request_id=request.id, recipient=recipient, urgent=True)


def queue_added(request_id: int, message_id: int) -> None:
    """Queue the alerts of a message added to an open request, due at once; inside its
    transaction, never commits."""
    for channel, recipient in recipients():
        ADDED_KINDS[channel].enqueue(
            request_id=request_id, message_id=message_id, recipient=recipient
        )


def request_or_none(request_id: int) -> CallbackRequest | None:
    row = db.session.get(CallbackRequest, request_id)
    if row is not None:
        db.session.expunge(row)  # its fields stay readable after the commit below
    db.session.commit()  # hold no connection while the message is sent
    return row


def alert_sms(payload: dict[str, Any]) -> None:
    row = request_or_none(payload["request_id"])
    if row is not None and within_cap("sms", payload["recipient"]):
        sms(payload["recipient"], " ".join(message(row)))


def alert_email(payload: dict[str, Any]) -> None:
    row = request_or_none(payload["request_id"])
    if row is not None and within_cap("email", payload["recipient"]):
        send_email(payload["recipient"], title(row), "\n".join(message(row)) + "\n")


def within_cap(channel: str, recipient: str) -> bool:
    """Whether this alert is within the recipient's ALERTS_PER_HOUR; if not, it is counted for
    the hour's digest, queued (once per recipient and hour) for the end of the hour."""
    who = f"{channel}:{recipient}"
    within = caps.take_alert(who)
    if not within:
        start = caps.hour_start()
        DIGESTS[channel].enqueue(
            recipient=recipient,
            hour=start.isoformat(),
            delay=max(0.0, (start + dt.timedelta(hours=1) - caps.now()).total_seconds()),
        )
        current_app.logger.warning(
            "alert to a %s recipient held: over ALERTS_PER_HOUR this hour (digest at %s UTC)",
            channel,
            f"{start + dt.timedelta(hours=1):%H:%M}",
        )
    db.session.commit()
    return within


def digest(channel: str, payload: dict[str, Any]) -> tuple[str, list[str]] | None:
    """(title, lines) of the digest of alerts held back in an hour, or None when none were."""
    start = dt.datetime.fromisoformat(payload["hour"])
    count = caps.held(f"{channel}:{payload['recipient']}", start)
    db.session.commit()
    if not count:
        return None
    local = start.astimezone(settings().office_timezone)
    cap = settings().alerts_per_hour
    title = f"{count} new request{'s' if count > 1 else ''}"
    path = current_app.url_map.bind("").build("staff.requests.index")
    return title, [
        f"{title} since {local.hour}:{local:%M %Z}, past the {cap} alerts an hour "
        "(ALERTS_PER_HOUR).",
        f"See them on the dashboard: {settings().public_url.rstrip('/')}{path}",
    ]


def alert_digest_sms(payload: dict[str, Any]) -> None:
    found = digest("sms", payload)
    if found is not None:
        sms(payload["recipient"], " ".join(found[1]))


def alert_digest_email(payload: dict[str, Any]) -> None:
    found = digest("email", payload)
    if found is not None:
        send_email(payload["recipient"], found[0], "\n".join(found[1]) + "\n")


def sms(to: str, body: str) -> None:
    """Send a staff alert text through the gateway; a failure that cannot have sent it is
    retried, anything else is final (the gateway's one rule: `gateway.classify`)."""
    gateway().send_sms(to, body, from_=settings().alert_sms_from)


def alert_key(channel: str) -> Callable[..., str]:
    """`alert:<request>:<channel>:<recipient>`; the urgent re-alert (`queue_urgent`) its own."""

    def build(request_id: int, recipient: str, urgent: bool = False) -> str:
        return f"alert:{request_id}:{'urgent:' if urgent else ''}{channel}:{recipient}"

    return build


# SMS at most once (a duplicate is noticed; a lost one leaves the e-mail and the dashboard); both
# retried through about four minutes of outage (5 attempts, back-off capped at 2 minutes).
ALERT_SMS = jobs.JobKind(
    "alert-sms",
    alert_sms,
    key=alert_key("sms"),
    payload=("request_id", "recipient"),
    once=True,
    max_attempts=5,
    time_limit=60,
)
ALERT_EMAIL = jobs.JobKind(
    "alert-email",
    alert_email,
    key=alert_key("email"),
    payload=("request_id", "recipient"),
    max_attempts=5,
    time_limit=100,  # several SMTP steps, each bounded by SMTP_TIMEOUT
)
KINDS = {"sms": ALERT_SMS, "email": ALERT_EMAIL}


def digest_key(channel: str) -> Callable[..., str]:
    """One digest per recipient and hour; the recipient as a keyed hash (`caps.subject`)."""

    def build(recipient: str, hour: str, **_: Any) -> str:
        return f"digest:{channel}:{caps.subject(f'{channel}:{recipient}')}:{hour[:13]}"

    return build


# Alerts past ALERTS_PER_HOUR, told at the end of the hour in one message per recipient.
DIGESTS = {
    "sms": jobs.JobKind(
        "digest-sms",
        alert_digest_sms,
        key=digest_key("sms"),
        payload=("recipient", "hour"),
        once=True,
        max_attempts=5,
        time_limit=60,
    ),
    "email": jobs.JobKind(
        "digest-email",
        alert_digest_email,
        key=digest_key("email"),
        payload=("recipient", "hour"),
        max_attempts=5,
        time_limit=100,
    ),
}


def link(row: CallbackRequest) -> str:
    path = current_app.url_map.bind("").build("staff.requests.detail", {"request_id": row.id})
    return settings().public_url.rstrip("/") + path


def message(row: CallbackRequest) -> list[str]:
    """What staff need to act, written at send time: the reference, the language and a link.
    No number, name or A-number: SMS and e-mail carry them in the clear, and Twilio and mail
    servers keep what they carry, beyond the hotline's retention and erase. The number is one
    click away, behind the staff login."""
    language = LANGUAGE_NAMES.get(row.language, row.language)
    return [f"{title(row)} ({language}).", f"Open it: {link(row)}"]


def title(row: CallbackRequest) -> str:
    """URGENT first when the caller said a hearing or a transfer is days away
    (`service/callers.mark_urgent`)."""
    return f"{'URGENT: ' if row.urgent else ''}New callback request #{row.reference}"


def account_locked(username: str, failures: int) -> None:
    """Tell the alert recipients that a staff account locked itself (in the caller's
    transaction): someone may be guessing its password or codes."""
    moment = utcnow().isoformat(timespec="seconds")
    for channel, recipient in recipients():
        LOCKED_KINDS[channel].enqueue(
            username=username, failures=failures, recipient=recipient, moment=moment
        )


def locked_message(payload: dict[str, Any]) -> str:
    return (
        f"Hotline: staff account {payload['username']} was locked after {payload['failures']} "
        "wrong passwords or codes in a row. If that was not them, someone is guessing. "
        "Unlock it with `ivr staff unlock` or on the Accounts page."
    )


def alert_locked_sms(payload: dict[str, Any]) -> None:
    sms(payload["recipient"], locked_message(payload))


def alert_locked_email(payload: dict[str, Any]) -> None:
    subject = f"Staff account {payload['username']} locked"
    send_email(payload["recipient"], subject, locked_message(payload) + "\n")


def locked_key(channel: str) -> Callable[..., str]:
    def build(username: str, moment: str, recipient: str, **_fields: Any) -> str:
        return f"locked:{username}:{moment}:{channel}:{recipient}"

    return build


LOCKED_SMS = jobs.JobKind(
    "alert-locked-sms",
    alert_locked_sms,
    key=locked_key("sms"),
    payload=("username", "failures", "recipient"),
    once=True,
    max_attempts=5,
    time_limit=60,
)
LOCKED_EMAIL = jobs.JobKind(
    "alert-locked-email",
    alert_locked_email,
    key=locked_key("email"),
    payload=("username", "failures", "recipient"),
    max_attempts=5,
    time_limit=100,
)
LOCKED_KINDS = {"sms": LOCKED_SMS, "email": LOCKED_EMAIL}


def alert_directly(entries: list[dict[str, Any]]) -> list[str]:
    """While the database is down: alert staff now, from the kept entries, for each call that
    finished (or was left longer than the grace ago) and was not alerted yet. Returns the marks
    to keep (one per call alerted), so neither a retry nor the replay alerts it again."""
    import json

    calls: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if entry.get("kind") == "call":
            continue
        merged = calls.setdefault(entry["call_sid"], {"first": entry.get("at")})
        merged.update({k: v for k, v in entry.items() if v is not None})
    now = utcnow()
    marks = []
    for call_sid, fields in calls.items():
        if fields.get("alerted") or not fields.get("recording_sid"):
            continue
        first = fields.get("first")
        old = first and dt.datetime.fromisoformat(first) + dt.timedelta(seconds=grace()) < now
        if fields.get("step") != "complete" and not old:
            continue
        lines = direct_message(fields)
        sent = False
        for channel, recipient in recipients():
            try:
                if channel == "sms":
                    sms(recipient, " ".join(lines))
                else:
                    send_email(
                        recipient,
                        f"New callback request #{fields.get('reference', '?')}",
                        "\n".join(lines) + "\n",
                    )
                sent = True
            except Exception as exc:  # one line each; the e-mail may still go
                current_app.logger.warning(
                    "direct alert for call %s by %s failed: %s", call_sid, channel, jobs.reason(exc)
                )
        if sent:
            marks.append(json.dumps({"call_sid": call_sid, "alerted": True}))
    return marks


def direct_message(fields: dict[str, Any]) -> list[str]:
    """As `message`, without a link (the request is not in the database yet): no number either."""
    language = LANGUAGE_NAMES.get(fields.get("language", ""), fields.get("language", ""))
    return [
        f"New callback request #{fields.get('reference', '?')} ({language}).",
        "The database is down: the message will be on the dashboard once it is back.",
    ]


# A message added by calling again (`service/callers.add_message`): the added message may carry
# what changed (a hearing moved to tomorrow), so each recipient of the new-request alerts gets one
# short message: the reference, the language, the link; no name or A-number. SMS at most once,
# e-mail retried, written at send time.


def added_title(row: CallbackRequest) -> str:
    return f"{'URGENT: ' if row.urgent else ''}New message on callback request #{row.reference}"


def added_message(row: CallbackRequest) -> list[str]:
    language = LANGUAGE_NAMES.get(row.language, row.language)
    return [f"{added_title(row)} ({language}): the caller called again.", f"Listen: {link(row)}"]


def added_sms(payload: dict[str, Any]) -> None:
    row = request_or_none(payload["request_id"])
    if row is not None and within_cap("sms", payload["recipient"]):
        sms(payload["recipient"], " ".join(added_message(row)))


def added_email(payload: dict[str, Any]) -> None:
    row = request_or_none(payload["request_id"])
    if row is not None and within_cap("email", payload["recipient"]):
        send_email(payload["recipient"], added_title(row), "\n".join(added_message(row)) + "\n")


def added_key(channel: str) -> Callable[..., str]:
    def build(message_id: int, recipient: str, **_: object) -> str:
        return f"added:{message_id}:{channel}:{recipient}"

    return build


ADDED_SMS = jobs.JobKind(
    "added-sms",
    added_sms,
    key=added_key("sms"),
    payload=("request_id", "recipient"),
    once=True,
    max_attempts=5,
    time_limit=60,
)
ADDED_EMAIL = jobs.JobKind(
    "added-email",
    added_email,
    key=added_key("email"),
    payload=("request_id", "recipient"),
    max_attempts=5,
    time_limit=100,
)
ADDED_KINDS = {"sms": ADDED_SMS, "email": ADDED_EMAIL}
