"""The queue at a glance and feedback where the hand is (issue 21): filters, the due countdown,
messages in the card acted on, the delete confirmation, a missing recording, a note given back."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import responses
import sqlalchemy as sa

from ivr.background import jobs
from ivr.db import db
from ivr.requests import history, listing, recordings
from ivr.requests.models import CallbackRequest
from ivr.staff import display
from tests.conftest import StaffAuth, csrf_token
from tests.test_history import add_staff, client_card, events, form_of

UTC = dt.UTC
SID = "AC" + "0" * 32
REC_URL = f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Recordings/RE0123"


def references(page: str) -> list[str]:
    return re.findall(r'data-reference="(\d+)"', page)


def test_each_filter_narrows_the_list(app, client, auth, make_request):
    now = dt.datetime.now(UTC)
    old = make_request(reference="100001", created_at=now - dt.timedelta(days=5))
    make_request(reference="100002", urgent=True, created_at=now - dt.timedelta(minutes=5))
    make_request(reference="100003", language="en", created_at=now - dt.timedelta(minutes=9))
    make_request(reference="100004", status="handled", created_at=now - dt.timedelta(days=6))
    auth.login()
    token = csrf_token(client, "/staff/")
    client.post(f"/staff/requests/{old}/claim", data={"csrf_token": token})

    def shown(query: str) -> list[str]:
        return sorted(references(client.get(f"/staff/?{query}").get_data(as_text=True)))

    assert shown("") == ["100001", "100002", "100003", "100004"]
    assert shown("mine=1") == ["100001"]
    assert shown("unassigned=1") == ["100002", "100003", "100004"]
    assert shown("urgent=1") == ["100002"]
    assert shown("overdue=1") == ["100001"]  # waiting 5 days; the handled one waits no more
    assert shown("language=en") == ["100003"]
    assert shown("status=handled") == ["100004"]
    assert shown("unassigned=1&language=es") == ["100002", "100004"]
    page = client.get("/staff/?urgent=1&overdue=1").get_data(as_text=True)
    assert references(page) == [] and "Filters (2 on)" in page
    # The filters are a GET form; the search, which may be a phone number, is posted and carries
    # the filters along as hidden fields.
    assert '<form method="get" class="filters"' in page
    search = re.search(r'<form method="post" class="search".*?</form>', page, re.S)[0]
    assert 'name="urgent" value="1"' in search and 'name="overdue" value="1"' in search
    response = client.post(
        "/staff/", data={"csrf_token": token, "q": "100002", "urgent": "1", "overdue": ""}
    )
    assert references(response.get_data(as_text=True)) == ["100002"]


def test_due_countdown_in_office_hours_with_a_shorter_target_for_urgent(make_app):
    app = make_app(
        OFFICE_HOURS="mon-fri 09:00-17:00", CALLBACK_TARGET_HOURS="8", URGENT_TARGET_HOURS="2"
    )
    with app.app_context():
        tz = display.office_tz()
        monday_9 = dt.datetime(2026, 3, 9, 9, 0, tzinfo=tz)
        at_noon = dt.datetime(2026, 3, 9, 12, 0, tzinfo=tz)
        assert display.due(monday_9, at_noon).text == "due in 5 h"
        assert display.due(monday_9, at_noon, urgent=True).text == "overdue by 1 h"
        assert display.overdue(monday_9, at_noon, urgent=True)
        assert not display.overdue(monday_9, at_noon)
        # The night does not count: left at 16:30, due at 10:30 the next day (2 office hours).
        evening = dt.datetime(2026, 3, 9, 16, 30, tzinfo=tz)
        tuesday = dt.datetime(2026, 3, 10, 10, 0, tzinfo=tz)
        assert display.due(evening, tuesday, urgent=True).text == "due in 30 min"


def test_card_shows_the_countdown_and_urgent_keeps_its_mark(app, client, auth, make_request):
    now = dt.datetime.now(UTC)
    make_request(reference="100001", created_at=now - dt.timedelta(minutes=30))
    make_request(
        reference="100002", urgent=True, status="trying", created_at=now - dt.timedelta(days=3)
    )
    auth.login()
    page = client.get("/staff/").get_data(as_text=True)
    cards = dict(re.findall(r'data-reference="(\d+)"(.*?)</header>', page, re.S))
    assert re.search(r'class="due"[^>]*>due in 7 h', cards["100001"])  # 8 h target (always open)
    assert re.search(r'class="flag"[^>]*>Overdue by \d+ h', cards["100002"])
    # A Trying set by hand has no attempts to count.
    assert re.search(r'class="badge status">Trying</span>', cards["100002"])
    response = client.get("/static/staff/staff.css")
    css = response.get_data(as_text=True)
    response.close()
    # More specific than `.status-trying .badge`, which used to turn the Urgent badge pale.
    assert ".request .badge.urgent { background: #8b1a10;" in css


def test_buttons_names_contain_their_visible_text(client, auth, make_request):
    """axe's label-content-name-mismatch: no aria-label on a button that shows a word."""
    make_request()
    auth.login()
    page = client.get("/staff/").get_data(as_text=True)
    assert not re.findall(r"<button[^>]*aria-label", page)
    assert 'I\'ll take it<span class="visually-hidden"> (#100001)</span>' in page


