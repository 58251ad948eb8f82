"""The staff list of requests, read here: filters, the search and the order, as one query.

The staff pages (`staff/dashboard.py`) parse what staff asked for and call `find`; the order is
the request's business: families still waiting first, urgent ones (a hearing within 7 days, a
transfer soon: `service/callers.mark_urgent`) before the rest, the longest wait at the top; then
reached, then handled, the latest first.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from ivr.db import db
from ivr.requests.history import OPEN, RequestClaim
from ivr.requests.models import CallbackRequest


@dataclass
class Search:
    """What staff filter and search by. Days are given as instants (the office's calendar says
    where a day starts); `claimed_by`, a person's own list. Overdue is not here: it is counted
    in office hours (the office calendar), which SQL cannot do portably; the dashboard filters the
    waiting ones."""

    status: str = ""
    language: str = ""
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    q: str = ""
    claimed_by: str | None = None
    unassigned: bool = False  # nobody has said "I'll take it"
    urgent: bool = False
    waiting: bool = False  # only those whose family still waits (new, trying)

    def query(self) -> sa.Select:
        query = sa.select(CallbackRequest)
        if self.status:
            query = query.where(CallbackRequest.status == self.status)
        if self.language:
            query = query.where(CallbackRequest.language == self.language)
        if self.since:
            query = query.where(CallbackRequest.created_at >= self.since)
        if self.until:
            query = query.where(CallbackRequest.created_at < self.until)
        if self.claimed_by:
            query = query.join(RequestClaim, RequestClaim.request_id == CallbackRequest.id).where(
                RequestClaim.username == self.claimed_by
            )
        if self.unassigned:
            query = query.where(~sa.exists().where(RequestClaim.request_id == CallbackRequest.id))
        if self.urgent:
            query = query.where(CallbackRequest.urgent.is_(True))
        if self.waiting:
            query = query.where(CallbackRequest.status.in_(OPEN))
        if self.q:
            digits = re.sub(r"\D", "", self.q)
            found = [CallbackRequest.reference == self.q.lstrip("#")]
            if len(digits) >= 3:
                found += [
                    CallbackRequest.reference == digits,
                    CallbackRequest.caller_number.contains(digits, autoescape=True),
                    CallbackRequest.callback_number.contains(digits, autoescape=True),
                    CallbackRequest.a_number == digits.rjust(9, "0"),
                ]
            query = query.where(sa.or_(*found))
        waiting = CallbackRequest.status.in_(OPEN)
        group = sa.case(
            (sa.and_(waiting, CallbackRequest.urgent), 0),
            (waiting, 1),
            (CallbackRequest.status == "reached", 2),
            else_=3,
        )
        oldest_waiting = sa.case((waiting, CallbackRequest.created_at), else_=None)
        return query.order_by(
            group,
            oldest_waiting.asc(),
            CallbackRequest.created_at.desc(),
            CallbackRequest.id.desc(),
        )


def find(search: Search, limit: int | None = None) -> Sequence[CallbackRequest]:
    """The requests found, in the list's order, with their added messages loaded."""
    query = search.query().options(selectinload(CallbackRequest.messages))
    if limit is not None:
        query = query.limit(limit)
    return db.session.scalars(query).all()


def waiting_counts() -> dict[str, int]:
    """Requests whose family still waits, per language, for the header and the page title."""
    rows = db.session.execute(
        sa.select(CallbackRequest.language, sa.func.count())
        .where(CallbackRequest.status.in_(OPEN))
        .group_by(CallbackRequest.language)
    )
    return {language: count for language, count in rows}
