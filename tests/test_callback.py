"""Callback requests: recorded, confirmed and stored, and never lost, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import contextlib
import logging
import secrets

import pytest
import responses
import sqlalchemy as sa

from ivr.background import jobs
from ivr.calls.prompts import Prompts
from ivr.commands import main
from ivr.db import db
from ivr.devtools.emulator import Call
from ivr.edge import keys
from ivr.requests import fallback
from ivr.requests.models import CallbackRequest

from .conftest import PROJECT_ROOT, TOKEN, eventually

REAL = Prompts(PROJECT_ROOT / "prompts")
ACCOUNT = "AC" + "0" * 32
API = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Recordings"


def copies_done(app) -> None:
    """Run the background jobs that are due, as the worker would (recording copies)."""
    jobs.run_pending(app)


def job_rows(app, kind: str) -> list[jobs.Job]:
    with app.app_context():
        found = db.session.scalars(sa.select(jobs.Job).where(jobs.Job.kind == kind)).all()
        db.session.expunge_all()
        return found


def make_due(app) -> None:
    """Pretend the back-off has passed."""
    with app.app_context():
        db.session.execute(sa.update(jobs.Job).values(run_at=sa.func.now()))
        db.session.commit()


def rows(app) -> list[CallbackRequest]:
    with app.app_context():
        found = db.session.scalars(sa.select(CallbackRequest).order_by(CallbackRequest.id)).all()
        db.session.expunge_all()
        return found


def to_recording(call: Call, lang: str = "es"):
    call.answer()
    call.press("1" if lang == "en" else "2")
    twiml = call.press("8")
    assert REAL.text(lang, "record_intro") in call.heard()
    return twiml


def recording_params(sid: str | None = None, duration: str = "14") -> dict[str, str]:
    sid = sid or "RE" + secrets.token_hex(16)
    return {"RecordingSid": sid, "RecordingUrl": f"{API}/{sid}", "RecordingDuration": duration}


def record(call: Call, digits: str = "#", **params):
    """Finish the <Record> as Twilio does: post its action with the recording."""
    record = call.twiml.find("Record")
    return call.follow(record.get("action"), Digits=digits, **(params or recording_params()))


def heard_digits(call: Call, lang: str) -> str:
    """The digits read out, turned back into a number."""
    words = {REAL.text(lang, f"digit_{d}"): d for d in "0123456789"}
    spoken = " ".join(s.text for s in call.said())
    out = ""
    for word in spoken.replace(",", " ").replace(".", " ").split():
        out += words.get(word, words.get(word.capitalize(), " "))
    return out


def test_record_verb_is_set_up_for_a_two_minute_message(call):
    twiml = to_recording(call)
    record = twiml.find("Record")
    assert record.get("maxLength") == "120"
    assert record.get("finishOnKey") == "#"
    assert record.get("playBeep") == "true"
    assert record.get("recordingStatusCallback").startswith("/voice/es/callback/recording")


def test_full_request_in_spanish(app, call):
    to_recording(call, "es")
    params = recording_params()
    record(call, **params)
    stored = rows(app)
    assert len(stored) == 1 and stored[0].step == "recorded"
    assert stored[0].caller_number == call.from_number
    assert stored[0].recording_sid == params["RecordingSid"]
    # Step 2: the calling number read back digit by digit, then confirmed with 1.
    assert REAL.text("es", "number_readback") in call.heard()
    assert "3125550123" in heard_digits(call, "es").replace(" ", "")
    call.press("1")
    assert REAL.text("es", "anumber_ask") in call.heard()
    # Step 3: an 8-digit A-number gets its leading zero.
    call.press("12345678")
    call.press("1")  # issue 23: read back, 1 confirms
    assert REAL.text("es", "confirmation") in call.heard()
    row = rows(app)[0]
    assert (row.callback_number, row.a_number, row.step) == (
        "+13125550123",
        "012345678",
        "complete",
    )
    # Step 4: the reference, digit by digit, twice; when to expect a call; goodbye.
    assert heard_digits(call, "es").split().count(row.reference) == 2
    assert REAL.text("es", "expect_call") in call.heard()
    assert call.twiml.find("Hangup") is not None


def test_another_number_and_no_a_number_in_english(app, call):
    to_recording(call, "en")
    record(call)
    call.press("7735550142")
    call.press("1")  # issue 23: read back, 1 confirms
    call.press("")  # just the pound key (or silence) ...
    assert call.heard() == REAL.text("en", "anumber_again")
    call.press("")  # ... and pound again: skip the A-number
    row = rows(app)[0]
    assert row.callback_number == "+17735550142"
    assert row.a_number is None
    assert row.language == "en"
    assert row.step == "complete"


def test_bad_callback_number_is_asked_again_and_not_stored(app, call):
    to_recording(call, "en")
    record(call)
    call.press("12345")
    assert call.heard().startswith(REAL.text("en", "number_invalid"))
    assert rows(app)[0].callback_number is None
    call.silence()
    assert REAL.text("en", "number_confirm") in call.heard()
    call.press("5555550100")  # 555-0100 numbers are not real: still invalid
    # After three failures the caller moves on; the calling number is still on the request.
    assert REAL.text("en", "anumber_ask") in call.heard()
    row = rows(app)[0]
    assert row.callback_number is None and row.caller_number == call.from_number


def test_withheld_number_is_asked_for(app, client):
    call = Call(client, TOKEN, from_number="Anonymous")
    to_recording(call, "en")
    record(call)
    assert REAL.text("en", "number_ask") in call.heard()
    assert REAL.text("en", "number_readback") not in call.heard()
    call.press("1")  # "1" alone is no number when there is none to confirm
    assert REAL.text("en", "number_invalid") in call.heard()
    call.press("3125550188")
    assert rows(app)[0].callback_number == "+13125550188"


@pytest.mark.parametrize("digits", ["1234", "1234567890", "12345678901"])
def test_bad_a_number_is_asked_again(app, call, digits):
    to_recording(call, "en")
    record(call)
    call.press("1")
    call.press(digits)
    assert call.heard().startswith(REAL.text("en", "anumber_invalid"))
    call.press("123456789")
    assert rows(app)[0].a_number == "123456789"


def test_hang_up_right_after_recording_still_leaves_a_request(app, call):
    to_recording(call, "es")
    record(call, digits="hangup")
    assert list(call.twiml) == []
    [row] = rows(app)
    assert row.step == "recorded" and row.caller_number == call.from_number
    assert row.language == "es" and len(row.reference) == 6


def test_a_call_from_a_sip_address_is_stored_whole(app, client):
    """Over SIP, Twilio's From is an address (here 49 characters): it is stored, not refused."""
    sip = "sip:+13125550123@hotline-firm.sip.us1.twilio.com"
    call = Call(client, TOKEN, from_number=sip)
    to_recording(call, "en")
    record(call, digits="hangup")
    [row] = rows(app)
    assert row.caller_number == sip and row.step == "recorded"


