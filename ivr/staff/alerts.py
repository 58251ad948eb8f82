"""Alert staff to each new callback request by SMS and e-mail, once, off the caller's path.

When a request is created, one outbox row per recipient is added to the same transaction (so a
request is never stored without its alerts, and the unique key makes a second alert impossible).
After the commit, a background thread delivers them, or, with ALERTS_DELIVERY=worker, only the
`ivr alerts run` worker does. Each alert is claimed with one conditional UPDATE before it is sent,
so two processes never send the same one; a failure is retried with back-off.
"""

from __future__ import annotations

import datetime as dt
import smtplib
import ssl
import threading
import time
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa
from flask import Flask, current_app
from twilio.rest import Client

from .. import callbacks
from ..db import db, utcnow
from ..models import CallbackRequest
from .display import LANGUAGES, phone
from .models import Alert

MAX_ATTEMPTS = 5
BACKOFF = dt.timedelta(seconds=30)  # doubled after each failure: 30 s, 1, 2, 4 min
LEASE = dt.timedelta(minutes=5)  # a claim older than this was lost with its process
LOOPBACK = ("127.0.0.1", "localhost", "::1")


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
    app.config.setdefault("ALERTS_DELIVERY", "thread")
    with app.app_context():
        sms, email = sms_recipients(), email_recipients()
    if app.config["ALERT_SMS_TO"] and not sms:
        app.logger.warning("ALERT_SMS_TO is set but ALERT_SMS_FROM or TWILIO_ACCOUNT_SID is not: "
                           "no SMS alerts")
    if app.config["ALERT_EMAIL_TO"] and not email:
        app.logger.warning("ALERT_EMAIL_TO is set but SMTP_URL is not: no e-mail alerts")
    if sms or email:
        app.logger.info("alerts on: %d SMS and %d e-mail recipients, delivered by %s",
                        len(sms), len(email), app.config["ALERTS_DELIVERY"])
    else:
        app.logger.info("alerts are off: set ALERT_SMS_TO and ALERT_SMS_FROM, or ALERT_EMAIL_TO "
                        "and SMTP_URL, to alert staff to new callback requests")
    callbacks.request_created.connect(queue_alerts, sender=app, weak=False)


def queue_alerts(app: Flask, request: CallbackRequest) -> None:
    """Add the request's alerts to its own transaction; never commit here."""
    wanted = [("sms", to) for to in sms_recipients()] + [("email", to) for to in email_recipients()]
    for channel, recipient in wanted:
        db.session.add(Alert(request_id=request.id, channel=channel, recipient=recipient))
    if wanted and app.config["ALERTS_DELIVERY"] == "thread":
        session = db.session
        if not session.info.get("alerts_hook"):
            session.info["alerts_hook"] = True

            def after_commit(committed) -> None:
                committed.info.pop("alerts_hook", None)
                start_thread(app)

            sa.event.listen(session, "after_commit", after_commit, once=True)


def start_thread(app: Flask) -> threading.Thread:
    thread = threading.Thread(target=run_for, args=(app,), name="ivr-alerts", daemon=True)
    thread.start()
    # Kept so tests and shutdown can join them; finished ones are dropped so the list stays small.
    threads = app.extensions.setdefault("ivr.alert_threads", [])
    threads[:] = [t for t in threads if t.is_alive()] + [thread]
    return thread


def run_for(app: Flask, patience: dt.timedelta = dt.timedelta(minutes=10)) -> None:
    """Deliver what is due, then wait for retries that fall due soon; used by the thread."""
    with app.app_context():
        give_up = utcnow() + patience
        while True:
            deliver_due()
            wait = next_due()
            if wait is None or wait > give_up:
                return
            time.sleep(max(0.0, (wait - utcnow()).total_seconds()))


def next_due() -> dt.datetime | None:
    moment = db.session.scalar(
        sa.select(sa.func.min(Alert.next_attempt_at))
        .where(Alert.status.in_(("pending", "sending")))
    )
    return None if moment is None else as_utc(moment)


