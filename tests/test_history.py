"""A request's history: saves only add, two staff keep both their words, claims and "Mine",
listens and exports recorded, and what is waiting is seen at a glance."""

from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa
import time_machine
from werkzeug.security import generate_password_hash

from ivr.accounts.models import StaffUser
from ivr.calls import calendar
from ivr.commands import main
from ivr.db import db
from ivr.migrate import alembic_config
from ivr.requests import history
from ivr.requests.models import CallbackRequest
from ivr.settings import settings
from ivr.staff import display
from tests.conftest import STAFF_PASSWORD, StaffAuth, csrf_token

UTC = dt.UTC


def add_staff(app, *names: str) -> None:
    with app.app_context():
        for name in names:
            db.session.add(
                StaffUser(username=name, password_hash=generate_password_hash(STAFF_PASSWORD))
            )
        db.session.commit()


def form_of(page: str, request_id: int) -> dict[str, str]:
    """The hidden fields of a card's save form, as the browser would post them."""
    card = re.search(rf'<article [^>]*id="r{request_id}".*?</article>', page, re.S)[0]
    form = re.search(r'<form method="post" class="handle".*?</form>', card, re.S)[0]
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form))


def events(app, request_id: int) -> list[tuple]:
    with app.app_context():
        return [
            (e.kind, e.actor, e.text, e.status_from, e.status_to)
            for e in history.events(request_id)
        ]


def test_two_staff_saving_the_same_request_keep_both(app, make_request):
    add_staff(app, "alice", "bob")
    request_id = make_request(reference="995738")
    alice, bob = app.test_client(), app.test_client()
    StaffAuth(alice).login("alice")
    StaffAuth(bob).login("bob")
    alice_form = form_of(alice.get("/staff/").get_data(as_text=True), request_id)
    bob_form = form_of(bob.get("/staff/").get_data(as_text=True), request_id)
    assert alice_form["seen_status"] == bob_form["seen_status"] == "new"

    bob.post(
        f"/staff/requests/{request_id}",
        data={
            **bob_form,
            "status": "handled",
            "note": "Reached Sra. López, hearing Fri 9am Broadview; consult Mon.",
        },
    )
    # alice's page is stale: it still shows New and no notes.
    response = alice.post(
        f"/staff/requests/{request_id}",
        data={**alice_form, "status": "trying", "note": "Called, no answer."},
    )
    assert response.status_code == 302
    page = alice.get("/staff/").get_data(as_text=True)
    assert "changed while you had it open" in page and "bob: status New → Handled" in page
    assert "your status was not applied, it is now Handled" in page
    assert "note added" in page
    with app.app_context():
        assert db.session.get(CallbackRequest, request_id).status == "handled"
    assert events(app, request_id) == [
        ("note", "bob", "Reached Sra. López, hearing Fri 9am Broadview; consult Mon.", None, None),
        ("status", "bob", "", "new", "handled"),
        ("note", "alice", "Called, no answer.", None, None),
    ]
    card = client_card(alice, request_id)
    assert "Reached Sra. López" in card and "Called, no answer." in card


def client_card(client, request_id: int) -> str:
    page = client.get(f"/staff/requests/{request_id}").get_data(as_text=True)
    return re.search(rf'<article [^>]*id="r{request_id}".*?</article>', page, re.S)[0]


def test_a_save_without_change_records_nothing_and_the_menu_keeps_the_status(
    app, client, auth, make_request
):
    request_id = make_request()
    auth.login()
    page = client.get("/staff/").get_data(as_text=True)
    card = re.search(rf'<article [^>]*id="r{request_id}".*?</article>', page, re.S)[0]
    # No preset: the menu shows the status the request has.
    assert re.findall(r'<option value="(\w+)" selected>', card) == ["new"]
    response = client.post(
        f"/staff/requests/{request_id}",
        data={**form_of(page, request_id), "status": "new", "note": "  "},
    )
    assert response.status_code == 302
    assert events(app, request_id) == []
    assert "nothing changed" in client.get("/staff/").get_data(as_text=True)


