"""`ivr call`: place a call to the real app in-process, signed as Twilio signs, in the terminal.

Staff who edit prompts (and developers without a Twilio account or a phone) hear each step as text,
with the prompt file it came from, and answer with keys, typed speech or silence; `<Record>` and
`<Dial>` ask which outcome to simulate. It follows the TwiML the way Twilio does, so what works
here is what a caller gets.

The call is real to the app: it stores callback requests in the configured database. Staff alerts
are switched off for the simulated call (no recipients, so not even an outbox row for a worker to
send later); `ivr call` refuses a database other than SQLite unless told `--yes`.

It is only the terminal: the call itself is the emulator's `Call` (`emulator.py`), the one
driver the tests and the bench use too. `Transcript` wraps the app's test client to show each
webhook, the prompt files behind it and what the caller hears; `Simulator` asks the person at
the keypad what to do at each `<Gather>`, `<Record>` and `<Dial>` and tells the `Call`.
"""

from __future__ import annotations

import logging
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
from flask import Flask

from ivr.devtools.emulator import Call, WebhookFailed, collect, early_offer
from ivr.settings import settings

BASE = "http://localhost:5000"
KEYS = set("0123456789*#")
DIAL_OUTCOMES = {"c": "completed", "b": "busy", "n": "no-answer", "f": "failed", "x": "canceled"}
# With no recipients the app queues no alert at all (see ivr/requests/alerts.py): nothing is left
# for the worker to send.
NO_ALERTS = {"alert_sms_to": [], "alert_email_to": "", "smtp_url": ""}
HELP = (
    'Type keys (e.g. 1, or 3125550100#) and Enter; "words or say words for speech; '
    "Enter or 'wait' for silence; 'hangup' to hang up."
)


class CallEnded(Exception):
    """The caller or the hotline hung up."""


