"""`ivr twilio`: point the firm's Twilio number at the hotline, check it, and write its fallback.

Console clicks drift: a Voice URL typed over http, GET instead of POST, a TwiML App left on the
number (which silently wins over the Voice URL), no Fallback URL. `setup` writes the number's
voice settings with twilio-python's REST client, `check` reads them back with the account and says
in plain words what is wrong, and `fallback` writes the static TwiML that Twilio plays when the app
itself does not answer, so it must not depend on anything the app serves (not even its audio).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import click
import requests
from flask import current_app, url_for
from flask.cli import with_appcontext
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

from ivr.calls.prompts import LANGUAGES, PromptError
from ivr.calls.twiml import SAY_LANGUAGE
from ivr.messaging.gateway import gateway
from ivr.phones import e164, parse_valid
from ivr.settings import settings

NUMBER_SID = re.compile(r"PN[0-9a-fA-F]{32}")
# Labels as the Console shows them, in the order `setup` prints them.
LABELS = {
    "voice_url": "Voice URL (A call comes in)",
    "voice_method": "Voice method",
    "voice_fallback_url": "Fallback URL (Primary handler fails)",
    "voice_fallback_method": "Fallback method",
    "voice_application_sid": "TwiML App (overrides the Voice URL)",
    "trunk_sid": "SIP trunk (overrides the Voice URL)",
    "voice_receive_mode": "Receive mode",
}
MEDIA_AUTH_NOTE = (
    "note: Twilio's REST API does not show the account's 'Enforce HTTP Auth on Media URLs' "
    "setting, so it is not checked here. Look in the Console under Voice > Settings > General: "
    "turned on, a recording's address is useless without the account's credentials (the hotline "
    "fetches recordings with them, so it works either way)."
)


@click.group("twilio")
def twilio_group() -> None:
    """The Twilio number: set it up, check it, and write its fallback TwiML."""


# The fallback -------------------------------------------------------------------------------------
def fallback_twiml() -> str:
    """Apologise in both languages, ring the firm, then say goodbye: nothing fetched from the app.

    `<Say>` rather than the rendered audio, which the app itself serves; no `action` and no
    whisper, which are the app's URLs. Without an `action`, the call goes on to the goodbye after
    the firm's leg ends, answered or not, so the goodbye is worded for both.
    """
    config = settings()
    prompts = current_app.extensions["ivr.calls.prompts"]
    first = config.default_language
    languages = [first, *(lang for lang in LANGUAGES if lang != first)]
    response = VoiceResponse()

    def say(name: str) -> None:
        for lang in languages:
            response.say(
                prompts.text(lang, name),
                language=SAY_LANGUAGE[lang],
                voice=config.voice(lang),
            )

    say("app_down")
    response.dial(config.firm_phone_number, timeout=config.dial_timeout, answer_on_bridge=True)
    say("app_down_goodbye")
    response.hangup()
    return str(response)


@twilio_group.command("fallback")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the TwiML to this file instead of printing it.",
)
@with_appcontext
def fallback(output: Path | None) -> None:
    """Print the static TwiML for the number's Fallback URL (host it outside the app)."""
    try:
        document = fallback_twiml()
    except PromptError as exc:
        raise click.ClickException(f"{exc}; run `ivr prompts check`") from None
    if output is None:
        click.echo(document)
        return
    try:
        output.write_text(document + "\n", encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"could not write {output}: {exc.strerror}") from None
    click.echo(
        f"wrote {output}: host it (e.g. a TwiML Bin) and pass its address to "
        "`ivr twilio setup --fallback-url`",
        err=True,
    )


# Talking to Twilio --------------------------------------------------------------------------------
def client() -> Client:
    if not settings().twilio_account_sid:
        raise click.ClickException(
            "TWILIO_ACCOUNT_SID is not set: it and TWILIO_AUTH_TOKEN are "
            "the account's credentials for Twilio's API"
        )
    return gateway().client  # with timeouts: a hung API is an error, not a frozen terminal


@contextmanager
def twilio_errors() -> Iterator[None]:
    """Twilio's refusals and network failures as one clear line, not a traceback."""
    try:
        yield
    except TwilioRestException as exc:
        hint = " (check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN)" if exc.status == 401 else ""
        raise click.ClickException(f"Twilio answered {exc.status}: {exc.msg}{hint}") from None
    except (requests.RequestException, TwilioException) as exc:
        raise click.ClickException(f"could not reach Twilio's API: {exc}") from None


