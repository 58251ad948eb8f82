"""`ivr call`: place a call to the real app in-process, signed as Twilio signs, in the terminal.

Staff who edit prompts (and developers without a Twilio account or a phone) hear each step as text,
with the prompt file it came from, and answer with keys, typed speech or silence; `<Record>` and
`<Dial>` ask which outcome to simulate. It follows the TwiML the way Twilio does, so what works
here is what a caller gets.

The call is real to the app: it stores callback requests in the configured database. Staff alerts
are switched off for the simulated call (no recipients, so not even an outbox row for a worker to
send later); `ivr call` refuses a database other than SQLite unless told `--yes`.
"""

from __future__ import annotations

import logging
import secrets
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

import click
from flask import Flask

from ivr.devtools.emulator import Call, collect
from ivr.settings import settings

BASE = "http://localhost:5000"
KEYS = set("0123456789*#")
DIAL_OUTCOMES = {"c": "completed", "b": "busy", "n": "no-answer", "f": "failed", "x": "canceled"}
# With no recipients the app queues no alert at all (see ivr/staff/alerts.py): nothing is left for
# the worker to send.
NO_ALERTS = {"alert_sms_to": [], "alert_email_to": "", "smtp_url": ""}
HELP = (
    'Type keys (e.g. 1, or 3125550100#) and Enter; "words or say words for speech; '
    "Enter or 'wait' for silence; 'hangup' to hang up."
)


class CallEnded(Exception):
    """The caller or the hotline hung up."""