@pytest.mark.parametrize("steps", [1, 2])
def test_hang_up_during_later_steps_keeps_what_was_given(app, call, steps):
    to_recording(call, "en")
    record(call)
    if steps >= 2:
        call.press("1")
    # The caller hangs up here: nothing more arrives.
    [row] = rows(app)
    assert row.recording_url and row.caller_number == call.from_number
    assert row.callback_number == ("+13125550123" if steps >= 2 else None)
    assert row.step == ("number" if steps >= 2 else "recorded")


def test_silence_records_nothing_and_asks_again(app, call):
    to_recording(call, "es")
    call.silence()  # Twilio heard nothing: no action request, the Redirect follows
    assert call.heard().startswith(REAL.text("es", "record_nothing"))
    # An empty recording posted to the action is no request either.
    record(call, **recording_params(duration="0"))
    assert rows(app) == []
    status = call.twiml.find("Record").get("recordingStatusCallback")
    call.post(status, RecordingStatus="completed", **recording_params(duration="0"))
    assert rows(app) == []
    # Silence a third time: the help menu, not a hang-up.
    call.silence()
    assert REAL.text("es", "too_many_tries") in call.heard()


@responses.activate
def test_recording_callbacks_twice_and_out_of_order_make_one_request(app, call):
    audio = b"ID3" + secrets.token_bytes(64)
    params = recording_params()
    media = responses.get(f"{params['RecordingUrl']}.mp3", body=audio, content_type="audio/mpeg")
    deleted = responses.delete(f"{params['RecordingUrl']}.json", status=204)
    to_recording(call, "en")
    status_url = call.twiml.find("Record").get("recordingStatusCallback")
    action = call.twiml.find("Record").get("action")
    # The status callback first, twice, then the action, then the status callback again.
    for _ in range(2):
        reply = call.post(status_url, RecordingStatus="completed", **params)
        assert reply.status_code == 204
    # The status callback carries no From: the number noted when the call began is used.
    assert "caller" not in status_url
    assert rows(app)[0].caller_number == call.from_number
    call.follow(action, Digits="#", **params)
    call.post(status_url, RecordingStatus="completed", **params)
    copies_done(app)
    [row] = rows(app)
    assert row.recording_sid == params["RecordingSid"]
    assert row.caller_number == call.from_number and row.language == "en"
    with app.app_context():
        stored = db.session.get(CallbackRequest, row.id)
        assert stored.audio == audio and stored.audio_type == "audio/mpeg"
    assert media.call_count == 1 and deleted.call_count == 1
    sent = media.calls[0].request.headers["Authorization"]
    assert sent == "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()