def test_messages_show_in_the_card_acted_on_by_kind(app, make_request):
    add_staff(app, "alice", "bob")
    first, second = make_request(reference="100001"), make_request(reference="100002")
    alice, bob = app.test_client(), app.test_client()
    StaffAuth(alice).login("alice")
    StaffAuth(bob).login("bob")
    page = bob.get("/staff/").get_data(as_text=True)  # loaded before alice acts
    alice.post(f"/staff/requests/{first}/claim", data={"csrf_token": csrf_token(alice, "/staff/")})
    alice.post(
        f"/staff/requests/{first}?next=/staff/",
        data={**form_of(alice.get("/staff/").get_data(as_text=True), first), "status": "handled"},
    )
    token = csrf_token(bob, "/staff/")
    bob.post(f"/staff/requests/{first}/claim?next=/staff/", data={"csrf_token": token})
    response = bob.post(
        f"/staff/requests/{first}?next=/staff/",
        data={**form_of(page, first), "status": "reached", "note": "Left a message"},
    )
    assert response.headers["Location"] == f"/staff/#r{first}"
    page = bob.get("/staff/").get_data(as_text=True)
    card = re.search(rf'<article [^>]*id="r{first}".*?</article>', page, re.S)[0]
    said = re.findall(r'<p class="flash (\w+)" role="(\w+)"( data-saved)?>([^<]*)</p>', card)
    kinds = [(kind, role, saved.strip()) for kind, role, saved, _ in said]
    assert kinds == [
        ("warning", "alert", ""),  # already taken by alice
        ("warning", "alert", ""),  # changed while you had it open
        ("warning", "alert", ""),  # your status was not applied
        ("success", "status", "data-saved"),  # the note was saved: the draft may go
    ], said
    assert "already taken by alice" in said[0][3]
    assert "your status was not applied" in said[2][3]
    assert re.search(r'<details class="more" open>', card)  # the card acted on is unfolded
    top = page.split('<div class="requests">')[0]
    assert 'class="flash' not in top  # nothing about that card at the top of the page
    other = re.search(rf'<article [^>]*id="r{second}".*?</article>', page, re.S)[0]
    assert "flash" not in other and '<details class="more">' in other
    assert "already taken" not in bob.get("/staff/").get_data(as_text=True)  # said once


