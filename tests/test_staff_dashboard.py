"""The request list: order, readable fields, marking handled, filters, search, CSV, chart, audio."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import re

import responses
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from ivr.background import jobs, worker
from ivr.db import Model, db
from ivr.requests import history
from ivr.requests.models import Call, CallbackRequest
from ivr.settings import settings
from ivr.staff import display
from tests.conftest import csrf_token

UTC = dt.UTC
SID = "AC" + "0" * 32
REC_URL = f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Recordings/RE0123"


def references(page: str) -> list[str]:
    return re.findall(r'data-reference="(\d+)"', page)


def test_migrations_match_the_models(app):
    with app.app_context(), db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Model.metadata)
    assert diff == []


def test_list_waiting_oldest_first_then_reached_then_handled_newest(client, auth, make_request):
    t = dt.datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    make_request(reference="111111", created_at=t, status="new")
    make_request(reference="222222", created_at=t + dt.timedelta(hours=2), status="handled")
    make_request(reference="333333", created_at=t + dt.timedelta(hours=1), status="new")
    make_request(reference="444444", created_at=t - dt.timedelta(hours=1), status="trying")
    make_request(reference="555555", created_at=t + dt.timedelta(hours=3), status="handled")
    make_request(reference="666666", created_at=t + dt.timedelta(hours=4), status="reached")
    auth.login()
    assert references(client.get("/staff/").get_data(as_text=True)) == [
        "444444",
        "111111",
        "333333",
        "666666",
        "555555",
        "222222",
    ]


def test_list_shows_readable_fields(client, auth, make_request):
    make_request(
        reference="424242",
        created_at=dt.datetime(2026, 3, 2, 15, 5, tzinfo=UTC),
        caller_number="+13125550123",
        callback_number="+442071838750",
        a_number="012345678",
        recording_duration=75,
        language="es",
    )
    auth.login()
    page = client.get("/staff/").get_data(as_text=True)
    assert "(312) 555-0123" in page  # US: national
    assert "+44 20 7183 8750" in page  # elsewhere: international
    assert "012-345-678" in page
    assert "Mon 2026-03-02 09:05 CST" in page  # 15:05 UTC is 09:05 in Chicago (on hover)
    assert "1:15" in page and "Spanish" in page
    assert "api.twilio.com" not in page


def test_display_helpers():
    assert display.phone("+442071838750") == "+44 20 7183 8750"
    assert display.phone("anonymous") == "anonymous"
    assert display.a_number("12345678") == "12345678" and display.duration(None) == ""


def test_mark_handled_with_note(app, client, auth, make_request):
    request_id = make_request(reference="555555")
    auth.login()
    token = csrf_token(client, "/staff/")
    response = client.post(
        f"/staff/requests/{request_id}?next=/staff/%3Fstatus%3Dnew",
        data={
            "csrf_token": token,
            "status": "handled",
            "seen_status": "new",
            "seen": "0",
            "note": "Called back, bond hearing Friday",
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"] == f"/staff/?status=new#r{request_id}"  # at the card
    with app.app_context():
        row = db.session.get(CallbackRequest, request_id)
        assert row.status == "handled"
        events = [
            (e.kind, e.actor, e.text, e.status_from, e.status_to)
            for e in history.events(request_id)
        ]
    assert events == [
        ("note", "ana", "Called back, bond hearing Friday", None, None),
        ("status", "ana", "", "new", "handled"),
    ]
    page = client.get("/staff/?status=new").get_data(as_text=True)
    assert "Request 555555: note added, status handled." in page  # the flash message
    assert "555555" not in references(page)
    page = client.get(f"/staff/requests/{request_id}").get_data(as_text=True)
    assert "bond hearing Friday" in page and "ana" in page


def test_mark_with_bad_status_is_refused(app, client, auth, make_request):
    request_id = make_request()
    auth.login()
    token = csrf_token(client, "/staff/")
    response = client.post(
        f"/staff/requests/{request_id}", data={"csrf_token": token, "status": "deleted"}
    )
    assert response.status_code == 400
    assert client.get("/staff/requests/999").status_code == 404


def test_filters_and_search(client, auth, make_request):
    day = dt.datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
    make_request(reference="100001", language="en", callback_number="+13125550111", created_at=day)
    make_request(
        reference="100002",
        language="es",
        callback_number="+13125550222",
        created_at=day - dt.timedelta(days=1),
        status="trying",
    )
    make_request(
        reference="100003",
        language="es",
        callback_number="+13125550333",
        created_at=day - dt.timedelta(days=2),
        a_number="087654321",
    )
    auth.login()

    def refs(query: str) -> set[str]:
        return set(references(client.get("/staff/?" + query).get_data(as_text=True)))

    token = csrf_token(client, "/staff/")

    def search(q: str, **filters: str) -> set[str]:
        response = client.post("/staff/", data={"q": q, "csrf_token": token, **filters})
        assert response.status_code == 200
        return set(references(response.get_data(as_text=True)))

    assert refs("") == {"100001", "100002", "100003"}
    assert refs("language=en") == {"100001"}
    assert refs("status=trying") == {"100002"}
    assert refs("start=2026-03-01&end=2026-03-01") == {"100002"}
    assert refs("start=2026-03-02") == {"100001"}
    assert search("(312) 555-0222") == {"100002"}
    assert search("100003") == {"100003"}
    assert search("87654321") == {"100003"}  # an A-number typed without its leading 0
    assert search("999") == set()
    assert search("312", language="es") == {"100002", "100003"}
    assert search("") == {"100001", "100002", "100003"}
    assert refs("status=bogus&start=notadate") == {"100001", "100002", "100003"}


def test_csv_export_uses_filters_and_defuses_formulas(app, client, auth, make_request):
    first = make_request(
        reference="100001",
        language="en",
        note='=HYPERLINK("http://x","y")',
        a_number="012345678",
        callback_number="+525512345678",
    )
    make_request(reference="100002", language="es")
    auth.login()
    response = client.get("/staff/requests.csv?language=en")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    assert response.data.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM, for Excel
    rows = list(csv.DictReader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert [r["reference"] for r in rows] == ["100001"]
    assert rows[0]["notes"].endswith(': =HYPERLINK("http://x","y")')
    assert rows[0]["a_number"] == "012-345-678"
    assert rows[0]["caller_number"] == "(312) 555-0123"
    assert rows[0]["callback_number"] == "0052 55 1234 5678"  # no visible apostrophe
    assert rows[0]["language"] == "English" and rows[0]["status"] == "New"
    with app.app_context():
        assert [(e.kind, e.actor) for e in history.events(first)][-1] == ("export", "ana")


def test_csv_cell_defuses_formulas_in_every_disguise():
    from ivr.staff.dashboard import csv_cell

    for text in ("=1+1", "+1", "-1", "@SUM(A1)", " =1+1", "\u3000=1", "\uff1d1+1", "\t=1"):
        assert csv_cell(text).startswith("'"), text
    assert csv_cell("Hablé con la hermana") == "Hablé con la hermana"


def test_chart_counts_calls_and_requests_per_day_and_language(
    app, client, auth, make_request, monkeypatch
):
    # One fixed "today" for the data and for the page, so the test holds across midnight.
    today = dt.datetime(2026, 3, 2, 12, tzinfo=settings(app).office_timezone)
    monkeypatch.setattr(display, "office_today", lambda: today.date())
    with app.app_context():
        for i, lang in enumerate(["en", "es", "es"]):
            db.session.add(Call(call_sid=f"CAx{i}", language=lang, created_at=today))
        db.session.add(
            Call(call_sid="CAold", language="en", created_at=today - dt.timedelta(days=1))
        )
        db.session.commit()
        days = display.daily_counts()
    make_request(language="es", created_at=today)
    assert len(days) == 14
    assert (days[-1].calls["en"], days[-1].calls["es"]) == (1, 2)
    assert days[-2].calls["en"] == 1
    auth.login()
    page = client.get("/staff/").get_data(as_text=True)
    row = re.search(rf'<tr data-day="{today.date().isoformat()}">(.*?)</tr>', page)[1]
    assert re.findall(r"<td>(\d+)</td>", row) == ["1", "2", "0", "1"]
    assert "<svg" in page and 'class="es"' in page


def test_audio_served_from_the_database_copy(client, auth, make_request):
    request_id = make_request(audio=b"ID3fake-mp3", audio_type="audio/mpeg", recording_url=REC_URL)
    auth.login()
    page = client.get("/staff/").get_data(as_text=True)
    assert f'src="/staff/requests/{request_id}/audio"' in page
    assert REC_URL not in page
    response = client.get(f"/staff/requests/{request_id}/audio")
    assert response.status_code == 200
    assert response.mimetype == "audio/mpeg" and response.data == b"ID3fake-mp3"
    ranged = client.get(f"/staff/requests/{request_id}/audio", headers={"Range": "bytes=0-2"})
    assert ranged.status_code == 206 and ranged.data == b"ID3"


@responses.activate
def test_audio_not_copied_yet_says_so_and_is_copied_by_the_worker(app, client, auth, make_request):
    request_id = make_request(recording_url=REC_URL, recording_sid="RE0123")
    fetch = responses.get(REC_URL + ".mp3", body=b"ID3twilio-audio", content_type="audio/mpeg")
    remove = responses.delete(REC_URL + ".json", status=204)
    assert client.get(f"/staff/requests/{request_id}/audio").status_code == 401
    auth.login()
    response = client.get(f"/staff/requests/{request_id}/audio")
    # The page never waits on Twilio: it says so, and the worker makes the copy.
    assert response.status_code == 404 and b"not copied from Twilio yet" in response.data
    assert fetch.call_count == 0
    with app.app_context():  # a GET writes nothing: it queues no copy
        assert db.session.scalar(sa.select(sa.func.count()).select_from(jobs.Job)) == 0
    # This row was stored without the service (as before the queue existed): the worker's
    # housekeeping queues its copy, as it does once a minute.
    worker.housekeeping(app)
    jobs.run_pending(app)
    response = client.get(f"/staff/requests/{request_id}/audio")
    assert response.status_code == 200
    assert response.mimetype == "audio/mpeg" and response.data == b"ID3twilio-audio"
    secret = f"{SID}:{settings(app).twilio_auth_token}".encode()
    expected = "Basic " + base64.b64encode(secret).decode()
    assert fetch.calls[0].request.headers["Authorization"] == expected
    assert remove.call_count == 1
    # The second play comes from the database: Twilio is not asked again.
    assert client.get(f"/staff/requests/{request_id}/audio").data == b"ID3twilio-audio"
    assert fetch.call_count == 1
    with app.app_context():
        assert (
            db.session.scalar(sa.select(CallbackRequest.audio_type).filter_by(id=request_id))
            == "audio/mpeg"
        )


@responses.activate
def test_audio_whose_copy_failed_says_why(app, client, auth, make_request):
    request_id = make_request(recording_url=REC_URL, recording_sid="RE0123")
    responses.get(REC_URL + ".mp3", status=403)  # Twilio refuses the credentials: final
    worker.housekeeping(app)
    jobs.run_pending(app)
    auth.login()
    response = client.get(f"/staff/requests/{request_id}/audio")
    assert response.status_code == 404
    assert b"not copied from Twilio yet: the last try failed" in response.data
    assert b"Twilio refused the credentials (403)" in response.data


@responses.activate
def test_audio_404_when_there_is_none(client, auth, make_request):
    no_recording = make_request()
    gone = make_request(recording_url=REC_URL + "X")
    responses.get(REC_URL + "X.mp3", status=404)
    auth.login()
    assert client.get(f"/staff/requests/{no_recording}/audio").status_code == 404
    assert client.get(f"/staff/requests/{gone}/audio").status_code == 404
    assert client.get("/staff/requests/999/audio").status_code == 404


def test_pages_are_laid_out_for_a_phone_first(client, auth, make_request):
    """Every staff page sets the phone viewport and uses the one stylesheet, whose rules outside
    media queries fit a 360 px screen: one column, nothing wider. (test_browser.py measures the
    real page in Chromium at 390 px.)"""
    request_id = make_request()
    pages = [client.get("/staff/login").get_data(as_text=True)]
    auth.login()
    pages += [
        client.get(url).get_data(as_text=True)
        for url in ("/staff/", f"/staff/requests/{request_id}")
    ]
    for page in pages:
        assert 'name="viewport" content="width=device-width, initial-scale=1"' in page
        assert 'rel="stylesheet" href="/static/staff/staff.css' in page
    response = client.get("/static/staff/staff.css")
    css = response.get_data(as_text=True)
    response.close()
    base, _, wide = css.partition("@media (min-width: 720px)")
    assert wide, "the desktop layout is a min-width media query over a phone-first base"
    assert re.search(r"\.requests \{[^}]*grid-template-columns: 1fr;", base)  # one column
    assert "repeat(" in wide and "repeat(" not in base  # several columns only when wide
    fixed = [int(px) for prop, px in re.findall(r"(?<![-\w])(width|min-width):\s*(\d+)px", base)]
    assert all(px <= 360 for px in fixed), fixed
