"""Alert staff to each new callback request by SMS and e-mail, once, off the caller's path.

When a request is created (the recording is in), one job per recipient is queued in the same
transaction (see `jobs.py`), so a request is never stored without its alerts, and the job's key
makes a second alert impossible. The alerts are not due yet: the caller is still choosing the
callback number and typing the A-number. They fall due when the caller finishes the last step
(`store.request_completed`), or after a grace period (ALERT_GRACE_SECONDS, 3 minutes) for a
caller who hangs up mid-way. The message is written at send time, from the request as it is then.

SMS are `once` jobs: sent at most once even if the worker dies mid-send (a duplicate SMS is
noticed; a lost one still leaves the e-mail and the dashboard). E-mails are retried until sent.
While the database is down, `fallback.py` calls `alert_directly` with what callers gave.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app

from ivr.background import jobs
from ivr.db import db, utcnow
from ivr.messaging import twilio_api
from ivr.messaging.transports import send_email, send_sms
from ivr.requests import store
from ivr.requests.models import CallbackRequest
from ivr.staff.display import LANGUAGES, phone

GRACE_SECONDS = 180  # how long a request may stay unfinished before its alerts go anyway
CHANNELS = ("sms", "email")


def sms_recipients() -> list[str]:
    config = current_app.config
    if config["ALERT_SMS_FROM"] and config["TWILIO_ACCOUNT_SID"]:
        return list(config["ALERT_SMS_TO"])
    return []


def email_recipients() -> list[str]:
    config = current_app.config
    if not config["SMTP_URL"]:
        return []
    return [a.strip() for a in config["ALERT_EMAIL_TO"].split(",") if a.strip()]


def init_app(app: Flask) -> None:
    with app.app_context():
        sms, email = sms_recipients(), email_recipients()
    if app.config["ALERT_SMS_TO"] and not sms:
        app.logger.warning(
            "ALERT_SMS_TO is set but ALERT_SMS_FROM or TWILIO_ACCOUNT_SID is not: no SMS alerts"
        )
    if app.config["ALERT_EMAIL_TO"] and not email:
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
    store.request_created.connect(queue_alerts, sender=app, weak=False)
    store.request_completed.connect(alerts_due_now, sender=app, weak=False)


def grace() -> float:
    return float(current_app.config.get("ALERT_GRACE_SECONDS", GRACE_SECONDS))


def recipients() -> list[tuple[str, str]]:
    return [("sms", to) for to in sms_recipients()] + [("email", to) for to in email_recipients()]


def key(request_id: int, channel: str = "", recipient: str = "") -> str:
    return f"alert:{request_id}:" + (f"{channel}:{recipient}" if channel else "")


def queue_alerts(app: Flask, request: CallbackRequest) -> None:
    """Queue the request's alerts in its own transaction, due after the grace; never commit."""
    for channel, recipient in recipients():
        jobs.enqueue(
            f"alert-{channel}",
            key(request.id, channel, recipient),
            {"request_id": request.id, "recipient": recipient},
            delay=grace(),
        )


def alerts_due_now(app: Flask, request: CallbackRequest) -> None:
    """The caller finished: the request's alerts need wait no longer. Inside its transaction."""
    db.session.execute(
        sa.update(jobs.Job)
        .where(
            jobs.Job.key.startswith(key(request.id)),
            jobs.Job.status == "pending",
            jobs.Job.attempts == 0,
        )
        .values(run_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def request_or_none(request_id: int) -> CallbackRequest | None:
    row = db.session.get(CallbackRequest, request_id)
    if row is not None:
        db.session.expunge(row)  # its fields stay readable after the commit below
    db.session.commit()  # hold no connection while the message is sent
    return row


@jobs.handler("alert-sms", once=True, max_attempts=5)
def alert_sms(payload: dict[str, Any]) -> None:
    row = request_or_none(payload["request_id"])
    if row is not None:
        sms(payload["recipient"], " ".join(message(row)))


@jobs.handler("alert-email", max_attempts=5)
def alert_email(payload: dict[str, Any]) -> None:
    row = request_or_none(payload["request_id"])
    if row is not None:
        send_email(payload["recipient"], title(row), "\n".join(message(row)) + "\n")


def sms(to: str, body: str) -> None:
    """Send an SMS through Twilio; a failure that cannot have sent it is retried, anything else is
    final (see `twilio_api.nothing_sent`)."""
    try:
        send_sms(to, body)
    except twilio_api.FAILURES as exc:
        if twilio_api.nothing_sent(exc):
            raise
        if twilio_api.refused(exc):
            raise jobs.Permanent(twilio_api.why(exc)) from None
        raise jobs.Permanent(f"the SMS may have been sent: {twilio_api.why(exc)}") from None


def link(row: CallbackRequest) -> str:
    path = current_app.url_map.bind("").build("staff.requests.detail", {"request_id": row.id})
    return current_app.config["PUBLIC_URL"].rstrip("/") + path


def message(row: CallbackRequest) -> list[str]:
    """What staff need to act, written at send time; no name or A-number, which SMS and e-mail
    carry in the clear. The number is labelled for what it is: one the caller chose to be called
    back on, or only the one the call came from (a caller who hung up before choosing)."""
    if row.callback_number:
        number = f"Call back: {phone(row.callback_number)}."
    elif row.caller_number:
        number = f"Called from: {phone(row.caller_number)} (no callback number given)."
    else:
        number = "No number: caller ID withheld and no callback number given."
    language = LANGUAGES.get(row.language, row.language)
    return [f"{title(row)} ({language}).", number, f"Listen: {link(row)}"]


def title(row: CallbackRequest) -> str:
    """URGENT first when the caller said a hearing or a transfer is days away (`urgency.py`)."""
    return f"{'URGENT: ' if row.urgent else ''}New callback request #{row.reference}"


def account_locked(username: str, failures: int) -> None:
    """Tell the alert recipients that a staff account locked itself (in the caller's
    transaction): someone may be guessing its password or codes."""
    moment = utcnow().isoformat(timespec="seconds")
    for channel, recipient in recipients():
        jobs.enqueue(
            f"alert-locked-{channel}",
            f"locked:{username}:{moment}:{channel}:{recipient}",
            {"username": username, "failures": failures, "recipient": recipient},
        )


def locked_message(payload: dict[str, Any]) -> str:
    return (
        f"Hotline: staff account {payload['username']} was locked after {payload['failures']} "
        "wrong passwords or codes in a row. If that was not them, someone is guessing. "
        "Unlock it with `ivr staff unlock` or on the Accounts page."
    )


@jobs.handler("alert-locked-sms", once=True, max_attempts=5)
def alert_locked_sms(payload: dict[str, Any]) -> None:
    sms(payload["recipient"], locked_message(payload))


@jobs.handler("alert-locked-email", max_attempts=5)
def alert_locked_email(payload: dict[str, Any]) -> None:
    subject = f"Staff account {payload['username']} locked"
    send_email(payload["recipient"], subject, locked_message(payload) + "\n")


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
                    send_sms(recipient, " ".join(lines))
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
    language = LANGUAGES.get(fields.get("language", ""), fields.get("language", ""))
    if fields.get("callback_number"):
        number = f"Call back: {phone(fields['callback_number'])}."
    elif fields.get("caller_number"):
        number = f"Called from: {phone(fields['caller_number'])} (no callback number given)."
    else:
        number = "No number: caller ID withheld and no callback number given."
    return [
        f"New callback request #{fields.get('reference', '?')} ({language}).",
        number,
        "The database is down: the message will be on the dashboard once it is back.",
    ]