class Transcript:
    """The app's test client, showing each webhook as it goes: its path, the prompt files it
    read (the app's `X-IVR-Prompts` trace) and what the TwiML says, plays and pauses."""

    def __init__(self, app: Flask) -> None:
        self.client = app.test_client()
        self.prompts = Path(settings(app).prompts_dir)

    def open(self, path: str, **kwargs: Any) -> Any:
        method = kwargs.get("method", "POST")
        response = self.client.open(path, **kwargs)
        if "/callback/recording" in urlsplit(path).path and response.status_code == 204:
            click.echo(f"  (recording status callback: {response.status_code})")
            return response
        click.echo(f"\n→ {method} {urlsplit(path).path}")
        sources = [s for s in response.headers.get("X-IVR-Prompts", "").split(",") if s]
        if sources:
            files = dict.fromkeys(_shown(self.prompts / f"{source}.txt") for source in sources)
            click.echo("  prompts: " + ", ".join(files))
        if response.status_code == 200 and response.mimetype == "text/xml":
            first, _rest = at_the_wait(ET.fromstring(response.data))
            for verb in first:
                for spoken in verb.iter():
                    hear(spoken)
        return response


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
        self.call = Call(
            Transcript(app),
            settings(app).twilio_auth_token,
            from_number=from_number,
            to_number=to_number,
            base=settings(app).public_url or BASE,
            account=settings(app).twilio_account_sid or "AC" + "0" * 32,
        )
        self.lang = lang

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
            self.call.answer()
            while True:
                self.step()
        except CallEnded as end:
            click.echo(f"call ended: {end}")
        except WebhookFailed as failed:
            click.echo(
                f"call ended: the app answered {failed.response.status}; Twilio would say an error"
            )
        except KeyboardInterrupt:
            click.echo("\ncall ended: you hung up")
        finally:
            for name, value in saved.items():
                setattr(config, name, value)
            self.app.config["PROMPT_TRACE"] = trace
            self.app.logger.setLevel(level)

    # What the person at the keypad does with the current TwiML --------------------------------
    def step(self) -> None:
        """Answer the current document's first verb that waits for the caller."""
        document = self.call.document()
        verbs = list(document)
        for i, verb in enumerate(verbs):
            if verb.tag == "Gather":
                later = early_offer(verb) and any(v.tag == "Gather" for v in verbs[i + 1 :])
                if later and self.gather(verb, passable=True):
                    # No key at the early offer ("press 0" before the disclaimer): Twilio goes on
                    # to the next verbs, up to and into the next Gather.
                    for following in verbs[i + 1 :]:
                        for spoken in following.iter():
                            hear(spoken)
                        if following.tag == "Gather":
                            break
                    continue
                if not later:
                    self.gather(verb)
                return
            if verb.tag == "Record":
                return self.record(verb)
            if verb.tag == "Dial":
                return self.dial(verb)
            if verb.tag == "Hangup":
                raise CallEnded("the hotline hung up")
            if verb.tag not in ("Say", "Play", "Pause", "Redirect"):
                click.echo(f"  ({verb.tag} is not simulated)")
        self.go_on()

    def go_on(self) -> None:
        """Nothing more for the caller here: Twilio goes on to the Redirect, or hangs up."""
        document = self.call.document()
        for verb in at_the_wait(document)[1]:  # what Twilio says after a Gather with no answer
            hear(verb)
        if document.find("Redirect") is not None:
            self.call.silence()
        elif document.find("Hangup") is not None:
            raise CallEnded("the hotline hung up")
        else:
            raise CallEnded("no more TwiML; Twilio hangs up")

    def gather(self, verb: ET.Element, passable: bool = False) -> bool:
        """Ask for keys at `verb`; True when nothing was pressed and a later Gather follows
        (`passable`): the caller goes on to it."""
        speech = "speech" in verb.get("input", "dtmf")
        if self.lang and urlsplit(self.call.action(verb)).path.endswith("/voice/language"):
            key, self.lang = {"en": "1", "es": "2"}[self.lang], None
            click.echo(f"keys> {key}")
            self.call.press(key, verb)
            return False
        while True:
            answer = ask("keys").strip()
            if answer.lower() in ("hangup", "h", "hang up"):
                raise CallEnded("you hung up")
            if answer.startswith('"') or answer.lower().startswith("say "):
                words = answer[4:] if answer.lower().startswith("say ") else answer.strip('"')
                if not speech:
                    click.echo("  (this menu listens for keys only)")
                    continue
                self.call.say(words.strip())
                return False
            if answer.lower() in ("", "wait"):
                answer = ""
            elif set(answer) - KEYS:
                click.echo(f"  ({HELP})")
                continue
            digits = collect(answer, int(verb.get("numDigits") or 0), verb.get("finishOnKey", "#"))
            if not digits and verb.get("actionOnEmptyResult") != "true":
                if passable:
                    return True
                self.go_on()  # Twilio moves past the Gather
                return False
            self.call.press(answer, verb)
            return False

    def record(self, verb: ET.Element) -> None:
        click.echo("  (beep) recording...")
        while (
            choice := ask("record: [m]essage then #, [s]ilence, [h]ang up after speaking")
            .strip()
            .lower()[:1]
        ) not in ("m", "s", "h"):
            pass
        if choice == "s":
            return self.go_on()  # Twilio skips the action when nothing was recorded
        self.call.record(self.call.recording_fields(14), "#" if choice == "m" else "hangup")
        if choice == "h":
            raise CallEnded("you hung up after leaving a message")

    def dial(self, verb: ET.Element) -> None:
        numbers = ", ".join((n.text or "").strip() for n in verb) or (verb.text or "").strip()
        click.echo(f"  dials {numbers}")
        options = "[c]ompleted, [b]usy, [n]o-answer, [f]ailed, [x] canceled"
        while (choice := ask(f"dial outcome: {options}").strip().lower()[:1]) not in DIAL_OUTCOMES:
            pass
        if not verb.get("action"):
            return self.go_on()  # Twilio goes on with the next verb
        self.call.dial(DIAL_OUTCOMES[choice])


def at_the_wait(document: ET.Element) -> tuple[list[ET.Element], list[ET.Element]]:
    """The verbs up to the first that waits for the caller (a Gather, Record or Dial), and the
    ones after it, which the caller hears only if the wait ends with nothing."""
    verbs = list(document)
    for i, verb in enumerate(verbs):
        if verb.tag in ("Gather", "Record", "Dial"):
            return verbs[: i + 1], verbs[i + 1 :]
    return verbs, []


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