def test_bad_form_values_get_a_clear_answer(client, auth, make_request):
    request_id = make_request()
    auth.login()
    token = csrf_token(client, "/staff/")
    response = client.post(
        f"/staff/requests/{request_id}",
        data={"csrf_token": token, "status": "deleted", "seen_status": "new"},
    )
    assert response.status_code == 400 and "Choose a status." in response.get_data(as_text=True)
    response = client.post(
        f"/staff/requests/{request_id}",
        data={"csrf_token": token, "status": "new", "seen_status": "new", "seen": "x"},
    )
    assert response.status_code == 400


def test_claim_shows_the_name_and_mine_filters(app, make_request):
    add_staff(app, "alice", "bob")
    first, second = make_request(reference="100001"), make_request(reference="100002")
    alice, bob = app.test_client(), app.test_client()
    StaffAuth(alice).login("alice")
    StaffAuth(bob).login("bob")
    token, bob_token = csrf_token(alice, "/staff/"), csrf_token(bob, "/staff/")
    alice.post(f"/staff/requests/{first}/claim?next=/staff/", data={"csrf_token": token})
    bob.post(f"/staff/requests/{first}/claim", data={"csrf_token": bob_token})
    bob.post(f"/staff/requests/{second}/claim", data={"csrf_token": bob_token})
    assert "already taken by alice" in bob.get("/staff/").get_data(as_text=True)
    mine = alice.get("/staff/?mine=1").get_data(as_text=True)
    assert re.findall(r'data-reference="(\d+)"', mine) == ["100001"]
    assert re.findall(
        r'data-reference="(\d+)"', bob.get("/staff/?mine=1").get_data(as_text=True)
    ) == ["100002"]
    card = client_card(bob, first)
    assert '<dd class="owner">alice</dd>' in card and "I'll take it" not in card
    alice.post(f"/staff/requests/{first}/release", data={"csrf_token": token})
    bob.post(f"/staff/requests/{first}/release", data={"csrf_token": bob_token})
    assert [e[:2] for e in events(app, first)] == [("claim", "alice"), ("release", "alice")]
    assert "I'll take it" in client_card(bob, first)


def test_listens_and_exports_are_in_the_history(app, client, auth, make_request):
    request_id = make_request(audio=b"ID3fake-mp3", audio_type="audio/mpeg")
    auth.login()
    client.get(f"/staff/requests/{request_id}/audio")
    client.get(f"/staff/requests/{request_id}/audio", headers={"Range": "bytes=3-"})
    client.get(f"/staff/requests/{request_id}/audio")  # the same playing, within half an hour
    client.get("/staff/requests.csv")
    assert [e[:2] for e in events(app, request_id)] == [("listen", "ana"), ("export", "ana")]
    card = client_card(client, request_id)
    assert "listened to the message" in card and "exported it to CSV" in card


def test_at_a_glance_age_overdue_waiting_and_language(app, client, auth, make_request):
    now = dt.datetime.now(UTC)
    make_request(reference="100001", language="es", created_at=now - dt.timedelta(hours=2))
    make_request(reference="100002", language="en", created_at=now - dt.timedelta(days=3))
    make_request(
        reference="100003", language="es", created_at=now - dt.timedelta(days=4), status="handled"
    )
    auth.login()
    page = client.get("/staff/").get_data(as_text=True)
    assert "<title>(2) Callback requests" in page
    assert "2 waiting</strong> (1 EN, 1 ES)" in page
    cards = dict(re.findall(r'data-reference="(\d+)"(.*?)</header>', page, re.S))
    assert "2 h ago" in cards["100001"] and "Overdue" not in cards["100001"]
    assert "3 days ago" in cards["100002"] and "Overdue" in cards["100002"]
    assert "Overdue" not in cards["100003"]  # handled: nobody waits
    assert 'class="chip lang-es"' in cards["100001"] and "ES · Spanish" in cards["100001"]
    assert re.search(r'title="\w{3} \d{4}-\d\d-\d\d \d\d:\d\d C[SD]T"', cards["100001"])