def test_delete_asks_first_then_closes_the_request(app, client, auth, make_request):
    request_id = make_request(reference="100001", a_number="012345678")
    auth.login()
    page = client.get(f"/staff/requests/{request_id}").get_data(as_text=True)
    form = re.search(r'<form method="get" class="card danger".*?</form>', page, re.S)[0]
    assert f'action="/staff/requests/{request_id}/delete"' in form
    # The button only asks (GET): nothing is deleted.
    confirm = client.get(f"/staff/requests/{request_id}/delete")
    assert confirm.status_code == 200
    text = confirm.get_data(as_text=True)
    assert "cannot be undone" in text and "Yes, delete the personal data of #100001" in text
    with app.app_context():
        row = db.session.get(CallbackRequest, request_id)
        assert row.a_number == "012345678" and row.status == "new"
    assert "1 waiting" in client.get("/staff/").get_data(as_text=True)
    token = csrf_token(client, f"/staff/requests/{request_id}/delete")
    response = client.post(f"/staff/requests/{request_id}/delete", data={"csrf_token": token})
    assert response.status_code == 302
    with app.app_context():
        row = db.session.get(CallbackRequest, request_id)
        assert row.a_number is None and row.status == "handled"
    assert [e[:2] + e[3:] for e in events(app, request_id)] == [
        ("erase", "ana", None, None),
        ("status", "ana", "new", "handled"),
    ]
    card = client_card(client, request_id)
    assert "deleted the personal data and recording" in card
    assert "status New → Handled (personal data deleted)" in card
    assert "0 waiting" in client.get("/staff/").get_data(as_text=True)
    # Staff (not admins) may not even ask.
    add_staff(app, "bob")
    bob = app.test_client()
    StaffAuth(bob).login("bob")
    assert bob.get(f"/staff/requests/{request_id}/delete").status_code == 403


@responses.activate
def test_a_lost_recording_says_so_and_retry_copy_queues_it_again(app, client, auth, make_request):
    request_id = make_request(recording_url=REC_URL, recording_sid="RE0123")
    auth.login()
    assert "copies it within a minute or two" in client_card(client, request_id)
    with app.app_context():
        recordings.COPY_RECORDING.enqueue(request_id=request_id, recording_sid="RE0123")
        db.session.commit()
    fetch = responses.get(REC_URL + ".mp3", status=404)  # Twilio no longer has it
    for _ in range(8):  # every retry, as the worker would over about ten minutes
        jobs.run_pending(app)
        with app.app_context():
            db.session.execute(sa.update(jobs.Job).values(run_at=dt.datetime.now(UTC)))
            db.session.commit()
    assert fetch.call_count == 8
    card = client_card(client, request_id)
    assert "Recording lost – Twilio no longer has it. Ask the family to call again" in card
    assert "worker" not in card and "Retry copy" in card
    token = csrf_token(client, f"/staff/requests/{request_id}")
    response = client.post(f"/staff/requests/{request_id}/copy", data={"csrf_token": token})
    assert response.status_code == 302
    with app.app_context():
        job = db.session.scalar(sa.select(jobs.Job).filter_by(key="copy-recording:RE0123"))
        assert (job.status, job.attempts) == (jobs.JobStatus.pending, 0)
    assert events(app, request_id)[-1][:2] == ("copy", "ana")
    responses.replace(responses.GET, REC_URL + ".mp3", body=b"ID3again")
    responses.delete(REC_URL.replace("Recordings/RE0123", "Recordings/RE0123.json"), status=204)
    jobs.run_pending(app)
    card = client_card(client, request_id)
    assert "<audio" in card and "Recording lost" not in card
    assert "the recording will be copied again" in card


def test_an_expired_session_gives_the_note_back(app, client, auth, make_request):
    request_id = make_request(reference="100001")
    auth.login()
    form = form_of(client.get("/staff/").get_data(as_text=True), request_id)
    # The session cookie is gone (expired, or the browser was closed): the CSRF check fails.
    client.delete_cookie("session")
    note = "Hermana: audiencia el viernes <9am>"
    response = client.post(f"/staff/requests/{request_id}", data={**form, "note": note})
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "Your note was <strong>NOT</strong> saved" in text and "Bad Request" not in text
    assert "your session had ended" in text
    assert "Hermana: audiencia el viernes &lt;9am&gt;</textarea>" in text
    assert f'data-draft-for="{request_id}"' in text
    assert f'href="/staff/login?next=/staff/requests/{request_id}"' in text
    assert "100001" not in text  # nothing about the request for someone not logged in
    assert 'rel="stylesheet"' in text  # a staff page, not a bare error
    assert events(app, request_id) == []


