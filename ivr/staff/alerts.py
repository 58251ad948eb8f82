"""Alert staff to each new callback request by SMS and e-mail, once, off the caller's path.

When a request is created (the recording is in), one outbox row per recipient is added to the same
transaction, so a request is never stored without its alerts and the unique key makes a second
alert impossible. The alerts are not due yet: the caller is still choosing the callback number
and typing the A-number. They fall due when the caller finishes the last step
(`callbacks.request_completed`), or after a grace period (ALERT_GRACE_SECONDS, 3 minutes) for a
caller who hangs up mid-way. The message is written at send time, from the request as it is then.

After the commit, a background thread delivers them, or, with ALERTS_DELIVERY=worker, only the
`ivr alerts run` worker does. Each alert is claimed with one conditional UPDATE before it is sent,
so two threads or processes never send the same one; a failure is retried with back-off.
"""

from __future__ import annotations

import datetime as dt
import threading

import sqlalchemy as sa
from flask import Flask, current_app

from .. import callbacks
from ..db import db, utcnow
from ..models import CallbackRequest
from .display import LANGUAGES, as_utc, phone
from .models import Alert
from .transports import send_email, send_sms

MAX_ATTEMPTS = 5
BACKOFF = dt.timedelta(seconds=30)  # doubled after each failure: 30 s, 1, 2, 4 min
LEASE = dt.timedelta(minutes=5)  # a claim older than this was lost with its process
GRACE_SECONDS = 180  # how long a request may stay unfinished before its alerts go anyway
PATIENCE = dt.timedelta(minutes=10)  # how long a delivery thread waits for alerts to fall due


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
    app.extensions["ivr.alerts_stop"] = threading.Event()
    callbacks.request_created.connect(queue_alerts, sender=app, weak=False)
    callbacks.request_completed.connect(alerts_due_now, sender=app, weak=False)


def grace() -> dt.timedelta:
    return dt.timedelta(seconds=float(current_app.config.get("ALERT_GRACE_SECONDS",
                                                             GRACE_SECONDS)))


def queue_alerts(app: Flask, request: CallbackRequest) -> None:
    """Add the request's alerts to its own transaction, due after the grace; never commit here."""
    wanted = [("sms", to) for to in sms_recipients()] + [("email", to) for to in email_recipients()]
    due = utcnow() + grace()
    for channel, recipient in wanted:
        db.session.add(Alert(request_id=request.id, channel=channel, recipient=recipient,
                             next_attempt_at=due))
    if wanted:
        deliver_after_commit(app)


def alerts_due_now(app: Flask, request: CallbackRequest) -> None:
    """The caller finished: the request's alerts need wait no longer. Inside its transaction."""
    db.session.flush()  # alerts queued in this same transaction (a request made in one go)
    result = db.session.execute(
        sa.update(Alert)
        .where(Alert.request_id == request.id, Alert.status == "pending")
        .values(next_attempt_at=utcnow())
    )
    if result.rowcount:
        deliver_after_commit(app)


def deliver_after_commit(app: Flask) -> None:
    """In thread mode, start one delivery thread when this transaction commits (never before:
    the thread must see the rows, and a rolled-back request must send nothing)."""
    if app.config["ALERTS_DELIVERY"] != "thread":
        return
    session = db.session
    if session.info.get("alerts_hook"):
        return
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


def stop_threads(app: Flask, timeout: float = 10) -> None:
    """Wake every sleeping delivery thread and let it end (shutdown and tests)."""
    app.extensions["ivr.alerts_stop"].set()
    for thread in app.extensions.get("ivr.alert_threads", []):
        thread.join(timeout)


def run_for(app: Flask, patience: dt.timedelta = PATIENCE) -> None:
    """Deliver what is due, then wait for alerts that fall due soon (grace, retries).

    While it waits the thread holds no database connection and no transaction: the session is
    closed first, so a sleeping thread pins no pooled connection and no snapshot or lock.
    Other threads may deliver the same alerts meanwhile; the claim lets only one send each.
    """
    stop = app.extensions["ivr.alerts_stop"]
    with app.app_context():
        give_up = utcnow() + patience
        try:
            while True:
                deliver_due()
                wait = next_due()
                db.session.close()
                if wait is None or wait > give_up:
                    return
                if stop.wait(max(0.0, (wait - utcnow()).total_seconds())):
                    return
        except Exception:  # the alerts stay in the outbox for the next thread or the worker
            db.session.rollback()
            current_app.logger.exception("alert delivery thread stopped")
        finally:
            db.session.close()


def next_due() -> dt.datetime | None:
    """When the next pending alert falls due. Alerts another thread is sending are not waited
    for: their lease (5 minutes) only matters if that process died, which the worker covers."""
    moment = db.session.scalar(
        sa.select(sa.func.min(Alert.next_attempt_at)).where(Alert.status == "pending")
    )
    return None if moment is None else as_utc(moment)


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
    return [f"New callback request #{row.reference} ({language}).", number,
            f"Listen: {link(row)}"]
