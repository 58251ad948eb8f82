"""The load: N callers walking the callback path at once, each one the emulator's `Call`.

Every caller is `ivr.devtools.emulator.Call` (the driver the tests and `ivr call` use) over
`HttpClient` to the Procfile's gunicorn, so it signs, follows `action` and `<Redirect>` URLs,
collects keys and leaves its recording exactly as the tests' callers do. What is the bench's own:
which keys each caller presses (language, a topic, the next topic, the callback key, the number
kept, an A-number, with `--text` "not urgent" and then "text me my reference"), the recording status
callback sent 0-1.5 s later from another thread (as Twilio's arrives), the router's headers, and a
record of every request (client time, outcome) joined later with gunicorn's access log by its
`X-Bench-Id`. A webhook slower than 15 s cuts the caller off, as Twilio's webhook timeout does. What
the caller heard (the reference read back, the storage-failure or error messages) is recognised by
the emulator's `Ear`, which reads the words through the app's own `Prompts`."""

from __future__ import annotations

import datetime as dt
import http.client
import random
import re
import secrets
import threading
import time
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import urlsplit

from werkzeug.wrappers import Response

from ivr.devtools.emulator import Call, Ear, HttpClient, WebhookFailed

HOST = "hotline.example.org"  # the public host Twilio signs; the router's headers say so
TWILIO_TIMEOUT = 15.0  # seconds Twilio waits for a webhook before the caller hears an error
REQUESTS_PER_CALL = 13  # a complete call's webhooks, status callback included (for --at)
# What Heroku's router adds in front of the app (one proxy: FORWARDED_PROXIES=1).
ROUTER_HEADERS = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Port": "443",
    "X-Forwarded-For": "54.172.60.1",
    "Via": "1.1 vegur",
}
TWILIO_FIELDS = {
    "FromCity": "CHICAGO",
    "FromState": "IL",
    "FromZip": "60601",
    "FromCountry": "US",
    "CallerCity": "CHICAGO",
    "CallerState": "IL",
    "CallerZip": "60601",
    "CallerCountry": "US",
    "Called": "+18005550100",
    "ToCity": "",
    "ToState": "",
    "ToZip": "",
    "ToCountry": "US",
    "CalledCity": "",
    "CalledState": "",
    "CalledZip": "",
    "CalledCountry": "US",
    "StirVerstat": "TN-Validation-Passed-A",
}
AREAS = ["312", "773", "872", "630", "847", "708", "331", "224"]
STEPS = {  # a webhook's path ending -> the step the database check asks about
    "/voice/language": "language",
    "/callback/recorded": "recorded",
    "/callback/recording": "recording-status",
    "/callback/number/choice": "number",
    "/a-number/choice": "a-number",
}


def normalise(path: str) -> str:
    """A webhook's name: its path with the language and numbers as placeholders."""
    path = re.sub(r"^/voice/(en|es)(/|$)", r"/voice/{lang}\2", path)
    return re.sub(r"/\d+(/|$)", r"/{n}\1", path)


def step_of(path: str) -> str:
    return next((step for end, step in STEPS.items() if path.endswith(end)), normalise(path))