@responses.activate
def test_recording_kept_at_twilio_when_configured(make_app):
    app = make_app(KEEP_RECORDINGS_AT_TWILIO="true")
    call = Call(app.test_client(), TOKEN)
    params = recording_params()
    responses.get(f"{params['RecordingUrl']}.mp3", body=b"ID3xx", content_type="audio/mpeg")
    to_recording(call, "en")
    call.post(
        call.twiml.find("Record").get("recordingStatusCallback"),
        RecordingStatus="completed",
        **params,
    )
    copies_done(app)
    assert len(responses.calls) == 1 and responses.calls[0].request.method == "GET"


@responses.activate
def test_recording_copy_is_queued_with_the_request_not_made_in_the_webhook(app, call):
    params = recording_params()
    media = responses.get(f"{params['RecordingUrl']}.mp3", body=b"ID3ok", content_type="audio/mpeg")
    responses.delete(f"{params['RecordingUrl']}.json", status=204)
    to_recording(call, "en")
    call.post(
        call.twiml.find("Record").get("recordingStatusCallback"),
        RecordingStatus="completed",
        **params,
    )
    record(call, **params)
    assert media.call_count == 0  # no webhook talked to Twilio
    [job] = job_rows(app, "copy-recording")
    assert job.status == "pending" and job.data == {"request_id": rows(app)[0].id}
    copies_done(app)
    assert media.call_count == 1 and rows(app)[0].audio_type == "audio/mpeg"
    assert [j.status for j in job_rows(app, "delete-recording")] == ["done"]


@responses.activate
def test_failed_copy_is_retried_with_backoff_then_by_command(app, call, runner, caplog):
    params = recording_params()
    responses.get(f"{params['RecordingUrl']}.mp3", status=503)
    to_recording(call, "en")
    call.post(
        call.twiml.find("Record").get("recordingStatusCallback"),
        RecordingStatus="completed",
        **params,
    )
    with caplog.at_level(logging.WARNING, logger="ivr.background.jobs"):
        copies_done(app)
    [job] = job_rows(app, "copy-recording")
    assert job.status == "pending" and job.attempts == 1 and "503" in job.last_error
    # One line with the reason, not a traceback.
    [line] = [r for r in caplog.records if r.name == "ivr.background.jobs"]
    assert "attempt 1 of 8" in line.getMessage() and line.exc_info is None
    copies_done(app)  # not due yet: nothing happens
    assert job_rows(app, "copy-recording")[0].attempts == 1
    make_due(app)
    with app.app_context():  # the last attempt fails too: given up
        db.session.execute(sa.update(jobs.Job).values(max_attempts=2))
        db.session.commit()
    copies_done(app)
    assert job_rows(app, "copy-recording")[0].status == "failed"
    [row] = rows(app)
    assert row.audio_type is None
    responses.replace(
        responses.GET, f"{params['RecordingUrl']}.mp3", body=b"ID3ok", content_type="audio/mpeg"
    )
    responses.delete(f"{params['RecordingUrl']}.json", status=204)
    result = runner.invoke(main, ["callbacks", "copy-recordings"])
    assert result.exit_code == 0, result.output
    assert "queued 1 recording" in result.output
    copies_done(app)
    assert rows(app)[0].audio_type == "audio/mpeg"


@responses.activate
def test_credentials_are_never_sent_outside_twilio(app, call):
    to_recording(call, "en")
    params = recording_params()
    params["RecordingUrl"] = "https://attacker.example/steal"
    call.post(
        call.twiml.find("Record").get("recordingStatusCallback"),
        RecordingStatus="completed",
        **params,
    )
    copies_done(app)
    assert len(responses.calls) == 0  # no request at all, so no credentials
    assert rows(app)[0].audio_type is None
    [job] = job_rows(app, "copy-recording")
    assert job.status == "failed" and "refusing" in job.last_error


