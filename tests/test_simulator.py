"""`ivr call` driven through its stdin, as staff would type at it."""

from __future__ import annotations

import smtplib

import sqlalchemy as sa

from ivr.background.jobs import Job
from ivr.calls.prompts import Prompts
from ivr.commands.audio import call_command
from ivr.db import db
from ivr.requests import alerts
from ivr.requests.models import CallbackRequest
from ivr.settings import settings
from tests.conftest import base_config


def call(app, *args: str, keys: list[str]):
    with app.app_context():
        if db.engine.url.get_backend_name() != "sqlite":
            args = ("--yes", *args)  # the PostgreSQL run of the suite: a test database
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
    # The last "": no key pressed at the urgency question.
    output = call(app, keys=["2", "1", "8", "m", "1", "#", "#", ""])

    prompts = Prompts(prompts_dir)
    topic = prompts.topic("es", 1)
    assert "es/disclaimer.txt" in output
    assert f"says (es-US): {topic.body}" in output
    assert "es/topics/1-why-denied.txt" in output
    assert "es/record_intro.txt" in output and "(beep) recording" in output
    assert "(recording status callback: 204)" in output
    assert "es/number_readback.txt" in output and "es/anumber_ask.txt" in output
    assert "es/anumber_again.txt" in output
    assert output.rstrip().endswith("call ended: the hotline hung up")

    row = stored(app)
    assert (row.language, row.callback_number, row.a_number, row.step) == (
        "es",
        "+13125550123",
        None,
        "complete",
    )
    assert row.recording_sid.startswith("RE") and row.recording_duration == 14
    assert row.recording_url.startswith("https://api.twilio.com/2010-04-01/Accounts/AC")
    assert row.audio_type is None  # nothing fetched from Twilio, and no noise about it
    words = [prompts.text("es", f"digit_{d}") for d in row.reference]
    spoken_reference = ", ".join(words[:3]) + ". " + ", ".join(words[3:])  # two groups of three
    assert f"{prompts.text('es', 'reference_number')} {spoken_reference}" in output
    assert "Traceback" not in output and "could not fetch" not in output


def test_busy_firm_then_callback_silence_then_hang_up_while_recording(app):
    output = call(app, "--lang", "en", "--from", "+17735551234", keys=["0", "b", "8", "s", "h"])

    assert "keys> 1" in output  # chosen by --lang
    assert "dials +13125550100" in output
    assert "en/dial_failed.txt" in output and "en/option_callback.txt" in output  # the offer
    assert "en/record_nothing.txt" in output  # the silent try was counted
    assert "call ended: you hung up after leaving a message" in output
    row = stored(app)
    assert (row.language, row.caller_number, row.step) == ("en", "+17735551234", "recorded")


def test_typed_speech_and_end_of_input(app):
    output = call(app, keys=['"Español, por favor'])

    assert "es/disclaimer.txt" in output and "es/menu_intro.txt" in output
    assert "call ended: input ended; you hung up" in output


def test_a_wrong_token_is_refused_like_a_forged_webhook(make_app, capsys, monkeypatch):
    import io

    from ivr.devtools import simulator

    app = make_app()
    sim = simulator.Simulator(app, from_number="+13125550123")
    sim.call.token = "not-the-token"  # signed, but not with this app's token
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    sim.run()
    assert "call ended: the app answered 403 FORBIDDEN" in capsys.readouterr().out


ALERTS_ON = {
    "ALERT_SMS_TO": "+13125550199",
    "ALERT_SMS_FROM": "+13125550198",
    "ALERT_EMAIL_TO": "staff@example.org",
    "SMTP_URL": "smtp://mail.example.org:587",
}


def test_a_simulated_call_alerts_no_one(make_app, monkeypatch):
    """`heroku run ivr call` must not page staff: no alert is queued, sent, or left for a worker."""
    app = make_app(**ALERTS_ON)
    with app.app_context():
        assert alerts.sms_recipients() and alerts.email_recipients()  # alerts are really on
    sent = []
    monkeypatch.setattr(smtplib, "SMTP", lambda *a, **k: sent.append(("smtp", a)))
    monkeypatch.setattr(alerts, "sms", lambda *a: sent.append(("sms", a)))
    monkeypatch.setattr(alerts, "send_email", lambda *a: sent.append(("email", a)))

    output = call(app, "--lang", "en", keys=["8", "m", "1", "#", "#", ""])

    assert "Staff alerts are off for this call" in output
    assert output.rstrip().endswith("call ended: the hotline hung up")
    assert stored(app).step == "complete"
    assert sent == []
    with app.app_context():
        kinds = db.session.scalars(sa.select(Job.kind)).all()
        assert not [kind for kind in kinds if kind.startswith("alert-")]
    for name, value in ALERTS_ON.items():  # the app is as it was after the call
        expected = ["+13125550199"] if name == "ALERT_SMS_TO" else value
        assert getattr(settings(app), name.lower()) == expected


def test_a_database_other_than_sqlite_needs_yes(tmp_path, prompts_dir, monkeypatch):
    from ivr import create_app
    from ivr.devtools import simulator

    url = "postgresql://hotline:s3cret@db.example.org:5432/hotline"
    app = create_app(base_config(tmp_path, DATABASE_URL=url))  # never connected to
    ran = []
    monkeypatch.setattr(simulator.Simulator, "run", lambda self: ran.append(self))
    runner = app.test_cli_runner(mix_stderr=False)

    result = runner.invoke(call_command, [])
    assert result.exit_code == 1
    assert "postgresql database hotline on db.example.org" in result.stderr
    assert "creates real callback requests there" in result.stderr
    assert "--yes" in result.stderr and "s3cret" not in result.stderr
    assert ran == []

    result = runner.invoke(call_command, ["--yes"])
    assert result.exit_code == 0, result.stderr
    assert "Warning: this call stores real callback requests" in result.stderr
    assert len(ran) == 1