class Simulator:
    """One simulated call: `run` it, answering prompts from stdin."""

    def __init__(
        self,
        app: Flask,
        *,
        from_number: str,
        lang: str | None = None,
        to_number: str = "+18005550100",
    ) -> None:
        self.app = app
        self.account = settings(app).twilio_account_sid or "AC" + "0" * 32
        self.call = Call(
            app.test_client(),
            settings(app).twilio_auth_token,
            from_number=from_number,
            to_number=to_number,
            base=settings(app).public_url or BASE,
        )
        self.sid = self.call.sid
        self.lang = lang
        self.url = self.call.base + "/voice"

    def run(self) -> None:
        click.echo(f"Calling the hotline from {self.call.from_number}. {HELP}")
        click.echo("(Staff alerts are off for this call: no SMS or e-mail is sent.)")
        config = settings(self.app)
        saved = {name: getattr(config, name) for name in NO_ALERTS}
        trace = self.app.config.get("PROMPT_TRACE")
        level = self.app.logger.level
        for name, value in NO_ALERTS.items():
            setattr(config, name, value)
        self.app.config["PROMPT_TRACE"] = True
        self.app.logger.setLevel(logging.WARNING)  # keep the transcript readable
        try:
            twiml = self.request("/voice", CallStatus="ringing")
            while True:
                twiml = self.execute(twiml)
        except CallEnded as end:
            click.echo(f"call ended: {end}")
        except KeyboardInterrupt:
            click.echo("\ncall ended: you hung up")
        finally:
            for name, value in saved.items():
                setattr(config, name, value)
            self.app.config["PROMPT_TRACE"] = trace
            self.app.logger.setLevel(level)

    # Talking to the app, as Twilio does (emulator.py) ------------------------------------------
    def params(self, **extra: str) -> dict[str, str]:
        return self.call.params(AccountSid=self.account, **extra)

    def send(self, url: str, params: dict[str, str], method: str = "POST"):
        self.call.url = self.url
        return self.call.send(url, params, method)

    def request(self, url: str, method: str = "POST", **extra: str) -> ET.Element:
        url, response = self.send(url, self.params(**extra), method)
        self.url = url
        click.echo(f"\n→ {method} {urlsplit(url).path}")
        if response.status_code != 200 or response.mimetype != "text/xml":
            raise CallEnded(f"the app answered {response.status}; Twilio would say an error")
        sources = [s for s in response.headers.get("X-IVR-Prompts", "").split(",") if s]
        if sources:
            folder = Path(settings(self.app).prompts_dir)
            files = dict.fromkeys(_shown(folder / f"{source}.txt") for source in sources)
            click.echo("  prompts: " + ", ".join(files))
        return ET.fromstring(response.data)

    # Following TwiML --------------------------------------------------------------------------
    def execute(self, twiml: ET.Element) -> ET.Element:
        """Run the verbs in order until one leads to a new TwiML document."""
        for verb in twiml:
            if verb.tag in ("Say", "Play", "Pause"):
                hear(verb)
            elif verb.tag == "Gather":
                following = self.gather(verb)
                if following is not None:
                    return following
            elif verb.tag == "Record":
                following = self.record(verb)
                if following is not None:
                    return following
            elif verb.tag == "Dial":
                following = self.dial(verb)
                if following is not None:
                    return following
            elif verb.tag == "Redirect":
                return self.request(verb.text or self.url, verb.get("method", "POST"))
            elif verb.tag == "Hangup":
                raise CallEnded("the hotline hung up")
            else:
                click.echo(f"  ({verb.tag} is not simulated)")
        raise CallEnded("no more TwiML; Twilio hangs up")

    def gather(self, verb: ET.Element) -> ET.Element | None:
        for child in verb:
            hear(child)
        action = verb.get("action") or self.url
        on_empty = verb.get("actionOnEmptyResult") == "true"
        speech = "speech" in verb.get("input", "dtmf")
        if self.lang and urlsplit(action).path.endswith("/voice/language"):
            key, self.lang = {"en": "1", "es": "2"}[self.lang], None
            click.echo(f"keys> {key}")
            return self.request(action, Digits=key)
        while True:
            answer = ask("keys").strip()
            if answer.lower() in ("hangup", "h", "hang up"):
                raise CallEnded("you hung up")
            if answer.startswith('"') or answer.lower().startswith("say "):
                words = answer[4:] if answer.lower().startswith("say ") else answer.strip('"')
                if not speech:
                    click.echo("  (this menu listens for keys only)")
                    continue
                return self.request(action, SpeechResult=words.strip(), Confidence="0.92")
            if answer.lower() in ("", "wait"):
                return self.request(action) if on_empty else None
            if set(answer) - KEYS:
                click.echo(f"  ({HELP})")
                continue
            digits = collect(answer, int(verb.get("numDigits") or 0), verb.get("finishOnKey", "#"))
            if digits or on_empty:
                return self.request(action, Digits=digits)
            return None

    def record(self, verb: ET.Element) -> ET.Element | None:
        click.echo("  (beep) recording...")
        while (
            choice := ask("record: [m]essage then #, [s]ilence, [h]ang up after speaking")
            .strip()
            .lower()[:1]
        ) not in ("m", "s", "h"):
            pass
        if choice == "s":
            return None  # Twilio skips the action when nothing was recorded
        recording = "RE" + secrets.token_hex(16)
        fields = {
            "RecordingSid": recording,
            "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{self.account}"
            f"/Recordings/{recording}",
            "RecordingDuration": "14",
        }
        following = self.request(
            verb.get("action") or self.url, Digits="#" if choice == "m" else "hangup", **fields
        )
        if verb.get("recordingStatusCallback"):
            self.recording_status(verb.get("recordingStatusCallback", ""), fields)
        if choice == "h":
            raise CallEnded("you hung up after leaving a message")
        return following

    def recording_status(self, url: str, fields: dict[str, str]) -> None:
        """Twilio's callback once the recording is stored. The copy it queues is the worker's
        (`ivr worker`), which would fetch the audio from Twilio."""
        params = {
            "AccountSid": self.account,
            "CallSid": self.sid,
            "RecordingStatus": "completed",
            "RecordingChannels": "1",
            "RecordingSource": "RecordVerb",
            **fields,
        }
        _url, response = self.send(url, params)
        click.echo(f"  (recording status callback: {response.status_code})")

    def dial(self, verb: ET.Element) -> ET.Element | None:
        numbers = ", ".join((n.text or "").strip() for n in verb) or (verb.text or "").strip()
        click.echo(f"  dials {numbers}")
        options = "[c]ompleted, [b]usy, [n]o-answer, [f]ailed, [x] canceled"
        while (choice := ask(f"dial outcome: {options}").strip().lower()[:1]) not in DIAL_OUTCOMES:
            pass
        status = DIAL_OUTCOMES[choice]
        if not verb.get("action"):
            return None  # Twilio goes on with the next verb
        return self.request(
            verb.get("action", ""),
            DialCallStatus=status,
            DialCallSid="CA" + secrets.token_hex(16),
            DialCallDuration="95" if status == "completed" else "0",
            DialBridged="true" if status == "completed" else "false",
        )


def hear(verb: ET.Element) -> None:
    if verb.tag == "Say":
        click.echo(f"  says ({verb.get('language', '')}): {(verb.text or '').strip()}")
    elif verb.tag == "Play":
        click.echo(f"  plays {verb.text}")
    elif verb.tag == "Pause":
        click.echo(f"  (pause {verb.get('length', '1')} s)")


def ask(what: str) -> str:
    """One line of input; the end of input (Ctrl-D, or the end of a piped script) hangs up."""
    click.echo(f"{what}> ", nl=False)
    line = sys.stdin.readline()
    if not line:
        click.echo()
        raise CallEnded("input ended; you hung up")
    if not sys.stdin.isatty():  # piped in: show it, so the transcript reads like a call
        click.echo(line.rstrip("\n"))
    return line.rstrip("\n")


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
