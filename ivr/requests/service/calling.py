"""Call a family back through the hotline's own number, from the dashboard's "Call back" button.

A family often does not answer an unknown mobile, and a staff member's own number should not be
given away. So the button queues a job; the worker asks Twilio to ring the staff member's phone
(their profile's number), and `voice/staffcall.py` whispers which request it is, waits for 1, and
dials the family with CALLBACK_FROM_NUMBER as caller ID (the number callers are told the call-back
comes from; best the hotline's own), so they see a number they know. The outcome comes
back from `<Dial>`'s action and lands on the request's history.

This module is the request service's part for call-backs: `start_call` records the attempt and
queues its job, `place_call` is the job, and `outcome` records how it ended. The job is `once`:
a worker that dies mid-request to Twilio must not ring a phone twice. The page
never talks to Twilio itself (it shares the web processes with the callers' webhooks). These calls
are not recorded: a lawyer's call with a client's family is privileged, and recording it would
need every party's consent (README, "Call-backs are not recorded").

One person calls a family at a time (staff-UI review #1): `start_call` first takes the
request's reservation (`requests/reservations.py`, atomic in the database); a colleague who
presses Call back meanwhile, from any page however old, is told who is calling and nothing is
queued. The reservation ends with the outcome, or after CALLBACK_RESERVATION_MINUTES.

The outcome is the staff member's (review #4): Twilio reports a voicemail that picked up as
"completed", just like a family who answered. So when the family's leg ends after being
answered, the staff member is asked on the phone (1 spoke with the family, 2 left a voicemail,
3 wrong number, 4 try again later), and the card offers the same choices until one is given.
Only "reached" marks the request Reached; the others keep the family waiting.

Only numbers the number policy lets the hotline call are dialled (`messaging/policy.py`:
CALLBACK_COUNTRIES, never premium-rate or satellite numbers): checked when the button is drawn,
when the job is placed and when the family's leg is dialled (`lookup.family_number`). The request
card says why a number cannot be called, and its country (security.md M1: a typed +882 number
was dialled).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import current_app

from ivr.accounts.models import StaffUser
from ivr.background import jobs
from ivr.db import as_utc, db, utcnow
from ivr.edge import logmask
from ivr.messaging import policy
from ivr.messaging.gateway import MaybeSent, Refused, Unreachable, gateway
from ivr.requests import history, lookup, reservations
from ivr.requests.lookup import attempt_target
from ivr.requests.models import Call, CallbackRequest
from ivr.settings import settings

RING_STAFF_SECONDS = 25  # the staff phone rings this long before its voicemail could answer


def number_label(row: CallbackRequest) -> str:
    """Which number a call-back dials, in words: history is kept for good, numbers are not."""
    return "the callback number" if row.callback_number else "the calling number"


def unavailable(row: CallbackRequest, user: StaffUser) -> str | None:
    """Why the Call back button cannot work for this request and person, or None."""
    return unavailable_because(lookup.family_verdict(row), user)


def unavailable_for(number: str | None, user: StaffUser) -> str | None:
    return unavailable_because(policy.for_calls(number), user)


def unavailable_because(verdict: policy.Verdict, user: StaffUser) -> str | None:
    config = settings()
    if not (config.callback_from_number and config.twilio_account_sid and config.public_url):
        return "Call back needs CALLBACK_FROM_NUMBER, TWILIO_ACCOUNT_SID and PUBLIC_URL set."
    if verdict.refusal is policy.Refusal.INVALID:
        return "No number to call."
    if not verdict.allowed:
        return f"The hotline will not call it: {verdict.why}"
    if not user.phone:
        return "Add your phone number on your profile to call back."
    return None


def public_url(endpoint: str, **values: Any) -> str:
    path = current_app.url_map.bind("").build(endpoint, values)
    return settings().public_url.rstrip("/") + path


@dataclass
class Press:
    """What a press of Call back did: `attempt` when it took the reservation and queued the call;
    otherwise `holder` names who is calling (None: their call-back ended just now)."""

    attempt: history.RequestEvent | None
    holder: str | None


def start_call(row: CallbackRequest, user: StaffUser) -> Press:
    """Reserve the request for this person, record a call-back attempt, take the request, and
    queue the call (`place_call` places it from the worker; a page never talks to Twilio).
    Nothing is queued when a colleague holds the reservation. Commits."""
    return _start(row.id, None, user, f"to {number_label(row)}")


def start_missed_call(call: Call, user: StaffUser) -> Press:
    """The same for a missed call (no request): the number it came from. Commits."""
    return _start(None, call.id, user, "to the calling number")


def _start(request_id: int | None, call_id: int | None, user: StaffUser, text: str) -> Press:
    reserved = reservations.reserve(
        request_id, call_id, user.username, stale_queued=utcnow() - STUCK_AFTER
    )
    if reserved is None:
        held = reservations.holder(request_id, call_id)
        db.session.commit()
        return Press(None, held.username if held else None)
    # Which number, not the number: history is kept for good, numbers are not (issue 22).
    attempt = history.add(request_id, "call", user.username, call_id=call_id, text=text)
    reserved.attempt_id = attempt.id
    if request_id is not None:
        history.claim(request_id, user.username)  # calling takes it, unless a colleague has
    STAFF_CALL.enqueue(attempt_id=attempt.id)
    db.session.commit()
    return Press(attempt, user.username)


def outcome(
    attempt_id: int,
    result: str,
    *,
    duration: int | None = None,
    text: str = "",
    actor: str | None = None,
) -> bool:
    """Record how a call-back attempt ended (once: a repeated webhook records nothing) and move
    the request's status on. Commits. False when this attempt already had its outcome."""
    attempt = db.session.get(history.RequestEvent, attempt_id)
    if attempt is None or attempt.kind != "call":
        return False
    try:
        reservations.release(attempt_id)  # the call-back is over: a colleague may call
        history.add(
            attempt.request_id,
            "outcome",
            actor or attempt.actor,
            call_id=attempt.call_id,
            attempt_id=attempt_id,
            outcome=result,
            duration=duration,
            text=logmask.mask(text),  # Twilio's errors quote numbers: never kept in history
        )
        if attempt.request_id is None:  # a missed call has no status
            db.session.commit()
            return True
        status = db.session.scalar(
            sa.select(CallbackRequest.status).where(CallbackRequest.id == attempt.request_id)
        )
        if result == "reached" and status in history.OPEN:
            history.move_status(attempt.request_id, status, "reached", None, "call-back answered")
        elif result in history.DIALLED and status == "new":
            history.move_status(
                attempt.request_id, status, "trying", None, "call-back not answered"
            )
        db.session.commit()
        return True
    except sa.exc.IntegrityError:  # the same outcome arrived twice at once
        db.session.rollback()
        return False


