"""Settings come from the environment and a bad one stops start-up, never a call."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ivr import PROJECT_ROOT, create_app, settings
from ivr.commands import main

GOOD = {"SECRET_KEY": "s" * 32, "TWILIO_AUTH_TOKEN": "t", "FIRM_PHONE_NUMBER": "+13125550100"}


def test_defaults():
    config = settings.load(GOOD)
    assert config.dial_timeout == 20
    assert config.default_language == "es"
    assert config.office_hours.days == frozenset(range(5))


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("FIRM_PHONE_NUMBER", "555-0100", "E.164"),
        ("FIRM_PHONE_NUMBER", "+1555", "E.164"),
        ("TWILIO_ACCOUNT_SID", "XX123", "AC followed by 32"),
        ("DEFAULT_LANGUAGE", "fr", "en or es"),
        ("DIAL_TIMEOUT", "-3", "positive"),
        ("OFFICE_HOURS", "weekdays 9-5", "mon-fri"),
        ("OFFICE_HOURS", "mon-fri 17:00-09:00", "close after"),
        ("OFFICE_TIMEZONE", "Mars/Olympus", "IANA"),
        ("OFFICE_CLOSED_DATES", "2026-12-24,Christmas", "'Christmas' is not a date"),
        ("ALERT_SMS_TO", "+13125550100, nope", "E.164"),
        ("TWILIO_WEBHOOK_SHARED_KEYS", "old,,new", "none empty"),
        ("JOB_LEASE_SECONDS", "-1", "0 to 3600"),
        ("SECRET_KEY", "x", "at least 32 bytes"),
        ("SECRET_KEY", "é" * 15, "at least 32 bytes"),  # 30 bytes in UTF-8
    ],
)
def test_malformed_setting_is_a_clear_startup_error(name, value, words):
    with pytest.raises(settings.SettingsError) as error:
        settings.load({**GOOD, name: value})
    assert name in str(error.value) and words in str(error.value)


def test_all_missing_required_settings_are_named_at_once():
    with pytest.raises(settings.SettingsError) as error:
        settings.load({})
    for name in GOOD:
        assert name in str(error.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p@h:5432/d", "postgresql+psycopg://u:p@h:5432/d"),
        ("postgresql://u:p@h/d", "postgresql+psycopg://u:p@h/d"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_heroku_database_url_is_accepted(url, expected):
    assert settings.load({**GOOD, "DATABASE_URL": url}).database_url == expected


def test_office_hours_cover_the_configured_days():
    hours = settings.office_hours("sat-sun 10:00-14:00")
    assert hours.days == frozenset({5, 6})
    assert settings.office_hours("always") is None


def test_default_database_is_sqlite_in_the_instance_folder(monkeypatch, tmp_path):
    for name, value in GOOD.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    app = create_app()
    assert settings.settings(app).database_url.startswith("sqlite:///")
    assert settings.settings(app).database_url.endswith("instance/hotline.sqlite3")


def test_cli_reports_bad_settings_and_exits(monkeypatch):
    from click.testing import CliRunner

    monkeypatch.setenv("FIRM_PHONE_NUMBER", "12345")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    result = CliRunner().invoke(main, ["routes"])
    assert result.exit_code == 2
    assert "FIRM_PHONE_NUMBER='12345' is invalid" in result.output


def test_routes_command_lists_the_voice_url(monkeypatch):
    from click.testing import CliRunner

    for name, value in GOOD.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["routes"])
    assert result.exit_code == 0, result.output
    assert "/voice " in result.output or "/voice\n" in result.output


def test_smtp_url_is_checked_at_start_up():
    with pytest.raises(settings.SettingsError, match="SMTP_URL"):
        settings.load({**GOOD, "SMTP_URL": "mail.example.org:587"})
    assert settings.load({**GOOD, "SMTP_URL": "smtps://u:p@mail.example.org"}).smtp_url


def gunicorn_start(tmp_path, **env: str) -> subprocess.CompletedProcess:
    """Start the Procfile's web process with `env`; it should refuse to boot and exit by itself."""
    environ = {k: v for k, v in os.environ.items() if k != "FLASK_DEBUG"}
    environ.update({**GOOD, "DATABASE_URL": f"sqlite:///{tmp_path / 'hotline.sqlite3'}", **env})
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            "127.0.0.1:0",
            "--workers",
            "1",
            "ivr:create_app()",
        ],
        cwd=PROJECT_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_debug_mode_under_gunicorn_stops_start_up(tmp_path):
    """FLASK_DEBUG (which `scripts/run` writes to .env) would turn off Secure cookies and https."""
    result = gunicorn_start(tmp_path, FLASK_DEBUG="1")
    assert result.returncode != 0
    assert "FLASK_DEBUG is on under gunicorn" in result.stderr


