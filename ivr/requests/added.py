"""Alert staff when a family adds a message to an open request by calling again.

The added message may carry what changed (a hearing moved to tomorrow), so each recipient of the
new-request alerts gets one short message: the reference, the language, the link; no name or
A-number, as for every alert. Queued in the transaction that stores the message, sent by the
worker like the other alerts (SMS at most once, e-mail retried), written at send time, and
counted in the same ALERTS_PER_HOUR as they are (past it, the hour's digest counts them).
"""

from __future__ import annotations

from typing import Any

from ivr.background import jobs
from ivr.messaging.transports import send_email
from ivr.requests import alerts
from ivr.requests.models import CallbackRequest
from ivr.staff.display import LANGUAGES


def queue(request_id: int, message_id: int) -> None:
    """Queue the alerts of a new added message; inside its transaction, never commits."""
    for channel, recipient in alerts.recipients():
        jobs.enqueue(
            f"added-{channel}",
            f"added:{message_id}:{channel}:{recipient}",
            {"request_id": request_id, "recipient": recipient},
        )


def title(row: CallbackRequest) -> str:
    return f"{'URGENT: ' if row.urgent else ''}New message on callback request #{row.reference}"


def message(row: CallbackRequest) -> list[str]:
    language = LANGUAGES.get(row.language, row.language)
    return [f"{title(row)} ({language}): the caller called again.", f"Listen: {alerts.link(row)}"]


@jobs.handler("added-sms", once=True, max_attempts=5)
def added_sms(payload: dict[str, Any]) -> None:
    row = alerts.request_or_none(payload["request_id"])
    if row is not None and alerts.within_cap("sms", payload["recipient"]):
        alerts.sms(payload["recipient"], " ".join(message(row)))


@jobs.handler("added-email", max_attempts=5)
def added_email(payload: dict[str, Any]) -> None:
    row = alerts.request_or_none(payload["request_id"])
    if row is not None and alerts.within_cap("email", payload["recipient"]):
        send_email(payload["recipient"], title(row), "\n".join(message(row)) + "\n")