# The staff member's choices at the end of a call (on the phone: their digit; on the card).
CHOICES = ("reached", "voicemail", "wrong-number", "try-later")
CHOICE_TEXT = {"wrong-number": "whoever answered is not the family; check the number"}


def progress(attempt_id: int, state: str) -> None:
    """A staff-leg webhook's news (the staff phone answered, the family's phone rings or
    answered), for the card's live state. Never moves back. Commits."""
    reservations.advance(attempt_id, state)
    db.session.commit()


def family_leg_ended(attempt_id: int, duration: int | None) -> bool:
    """The family's leg was answered and has ended: note it, and ask the staff member how it
    went. False when the outcome is already given (chosen on the card meanwhile). Commits."""
    asking = reservations.advance(
        attempt_id, "asking", dial_status="completed", duration=duration
    ) or bool(
        db.session.scalar(
            sa.select(reservations.CallBack.id).where(
                reservations.CallBack.attempt_id == attempt_id,
                reservations.CallBack.state == "asking",
            )
        )
    )
    db.session.execute(
        sa.update(reservations.CallBack)
        .where(
            reservations.CallBack.attempt_id == attempt_id,
            reservations.CallBack.duration.is_(None),
        )
        .values(duration=duration)
        .execution_options(synchronize_session=False)
    )
    if not asking:  # already chosen on the card: keep how long the call lasted
        db.session.execute(
            sa.update(history.RequestEvent)
            .where(
                history.RequestEvent.attempt_id == attempt_id,
                history.RequestEvent.duration.is_(None),
            )
            .values(duration=duration)
            .execution_options(synchronize_session=False)
        )
    db.session.commit()
    return asking