def test_logged_out_elsewhere_gives_the_note_back_and_the_login_says_why(
    app, client, auth, make_request
):
    request_id = make_request()
    auth.login()
    form = form_of(client.get("/staff/").get_data(as_text=True), request_id)
    elsewhere = app.test_client()
    StaffAuth(elsewhere).login()
    StaffAuth(elsewhere).logout()  # ends every session of the account
    response = client.post(f"/staff/requests/{request_id}", data={**form, "note": "Llamar"})
    assert response.status_code == 401
    assert "Llamar</textarea>" in response.get_data(as_text=True)
    assert events(app, request_id) == []
    response = client.get("/staff/")
    assert response.headers["Location"].startswith("/staff/login")
    assert "Your session has ended" in client.get(response.headers["Location"]).get_data(
        as_text=True
    )


def test_csv_keeps_digits_only_numbers_as_text(app, client, auth, make_request):
    make_request(caller_number="0050212345678", callback_number=None, a_number="12345678")
    auth.login()
    response = client.get("/staff/requests.csv")
    [row] = list(csv.DictReader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert row["caller_number"] == '="0050212345678"'
    assert row["a_number"] == '="12345678"'
    assert row["callback_number"] == ""


def test_listing_search_fields(app, make_request):
    make_request(reference="100001", urgent=True)
    make_request(reference="100002")
    with app.app_context():
        history.claim(1, "ana")
        db.session.commit()
        found = listing.find(listing.Search(unassigned=True, urgent=False))
        assert [r.reference for r in found] == ["100002"]
        assert [r.reference for r in listing.find(listing.Search(urgent=True))] == ["100001"]


def test_a_stale_login_page_says_try_again(client, staff_user):
    client.get("/staff/login")
    response = client.post("/staff/login", data={"username": "ana", "password": "x"})
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "open too long" in text and "Log in again" in text and "Bad Request" not in text


def test_an_exports_audit_names_the_new_filters(app, client, auth, make_request):
    from ivr.accounts.audit import AuditEntry

    make_request(urgent=True)
    auth.login()
    client.get("/staff/requests.csv?urgent=1&unassigned=1")
    with app.app_context():
        entry = db.session.scalars(sa.select(AuditEntry).filter_by(action="export")).one()
    assert "filters: unassigned=1, urgent=1;" in entry.detail


def test_a_first_attempt_meets_the_target(app, client, auth, make_request):
    """The target is for a first call-back, as Reports counts it: once the family's phone rang
    (here a voicemail), the card stops counting down and the overdue filter leaves it out."""
    now = dt.datetime.now(UTC)
    tried = make_request(reference="100001", status="trying", created_at=now - dt.timedelta(days=5))
    make_request(reference="100002", created_at=now - dt.timedelta(days=5))
    with app.app_context():
        attempt = history.add(tried, "call", "ana", text="to the callback number")
        db.session.flush()
        history.add(tried, "outcome", "ana", attempt_id=attempt.id, outcome="voicemail")
        db.session.commit()
    auth.login()
    page = client.get("/staff/").get_data(as_text=True)
    cards = dict(re.findall(r'data-reference="(\d+)"(.*?)</header>', page, re.S))
    assert "1 attempt" in cards["100001"]
    assert 'class="flag"' not in cards["100001"] and 'class="due"' not in cards["100001"]
    assert re.search(r'class="flag"[^>]*>Overdue by \d+ h', cards["100002"])
    assert references(client.get("/staff/?overdue=1").get_data(as_text=True)) == ["100002"]
