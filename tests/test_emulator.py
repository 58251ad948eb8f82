"""The caller driver itself: what it refuses, and the same call in-process and over real HTTP.

The bench drives the Procfile's gunicorn through `HttpClient`; here the same `Call` goes through
it to the app on a loopback server, so the path the bench measures is the path the tests check.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from ivr.calls.prompts import Prompts
from ivr.db import db
from ivr.devtools.emulator import Call, Ear, EmulatorError, HttpClient, WebhookFailed
from ivr.requests.models import CallbackRequest

from .conftest import TOKEN, serving


def leave_a_message(call: Call, lang: str = "en") -> str:
    """The whole callback path with the driver's own verbs; returns the reference heard."""
    call.answer()
    call.press("1" if lang == "en" else "2")
    call.press("8")
    fields = call.recording_fields(12)
    call.record(fields)  # the action, then Twilio's recording status callback
    call.press("1")  # keep the number called from
    call.press("12345678#")
    call.press("1")  # issue 23: the A-number read back, 1 confirms
    return call.heard()


def stored(app) -> CallbackRequest:
    with app.app_context():
        [row] = db.session.scalars(sa.select(CallbackRequest)).all()
        db.session.expunge(row)
        return row


def test_asking_the_impossible_raises_a_clear_error_not_an_assert(call):
    call.answer()
    with pytest.raises(EmulatorError, match="no <Record>"):
        call.record()
    call.press("1")  # the topics menu: keys only
    with pytest.raises(EmulatorError, match="does not listen for speech"):
        call.say("hello")


def test_an_error_answer_is_a_webhook_failure_with_its_status(client):
    call = Call(client, "not-the-token")
    with pytest.raises(WebhookFailed) as failed:
        call.answer()
    assert failed.value.status == 403


def test_the_same_call_over_http_stores_what_it_gave(app, prompts_dir):
    with serving(app) as port:
        call = Call(HttpClient("127.0.0.1", port, timeout=15), TOKEN, base="http://localhost")
        leave_a_message(call)
    row = stored(app)
    ear = Ear(Prompts(prompts_dir))
    assert ear.number_after([s.text or "" for s in call.said()], "reference_number") == (
        row.reference
    )
    assert (row.step, row.callback_number) == ("complete", call.from_number)
    assert row.a_number.endswith("12345678")
    assert row.recording_sid and row.recording_duration == 12


def test_the_bench_caller_walks_the_whole_path(make_app, prompts_dir):
    """bench/callers.py's scripted caller (the burst's) still reaches the reference through
    every menu the call now has (issue 23 added read-backs the bench had not learnt: its
    callers stopped at the A-number, and the bench counted 0 of N stored exactly)."""
    from bench.callers import HOST, Burst, Caller

    app = make_app(FORWARDED_PROXIES="1", PUBLIC_URL=f"https://{HOST}")
    with serving(app) as port:
        burst = Burst(port, TOKEN, "AC" + "0" * 32, Ear(Prompts(prompts_dir)))
        caller = Caller(burst, 0, 1)
        caller.run()
        for thread in burst.status_threads:
            thread.join(timeout=30)
    assert caller.outcome == "reference", caller.outcome
    row = stored(app)
    assert row.step == "complete" and row.recording_sid
