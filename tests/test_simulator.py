"""`ivr call` driven through its stdin, as staff would type at it."""

from __future__ import annotations

import sqlalchemy as sa

from ivr.audio_cli import call_command
from ivr.db import db
from ivr.models import CallbackRequest
from ivr.prompts import Prompts


def call(app, *args: str, keys: list[str]):
    result = app.test_cli_runner().invoke(call_command, list(args), input="\n".join(keys) + "\n")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.output


def stored(app) -> CallbackRequest:
    with app.app_context():
        row = db.session.scalar(sa.select(CallbackRequest))
        assert row is not None
        db.session.expunge(row)
        return row


def test_spanish_caller_hears_a_topic_and_leaves_a_callback(app, prompts_dir):
    output = call(app, keys=["2", "1", "8", "m", "1", "#"])

    prompts = Prompts(prompts_dir)
    topic = prompts.topic("es", 1)
    assert "es/disclaimer.txt" in output
    assert f"says (es-US): {topic.body}" in output
    assert "es/topics/1-why-denied.txt" in output
    assert "es/record_intro.txt" in output and "(beep) recording" in output
    assert "(recording status callback: 204)" in output
    assert "es/number_readback.txt" in output and "es/anumber_ask.txt" in output
    assert output.rstrip().endswith("call ended: the hotline hung up")

    row = stored(app)
    assert (row.language, row.callback_number, row.a_number, row.step) == (
        "es", "+13125550123", None, "complete"
    )
    assert row.recording_sid.startswith("RE") and row.recording_duration == 14
    assert row.recording_url.startswith("https://api.twilio.com/2010-04-01/Accounts/AC")
    assert row.audio_type is None  # nothing fetched from Twilio, and no noise about it
    spoken_reference = ", ".join(prompts.text("es", f"digit_{d}") for d in row.reference)
    assert f"{prompts.text('es', 'reference_number')} {spoken_reference}" in output
    assert "Traceback" not in output and "could not fetch" not in output


def test_busy_firm_then_silence_then_hang_up_while_recording(app):
    output = call(app, "--lang", "en", "--from", "+17735551234", keys=["0", "b", "s", "h"])

    assert "keys> 1" in output  # chosen by --lang
    assert "dials +13125550100" in output
    assert "en/dial_failed.txt" in output
    assert "en/record_nothing.txt" in output  # the silent try was counted
    assert "call ended: you hung up after leaving a message" in output
    row = stored(app)
    assert (row.language, row.caller_number, row.step) == ("en", "+17735551234", "recorded")


def test_typed_speech_and_end_of_input(app):
    output = call(app, keys=['"Español, por favor'])

    assert "es/disclaimer.txt" in output and "es/menu_intro.txt" in output
    assert "call ended: input ended; you hung up" in output


def test_a_wrong_token_is_refused_like_a_forged_webhook(make_app, monkeypatch):
    app = make_app()
    real = app.config["TWILIO_AUTH_TOKEN"]
    from ivr import simulator

    class WrongToken(simulator.RequestValidator):
        def __init__(self, token: str) -> None:
            assert token == real
            super().__init__("not-the-token")

    monkeypatch.setattr(simulator, "RequestValidator", WrongToken)
    output = call(app, keys=[])
    assert "call ended: the app answered 403 FORBIDDEN" in output