def staff_leg_ended(attempt_id: int, call_status: str) -> None:
    """The staff phone hung up. If the family was never reached, say so on the request; if the
    family's leg was answered and no choice was made, the card goes on asking; if the family was
    being dialled, Dial's action says how that ended (its news may come after this). Commits."""
    row = reservations.of_attempt(attempt_id)
    if row is not None and (row.dial_status == "completed" or row.state == "connected"):
        # The family answered (its leg's end may be reported after this): the card asks.
        reservations.advance(attempt_id, "asking", dial_status="completed")
        db.session.commit()
        return
    if row is not None and row.state == "dialling":
        # Dial's action records the family's leg (answered or not); should it never come, the
        # reservation ends in a couple of minutes and the card says there was no news.
        reservations.hold_until(attempt_id, utcnow() + NEWS_WITHIN)
        db.session.commit()
        return
    outcome(attempt_id, "not-connected", text=f"staff phone: {call_status}")


def live(attempt_id: int) -> bool:
    """May the staff leg of this attempt go on (to dial the family)? Not when its reservation
    ended (an outcome, its time, a colleague's press since): then a late-ringing staff phone
    must not call a family someone else may be calling. Commits."""
    found = reservations.is_live(attempt_id) and not db.session.scalar(
        sa.select(history.RequestEvent.id).where(
            history.RequestEvent.kind == "outcome", history.RequestEvent.attempt_id == attempt_id
        )
    )
    db.session.commit()
    return found


def answer_by_phone(attempt_id: int, choice: str) -> bool:
    """The staff member's key after the call: their answer, recorded once. Commits."""
    row = reservations.of_attempt(attempt_id)
    duration = row.duration if row is not None else None
    db.session.commit()
    return outcome(attempt_id, choice, duration=duration, text=CHOICE_TEXT.get(choice, ""))


def choose(attempt_id: int, choice: str, user: StaffUser, target: str) -> str | None:
    """The staff member's answer on the card (`target`: `reservations.target_of`) to "how did it
    go?". None when recorded; otherwise why not, in words. Commits."""
    if choice not in CHOICES:
        return "Choose one of the answers."
    row = reservations.of_attempt(attempt_id)
    if row is None or row.target != target:  # an attempt of another card: nothing to answer
        db.session.commit()
        return "This call-back has no answer to give now."
    if row.state == "connected" and row.dial_status != "completed":
        # Still on the line: answering now would end the hold while the family is connected.
        db.session.commit()
        return "The call is still on; say how it went when it has ended."
    if not (row.dial_status == "completed" or row.state == "asking"):
        db.session.commit()
        return "This call-back has no answer to give now."
    if row.username != user.username and row.open_slot == 1 and not expired(row):
        who = row.username
        db.session.commit()
        return f"{who} is on this call; they say how it went."
    if not outcome(
        attempt_id,
        choice,
        duration=row.duration,
        text=CHOICE_TEXT.get(choice, ""),
        actor=user.username,
    ):
        return "How it went is already noted."
    return None


def expired(row: reservations.CallBack) -> bool:
    if as_utc(row.expires_at) < utcnow():
        return True
    return row.state == "queued" and as_utc(row.started_at) < utcnow() - STUCK_AFTER


@dataclass
class CallState:
    """A card's call-back region: whether a call-back is under way (the page polls then), who
    is calling, how far it got or how it ended, in words, and whether to ask how it went."""

    target: str
    busy: bool = False
    holder: str | None = None
    phase: str = "idle"
    tone: str = "info"  # info | ok | warn | error
    words: str = ""
    asking: bool = False
    attempt_id: int | None = None
    at: dt.datetime | None = None

    @property
    def kind(self) -> str:
        return self.target.split(":")[0]

    @property
    def key(self) -> int:
        return int(self.target.split(":")[1])

    @property
    def digest(self) -> str:
        """A short fingerprint of what the card shows: a poll that finds it unchanged gets no
        new region (nothing re-announced to a screen reader, no button swapped under focus)."""
        shown = (self.busy, self.holder, self.phase, self.tone, self.words, self.asking)
        return hashlib.sha256(repr((shown, self.attempt_id)).encode()).hexdigest()[:16]


def states(targets: list[str], user: StaffUser) -> dict[str, CallState]:
    """The call-back state of each card on a page (targets as `reservations.target_of`)."""
    latest = reservations.latest(targets)
    attempts = [r.attempt_id for r in latest.values() if r.attempt_id is not None]
    outcomes = {
        e.attempt_id: e
        for e in db.session.scalars(
            sa.select(history.RequestEvent).where(
                history.RequestEvent.kind == "outcome",
                history.RequestEvent.attempt_id.in_(attempts),
            )
        )
    }
    return {t: describe(t, latest.get(t), outcomes, user) for t in targets}