def find_number(api: Client, number: str):
    """The account's number named by E.164 (+1...) or by SID (PN...)."""
    if NUMBER_SID.fullmatch(number):
        try:
            return api.incoming_phone_numbers(number).fetch()
        except TwilioRestException as exc:
            if exc.status == 404:
                raise click.ClickException(f"{number} is not a number of this account") from None
            raise
    parsed = parse_valid(number) if number.startswith("+") else None
    if parsed is None:
        raise click.BadParameter(
            "an E.164 number such as +13125550100, or a number's SID "
            "(PN followed by 32 hexadecimal characters)",
            param_hint="--number",
        )
    found = api.incoming_phone_numbers.list(phone_number=e164(parsed), limit=1)
    if not found:
        raise click.ClickException(f"{e164(parsed)} is not a number of this account")
    return found[0]


def public_url() -> str:
    """PUBLIC_URL when it is an https address; `setup` refuses to write anything else."""
    value = settings().public_url.rstrip("/")
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.netloc:
        raise click.ClickException(
            f"PUBLIC_URL must be the app's public https address, such as "
            f"https://hotline.example.org (it is {value!r})"
        )
    return value


def voice_url(base: str) -> str:
    """The number's one fixed URL, built by the app's own routes (a CLI has no request: fake one
    at the public address so `url_for` includes any path prefix)."""
    with current_app.test_request_context(base_url=base):
        return url_for("voice.welcome.answer", _external=True)


# setup --------------------------------------------------------------------------------------------
def wanted_settings(number, voice: str, fallback_url: str | None) -> dict[str, str]:
    """What the number must say for calls to reach the hotline."""
    wanted = {"voice_url": voice, "voice_method": "POST"}
    if fallback_url:
        # GET: a static file host often refuses POST; a TwiML Bin answers both.
        wanted.update(voice_fallback_url=fallback_url, voice_fallback_method="GET")
    if number.voice_application_sid:
        wanted["voice_application_sid"] = ""
    if number.trunk_sid:
        wanted["trunk_sid"] = ""
    if number.voice_receive_mode == "fax":
        wanted["voice_receive_mode"] = "voice"
    return wanted


@twilio_group.command("setup")
@click.option("--number", required=True, help="The number, +1... or its SID PN...")
@click.option("--fallback-url", help="Where the `ivr twilio fallback` TwiML is hosted (https).")
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@with_appcontext
def setup(number: str, fallback_url: str | None, dry_run: bool) -> None:
    """Point the number's calls at PUBLIC_URL/voice (POST), with its Fallback URL."""
    base = public_url()
    if fallback_url and urlsplit(fallback_url).scheme != "https":
        raise click.BadParameter("must be an https address", param_hint="--fallback-url")
    api = client()
    with twilio_errors():
        found = find_number(api, number)
        wanted = wanted_settings(found, voice_url(base), fallback_url)
        changes = {
            name: (getattr(found, name) or "", value)
            for name, value in wanted.items()
            if (getattr(found, name) or "") != value
        }
        click.echo(f"{found.phone_number} ({found.sid})")
        for name, (old, new) in changes.items():
            click.echo(f"  {LABELS[name]}: {old or '(none)'} -> {new or '(none)'}")
        if changes and not dry_run:
            found.update(**{name: new for name, (_, new) in changes.items()})
    if not changes:
        click.echo("  already set up: nothing changed")
    elif dry_run:
        click.echo("dry run: nothing changed")
    else:
        click.echo(f"changed {len(changes)} setting{'s' if len(changes) > 1 else ''}")
    if not (fallback_url or found.voice_fallback_url):
        click.echo(
            "warning: no Fallback URL, so callers hear Twilio's error while the app is "
            "down: see `ivr twilio fallback`"
        )


