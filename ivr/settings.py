"""Read the hotline's settings from the environment, once, at start-up.

Every setting is declared here with its default and a parser, so that a missing or malformed value
stops the app before it answers a single call (a bad phone number discovered mid-call would drop a
frightened family). `ivr settings` prints this table; the README documents the same names.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ivr.phones import e164, parse_valid


class SettingsError(RuntimeError):
    """A setting is missing or malformed; the message names it and says what is expected."""


def _e164(value: str) -> str:
    number = parse_valid(value) if value.startswith("+") else None
    if number is None:
        raise ValueError("not a valid E.164 phone number such as +13125550100")
    return e164(number)


def _e164_list(value: str) -> list[str]:
    return [_e164(part.strip()) for part in value.split(",") if part.strip()]


def _account_sid(value: str) -> str:
    if not re.fullmatch(r"AC[0-9a-fA-F]{32}", value):
        raise ValueError("an Account SID is AC followed by 32 hexadecimal characters")
    return value


def _smtp_url(value: str) -> str:
    if value and not re.match(r"smtps?://[^/]", value):
        raise ValueError("must start with smtp:// or smtps:// and name a host")
    return value


def _secret_key(value: str) -> str:
    if len(value.encode()) < 32:
        raise ValueError(
            "too short: at least 32 bytes, e.g. from "
            "python3 -c 'import secrets; print(secrets.token_hex(32))'"
        )
    return value


def _fernet_keys(value: str) -> list[str]:
    keys = [part.strip() for part in value.split(",") if part.strip()]
    for key in keys:
        try:
            if len(base64.urlsafe_b64decode(key.encode())) != 32:
                raise ValueError
        except (ValueError, binascii.Error):
            raise ValueError(
                "each key is 32 url-safe base64-encoded bytes (Fernet.generate_key())"
            ) from None
    return keys


def _language(value: str) -> str:
    if value not in ("en", "es"):
        raise ValueError("must be en or es")
    return value


def _secrets(value: str) -> list[str]:
    secrets = [part.strip() for part in value.split(",")] if value.strip() else []
    if any(not secret for secret in secrets):
        raise ValueError("comma-separated secrets, none empty")
    return secrets


def _seconds(value: str) -> float:
    number = float(value)
    if not 0 <= number <= 3600:
        raise ValueError("must be a number of seconds from 0 to 3600")
    return number


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError("must be a positive whole number")
    return number


def _public_url(value: str) -> str:
    if value and not re.fullmatch(r"https?://[^/?#@\s]+(/[^?#\s]*)?", value):
        raise ValueError("an http(s) URL such as https://hotline.example.org, no query")
    return value.rstrip("/")


def _proxies(value: str) -> int:
    number = int(value)
    if not 0 <= number <= 5:
        raise ValueError("must be a whole number of proxies from 0 to 5")
    return number


def _timezone(value: str) -> ZoneInfo:
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("not an IANA time zone such as America/Chicago") from None


def database_url(value: str) -> str:
    """Accept Heroku's `postgres://` form, which SQLAlchemy 1.4+ no longer does."""
    if value.startswith("postgres://"):
        value = "postgresql://" + value[len("postgres://") :]
    if value.startswith("postgresql://"):
        value = "postgresql+psycopg://" + value[len("postgresql://") :]
    return value


DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


@dataclass(frozen=True)
class OfficeHours:
    """Weekdays (0 = Monday) and an opening interval in the firm's time zone; the arithmetic
    over them (open now? the next opening, office hours between two instants) is the office
    calendar's, `ivr/calls/calendar.py`."""

    days: frozenset[int]
    opens: dt.time
    closes: dt.time


def office_hours(value: str) -> OfficeHours | None:
    """Parse `mon-fri 09:00-17:00` (days and times; `always` means always open)."""
    value = value.strip().lower()
    if value in ("always", "24/7"):
        return None
    match = re.fullmatch(r"([a-z]{3})(?:-([a-z]{3}))?\s+(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})", value)
    if not match or match[1] not in DAYS or (match[2] and match[2] not in DAYS):
        raise ValueError("expected days and hours such as 'mon-fri 09:00-17:00', or 'always'")
    first = DAYS.index(match[1])
    last = DAYS.index(match[2] or match[1])
    days = {(first + i) % 7 for i in range((last - first) % 7 + 1)}
    opens = dt.time(int(match[3]), int(match[4]))
    closes = dt.time(int(match[5]), int(match[6])) if match[5] != "24" else dt.time.max
    if closes <= opens:
        raise ValueError("the office must close after it opens")
    return OfficeHours(frozenset(days), opens, closes)