class Dropped(Exception):
    """No answer Twilio would accept: a timeout (the caller is cut off) or a broken connection."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


class Burst:
    """Shared state of the callers: the requests made and the progress (for --at)."""

    def __init__(self, port: int, token: str, account: str, ear: Ear) -> None:
        self.port, self.token, self.account, self.ear = port, token, account, ear
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.done = 0
        self.progress = threading.Condition(self.lock)
        self.t0 = time.monotonic()
        self.status_threads: list[threading.Thread] = []
        self.text = False  # at the end, ask for the reference by text (SMS_FROM must be set)

    def record(self, request: dict) -> None:
        with self.lock:
            self.requests.append(request)
            self.done += 1
            self.progress.notify_all()


class BenchClient(HttpClient):
    """The emulator's HTTP client, timing and recording each of one caller's requests."""

    def __init__(self, burst: Burst, caller: Caller) -> None:
        super().__init__("127.0.0.1", burst.port, TWILIO_TIMEOUT, ROUTER_HEADERS)
        self.burst, self.caller = burst, caller

    def open(
        self, path: str, *, method: str, data: dict[str, str], base_url: str, headers: dict
    ) -> Response:
        caller = self.caller
        caller.n += 1
        bid = f"{caller.i}.{caller.n}"
        step = step_of(urlsplit(path).path)
        caller.sent.add(step)
        caller.last_step = step
        response, outcome = None, "ok"
        started = time.monotonic()
        try:
            response = super().open(
                path,
                method=method,
                data=data,
                base_url=base_url,
                headers={**headers, "X-Bench-Id": bid},
            )
        except TimeoutError:
            outcome = "timeout"
        except OSError as exc:
            outcome = f"conn-error:{type(exc).__name__}"
        except http.client.HTTPException as exc:
            outcome = f"http-error:{type(exc).__name__}"
        ms = (time.monotonic() - started) * 1000
        if outcome == "ok" and ms > TWILIO_TIMEOUT * 1000:
            outcome = "timeout"
        status = response.status_code if response is not None else None
        if outcome == "ok" and status not in (200, 204):
            outcome = f"http-{status}"
        self.burst.record(
            {
                "call": caller.i,
                "bid": bid,
                "step": step,
                "path": normalise(urlsplit(path).path),
                "status": status,
                "ms": round(ms, 2),
                "outcome": outcome,
                "t": round(started - self.burst.t0, 3),
            }
        )
        if response is None or outcome == "timeout":
            raise Dropped(outcome)
        return response


class Caller:
    """One caller walking the callback path, as Twilio would post it."""

    def __init__(self, burst: Burst, i: int, run_salt: int) -> None:
        self.burst, self.i = burst, i
        self.from_number = f"+1{AREAS[i // 10000 % len(AREAS)]}555{i % 10000:04d}"
        self.a_number = f"{(run_salt + i * 7919) % 90000000 + 10000000:08d}"
        self.lang = "1" if i % 2 == 0 else "2"
        self.topic = str(1 + i % 4)
        self.recording_sid = "RE" + secrets.token_hex(16)
        self.n = 0
        self.sent: set[str] = set()  # steps the caller got as far as sending
        self.outcome = "incomplete"
        self.heard: dict[str, Any] = {"reference": ""}
        self.last_step = ""
        self.status_cb: dict | None = None
        self.call = Call(
            BenchClient(burst, self),
            burst.token,
            from_number=self.from_number,
            base=f"https://{HOST}",
            account=burst.account,
            fields={**TWILIO_FIELDS, "Caller": self.from_number},
        )
        self.sid = self.call.sid

    def run(self) -> None:
        try:
            self.walk()
        except Dropped as dropped:
            self.outcome = "cut-off" if dropped.outcome == "timeout" else dropped.outcome
        except WebhookFailed as failed:
            self.outcome = "not-xml" if failed.status == 200 else f"http-{failed.status}"
        except Exception as exc:  # a bug in the walk must not hide the others' results
            self.outcome = f"client-bug:{exc!r}"

    def walk(self) -> None:
        call = self.call
        call.answer()
        says = said(call.chain)
        topics = 0
        earlier: list[str] = []  # what was said before the text offer (the reference)
        for _ in range(40):
            tags = {child.tag for child in call.document()}
            if "Gather" in tags:
                path = urlsplit(call.absolute(call.action(call.gather()))).path
                if path.endswith("/voice/language"):
                    keys = self.lang
                elif path.endswith("/menu/choice"):
                    keys = self.topic
                elif re.search(r"/topics/\d+/choice$", path):
                    keys = "#" if topics == 0 else "8"  # the next topic, then a callback
                    topics += 1
                elif path.endswith("/callback/number/choice"):
                    keys = "1"  # keep the number called from
                elif path.endswith("/a-number/choice"):
                    keys = self.a_number + "#"
                elif path.endswith(("/number/checked", "/a-number/checked")):
                    keys = "1"  # the number read back is right (issue 23's read-back)
                elif path.endswith("/closing/urgent") and self.burst.text:
                    keys = "2"  # not urgent: the reference again, then the text offer
                elif path.endswith("/closing/text") and self.burst.text:
                    keys, earlier = "1", says  # text me my reference
                elif "/closing/" in path:
                    break  # the reference was read back; the caller hangs up (no urgency)
                else:
                    self.outcome = f"unexpected-menu:{normalise(path)}"
                    break
                call.press(keys)
                says = said(call.chain)
            elif "Record" in tags:
                self.record()
                says = said(call.chain)
            elif "Dial" in tags and call.verb("Dial").get("action"):
                call.dial("no-answer")  # the firm's line does not answer
                says += said(call.chain)
            else:
                break
        ear = self.burst.ear
        says = earlier + says
        self.heard = {
            "reference": ear.number_after(says, "reference_number"),
            "save_failed": ear.heard(says, "save_failed"),
            "error": ear.heard(says, "error"),
        }
        if self.outcome == "incomplete":
            self.outcome = "reference" if self.heard["reference"] else "ended-without-reference"

    def record(self) -> None:
        """Leave the message; Twilio's status callback follows from another thread."""
        call = self.call
        fields = call.recording_fields(12, self.recording_sid)
        callback = call.verb("Record").get("recordingStatusCallback")
        if callback:
            thread = threading.Thread(
                target=self.recording_status, args=(call.absolute(callback), fields), daemon=True
            )
            with self.burst.lock:
                self.burst.status_threads.append(thread)
            thread.start()
        call.record(fields, "#", status=False)

    def recording_status(self, url: str, fields: dict[str, str]) -> None:
        time.sleep(random.uniform(0, 1.5))
        started_at = dt.datetime.now(dt.UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
        status, outcome = None, "ok"
        started = time.monotonic()
        try:
            response = self.call.recording_status(url, {**fields, "RecordingStartTime": started_at})
            status = response.status_code
            outcome = "ok" if status in (200, 204) else f"http-{status}"
        except Dropped as dropped:
            outcome = dropped.outcome
        ms = (time.monotonic() - started) * 1000
        self.status_cb = {"status": status, "ms": round(ms, 1), "outcome": outcome}


def said(chain: list[ET.Element]) -> list[str]:
    return [el.text or "" for twiml in chain for el in twiml.iter("Say")]
