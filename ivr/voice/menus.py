"""Menus as tables: each key, the prompt that offers it, and what pressing it does, in one row.

A menu used to be written twice: the lines that say it in one function, the `if digits == ...`
that answer it in another, and the keys a third time in `ivr prompts check`. Now each menu is a
`Menu` of rows, kept beside its views (`topics.MAIN`, `connect.OFFER`, `welcome.LANGUAGE`, ...),
and the same rows give what the caller hears (`lines`), what a key does (`choose`), the keys
`ivr prompts check` keeps free of topics and checks each option prompt says, and the lines the
timings measure. A row added to a table is both said and answered. (The model is the
`option_actions` dict of Twilio's IVR phone-tree tutorial: key → handler.)

A row's condition (`said`) takes the menu's state: what the view knows of the call (is the
office open, which topic was heard), passed as keywords so that a tool can ask for the menu
as it would be said in another state ("office open") without faking the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from ivr.calls.prompts import Line
from ivr.calls.twiml import prompts

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)
State = Mapping[str, Any]


def always(lang: str, state: State) -> bool:
    return True


class Row(Protocol[R_co]):
    """One part of a menu: the lines that offer it, and its answer to a key (None: not its key)."""

    def lines(self, lang: str, state: State) -> list[Line]: ...

    def choose(self, lang: str, digits: str, state: State) -> R_co | None: ...


@dataclass(frozen=True)
class Option(Generic[R]):
    """A key, the prompt that offers it, and its handler.

    `prompt` None: a key that works without being said (9 on the main menu, * on the help menu).
    `said`: when the option is offered; `answered`: when the key works, the same by default (0,
    the firm, works while the office is closed: the firm's step then says it is closed).
    `purpose` names the option for whoever edits prompts (`ivr prompts check`).
    `lang` fixes the language the prompt is said in (the choice of language is said in each).
    """

    key: str
    prompt: str | None
    handler: Callable[[str, State], R]
    purpose: str
    said: Callable[[str, State], bool] = always
    answered: Callable[[str, State], bool] | None = None
    lang: str | None = None

    def lines(self, lang: str, state: State) -> list[Line]:
        if self.prompt is None or not self.said(lang, state):
            return []
        return [prompts().line(self.lang or lang, self.prompt)]

    def choose(self, lang: str, digits: str, state: State) -> R | None:
        if digits != self.key or not (self.answered or self.said)(lang, state):
            return None
        return self.handler(lang, state)


@dataclass(frozen=True)
class Topics(Generic[R]):
    """The firm's topics, one key each (their file's number): "To hear <label>, press <key>.",
    after `intro`. A new file under prompts/<lang>/topics/ is a new option."""

    handler: Callable[[str, int], R]
    intro: str = "menu_intro"

    def lines(self, lang: str, state: State) -> list[Line]:
        p = prompts()
        return [p.line(lang, self.intro)] + [
            p.line(lang, "menu_option", label=topic.label, key=topic.number)
            for topic in p.topics(lang)
        ]

    def choose(self, lang: str, digits: str, state: State) -> R | None:
        if len(digits) == 1 and digits.isdigit() and prompts().topic(lang, int(digits)):
            return self.handler(lang, int(digits))
        return None


@dataclass(frozen=True)
class Menu(Generic[R]):
    """A menu's rows, in the order they are said; the first row that takes a key answers it."""

    name: str
    rows: Sequence[Row[R]]

    def lines(self, lang: str, **state: Any) -> list[Line]:
        return [line for row in self.rows for line in row.lines(lang, state)]

    def choose(self, lang: str, digits: str, **state: Any) -> R | None:
        """The answer of the row that takes `digits`; None when none does (a wrong key or
        silence: the view decides, usually "not an option" and the menu again)."""
        for row in self.rows:
            answer = row.choose(lang, digits, state)
            if answer is not None:
                return answer
        return None

    def options(self) -> list[Option[R]]:
        """The rows with a fixed key (not the topics)."""
        return [row for row in self.rows if isinstance(row, Option)]

    def takes_topics(self) -> bool:
        return any(isinstance(row, Topics) for row in self.rows)