def state_of(request_id: int | None, call_id: int | None, user: StaffUser) -> CallState:
    target = reservations.target_of(request_id, call_id)
    return states([target], user)[target]


PHASE_WORDS = {
    "queued": (
        "Waiting for the hotline to place the call…",
        "Waiting for the hotline to place {who}'s call…",
    ),
    "placing": ("Asking Twilio to ring your phone…", "Asking Twilio to ring {who}'s phone…"),
    "ringing": (
        "Ringing your phone: answer it and press 1 to call the family.",
        "Ringing {who}'s phone…",
    ),
    "answered": (
        "You answered: press 1 on your phone to call the family.",
        "{who} answered and is about to call the family.",
    ),
    "dialling": ("Calling the family…", "{who} is calling the family…"),
    "connected": ("Connected to the family.", "{who} is talking with the family."),
    "asking": (
        "The call has ended. How did it go?",
        "{who}'s call has ended; {who} says how it went.",
    ),
}
OUTCOME_WORDS = {
    "reached": ("ok", "Reached the family{duration}."),
    "voicemail": ("warn", "Left a voicemail; the family still waits."),
    "wrong-number": ("warn", "Wrong number: whoever answered is not the family. Check the number."),
    "try-later": ("warn", "To try again later; the family still waits."),
    "no-answer": ("warn", "The family did not answer."),
    "busy": ("warn", "The family's line was busy."),
    "failed": ("error", "The family's phone could not be called{text}."),
    "canceled": ("warn", "Hung up before the family answered."),
    "not-connected": ("warn", "Not connected{text}: the family was not called."),
    "refused": ("error", "Twilio refused the call: {bare}."),
    "not-placed": ("error", "The call was not placed: {bare}."),
}


def describe(
    target: str,
    row: reservations.CallBack | None,
    outcomes: dict[int | None, history.RequestEvent],
    user: StaffUser,
) -> CallState:
    state = _describe(target, row, outcomes, user)
    if state.kind == "call":  # a missed call: whoever called, not a family that asked
        state.words = state.words.replace("the family", "the caller")
    return state


def _describe(
    target: str,
    row: reservations.CallBack | None,
    outcomes: dict[int | None, history.RequestEvent],
    user: StaffUser,
) -> CallState:
    state = CallState(target)
    if row is None:
        return state
    me = row.username == user.username
    who = row.username
    state.attempt_id, state.holder, state.at = row.attempt_id, who, as_utc(row.updated_at)
    event = outcomes.get(row.attempt_id)
    if event is not None:
        tone, words = OUTCOME_WORDS.get(event.outcome or "", ("info", "{bare}."))
        duration = event.duration
        state.phase, state.tone = "done", tone
        state.words = words.format(
            duration=f" ({duration // 60}:{duration % 60:02d})" if duration else "",
            text=f" ({event.text})" if event.text else "",
            bare=event.text or history.OUTCOMES.get(event.outcome or "", ""),
        )
        if not me:
            state.words = f"{who}'s call-back: {state.words}"
        return state
    if row.dial_status == "completed":  # the family answered; nobody said how it went yet
        state.asking = True
    if row.state in reservations.PROGRESS and not expired(row):
        state.busy = True
        state.phase = row.state
        mine, theirs = PHASE_WORDS[row.state]
        state.words = mine if me else theirs.format(who=who)
        return state
    state.phase, state.tone = "expired", "warn"
    state.words = (
        "No news of the last call-back for a while; it no longer holds the family. "
        "Call back again if needed."
    )
    if row.state == "queued":  # the worker never started it: it will be dropped, not placed
        state.tone = "error"
        state.words = (
            f"The call was not placed: the hotline's background worker did not start it within "
            f"{START_WITHIN // 60} minutes. Press Call back again; if this stays, tell the admin."
        )
    if state.asking:
        state.words = "The last call with the family has ended. How did it go?"
    return state


