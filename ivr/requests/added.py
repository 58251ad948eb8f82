"""Alert staff when a family adds a message to an open request by calling again.

The added message may carry what changed (a hearing moved to tomorrow), so each recipient of the
new-request alerts gets one short message: the reference, the language, the link; no name or
A-number, as for every alert. Queued in the transaction that stores the message, sent by the
worker like the other alerts (SMS at most once, e-mail retried), written at send time.
"""

from __future__ import annotations

from typing import Any

from ivr.background import jobs
from ivr.messaging.email import send_email
from ivr.requests import alerts
from ivr.requests.models import CallbackRequest
from ivr.staff.display import LANGUAGES


def queue(request_id: int, message_id: int) -> None:
    """Queue the alerts of a new added message; inside its transaction, never commits."""
    for channel, recipient in alerts.recipients():
        KINDS[channel].enqueue(request_id=request_id, message_id=message_id, recipient=recipient)


def title(row: CallbackRequest) -> str:
    return f"{'URGENT: ' if row.urgent else ''}New message on callback request #{row.reference}"


def message(row: CallbackRequest) -> list[str]:
    language = LANGUAGES.get(row.language, row.language)
    return [f"{title(row)} ({language}): the caller called again.", f"Listen: {alerts.link(row)}"]


def added_sms(payload: dict[str, Any]) -> None:
    row = alerts.request_or_none(payload["request_id"])
    if row is not None:
        alerts.sms(payload["recipient"], " ".join(message(row)))


def added_email(payload: dict[str, Any]) -> None:
    row = alerts.request_or_none(payload["request_id"])
    if row is not None:
        send_email(payload["recipient"], title(row), "\n".join(message(row)) + "\n")


def added_key(channel: str):
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
KINDS = {"sms": ADDED_SMS, "email": ADDED_EMAIL}
