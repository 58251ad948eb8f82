"""What staff are told after an action, shown where their hand is: inside the card acted on.

A message at the top of a long list is out of view once the page comes back at the card
(`dashboard.back_to`), and a refusal styled like a success reads as one. So each message carries
its kind (success, warning for a conflict such as "already taken by luis", error) and the request
it is about, in Flask's flash category ("warning:12"); the card with that id shows it, the top of
the page shows the rest (and any whose card is not on the page, e.g. filtered out after a save).
No JavaScript needed: the redirect lands on `#r12`, and the message is rendered in card 12.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import flash, get_flashed_messages

KINDS = ("success", "info", "warning", "error")
# Warnings and errors interrupt a screen reader (role=alert); the rest wait their turn.
ROLES = {"success": "status", "info": "status", "warning": "alert", "error": "alert"}


@dataclass(frozen=True)
class Message:
    text: str
    kind: str = "info"
    request_id: int | None = None
    saved: bool = False  # a note was saved: the page may drop the card's kept draft (staff.js)

    @property
    def role(self) -> str:
        return ROLES[self.kind]


def say(text: str, kind: str = "success", request_id: int | None = None, saved: bool = False):
    """Flash `text` about request `request_id` (None: about the page)."""
    assert kind in KINDS, kind
    flash(text, f"{kind}:{request_id or ''}:{'saved' if saved else ''}")


def parse(category: str, text: str) -> Message:
    """A flashed message; a plain `flash(text)` elsewhere (category "message") is info."""
    kind, _, rest = category.partition(":")
    request_id, _, saved = rest.partition(":")
    if kind not in KINDS:
        return Message(text)
    return Message(text, kind, int(request_id) if request_id.isdigit() else None, saved == "saved")


def messages() -> list[Message]:
    """This request's messages (Flask keeps them for the whole request once read)."""
    flashed: list[tuple[str, str]] = get_flashed_messages(with_categories=True)  # type: ignore[assignment]
    return [parse(category, text) for category, text in flashed]


def for_card(request_id: int) -> list[Message]:
    return [m for m in messages() if m.request_id == request_id]


def for_top(on_page: set[int] | frozenset[int] = frozenset()) -> list[Message]:
    return [m for m in messages() if m.request_id is None or m.request_id not in on_page]