def break_table(app, broken: bool) -> None:
    """Make the database fail for real: the table the request goes into disappears."""
    names = ("callback_requests", "callback_requests_away")
    source, target = names if broken else names[::-1]
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {source} RENAME TO {target}"))


def wait_applied(app, timeout: float = 20) -> None:
    """Wait (no timing asserted) for the process's fallback thread to apply the file."""
    with contextlib.suppress(AssertionError):  # the assertion below says what is left
        eventually(lambda: not fallback.pending(app), timeout)
    assert not fallback.pending(app), fallback.path(app).read_text()


def finish_call(call: Call, lang: str) -> str:
    """From the recording on: keep the number, type an A-number; return the reference heard."""
    record(call)
    assert REAL.text(lang, "number_confirm") in call.heard()
    call.press("1")
    call.press("12345678#")
    call.press("1")  # issue 23: read back, 1 confirms
    assert REAL.text(lang, "confirmation") in call.heard()
    return call.twiml  # the confirmation


def test_database_failure_mid_call_does_not_shorten_it(make_app, caplog):
    app = make_app(FALLBACK_RETRY_SECONDS="0.2")
    call = Call(app.test_client(), TOKEN)
    to_recording(call, "es")
    break_table(app, broken=True)
    with caplog.at_level(logging.WARNING):
        finish_call(call, "es")
    reference = heard_digits(call, "es").split()[0]
    assert len(reference) == 6 and call.twiml.find("Hangup") is not None
    # Kept: one compact line per step, without a traceback, in the log and in the file.
    kept = [r for r in caplog.records if "IVR-JOURNAL" in r.getMessage()]
    assert len(kept) == 3 and all(r.exc_info is None for r in kept)
    assert len(fallback.path(app).read_text().splitlines()) == 3

    break_table(app, broken=False)
    wait_applied(app)  # applied by the process itself, with no manual step
    [row] = rows(app)
    assert (row.call_sid, row.reference, row.step) == (call.sid, reference, "complete")
    assert row.callback_number == call.from_number and row.a_number == "012345678"
    assert row.caller_number == call.from_number and row.language == "es"
    # The log dump replayed too (or twice) changes nothing more.
    runner = app.test_cli_runner()
    log_dump = "".join("2026-11-28T00:00:00 app[web.1]: " + r.getMessage() + "\n" for r in kept)
    with runner.isolated_filesystem():
        with open("heroku.log", "w") as out:
            out.write(log_dump)
        result = runner.invoke(main, ["callbacks", "replay", "heroku.log"])
    assert result.exit_code == 0, result.output
    assert [(r.reference, r.step) for r in rows(app)] == [(reference, "complete")]


def test_database_failure_in_a_later_step_does_not_stop_the_call(app, call, caplog):
    to_recording(call, "en")
    record(call)
    break_table(app, broken=True)
    with caplog.at_level(logging.WARNING):
        call.press("1")
    assert REAL.text("en", "anumber_ask") in call.heard()
    with app.app_context():  # the log's copy is encrypted (DATA_KEYS), see fallback.py
        assert any(
            "IVR-JOURNAL" in r.getMessage()
            and "callback_number" in keys.decrypt(r.getMessage().split("IVR-JOURNAL ")[1])
            for r in caplog.records
        )
    break_table(app, broken=False)


def test_replay_stores_good_entries_despite_a_bad_one(app, tmp_path):
    journal = tmp_path / "journal.jsonl"
    journal.write_text(
        '{"call_sid": "CA1", "callback_number": "+13125550142", "step": "number"}\n'
        '{"call_sid": "CA2", "bogus_field": 1}\n'
        "not json at all\n"
        '{"call_sid": "CA3", "language": "en", "caller_number": "+13125550123", '
        '"recording_sid": "RE3", "recording_url": "https://api.twilio.com/x", '
        '"recording_duration": 9, "step": "recorded"}\n'
    )
    result = app.test_cli_runner().invoke(main, ["callbacks", "replay", str(journal)])
    stored = {row.call_sid: row for row in rows(app)}
    # A later step alone still makes a request (in the default language); nothing is dropped.
    assert stored["CA1"].callback_number == "+13125550142" and stored["CA1"].language == "es"
    assert stored["CA3"].recording_sid == "RE3"
    assert set(stored) == {"CA1", "CA2", "CA3"}
    assert result.exit_code == 0, result.output