def closed_dates(value: str) -> frozenset[dt.date]:
    """Parse `2026-12-24,2026-12-25`: whole days the office is closed (holidays)."""
    dates = set()
    for part in value.split(","):
        if not part.strip():
            continue
        try:
            dates.add(dt.date.fromisoformat(part.strip()))
        except ValueError:
            raise ValueError(
                f"{part.strip()!r} is not a date: expected dates such as 2026-12-24,2026-12-25"
            ) from None
    return frozenset(dates)


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | None  # None: required
    parse: Callable[[str], Any]
    doc: str


SETTINGS: list[Setting] = [
    Setting(
        "SECRET_KEY",
        None,
        _secret_key,
        "Signs staff sessions and CSRF tokens. Random, at least 32 bytes.",
    ),
    Setting(
        "TWILIO_AUTH_TOKEN",
        None,
        str,
        "Checks X-Twilio-Signature on every webhook; also the REST API password.",
    ),
    Setting(
        "TWILIO_WEBHOOK_SHARED_KEYS",
        "",
        _secrets,
        "Only if a Twilio Webhook Rule signs our URLs with a SharedKey: its secret (several, "
        "comma-separated, while rotating).",
    ),
    Setting(
        "TWILIO_ACCOUNT_SID",
        "",
        lambda v: _account_sid(v) if v else "",
        "Account SID (AC...). Needed to fetch recordings and send SMS alerts.",
    ),
    Setting("FIRM_PHONE_NUMBER", None, _e164, "E.164 number that 'talk to the firm now' rings."),
    Setting(
        "DATABASE_URL",
        "",
        lambda v: database_url(v) if v else "",
        "SQLAlchemy URL; postgres:// accepted. Default: SQLite in the instance folder.",
    ),
    Setting(
        "DEFAULT_LANGUAGE",
        "es",
        _language,
        "Language greeted first (most callers'), and chosen after repeated silence: en or es.",
    ),
    Setting(
        "SPEECH_LANGUAGE",
        "es-US",
        lambda v: v if v in ("es-US", "en-US", "es-MX") else _raise("es-US, en-US or es-MX"),
        "Speech recognizer for saying 'English' or 'español' at the greeting.",
    ),
    Setting("STAFF_LANGUAGE", "en", _language, "Language of the whisper heard at the firm."),
    Setting("VOICE_EN", "Polly.Joanna-Neural", str, "Twilio <Say> voice for English."),
    Setting("VOICE_ES", "Polly.Lupe-Neural", str, "Twilio <Say> voice for Spanish (es-US)."),
    Setting("DIAL_TIMEOUT", "20", _positive_int, "Seconds the firm's phone rings."),
    Setting("GATHER_TIMEOUT", "6", _positive_int, "Seconds of silence before a menu repeats."),
    Setting("MAX_FAILURES", "3", _positive_int, "Invalid keys or silences in a row before help."),
    Setting(
        "OFFICE_HOURS",
        "mon-fri 09:00-17:00",
        office_hours,
        "When the firm answers, e.g. 'mon-fri 09:00-17:00' or 'always'.",
    ),
    Setting("OFFICE_TIMEZONE", "America/Chicago", _timezone, "IANA time zone of the office."),
    Setting(
        "CALLBACK_FROM_NUMBER",
        "",
        lambda v: _e164(v) if v else "",
        "E.164 number the firm's call-backs come from (a Twilio number, best the hotline's "
        "own): said digit by digit with the callback promise, and the caller ID of the "
        "dashboard's Call back (empty: not said, no Call back button).",
    ),
    Setting(
        "OFFICE_CLOSED_DATES",
        "",
        closed_dates,
        "Days the office is closed (holidays), e.g. '2026-12-24,2026-12-25': the hotline says "
        "so and when it reopens.",
    ),
    Setting("PROMPTS_DIR", "", str, "Folder of prompt text files. Default: prompts/ in the repo."),
    Setting("AUDIO_DIR", "", str, "Folder of rendered audio. Default: audio/ in the repo."),
    Setting("GTTS_TLD_EN", "us", str, "gTTS accent (Google domain) for English."),
    Setting("GTTS_TLD_ES", "com.mx", str, "gTTS accent (Google domain) for Spanish."),
    Setting("RECORDING_MAX_SECONDS", "120", _positive_int, "Longest callback message, in seconds."),
    Setting(
        "FALLBACK_PATH",
        "",
        str,
        "File that keeps what callers gave while the database was down, until it is applied "
        "(default: fallback.jsonl in the instance folder). Also written to the log.",
    ),
    Setting(
        "FALLBACK_RETRY_SECONDS",
        "2",
        lambda v: _seconds(v) or _raise("must be more than 0"),
        "How often each process retries applying the fallback file while the database is down.",
    ),
    Setting(
        "DB_TIMEOUT_SECONDS",
        "3",
        lambda v: _seconds(v) or _raise("must be more than 0"),
        "Longest wait for a database connection (pool, or connecting): a webhook that cannot get "
        "one goes on with the fallback instead of holding the caller.",
    ),
    Setting(
        "JOB_CONCURRENCY",
        "4",
        _positive_int,
        "Background jobs run at once by a worker process (threads).",
    ),
    Setting(
        "WORKER_IN_WEB",
        "false",
        lambda v: v.lower() in ("1", "true", "yes"),
        "One-dyno set-up: each web process also runs the background jobs (gunicorn.conf.py).",
    ),
    Setting(
        "JOB_LEASE_SECONDS",
        "120",
        lambda v: _seconds(v) or _raise("must be more than 0"),
        "A job whose worker died is taken again after this long; no attempt runs longer.",
    ),
    Setting(
        "JOB_BACKOFF_SECONDS",
        "15",
        lambda v: _seconds(v) or _raise("must be more than 0"),
        "Wait before a failed job's first retry; doubled each time up to JOB_BACKOFF_MAX_SECONDS.",
    ),
    Setting(
        "JOB_BACKOFF_MAX_SECONDS",
        "120",
        lambda v: _seconds(v) or _raise("must be more than 0"),
        "Longest wait between retries, so work resumes within this long of an outage ending.",
    ),
    Setting(
        "TWILIO_CONNECT_TIMEOUT",
        "5",
        lambda v: _seconds(v) or _raise("must be more than 0"),
        "Seconds to reach Twilio's API (through HTTPS_PROXY if set) before a job gives up.",
    ),
    Setting(
        "TWILIO_READ_TIMEOUT",
        "20",
        lambda v: _seconds(v) or _raise("must be more than 0"),
        "Seconds to wait for each part of Twilio's answer before a job gives up.",
    ),
    Setting(
        "SMTP_TIMEOUT",
        "20",
        lambda v: _seconds(v) or _raise("must be more than 0"),
        "Seconds each step of sending an e-mail may wait for the mail server.",
    ),
    Setting(
        "KEEP_RECORDINGS_AT_TWILIO",
        "false",
        lambda v: v.lower() in ("1", "true", "yes"),
        "Keep recordings at Twilio after the app has copied them (default: delete there).",
    ),
    Setting("ALERT_SMS_TO", "", _e164_list, "Comma-separated E.164 numbers that get SMS alerts."),
    Setting("ALERT_SMS_FROM", "", lambda v: _e164(v) if v else "", "Twilio number SMS come from."),
    Setting(
        "SMS_FROM",
        "",
        lambda v: _e164(v) if v else "",
        "The hotline's Twilio number that texts a caller their reference when they press 1 "
        "for it (or set SMS_MESSAGING_SERVICE_SID). Empty: the offer is not made.",
    ),
    Setting(
        "SMS_MESSAGING_SERVICE_SID",
        "",
        lambda v: (
            v
            if not v or re.fullmatch(r"MG[0-9a-fA-F]{32}", v)
            else _raise("a Messaging Service SID is MG followed by 32 hexadecimal characters")
        ),
        "Send callers' reference texts through this Messaging Service instead of SMS_FROM.",
    ),
    Setting("ALERT_EMAIL_TO", "", str, "Comma-separated e-mail addresses for alerts."),
    Setting("ALERT_EMAIL_FROM", "hotline@localhost", str, "From address of alert e-mails."),
    Setting(
        "SMTP_URL", "", _smtp_url, "smtp://user:pass@host:port or smtps://...; empty: no e-mail."
    ),
    Setting(
        "PUBLIC_URL",
        "",
        _public_url,
        "Public https URL of the app: links in alerts, the Voice URL `ivr twilio setup` sets, "
        "and the only host Twilio signatures are checked against. Set it in production.",
    ),
    Setting(
        "FORWARDED_PROXIES",
        "0",
        _proxies,
        "How many proxies in front of the app add X-Forwarded-For/Proto/Port (Heroku: 1). "
        "0: those headers are ignored.",
    ),
    Setting(
        "STAFF_2FA",
        "auto",
        lambda v: (
            v
            if v in ("auto", "required", "optional")
            else _raise("must be auto, required or optional")
        ),
        "Staff log in with a code from an authenticator app too: required, optional (for those "
        "who enrolled), or auto (required except in debug and tests).",
    ),
    Setting(
        "RETENTION_DAYS",
        "90",
        _positive_int,
        "Days after a request is handled (or called back) before its recording and personal "
        "data are deleted; calls' numbers go the same number of days after the call.",
    ),
    Setting(
        "AUDIT_KEY",
        "",
        lambda v: _secret_key(v) if v else "",
        "Key (at least 32 bytes, kept outside the database) of the audit log's HMAC chain, "
        "checked by `ivr audit verify`. Empty: derived from SECRET_KEY (then rotating "
        "SECRET_KEY makes older entries fail the check: set this once and keep it).",
    ),
    Setting(
        "DATA_KEYS",
        "",
        _fernet_keys,
        "Fernet keys (comma-separated, newest first) that encrypt staff TOTP secrets and the "
        "fallback's copy in the log; older keys still decrypt, so a key can rotate (then "
        "`ivr staff rotate-keys`). Empty: one key derived from SECRET_KEY. Make one with "
        "`ivr keys new`.",
    ),
    Setting(
        "STAFF_LOCK_AFTER",
        "50",
        _positive_int,
        "Wrong passwords or codes in a row (in total, from anywhere) that lock a staff account "
        "until an admin unlocks it (`ivr staff unlock`); admins are alerted.",
    ),
    Setting(
        "LISTEN_AUDIT_MINUTES",
        "60",
        _positive_int,
        "A person's fetches of one recording within this many minutes are one audited listen.",
    ),
    Setting(
        "CALLBACK_TARGET_HOURS",
        "8",
        _positive_int,
        "Office hours a request may wait for a first call-back before it is flagged overdue.",
    ),
    Setting(
        "ALERT_GRACE_SECONDS",
        "180",
        lambda v: int(v) if int(v) >= 0 else _raise("must be 0 or more"),
        "Seconds an alert waits for the caller to finish (callback number, A-number).",
    ),
]