def as_utc(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def claim(alert_id: int) -> bool:
    """Take the alert for this process: only one UPDATE can match, across every process."""
    now = utcnow()
    result = db.session.execute(
        sa.update(Alert)
        .where(Alert.id == alert_id, Alert.status.in_(("pending", "sending")),
               Alert.next_attempt_at <= now)
        .values(status="sending", attempts=Alert.attempts + 1, next_attempt_at=now + LEASE)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1


def deliver_due() -> int:
    """Send every alert that is due (new, retry time reached, or claim abandoned); return count."""
    due = db.session.scalars(
        sa.select(Alert.id)
        .where(Alert.status.in_(("pending", "sending")), Alert.next_attempt_at <= utcnow())
        .order_by(Alert.id)
    ).all()
    sent = 0
    for alert_id in due:
        if claim(alert_id):
            sent += deliver(alert_id)
    return sent


def deliver(alert_id: int) -> bool:
    alert = db.session.get(Alert, alert_id, populate_existing=True)
    row = db.session.get(CallbackRequest, alert.request_id)
    try:
        if alert.channel == "sms":
            send_sms(alert.recipient, " ".join(message(row)))
        else:
            subject = f"New callback request #{row.reference}"
            send_email(alert.recipient, subject, "\n".join(message(row)) + "\n")
    except Exception as exc:  # whatever went wrong is recorded, and retried later
        db.session.rollback()
        current_app.logger.warning("alert %s (%s) failed, attempt %d: %s",
                                   alert.id, alert.channel, alert.attempts, exc)
        alert.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        limit = current_app.config.get("ALERT_MAX_ATTEMPTS", MAX_ATTEMPTS)
        if alert.attempts >= limit:
            alert.status = "failed"
            current_app.logger.error("alert %s for request %s given up after %d attempts",
                                     alert.id, row.reference, alert.attempts)
        else:
            alert.status = "pending"
            alert.next_attempt_at = utcnow() + BACKOFF * 2 ** (alert.attempts - 1)
        db.session.commit()
        return False
    alert.status, alert.sent_at, alert.last_error = "sent", utcnow(), None
    db.session.commit()
    return True


def link(row: CallbackRequest) -> str:
    path = current_app.url_map.bind("").build(
        "staff.requests.detail", {"request_id": row.id}
    )
    return current_app.config["PUBLIC_URL"].rstrip("/") + path


def message(row: CallbackRequest) -> list[str]:
    """What staff need to act; no name or A-number, which SMS and e-mail carry in the clear."""
    number = phone(row.callback_number or row.caller_number) or "no number given"
    language = LANGUAGES.get(row.language, row.language)
    return [f"New callback request #{row.reference} ({language}).", f"Call back: {number}.",
            f"Listen: {link(row)}"]


def send_sms(to: str, body: str) -> None:
    config = current_app.config
    client = Client(config["TWILIO_ACCOUNT_SID"], config["TWILIO_AUTH_TOKEN"])
    client.messages.create(to=to, from_=config["ALERT_SMS_FROM"], body=body)


def send_email(to: str, subject: str, body: str) -> None:
    """Send through SMTP_URL: smtps:// is TLS from the start; smtp:// upgrades with STARTTLS
    when the server offers it, and never sends a password in the clear except to loopback."""
    config = current_app.config
    url = urlsplit(config["SMTP_URL"])
    if url.scheme not in ("smtp", "smtps"):
        raise ValueError("SMTP_URL must start with smtp:// or smtps://")
    email = EmailMessage()
    email["From"], email["To"], email["Subject"] = config["ALERT_EMAIL_FROM"], to, subject
    email.set_content(body)
    context = ssl.create_default_context()
    host = url.hostname or "localhost"
    if url.scheme == "smtps":
        server: smtplib.SMTP = smtplib.SMTP_SSL(host, url.port or 465, timeout=20, context=context)
    else:
        server = smtplib.SMTP(host, url.port or 25, timeout=20)
    with server:
        secure = url.scheme == "smtps"
        if not secure:
            server.ehlo()
            if server.has_extn("starttls"):
                server.starttls(context=context)
                server.ehlo()
                secure = True
        if url.username:
            if not secure and host not in LOOPBACK:
                raise RuntimeError(f"{host} offers no TLS: refusing to send the SMTP password")
            server.login(unquote(url.username), unquote(url.password or ""))
        server.send_message(email)
