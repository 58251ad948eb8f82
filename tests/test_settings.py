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
    assert config["DIAL_TIMEOUT"] == 20
    assert config["DEFAULT_LANGUAGE"] == "es"
    assert config["OFFICE_HOURS"].days == frozenset(range(5))


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
    assert settings.load({**GOOD, "DATABASE_URL": url})["DATABASE_URL"] == expected


def test_office_hours_cover_the_configured_days():
    hours = settings.office_hours("sat-sun 10:00-14:00")
    assert hours.days == frozenset({5, 6})
    assert settings.office_hours("always") is None


def test_default_database_is_sqlite_in_the_instance_folder(monkeypatch, tmp_path):
    for name, value in GOOD.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    app = create_app()
    assert app.config["DATABASE_URL"].startswith("sqlite:///")
    assert app.config["DATABASE_URL"].endswith("instance/hotline.sqlite3")


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
    assert settings.load({**GOOD, "SMTP_URL": "smtps://u:p@mail.example.org"})["SMTP_URL"]


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
    assert "SECRET_KEY='x' is invalid: too short: at least 32 bytes" in result.stderr


def test_heroku_without_forwarded_proxies_stops_start_up():
    with pytest.raises(settings.SettingsError, match="FORWARDED_PROXIES must be 1 on Heroku"):
        settings.load({**GOOD, "DYNO": "web.1"})
    assert (
        settings.load({**GOOD, "DYNO": "web.1", "FORWARDED_PROXIES": "1"})["FORWARDED_PROXIES"] == 1
    )