def test_a_short_secret_key_stops_gunicorn(tmp_path):
    result = gunicorn_start(tmp_path, SECRET_KEY="x")
    assert result.returncode != 0
    # The key itself is never repeated in the message (it was, as SECRET_KEY='x', before).
    assert "SECRET_KEY is invalid: too short: at least 32 bytes" in result.stderr
    assert "SECRET_KEY='x'" not in result.stderr


def test_heroku_without_forwarded_proxies_stops_start_up():
    with pytest.raises(settings.SettingsError, match="FORWARDED_PROXIES must be 1 on Heroku"):
        settings.load({**GOOD, "DYNO": "web.1"})
    assert settings.load({**GOOD, "DYNO": "web.1", "FORWARDED_PROXIES": "1"}).forwarded_proxies == 1


def test_every_problem_is_in_one_message_and_no_secret_is_repeated():
    secrets = {
        "SECRET_KEY": "short-but-secret",
        "TWILIO_WEBHOOK_SHARED_KEYS": "hunter2,,hunter3",
        "SMTP_URL": "mail.example.org:587?password=pa55word",
        "DATABASE_URL": "",  # a URL is a secret too, and can't be wrong: checked by the others
    }
    with pytest.raises(settings.SettingsError) as error:
        settings.load({**GOOD, **secrets, "FIRM_PHONE_NUMBER": "12345", "DIAL_TIMEOUT": "soon"})
    message = str(error.value)
    for name in ("SECRET_KEY", "TWILIO_WEBHOOK_SHARED_KEYS", "SMTP_URL", "DIAL_TIMEOUT"):
        assert f"{name} is invalid" in message or f"{name}=" in message
    assert "FIRM_PHONE_NUMBER='12345' is invalid" in message  # not a secret: shown, to help
    assert "DIAL_TIMEOUT='soon' is invalid" in message
    for value in ("short-but-secret", "hunter2", "hunter3", "pa55word"):
        assert value not in message
    assert error.value.__cause__ is None and error.value.__suppress_context__


def test_settings_are_typed_and_parsed_once_per_app(tmp_path):
    from tests.conftest import base_config

    app = create_app(base_config(tmp_path, OFFICE_HOURS="sat-sun 10:00-14:00", DIAL_TIMEOUT="9"))
    config = settings.settings(app)
    assert isinstance(config, settings.Settings)
    assert config.office_hours.days == frozenset({5, 6})
    assert config.dial_timeout == 9
    assert "DIAL_TIMEOUT" not in app.config  # one place to read settings from, not two
    with app.app_context():
        assert settings.settings() is config
    # A test may pass typed values too; Flask's own keys and test hooks stay in app.config.
    app = create_app(base_config(tmp_path, OFFICE_HOURS=None, PERMANENT_SESSION_LIFETIME=60))
    assert settings.settings(app).office_hours is None
    assert app.config["PERMANENT_SESSION_LIFETIME"] == 60