def test_overdue_counts_office_hours_only(make_app):
    app = make_app(OFFICE_HOURS="mon-fri 09:00-17:00", CALLBACK_TARGET_HOURS="8")
    tz = settings(app).office_timezone
    friday_evening = dt.datetime(2026, 3, 6, 18, 0, tzinfo=tz)
    with app.app_context():
        monday_9 = dt.datetime(2026, 3, 9, 9, 0, tzinfo=tz)
        assert calendar.office().hours_between(friday_evening, monday_9) == 0
        assert not display.overdue(friday_evening, dt.datetime(2026, 3, 9, 16, 59, tzinfo=tz))
        assert display.overdue(friday_evening, dt.datetime(2026, 3, 10, 9, 30, tzinfo=tz))
        friday_noon = dt.datetime(2026, 3, 6, 12, 0, tzinfo=tz)
        assert calendar.office().hours_between(friday_noon, monday_9 + dt.timedelta(hours=1)) == 6
    assert display.age(friday_evening, friday_evening + dt.timedelta(seconds=30)) == "just now"
    assert display.age(friday_evening, friday_evening + dt.timedelta(minutes=25)) == "25 min ago"


def test_closed_days_do_not_count_towards_overdue(make_app):
    """A request left the evening before a holiday is not Overdue during it: the dashboard counts
    office hours with the same calendar as the calls, OFFICE_CLOSED_DATES included."""
    app = make_app(
        OFFICE_HOURS="mon-fri 09:00-17:00",
        OFFICE_CLOSED_DATES="2026-12-24,2026-12-25",
        CALLBACK_TARGET_HOURS="8",
    )
    tz = settings(app).office_timezone
    wednesday_evening = dt.datetime(2026, 12, 23, 18, 0, tzinfo=tz)
    with app.app_context():
        christmas_afternoon = dt.datetime(2026, 12, 25, 16, 0, tzinfo=tz)
        assert calendar.office().hours_between(wednesday_evening, christmas_afternoon) == 0
        assert not display.overdue(wednesday_evening, christmas_afternoon)
        monday_after = dt.datetime(2026, 12, 28, 16, 0, tzinfo=tz)
        assert calendar.office().hours_between(wednesday_evening, monday_after) == 7
        assert not display.overdue(wednesday_evening, monday_after)
        assert display.overdue(wednesday_evening, monday_after + dt.timedelta(hours=18))
        # The calls follow the same days: closed on the holiday, open again on Monday at 9.
        assert not calendar.office().is_open(christmas_afternoon)
        assert calendar.office().next_opening(christmas_afternoon) == dt.datetime(
            2026, 12, 28, 9, 0, tzinfo=tz
        )


def test_closed_days_shown_on_the_dashboard(make_app):
    """On the holiday itself, the card of a request left the evening before is not Overdue;
    two working days later it is. (Before one calendar, the dashboard ignored the closures.)"""
    app = make_app(
        OFFICE_HOURS="mon-fri 09:00-17:00",
        OFFICE_CLOSED_DATES="2026-12-24,2026-12-25",
        CALLBACK_TARGET_HOURS="8",
    )
    tz = settings(app).office_timezone
    with app.app_context():
        db.session.add(
            StaffUser(
                username="ana", role="admin", password_hash=generate_password_hash(STAFF_PASSWORD)
            )
        )
        db.session.add(
            CallbackRequest(
                call_sid="CA" + "1" * 32,
                reference="100001",
                language="es",
                caller_number="+13125550123",
                callback_number="+13125550123",
                created_at=dt.datetime(2026, 12, 23, 18, 0, tzinfo=tz).astimezone(UTC),
            )
        )
        db.session.commit()

    def card_at(moment: dt.datetime) -> str:
        with time_machine.travel(moment, tick=False):
            client = app.test_client()
            StaffAuth(client).login()
            page = client.get("/staff/").get_data(as_text=True)
        return dict(re.findall(r'data-reference="(\d+)"(.*?)</header>', page, re.S))["100001"]

    assert "Overdue" not in card_at(dt.datetime(2026, 12, 25, 16, 0, tzinfo=tz))  # Christmas
    assert "Overdue" in card_at(dt.datetime(2026, 12, 29, 10, 0, tzinfo=tz))  # 8 h + 1 h later