def test_no_number_to_call_back_is_said_not_promised(app, client):
    call = Call(client, TOKEN, from_number="Anonymous")
    to_recording(call, "en")
    record(call)
    for _ in range(3):
        call.silence()
    call.press("")
    call.press("")
    heard = call.heard()
    assert REAL.text("en", "no_number") in heard
    assert REAL.text("en", "expect_call") not in heard
    assert rows(app)[0].callback_number is None


def test_a_second_recording_never_replaces_the_first(app, call):
    to_recording(call, "en")
    first = recording_params()
    record(call, digits="hangup", **first)  # stored; then, say, an error sends the caller back
    call.follow("/voice/en/callback")
    assert call.heard().startswith(REAL.text("en", "already_recorded"))
    assert REAL.text("en", "number_readback") in call.heard()
    # Even if Twilio reports a second recording for this call, the first message stays.
    status = "/voice/en/callback/recording"
    call.post(status, RecordingStatus="completed", **recording_params())
    [row] = rows(app)
    assert row.recording_sid == first["RecordingSid"]


def test_a_typed_number_is_read_in_the_callers_own_country(app, client):
    call = Call(client, TOKEN, from_number="+525512345678")
    to_recording(call, "es")
    record(call)
    assert heard_digits(call, "es").replace(" ", "").endswith("525512345678")
    call.press("5587654321")  # a Mexico City number, typed without the country code
    assert rows(app)[0].callback_number == "+525587654321"
    call = Call(client, TOKEN)
    to_recording(call, "en")
    record(call)
    call.press("011525587654321")  # 011 starts an international number from anywhere
    assert rows(app)[1].callback_number == "+525587654321"


def test_the_short_wait_is_only_for_confirming_a_number(app, client):
    call = Call(client, TOKEN)
    to_recording(call, "en")
    assert record(call).find("Gather").get("timeout") == "4"
    call = Call(client, TOKEN, from_number="Anonymous")
    to_recording(call, "en")
    assert record(call).find("Gather").get("timeout") == "6"


def test_numbers_are_read_in_groups(app, client):
    call = Call(client, TOKEN)
    to_recording(call, "en")
    record(call)
    said = " ".join(el.text for el in call.said())
    assert "three, one, two. five, five, five. zero, one, two, three" in said
    call = Call(client, TOKEN, from_number="+50223456789")  # Guatemala: 8 digits
    to_recording(call, "es")
    record(call)
    said = " ".join(el.text for el in call.said())
    assert "cinco, cero, dos. dos, tres, cuatro, cinco. seis, siete, ocho, nueve" in said


# Issue 23: a typed number and the A-number are read back, 1 keeps them, 2 asks again ----------


@pytest.mark.parametrize("lang", ["en", "es"])
def test_typed_number_and_a_number_are_read_back_and_entered_again(app, call, lang):
    to_recording(call, lang)
    record(call)
    call.press("7735550142")
    heard = call.heard()
    assert heard.startswith(REAL.text(lang, "number_typed_readback")), heard
    assert "7735550142" in heard_digits(call, lang).replace(" ", "")
    assert REAL.text(lang, "readback_confirm") in heard
    assert REAL.text(lang, "readback_again") in heard
    call.press("2")  # a wrong key: enter it again
    assert REAL.text(lang, "number_confirm") in call.heard()  # the caller ID offer, again
    call.press("7735550199")
    assert "7735550199" in heard_digits(call, lang).replace(" ", "")
    call.press("1")
    assert REAL.text(lang, "anumber_ask") in call.heard()
    call.press("12345678")
    heard = call.heard()
    assert heard.startswith(REAL.text(lang, "anumber_readback")), heard
    assert heard.count(". ") >= 3  # in groups of three, a pause after each
    assert "012345678" in heard_digits(call, lang).replace(" ", "")
    call.press("2")
    assert REAL.text(lang, "anumber_ask") in call.heard()
    call.press("987654321")
    assert "987654321" in heard_digits(call, lang).replace(" ", "")
    call.press("1")
    assert REAL.text(lang, "confirmation") in call.heard()
    row = rows(app)[0]
    assert (row.callback_number, row.a_number, row.step) == (
        "+17735550199",
        "987654321",
        "complete",
    )


def test_caller_id_kept_with_1_is_not_read_back_again(app, call):
    to_recording(call, "en")
    record(call)
    call.press("1")
    assert REAL.text("en", "anumber_ask") in call.heard()
    assert REAL.text("en", "number_typed_readback") not in call.heard()
