"""Every listen is audited (issue 22, M5): the first fetch of each recording, the request's and a
message added on a later call, per person within LISTEN_AUDIT_MINUTES, whatever byte range it
asks for."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
import time_machine

from ivr.accounts.audit import AuditEntry
from ivr.db import db
from ivr.requests.history import RequestEvent
from ivr.requests.models import RequestMessage
from tests.conftest import StaffAuth


def listens(app) -> list[tuple[str, int | None, str]]:
    with app.app_context():
        return [
            tuple(row)
            for row in db.session.execute(
                sa.select(AuditEntry.actor, AuditEntry.request_id, AuditEntry.detail)
                .where(AuditEntry.action == "listen")
                .order_by(AuditEntry.id)
            )
        ]


def test_a_listen_that_starts_with_a_range_is_audited(app, auth, client, make_request):
    heard = make_request(audio=b"ID3" + b"x" * 11000, audio_type="audio/mpeg")
    auth.login()
    answer = client.get(f"/staff/requests/{heard}/audio", headers={"Range": "bytes=1-"})
    assert answer.status_code == 206 and len(answer.data) == 11002
    assert listens(app) == [("ana", heard, "")]
    with app.app_context():  # and in the request's history
        kinds = db.session.scalars(
            sa.select(RequestEvent.kind).where(RequestEvent.request_id == heard)
        ).all()
    assert kinds.count("listen") == 1
    # The player's next ranges, and a replay within the window, are the same listen.
    client.get(f"/staff/requests/{heard}/audio", headers={"Range": "bytes=5000-"})
    client.get(f"/staff/requests/{heard}/audio")
    assert listens(app) == [("ana", heard, "")]


def test_an_added_message_is_audited_apart(app, auth, client, make_request):
    heard = make_request(audio=b"ID3first", audio_type="audio/mpeg")
    with app.app_context():
        message = RequestMessage(
            request_id=heard, call_sid="CA" + "7" * 32, audio=b"ID3later", audio_type="audio/mpeg"
        )
        db.session.add(message)
        db.session.commit()
        message_id = message.id
    auth.login()
    url = f"/staff/requests/{heard}/messages/{message_id}/audio"
    assert client.get(url, headers={"Range": "bytes=2-"}).status_code == 206
    assert client.get(f"/staff/requests/{heard}/audio").status_code == 200
    assert listens(app) == [
        ("ana", heard, f"added message {message_id}"),
        ("ana", heard, ""),
    ]


def test_a_listen_after_the_window_is_a_new_one(app, auth, client, make_request):
    heard = make_request(audio=b"ID3first", audio_type="audio/mpeg")
    start = dt.datetime.now(dt.UTC)
    with time_machine.travel(start, tick=True):
        auth.login()
        client.get(f"/staff/requests/{heard}/audio", headers={"Range": "bytes=3-"})
    with time_machine.travel(start + dt.timedelta(minutes=61), tick=True):
        client.get(f"/staff/requests/{heard}/audio", headers={"Range": "bytes=3-"})
    assert listens(app) == [("ana", heard, ""), ("ana", heard, "")]


def test_another_person_listening_is_audited_too(app, auth, client, make_request):
    from werkzeug.security import generate_password_hash

    from ivr.accounts.models import StaffUser
    from tests.conftest import STAFF_PASSWORD

    heard = make_request(audio=b"ID3first and more", audio_type="audio/mpeg")
    with app.app_context():
        db.session.add(
            StaffUser(username="bo", password_hash=generate_password_hash(STAFF_PASSWORD))
        )
        db.session.commit()
    auth.login()
    client.get(f"/staff/requests/{heard}/audio", headers={"Range": "bytes=9-"})
    other = app.test_client()
    StaffAuth(other).login("bo")
    other.get(f"/staff/requests/{heard}/audio", headers={"Range": "bytes=9-"})
    assert listens(app) == [("ana", heard, ""), ("bo", heard, "")]
