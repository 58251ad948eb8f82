"""The audit log: a listen, an export and a login made here are listed for admins, it cannot be
rewritten, and it keeps no caller's personal data after a purge."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa
from werkzeug.security import generate_password_hash

from ivr.accounts.audit import AuditEntry
from ivr.accounts.models import StaffUser
from ivr.db import db
from ivr.requests import retention
from tests.conftest import STAFF_PASSWORD, StaffAuth


@pytest.fixture
def bo(app, staff_user):
    """A staff (not admin) account."""
    with app.app_context():
        db.session.add(
            StaffUser(
                username="bo", role="staff", password_hash=generate_password_hash(STAFF_PASSWORD)
            )
        )
        db.session.commit()
    return "bo"


def audit_rows(page: str) -> list[dict]:
    rows = re.findall(
        r'<tr data-action="(\w+)" data-actor="([^"]+)"'
        r'(?: data-reference="(\d+)")?>(.*?)</tr>',
        page,
        flags=re.S,
    )
    return [
        {"action": a, "actor": who, "reference": ref, "text": text} for a, who, ref, text in rows
    ]


def test_audit_lists_a_listen_an_export_and_logins(app, bo, make_request):
    heard = make_request(
        reference="100001",
        audio=b"ID3message",
        audio_type="audio/mpeg",
        caller_number="+13125550177",
        a_number="012345678",
    )
    make_request(reference="100002", language="en")
    staff, admin = app.test_client(), app.test_client()
    StaffAuth(staff).login("bo", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert staff.get(f"/staff/requests/{heard}/audio").status_code == 200
    # The player's later byte ranges are the same listen.
    assert (
        staff.get(f"/staff/requests/{heard}/audio", headers={"Range": "bytes=4-"}).status_code
        == 206
    )
    assert staff.get("/staff/audit").status_code == 403
    assert staff.get("/staff/requests.csv").status_code == 403  # refused: not an export

    StaffAuth(admin).login("ana")
    export = admin.get("/staff/requests.csv?language=es&q=5550177")
    assert export.status_code == 200 and "100001" in export.get_data(as_text=True)

    page = admin.get("/staff/audit").get_data(as_text=True)
    rows = audit_rows(page)
    assert [(r["action"], r["actor"], r["reference"]) for r in rows] == [
        ("export", "ana", ""),
        ("login", "ana", ""),
        ("listen", "bo", "100001"),
        ("login", "bo", ""),
    ]
    assert "1 rows" in rows[0]["text"] and "references: 100001" in rows[0]["text"]
    assert "language=es" in rows[0]["text"]
    assert "5550177" not in page  # the search (a phone number) is not kept
    assert "10.1.2.3" in rows[3]["text"]  # where bo logged in from


def test_audit_log_is_append_only(app, staff_user):
    with app.app_context():
        db.session.add(AuditEntry(actor="ana", action="login"))
        db.session.commit()
        for statement in (
            sa.update(AuditEntry).values(actor="someone else"),
            sa.delete(AuditEntry),
        ):
            with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                db.session.execute(statement)
            db.session.rollback()
        assert db.session.scalar(sa.select(AuditEntry.actor)) == "ana"


def test_audit_kept_after_a_purge_without_personal_data(app, client, auth, make_request):
    handled = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    request_id = make_request(
        reference="100009",
        status="handled",
        handled_at=handled,
        caller_number="+13125550188",
        note="Tía Rosa, Broadview",
        audio=b"ID3x",
        audio_type="audio/mpeg",
    )
    auth.login()
    client.get(f"/staff/requests/{request_id}/audio")
    with app.app_context():
        retention.run(handled + dt.timedelta(days=91))
    page = client.get("/staff/audit").get_data(as_text=True)
    assert [(r["action"], r["reference"]) for r in audit_rows(page)][:2] == [
        ("purge", "100009"),
        ("listen", "100009"),
    ]
    assert "5550188" not in page and "Broadview" not in page