def test_settings_command_lists_each_setting_with_its_type_and_default():
    from click.testing import CliRunner

    result = CliRunner().invoke(main, ["settings"])
    assert result.exit_code == 0, result.output
    assert "DIAL_TIMEOUT: int = '20'\n    Seconds the firm's phone rings." in result.output
    assert "SECRET_KEY: str, secret = (required)" in result.output
    assert "OFFICE_HOURS: OfficeHours | None = 'mon-fri 09:00-17:00'" in result.output
    names = [line.split(":")[0] for line in result.output.splitlines() if line[:1].isupper()]
    assert names == [row.name for row in settings.described()]
    assert len(names) == len(settings.Settings.model_fields)


def test_settings_check_reports_this_environment(monkeypatch):
    from click.testing import CliRunner

    for name, value in GOOD.items():
        monkeypatch.setenv(name, value)
    assert CliRunner().invoke(main, ["settings", "--check"]).output == "settings are fine\n"
    monkeypatch.setenv("SECRET_KEY", "tiny-secret")
    monkeypatch.setenv("OFFICE_TIMEZONE", "Mars/Olympus")
    result = CliRunner().invoke(main, ["settings", "--check"])
    assert result.exit_code == 2
    assert "SECRET_KEY is invalid" in result.output and "OFFICE_TIMEZONE=" in result.output
    assert "tiny-secret" not in result.output


def test_gunicorn_reads_its_settings_with_the_same_defaults():
    server = settings.load({}, cls=settings.ServerSettings)
    assert (server.port, server.web_concurrency, server.web_threads) == (5000, 2, 4)
    assert server.worker_in_web is False
    assert settings.load({"WORKER_IN_WEB": "yes"}, cls=settings.ServerSettings).worker_in_web
    with pytest.raises(settings.SettingsError, match="WEB_CONCURRENCY='0' is invalid"):
        settings.load({"WEB_CONCURRENCY": "0"}, cls=settings.ServerSettings)


def test_one_clock_for_rows_and_calls(tmp_path):
    import datetime as dt

    from ivr import clock
    from ivr.db import utcnow
    from tests.conftest import base_config

    moment = dt.datetime(2026, 12, 24, 15, 0, tzinfo=dt.UTC)
    app = create_app(base_config(tmp_path, CLOCK=lambda: moment))
    with app.app_context():
        assert utcnow() == clock.now() == moment
    assert abs(utcnow() - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)  # no app: real


def test_no_setting_is_read_from_flask_config():
    """Code reads `settings().name`; a read in the old style is listed by the codemod, which
    rewrites it (`python scripts/dev/settings_codemod.py`)."""
    script = PROJECT_ROOT / "scripts" / "dev" / "settings_codemod.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check", str(PROJECT_ROOT / "ivr")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "would rewrite" not in result.stdout, result.stdout


def test_the_codemod_rewrites_old_reads_once(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "settings_codemod", PROJECT_ROOT / "scripts" / "dev" / "settings_codemod.py"
    )
    assert spec and spec.loader
    codemod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, codemod)  # its dataclasses look it up
    spec.loader.exec_module(codemod)
    module = tmp_path / "old.py"
    module.write_text(
        "from flask import current_app\n\n\n"
        "def f(app):\n"
        "    config = current_app.config\n"
        '    app.config["DATABASE_URL"] = "sqlite://"\n'
        '    return config["DIAL_TIMEOUT"], current_app.config.get("PUBLIC_URL", ""), '
        'app.config["TESTING"]\n'
    )
    monkeypatch.setattr(codemod, "ROOT", tmp_path)
    new, left = codemod.rewrite(module)
    assert new is not None and left == []
    assert "    config = settings()\n" in new
    assert '    settings(app).database_url = "sqlite://"\n' in new
    assert 'config.dial_timeout, settings().public_url, app.config["TESTING"]' in new
    assert "from ivr.settings import settings\n" in new
    module.write_text(new)
    assert codemod.rewrite(module) == (None, [])  # idempotent