# check --------------------------------------------------------------------------------------------
def number_problems(number, voice: str | None) -> list[str]:
    """What keeps calls to `number` from reaching the hotline at `voice`, in plain words."""
    name = number.phone_number
    problems = []
    if not (number.capabilities or {}).get("voice", True):
        problems.append(f"{name} cannot take voice calls")
    if number.trunk_sid:
        problems.append(
            f"{name} is on SIP trunk {number.trunk_sid}: calls go to the trunk, "
            "not to the Voice URL"
        )
    if number.voice_application_sid:
        problems.append(
            f"{name} uses TwiML App {number.voice_application_sid}: calls go to the "
            "app's URL, not to the number's Voice URL"
        )
    if number.voice_receive_mode == "fax":
        problems.append(f"{name} receives faxes, not voice calls")
    url = number.voice_url or ""
    parts, expected = urlsplit(url), urlsplit(voice or "")
    if not url:
        problems.append(f"{name} has no Voice URL")
    elif parts.scheme != "https":
        problems.append(
            f"{name}'s Voice URL {url} is not https: Twilio would send callers' answers unencrypted"
        )
    if url and voice and parts.netloc.lower() != expected.netloc.lower():
        problems.append(
            f"{name}'s Voice URL goes to {parts.netloc}, but the hotline is at "
            f"{expected.netloc} (PUBLIC_URL)"
        )
    elif url and voice and (parts.path, parts.query) != (expected.path, expected.query):
        problems.append(f"{name}'s Voice URL is {url}, not {voice}")
    if (number.voice_method or "POST").upper() != "POST":
        problems.append(f"{name}'s Voice URL is requested with {number.voice_method}, not POST")
    fallback_url = number.voice_fallback_url or ""
    if not fallback_url:
        problems.append(
            f"{name} has no Fallback URL: while the app is down, callers hear "
            "Twilio's error instead of the firm (see `ivr twilio fallback`)"
        )
    elif urlsplit(fallback_url).scheme != "https":
        problems.append(f"{name}'s Fallback URL {fallback_url} is not https")
    elif expected.netloc and urlsplit(fallback_url).netloc.lower() == expected.netloc.lower():
        problems.append(
            f"{name}'s Fallback URL is on the app's own host, so it is down whenever "
            "the app is: host it elsewhere (e.g. a TwiML Bin)"
        )
    return problems


def sms_problems(api: Client) -> list[str]:
    """SMS alerts need ALERT_SMS_FROM to be this account's number, able to send SMS."""
    config = settings()
    if not config.alert_sms_to:
        return []
    sender = config.alert_sms_from
    if not sender:
        return ["ALERT_SMS_TO is set but ALERT_SMS_FROM is not: no SMS alert can be sent"]
    found = api.incoming_phone_numbers.list(phone_number=sender, limit=1)
    if not found:
        return [f"ALERT_SMS_FROM {sender} is not a number of this account: SMS alerts will fail"]
    if not (found[0].capabilities or {}).get("sms"):
        return [
            f"ALERT_SMS_FROM {sender} cannot send SMS (messaging is not enabled on it): "
            "SMS alerts will fail"
        ]
    return []


def account_problems(api: Client) -> list[str]:
    account = api.api.v2010.accounts(settings().twilio_account_sid).fetch()
    problems = []
    if account.status != "active":
        problems.append(f"the Twilio account is {account.status}, not active")
    if account.type == "Trial":
        problems.append(
            "the Twilio account is a trial: callers hear Twilio's trial notice first, "
            "and the firm can be rung only if its number is verified"
        )
    return problems


@twilio_group.command("check")
@click.option("--number", help="The number, +1... or PN... (default: those sent to PUBLIC_URL).")
@with_appcontext
def check(number: str | None) -> None:
    """Say what is wrong or risky in the number's and the account's set-up (exit status 1)."""
    problems: list[str] = []
    try:
        voice: str | None = voice_url(public_url())
    except click.ClickException as exc:
        voice = None
        problems.append(exc.message)
    api = client()
    with twilio_errors():
        if number:
            numbers = [find_number(api, number)]
        else:
            host = urlsplit(voice or "").netloc.lower()
            numbers = [
                n
                for n in api.incoming_phone_numbers.list()
                if host and urlsplit(n.voice_url or "").netloc.lower() == host
            ]
            if not numbers:
                problems.append(
                    "no number of this account sends its calls to PUBLIC_URL: run "
                    "`ivr twilio setup --number ...`, or name one with --number"
                )
        for found in numbers:
            click.echo(f"checked {found.phone_number} ({found.sid})")
            problems += number_problems(found, voice)
        problems += sms_problems(api)
        problems += account_problems(api)
    for problem in problems:
        click.echo(f"PROBLEM: {problem}")
    click.echo(MEDIA_AUTH_NOTE)
    if problems:
        click.echo(f"{len(problems)} problem{'s' if len(problems) > 1 else ''} found")
        sys.exit(1)
    click.echo("no problems found")