def place_call(payload: dict[str, Any]) -> None:
    attempt = db.session.get(history.RequestEvent, payload["attempt_id"])
    if attempt is None:
        db.session.commit()
        return
    number = attempt_target(attempt)[0]
    user = db.session.scalar(sa.select(StaffUser).filter_by(username=attempt.actor))
    staff_phone = user.phone if user else None
    attempt_id = attempt.id
    reservations.advance(attempt_id, "placing")
    db.session.commit()  # hold no connection while Twilio answers (and the card shows "placing")
    if not staff_phone or number is None:
        outcome(attempt_id, "not-connected", text="no staff phone or family number")
        raise jobs.Permanent("no staff phone or family number")
    config = settings()
    try:
        call = gateway().place_call(
            to=staff_phone,
            from_=config.callback_from_number,
            url=public_url("voice.staffcall.answer", attempt=attempt_id),
            status_callback=public_url("voice.staffcall.staff_status", attempt=attempt_id),
            timeout=RING_STAFF_SECONDS,
            record=False,
        )
    except Unreachable:
        if last_try(attempt_id):
            outcome(attempt_id, "not-connected", text="Twilio could not be reached; try again")
        raise  # Twilio did not take it: try again (unless it has become too late)
    except Refused as exc:
        outcome(attempt_id, "refused", text=refusal_words(exc.code))
        raise
    except MaybeSent:
        # Twilio may have placed it: the family stays held for a short while (the staff phone's
        # webhooks, if it rings, hold it again), and nothing claims the family was not called.
        reservations.hold_until(attempt_id, utcnow() + NEWS_WITHIN)
        db.session.commit()
        raise
    reservations.advance(attempt_id, "ringing")
    db.session.commit()
    current_app.logger.info("call-back attempt %s: staff leg %s", attempt_id, call.sid)


def last_try(attempt_id: int) -> bool:
    """Is the running attempt of this call-back's job its last one?"""
    job = db.session.scalar(
        sa.select(jobs.Job).where(jobs.Job.key == STAFF_CALL.job_key(attempt_id=attempt_id))
    )
    found = job is None or job.attempts >= job.max_attempts
    db.session.commit()
    return found


# Twilio's refusals of a call, in words staff can act on (the raw text quotes URLs and numbers).
REFUSALS = {
    21215: "the number is not allowed: the Twilio account may not call its country or range "
    "(Voice geographic permissions). Ask the admin",
    13227: "the number is not allowed: the Twilio account has no permission to call that "
    "country. Ask the admin",
    21216: "the number is blocked for the Twilio account (a high-cost or high-risk number). "
    "Ask the admin",
    21211: "your phone number is not a valid number. Check it on your profile",
    21217: "the number is not a valid phone number. Check it on your profile",
    21210: "the hotline's caller ID (CALLBACK_FROM_NUMBER) is not a number of the Twilio "
    "account. Ask the admin",
    21212: "the hotline's caller ID (CALLBACK_FROM_NUMBER) is not a valid number. Ask the admin",
    21219: "the Twilio account is a trial and may only call numbers verified in it. Ask the admin",
    20003: "Twilio did not accept the hotline's credentials. Ask the admin",
    20404: "Twilio does not know the hotline's account. Ask the admin",
}


def refusal_words(code: int | None) -> str:
    """Why Twilio refused a call, as a sentence (its error code kept at the end for the admin)."""
    if code is None:
        return "no reason given. Ask the admin"
    words = REFUSALS.get(code, "Twilio's error list explains the code. Ask the admin")
    return f"{words} (Twilio error {code})"


def not_placed_late(payload: dict[str, Any]) -> None:
    """A call-back the worker could not start within START_WITHIN of the press is not placed
    later (the staff member has moved on; a phone ringing an hour later is a surprise): the
    request's history says so."""
    outcome(
        payload["attempt_id"],
        "not-placed",
        text=f"not started within {START_WITHIN // 60} minutes of the press; press Call back again",
    )


# How long a call-back stays held waiting for news that may never come (Twilio's answer lost,
# or Dial's action after the staff phone hung up while the family's rang).
NEWS_WITHIN = dt.timedelta(minutes=2)

START_WITHIN = 120  # seconds after the press past which a call-back is dropped, not placed late
# A reservation still queued this long after the press no longer holds: its job is dropped.
STUCK_AFTER = dt.timedelta(seconds=START_WITHIN + 60)

# At most once: a worker that dies mid-request to Twilio must not ring a phone twice.
STAFF_CALL = jobs.JobKind(
    "staff-call",
    place_call,
    key=lambda attempt_id: f"staff-call:{attempt_id}",
    payload=("attempt_id",),
    once=True,
    max_attempts=3,
    time_limit=60,
    stale_after=START_WITHIN,
    on_stale=not_placed_late,
)
