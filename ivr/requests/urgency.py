"""Urgent requests: a hearing within 7 days, or a transfer or deportation soon.

Bond-denial next steps are time-limited, so the queue should not be first come, first served: an
urgent request says so in the first word of its staff alert and sorts first on the dashboard.
The caller answers the question after the request is complete, when its alerts may already have
gone: then each recipient gets one more alert, now saying URGENT (a job key of its own, so a
repeated key press alerts no one twice). Alerts not yet sent simply say it, being written at
send time.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import current_app

from ivr.background import jobs
from ivr.db import db
from ivr.requests import alerts
from ivr.requests.models import CallbackRequest


def mark(reference: str, call_sid: str) -> bool:
    """Mark the request urgent; False (logged) when the database cannot take it."""
    try:
        row = db.session.scalar(sa.select(CallbackRequest).filter_by(reference=reference))
        if row is None:
            db.session.rollback()
            current_app.logger.error(
                "call %s: urgent request %s not found; staff must be told", call_sid, reference
            )
            return False
        row.urgent = True
        for channel, recipient in alerts.recipients():
            kind = alerts.KINDS[channel]
            first = db.session.scalar(
                sa.select(jobs.Job.status).where(
                    jobs.Job.key == kind.job_key(request_id=row.id, recipient=recipient)
                )
            )
            if first not in (None, jobs.JobStatus.pending):
                kind.enqueue(request_id=row.id, recipient=recipient, urgent=True)
        db.session.commit()
        return True
    except sa.exc.SQLAlchemyError as exc:
        db.session.rollback()
        current_app.logger.error(
            "call %s: could not mark request %s urgent: %s", call_sid, reference, jobs.reason(exc)
        )
        return False