def test_profile_phone_is_validated_and_saved(app, client, auth):
    auth.login()
    token = csrf_token(client, "/staff/profile")
    response = client.post("/staff/profile", data={"csrf_token": token, "phone": "555-12"})
    assert response.status_code == 400
    assert "not a phone number Twilio can call" in response.get_data(as_text=True)
    response = client.post("/staff/profile", data={"csrf_token": token, "phone": "(312) 555-0199"})
    assert response.status_code == 302
    assert "Your phone is now +13125550199." in client.get("/staff/profile").get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(StaffUser.phone)) == "+13125550199"
    client.post("/staff/profile", data={"csrf_token": token, "phone": ""})
    with app.app_context():
        assert db.session.scalar(sa.select(StaffUser.phone)) is None


def test_cli_staff_add_with_phone(app, runner):
    result = runner.invoke(
        main,
        args=["staff", "add", "carla", "--phone", "+52 55 1234 5678"],
        input="a long password\n",
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        main, args=["staff", "add", "dora", "--phone", "12"], input="a long password\n"
    )
    assert result.exit_code != 0 and "is not a phone number" in result.output
    result = runner.invoke(main, args=["staff", "list"])
    assert "carla" in result.output and "phone +525512345678" in result.output
    assert "dora" not in result.output


def test_migration_keeps_old_notes_and_called_back_means_trying(make_app):
    from alembic import command

    import ivr.migrate

    app = make_app()
    with app.app_context(), db.engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0005")
        connection.execute(
            sa.text(
                "INSERT INTO callback_requests (call_sid, reference, language, caller_number, "
                "step, status, note, handled_by, handled_at, created_at, updated_at) VALUES "
                "('CA1', '111222', 'es', '', 'complete', 'called_back', 'No contestó', 'bob', "
                "'2026-03-01 10:00:00', '2026-03-01 09:00:00', '2026-03-01 10:00:00')"
            )
        )
    ivr.migrate.upgrade(app)
    with app.app_context():
        row = db.session.scalar(sa.select(CallbackRequest))
        assert row.status == "trying"
        assert [(e.kind, e.actor, e.text) for e in history.events(row.id)] == [
            ("note", "bob", "No contestó")
        ]


def test_missing_recording_says_so_and_404_is_a_page(client, auth, make_request):
    request_id = make_request(recording_url="https://api.twilio.com/x/RE1", recording_sid="RE1")
    auth.login()
    card = client_card(client, request_id)
    assert "<audio" not in card and "not copied from Twilio yet" in card
    for url in ("/staff/requests/999", "/staff/nowhere"):
        response = client.get(url)
        assert response.status_code == 404 and "Not found" in response.get_data(as_text=True)
        assert "Callback requests" in response.get_data(as_text=True)
        assert response.headers["Cache-Control"] == "no-store"
    assert client.post("/voice/nowhere").status_code in (403, 404)


def test_always_open_counts_the_real_hours_of_a_clock_change(make_app):
    """Always open: the day clocks go back (1 November 2026 in Chicago) has 25 hours, not 24."""
    app = make_app(OFFICE_HOURS="always")
    tz = settings(app).office_timezone
    with app.app_context():
        start = dt.datetime(2026, 10, 31, 12, 0, tzinfo=tz)
        end = dt.datetime(2026, 11, 2, 12, 0, tzinfo=tz)
        assert calendar.office().hours_between(start, end) == 49