SECRETS = {
    "SECRET_KEY",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_WEBHOOK_SHARED_KEYS",
    "SMTP_URL",
    "DATABASE_URL",
    "AUDIT_KEY",
    "DATA_KEYS",
}


def _raise(message: str):
    raise ValueError(message)


def load(environ: Mapping[str, str]) -> dict[str, Any]:
    """Parse every setting from `environ`, raising one SettingsError that lists all problems."""
    config: dict[str, Any] = {}
    problems: list[str] = []
    for setting in SETTINGS:
        raw = environ.get(setting.name)
        if raw is None or raw.strip() == "":
            if setting.default is None:
                problems.append(f"{setting.name} is required: {setting.doc}")
                continue
            raw = setting.default
        try:
            config[setting.name] = setting.parse(raw.strip())
        except ValueError as exc:
            # A secret's value is never repeated: the message goes to the log and the console.
            shown = "(hidden)" if setting.name in SECRETS else repr(raw)
            problems.append(f"{setting.name}={shown} is invalid: {exc}")
    if "DYNO" in environ and config.get("FORWARDED_PROXIES") == 0:
        # On Heroku every request comes through its router: without trusting it, every request
        # looks like plain http, and the https redirect would send every caller round in a loop.
        problems.append(
            "FORWARDED_PROXIES must be 1 on Heroku (DYNO is set): its router is the "
            "proxy that says a request came over https"
        )
    if problems:
        raise SettingsError("Hotline settings are wrong:\n  " + "\n  ".join(problems))
    return config
