"""The hotline's settings: one typed object, read from the environment once, at start-up.

Every setting is a field of `Settings` with its type, its default (written as it would be in the
environment) and what it does, so that a missing or malformed value stops the app before it
answers a single call (a bad phone number discovered mid-call would drop a frightened family).
Every problem is reported at once, in one message, and a secret's value is never repeated in it.
pydantic-settings reads the environment and pydantic collects the errors; the parsers below keep
the hotline's own rules (E.164 numbers, office hours, closed dates). Code reads typed attributes
through `settings()`; `ivr settings` prints the table, and the README's copy is checked against it.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from flask import current_app
from pydantic import Field, PlainValidator, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict
from pydantic_settings.sources import PydanticBaseSettingsSource

from ivr.phones import e164, parse_valid

if TYPE_CHECKING:
    from flask import Flask

EXTENSION = "ivr.settings"


class SettingsError(RuntimeError):
    """A setting is missing or malformed; the message names it and says what is expected."""


def _e164(value: str) -> str:
    number = parse_valid(value) if value.startswith("+") else None
    if number is None:
        raise ValueError("not a valid E.164 phone number such as +13125550100")
    return e164(number)


def _countries(value: str) -> frozenset[str]:
    """`US,MX,GT`: ISO country codes phonenumbers knows (the number policy compares them with a
    number's region; `ivr/messaging/policy.py`)."""
    codes = [part.strip().upper() for part in value.split(",") if part.strip()]
    unknown = [code for code in codes if code not in phonenumbers.SUPPORTED_REGIONS]
    if unknown:
        raise ValueError(
            f"{', '.join(unknown)}: not a two-letter country code such as US, MX or GT"
        )
    return frozenset(codes)


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


# The field names below shadow these two functions inside the class.
_office_hours, _database_url = office_hours, database_url


def _raise(message: str) -> Any:
    raise ValueError(message)


def _flag(value: str) -> bool:
    return value.lower() in ("1", "true", "yes")


def _more_than_zero(value: str) -> float:
    return _seconds(value) or _raise("must be more than 0")


def _fernet_keys(value: str) -> list[str]:
    keys = [part.strip() for part in value.split(",") if part.strip()]
    for key in keys:
        try:
            if len(base64.urlsafe_b64decode(key.encode())) != 32:
                raise ValueError
        except (ValueError, binascii.Error):
            raise ValueError(
                "each key is 32 url-safe base64-encoded bytes (`ivr keys new`)"
            ) from None
    return keys


def _optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    return lambda value: parse(value) if value else ""


def _one_of(*choices: str) -> Callable[[str], str]:
    words = ", ".join(choices[:-1]) + " or " + choices[-1]
    return lambda value: value if value in choices else _raise(f"must be {words}")


def _messaging_service(value: str) -> str:
    if value and not re.fullmatch(r"MG[0-9a-fA-F]{32}", value):
        raise ValueError("a Messaging Service SID is MG followed by 32 hexadecimal characters")
    return value


def _non_negative_int(value: str) -> int:
    return int(value) if int(value) >= 0 else _raise("must be 0 or more")


def _port(value: str) -> int:
    number = int(value)
    if not 0 < number < 65536:
        raise ValueError("must be a TCP port from 1 to 65535")
    return number


def parsed(parse: Callable[[str], Any]) -> PlainValidator:
    """Validate a field with one of the parsers above: text (from the environment) is stripped
    and parsed; a value of the field's type (a test's override) is taken as it is."""
    return PlainValidator(lambda value: parse(value.strip()) if isinstance(value, str) else value)


def setting(default: str | None, doc: str, *, secret: bool = False) -> Any:
    """A field: `default` as it would be written in the environment (None: required)."""
    return Field(
        ... if default is None else default,
        description=doc,
        repr=not secret,  # never in a log line or a traceback's locals
        json_schema_extra={"secret": secret},
    )


class ServerSettings(BaseSettings):
    """What the web server needs before the app exists (gunicorn.conf.py reads only these)."""

    model_config = SettingsConfigDict(
        validate_default=True,  # defaults are written as in the environment, parsed the same way
        arbitrary_types_allowed=True,
        case_sensitive=False,
        enable_decoding=False,
        str_strip_whitespace=True,  # lists are comma-separated here, not JSON
    )

    port: Annotated[int, parsed(_port)] = setting("5000", "Port the web server listens on.")
    web_concurrency: Annotated[int, parsed(_positive_int)] = setting(
        "2", "Web server processes (gunicorn workers); Heroku sets it by dyno size."
    )
    web_threads: Annotated[int, parsed(_positive_int)] = setting(
        "4", "Threads per web process: the requests each process serves at once."
    )
    worker_in_web: Annotated[bool, parsed(_flag)] = setting(
        "false",
        "One-dyno set-up: each web process also runs the background jobs, so no `worker` "
        "process is needed.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what load() passes: it reads the environment (or a test's mapping) itself.
        return (init_settings,)


class Settings(ServerSettings):
    """Every setting of the hotline, typed. Fields are the environment's names in lower case."""

    secret_key: Annotated[str, parsed(_secret_key)] = setting(
        None,
        "Signs staff sessions and CSRF tokens. Random, at least 32 bytes.",
        secret=True,
    )
    twilio_auth_token: str = setting(
        None,
        "Checks X-Twilio-Signature on every webhook; also the REST API password.",
        secret=True,
    )
    twilio_webhook_shared_keys: Annotated[list[str], parsed(_secrets)] = setting(
        "",
        "Only if a Twilio Webhook Rule (webhooks configuration API, public beta) signs the "
        "hotline's URLs with a SharedKey: its secret, or the old and new secrets comma-separated "
        "while rotating. Such requests carry `X-Twilio-Webhooks-Signature-Settings`; without "
        "this setting they are refused (403) and the log says why.",
        secret=True,
    )
    twilio_account_sid: Annotated[str, parsed(_optional(_account_sid))] = setting(
        "", "Account SID (AC...). Needed to fetch recordings and send SMS alerts."
    )
    firm_phone_number: Annotated[str, parsed(_e164)] = setting(
        None, "E.164 number that 'talk to the firm now' rings."
    )
    database_url: Annotated[str, parsed(_optional(_database_url))] = setting(
        "",
        "SQLAlchemy URL; postgres:// accepted. Default: SQLite in the instance folder.",
        secret=True,  # holds the database's password
    )
    default_language: Annotated[str, parsed(_language)] = setting(
        "es",
        "Language greeted first (most callers'), and chosen after repeated silence: en or es.",
    )
    speech_language: Annotated[str, parsed(_one_of("es-US", "en-US", "es-MX"))] = setting(
        "es-US",
        "Speech recognizer for saying 'English' or 'español' at the greeting (es-US, en-US or "
        "es-MX).",
    )
    staff_language: Annotated[str, parsed(_language)] = setting(
        "en", "Language of the whisper heard at the firm."
    )
    voice_en: str = setting("Polly.Joanna-Neural", "Twilio `<Say>` voice for English.")
    voice_es: str = setting("Polly.Lupe-Neural", "Twilio `<Say>` voice for Spanish (es-US).")
    dial_timeout: Annotated[int, parsed(_positive_int)] = setting(
        "20", "Seconds the firm's phone rings."
    )
    gather_timeout: Annotated[int, parsed(_positive_int)] = setting(
        "6", "Seconds of silence before a menu repeats."
    )
    max_failures: Annotated[int, parsed(_positive_int)] = setting(
        "3", "Invalid keys or silences in a row before help."
    )
    office_hours: Annotated[OfficeHours | None, parsed(_office_hours)] = setting(
        "mon-fri 09:00-17:00", "When the firm answers, e.g. 'mon-fri 09:00-17:00' or 'always'."
    )
    office_timezone: Annotated[ZoneInfo, parsed(_timezone)] = setting(
        "America/Chicago",
        "IANA time zone of the office; its spoken name is `prompts/<lang>/words/zone_<city>.txt` "
        "(e.g. `zone_chicago`).",
    )
    callback_from_number: Annotated[str, parsed(_optional(_e164))] = setting(
        "",
        "E.164 number the firm's call-backs come from (a Twilio number, best the hotline's own): "
        "said digit by digit with the callback promise, and the caller ID of the dashboard's "
        "Call back (empty: not said, no Call back button).",
    )
    office_closed_dates: Annotated[frozenset[dt.date], parsed(closed_dates)] = setting(
        "",
        "Days the office is closed (holidays), e.g. `2026-12-24,2026-12-25`: the hotline says "
        '"closed today", when it reopens, and the callback promise follows them.',
    )
    prompts_dir: str = setting("", "Folder of prompt text files. Default: prompts/ in the repo.")
    audio_dir: str = setting("", "Folder of rendered audio. Default: audio/ in the repo.")
    gtts_tld_en: str = setting("us", "gTTS accent (Google domain) for English.")
    gtts_tld_es: str = setting("com.mx", "gTTS accent (Google domain) for Spanish.")
    recording_max_seconds: Annotated[int, parsed(_positive_int)] = setting(
        "120", "Longest callback message, in seconds."
    )
    fallback_path: str = setting(
        "",
        "File that keeps what callers gave while the database was down, until each process "
        "applies it (also written to the log as `IVR-JOURNAL` lines). Default: fallback.jsonl "
        "in the instance folder.",
    )
    fallback_retry_seconds: Annotated[float, parsed(_more_than_zero)] = setting(
        "2",
        "How often a process retries applying its fallback file while the database is down.",
    )
    db_timeout_seconds: Annotated[float, parsed(_more_than_zero)] = setting(
        "3",
        "Longest wait for a database connection or SQLite's write lock; a webhook that cannot "
        "get one goes on with the fallback.",
    )
    job_concurrency: Annotated[int, parsed(_positive_int)] = setting(
        "4", "Background jobs run at once by a worker process (threads)."
    )
    job_lease_seconds: Annotated[float, parsed(_more_than_zero)] = setting(
        "120", "A job whose worker died is taken again after this long; no attempt runs longer."
    )
    job_backoff_seconds: Annotated[float, parsed(_more_than_zero)] = setting(
        "15",
        "Wait before a failed job's first retry; doubled each time up to JOB_BACKOFF_MAX_SECONDS.",
    )
    job_backoff_max_seconds: Annotated[float, parsed(_more_than_zero)] = setting(
        "120", "Longest wait between retries, so work resumes within this long of an outage ending."
    )
    worker_stall_seconds: Annotated[float, parsed(_more_than_zero)] = setting(
        "120",
        "Background work counts as delayed when a due job has waited this long or no worker has "
        "beaten its heartbeat for this long: `/healthz/worker` answers 503 and the staff pages "
        "show a banner until it catches up.",
    )
    twilio_connect_timeout: Annotated[float, parsed(_more_than_zero)] = setting(
        "5", "Seconds to reach Twilio's API (through HTTPS_PROXY if set) before a job gives up."
    )
    twilio_read_timeout: Annotated[float, parsed(_more_than_zero)] = setting(
        "20", "Seconds to wait for each part of Twilio's answer before a job gives up."
    )
    smtp_timeout: Annotated[float, parsed(_more_than_zero)] = setting(
        "20", "Seconds each step of sending an e-mail may wait for the mail server."
    )
    keep_recordings_at_twilio: Annotated[bool, parsed(_flag)] = setting(
        "false", "Keep recordings at Twilio after the app has copied them (default: delete there)."
    )
    alert_sms_to: Annotated[list[str], parsed(_e164_list)] = setting(
        "", "Comma-separated E.164 numbers that get SMS alerts."
    )
    alert_sms_from: Annotated[str, parsed(_optional(_e164))] = setting(
        "", "Twilio number SMS come from."
    )
    sms_from: Annotated[str, parsed(_optional(_e164))] = setting(
        "",
        "The hotline's Twilio number that texts a caller their reference when they press 1 for "
        "it after hearing it (or set `SMS_MESSAGING_SERVICE_SID`). Empty: the offer is not "
        "made. Delivery statuses come back to `PUBLIC_URL`.",
    )
    sms_messaging_service_sid: Annotated[str, parsed(_messaging_service)] = setting(
        "",
        "Send callers' reference texts through this Messaging Service (MG...) instead of "
        "`SMS_FROM`.",
    )
    alert_email_to: str = setting("", "Comma-separated e-mail addresses for alerts.")
    alert_email_from: str = setting("hotline@localhost", "From address of alert e-mails.")
    report_email_to: str = setting(
        "",
        "Comma-separated e-mail addresses (the firm's admins) that get the weekly summary of "
        "the Reports page on Monday morning; empty: no summary.",
    )
    smtp_url: Annotated[str, parsed(_smtp_url)] = setting(
        "",
        "smtp://user:pass@host:port or smtps://...; empty: no e-mail.",
        secret=True,  # holds the mail server's password
    )
    public_url: Annotated[str, parsed(_public_url)] = setting(
        "",
        "Public https URL of the app, e.g. `https://hotline.example.org`: links in alerts, the "
        "Voice URL `ivr twilio setup` sets, the webhooks of staff call-backs, and the only "
        "scheme and host webhook signatures are checked against (unset: the request's `Host`). "
        "Set it in production.",
    )
    dyno: str = setting(
        "",
        "Set by Heroku itself on each dyno (never by hand): there `FORWARDED_PROXIES` must be `1`.",
    )
    forwarded_proxies: Annotated[int, parsed(_proxies)] = setting(
        "0",
        "How many proxies in front of the app append `X-Forwarded-For/Proto/Port` (Heroku: "
        "`1`). `0`: those headers are ignored.",
    )
    staff_2fa: Annotated[str, parsed(_one_of("auto", "required", "optional"))] = setting(
        "auto",
        "Staff log in with a code from an authenticator app too: `required`, `optional` (for "
        "those who enrolled), or `auto` (required except in debug and tests). See "
        "[docs/staff.md](docs/staff.md#two-factors).",
    )
    retention_days: Annotated[int, parsed(_positive_int)] = setting(
        "90",
        "Days after a request is handled (or called back) before its recording and personal "
        "data are deleted; calls' numbers go the same number of days after the call. See "
        "[docs/staff.md](docs/staff.md#personal-data).",
    )
    audit_key: Annotated[str, parsed(_optional(_secret_key))] = setting(
        "",
        "Key (at least 32 bytes, kept outside the database) of the audit log's HMAC chain, "
        "checked by `ivr audit verify`. Empty: derived from SECRET_KEY (then rotating "
        "SECRET_KEY makes older entries fail the check: set this once and keep it).",
        secret=True,
    )
    data_keys: Annotated[list[str], parsed(_fernet_keys)] = setting(
        "",
        "Fernet keys (comma-separated, newest first) that encrypt staff TOTP secrets and the "
        "fallback's copy in the log; older keys still decrypt, so a key can rotate (then "
        "`ivr staff rotate-keys`). Empty: one key derived from SECRET_KEY. Make one with "
        "`ivr keys new`.",
        secret=True,
    )
    staff_lock_after: Annotated[int, parsed(_positive_int)] = setting(
        "50",
        "Wrong passwords or codes in a row (in total, from anywhere) that lock a staff account "
        "until an admin unlocks it (`ivr staff unlock`); the alert recipients are told.",
    )
    listen_audit_minutes: Annotated[int, parsed(_positive_int)] = setting(
        "60",
        "A person's fetches of one recording within this many minutes are one audited listen.",
    )
    callback_target_hours: Annotated[int, parsed(_positive_int)] = setting(
        "8",
        "Office hours a request may wait for a first call-back before it is flagged overdue.",
    )
    alert_grace_seconds: Annotated[int, parsed(_non_negative_int)] = setting(
        "180", "Seconds an alert waits for the caller to finish (callback number, A-number)."
    )
    callback_countries: Annotated[frozenset[str], parsed(_countries)] = setting(
        "US,MX,GT,SV,HN",
        "Countries (ISO codes) whose numbers staff may call back through the hotline: the U.S. "
        "and the countries most families are from. Premium-rate, satellite and other special "
        "numbers are never called, whatever the country. Add `PR` for Puerto Rico, `CA` for "
        "Canada.",
    )
    callback_reservation_minutes: Annotated[int, parsed(_positive_int)] = setting(
        "15",
        "Minutes a press of Call back keeps the request (or missed call) for that person when no "
        "outcome comes: colleagues are told who is calling and cannot ring the family meanwhile.",
    )
    text_countries: Annotated[frozenset[str], parsed(_countries)] = setting(
        "US",
        "Countries whose mobile numbers may get the reference by text. Widen it only when "
        "families there need it: SMS pumping fraud targets far-away numbers.",
    )
    texts_per_day: Annotated[int, parsed(_positive_int)] = setting(
        "50",
        "Most reference texts in one office day; past it the offer is not made and the alert "
        "recipients are told once.",
    )
    alerts_per_hour: Annotated[int, parsed(_positive_int)] = setting(
        "10",
        "Most new-request alerts each recipient gets in a clock hour; past it, one digest at "
        'the end of the hour ("7 new requests").',
    )

    @field_validator("forwarded_proxies")
    @classmethod
    def _heroku_has_a_proxy(cls, proxies: int, info: ValidationInfo) -> int:
        # On Heroku every request comes through its router: without trusting it, every request
        # looks like plain http, and the https redirect would send every caller round in a loop.
        if info.data.get("dyno") and proxies == 0:
            raise ValueError(
                "FORWARDED_PROXIES must be 1 on Heroku (DYNO is set): its router is the "
                "proxy that says a request came over https"
            )
        return proxies

    def voice(self, lang: str) -> str:
        """The `<Say>` voice for `lang` (VOICE_EN or VOICE_ES)."""
        return self.voice_es if lang == "es" else self.voice_en

    def gtts_tld(self, lang: str) -> str:
        """The gTTS accent for `lang` (GTTS_TLD_EN or GTTS_TLD_ES)."""
        return self.gtts_tld_es if lang == "es" else self.gtts_tld_en


class _Environment(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (os.environ, or a test's)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, Any]) -> None:
        self._environ = environ
        super().__init__(settings_cls, case_sensitive=False, env_ignore_empty=True)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # Blank counts as unset, as it always has: `FOO=` in a .env file means "the default".
        return {
            key.lower(): value
            for key, value in self._environ.items()
            if isinstance(value, str) and value.strip()
        }


S = TypeVar("S", bound=ServerSettings)


def load(
    environ: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    cls: type[S] = Settings,  # type: ignore[assignment]
) -> S:
    """Parse every setting from `environ` (default: the process's environment), with a test's
    `overrides` (by environment name, any type) on top; raise one SettingsError listing every
    problem, without the value of a secret.
    """
    values: dict[str, Any] = _Environment(cls, os.environ if environ is None else environ)()
    for name, value in (overrides or {}).items():
        if name.lower() in cls.model_fields:
            values[name.lower()] = value
    try:
        return cls(**values)
    except ValidationError as error:
        # `from None`: pydantic's own message repeats each input, secrets included.
        raise SettingsError(
            "Hotline settings are wrong:\n  " + "\n  ".join(_problems(cls, error))
        ) from None


def _problems(cls: type[ServerSettings], error: ValidationError) -> list[str]:
    problems = []
    for problem in error.errors(include_url=False):
        field = str(problem["loc"][0]) if problem["loc"] else ""
        name = field.upper()
        if field not in cls.model_fields:
            problems.append(f"{name}: {problem['msg']}")
            continue
        if problem["type"] == "missing":
            problems.append(f"{name} is required: {cls.model_fields[field].description}")
            continue
        ctx = problem.get("ctx") or {}
        message = str(ctx["error"]) if problem["type"] == "value_error" else problem["msg"]
        value = problem.get("input")
        if message.startswith(name):
            problems.append(message)
        elif is_secret(cls, field) or not isinstance(value, str):
            problems.append(f"{name} is invalid: {message}")
        else:
            problems.append(f"{name}={value.strip()!r} is invalid: {message}")
    return problems


def is_secret(cls: type[ServerSettings], field: str) -> bool:
    extra = cls.model_fields[field].json_schema_extra
    return isinstance(extra, dict) and bool(extra.get("secret"))


def settings(app: Flask | None = None) -> Settings:
    """The app's settings, parsed once by create_app: `settings().office_hours`."""
    return (current_app if app is None else app).extensions[EXTENSION]


PROJECT_ROOT = Path(__file__).resolve().parent.parent


def init_app(app: Flask, test_config: Mapping[str, Any] | None = None) -> Settings:
    """Parse the settings once and keep them on `app`: from the environment, or from a test's
    config alone (text parsed as the environment's; other values, and Flask's own keys and test
    hooks such as TESTING or CLOCK, taken as they are)."""
    config: Settings
    if test_config is None:
        config = load()
    else:
        typed = {k: v for k, v in test_config.items() if not isinstance(v, str)}
        config = load(test_config, typed)
        app.config.update(
            {k: v for k, v in test_config.items() if k.lower() not in Settings.model_fields}
        )
    # Defaults that depend on where the app is: resolved once, so every reader sees a path.
    config.prompts_dir = config.prompts_dir or str(PROJECT_ROOT / "prompts")
    config.audio_dir = config.audio_dir or str(PROJECT_ROOT / "audio")
    config.fallback_path = config.fallback_path or str(Path(app.instance_path) / "fallback.jsonl")
    if not config.database_url:
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)
        config.database_url = f"sqlite:///{Path(app.instance_path) / 'hotline.sqlite3'}"
    app.config["SECRET_KEY"] = config.secret_key  # Flask's own key: sessions and CSRF
    app.extensions[EXTENSION] = config
    app.jinja_env.globals["settings"] = settings
    return config


@dataclass(frozen=True)
class Described:
    """One row of `ivr settings` and of the README's table."""

    name: str
    type: str
    default: str | None  # None: required; as written in the environment
    doc: str
    secret: bool


def _type_name(annotation: Any) -> str:
    """`int`, `OfficeHours | None`...: the type as written (annotations are strings here)."""
    text = str(annotation)
    if text.startswith("Annotated["):
        text = text[len("Annotated[") :].split(", parsed(")[0]
    return text.replace("dt.", "")


def described(cls: type[ServerSettings] = Settings) -> list[Described]:
    """Every setting, in the order the fields are declared."""
    return [
        Described(
            name=field.upper(),
            type=_type_name(_annotation(cls, field)),
            default=None if info.is_required() else str(info.default),
            doc=info.description or "",
            secret=is_secret(cls, field),
        )
        for field, info in cls.model_fields.items()
    ]


def _annotation(cls: type, field: str) -> Any:
    for klass in cls.__mro__:
        if field in getattr(klass, "__annotations__", {}):
            return klass.__annotations__[field]
    return None


def markdown_table(cls: type[ServerSettings] = Settings) -> str:
    """The README's table of settings, generated from the fields (`ivr settings --markdown`)."""
    rows = ["| setting | type | default | what it does |", "|---|---|---|---|"]
    for row in described(cls):
        default = (
            "*required*" if row.default is None else f"`{row.default}`" if row.default else "—"
        )
        rows.append(f"| `{row.name}` | {row.type} | {default} | {row.doc} |")
    return "\n".join(rows) + "\n"
