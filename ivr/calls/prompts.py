"""Load what callers hear from the text files under `prompts/<lang>/`.

Prompts are data that staff edit, so each file is read when it is used: an edit is heard on the
next request, without a restart. No cache: a file costs about 25 µs to read and the main menu,
the biggest step, reads 15 (0.2-0.8 ms on the shared 2-core machine), against the tens of
milliseconds a caller waits on the network for every step anyway.

A topic is a file under `topics/` named `<number>-<slug>.txt`: its first line is the menu label,
the rest is what the caller hears, so adding a topic file adds a menu option.

A line starting with `#` is a note for the people who edit prompts and is never spoken; the
one kind the tools read is `# approve: <why>`, which marks the line below it as awaiting the
firm's approval (`ivr prompts check` lists them; see docs/for-the-firm.md).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

LANGUAGES = ("en", "es")
# Topics are keys 1-6 on a one-digit menu: 7, 8, 9, 0, * and # mean the same on every menu.
TOPIC_FILE = re.compile(r"([1-6])-([a-z0-9-]+)\.txt")


def spoken_text(raw: str) -> str:
    """The file's text without its `#` note lines: what a caller can hear."""
    return "\n".join(line for line in raw.splitlines() if not line.lstrip().startswith("#"))


class PromptError(LookupError):
    """A prompt is missing, empty or malformed."""


class Line(NamedTuple):
    """One piece of speech: its language, its text and the prompt it came from."""

    lang: str
    text: str
    source: str
    pause: bool = False  # a short pause after it: between groups of digits in a number
    slow: bool = False  # spoken more slowly: a topic heard again with 7 (`voice/topics.py`)


@dataclass(frozen=True)
class Topic:
    number: int
    name: str  # prompt name, e.g. "topics/1-why-denied"
    label: str
    body: str


class Prompts:
    """Read prompt files for a language, from disk on every use."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def text(self, lang: str, name: str) -> str:
        """Return the prompt's text, stripped; raise PromptError when it is missing or empty."""
        return self.line(lang, name).text

    def closed_ending(self, lang: str, body: str) -> str | None:
        """A topic that ends with the post's "Contact us today." (`contact_today`) as it is said
        when the office does not open again today: ending "Contact us." (`contact_us`; issue
        23). None for a topic without that ending. `voice/topics.py` says it; `audio.spoken`
        renders it, so the topic keeps its recorded voice in the evening too."""
        today = self.text(lang, "contact_today")
        if not body.endswith(today):
            return None
        return body[: -len(today)] + self.text(lang, "contact_us")

    def line(self, lang: str, name: str, **fields: object) -> Line:
        """Return a prompt as a Line with its whitespace normalised, filling `{placeholders}`
        from `fields`."""
        if lang not in LANGUAGES:
            raise PromptError(f"unknown language {lang!r}")
        path = self.root / lang / f"{name}.txt"
        try:
            text = " ".join(spoken_text(path.read_text(encoding="utf-8")).split())
        except FileNotFoundError:
            raise PromptError(f"missing prompt {lang}/{name}.txt") from None
        if not text:
            raise PromptError(f"empty prompt {lang}/{name}.txt")
        return Line(lang, text.format(**fields) if fields else text, name)

    def digits(self, lang: str, number: str, groups: Sequence[int] = ()) -> list[Line]:
        """Spell a number digit by digit with the digit_N prompts, so it is heard clearly, with a
        pause after each group (e.g. 3, 3, 4 for a U.S. phone number)."""
        ends, total = set(), 0
        for size in groups:
            total += size
            ends.add(total)
        digits = [ch for ch in number if ch.isdigit()]
        return [
            self.line(lang, f"digit_{ch}")._replace(pause=i + 1 in ends and i + 1 < len(digits))
            for i, ch in enumerate(digits)
        ]

    def topics(self, lang: str) -> list[Topic]:
        """Return the topics for `lang`, ordered by their number."""
        folder = self.root / lang / "topics"
        try:
            entries = sorted(e for e in os.listdir(folder) if TOPIC_FILE.fullmatch(e))
        except FileNotFoundError:
            return []
        topics = []
        for entry in entries:
            raw = spoken_text((folder / entry).read_text(encoding="utf-8")).strip()
            label, _, body = raw.partition("\n")
            match = TOPIC_FILE.fullmatch(entry)
            assert match is not None  # `entries` holds only names that match
            number = int(match[1])
            name = f"topics/{entry[:-4]}"
            topics.append(Topic(number, name, label.strip(), " ".join(body.split())))
        topics.sort(key=lambda t: t.number)
        return topics

    def topic(self, lang: str, number: int) -> Topic | None:
        return next((t for t in self.topics(lang) if t.number == number), None)

    def names(self, lang: str) -> list[str]:
        """Every prompt name under `lang`, topics included, e.g. 'welcome', 'topics/1-why'."""
        base = self.root / lang
        return sorted(str(path.relative_to(base).with_suffix("")) for path in base.rglob("*.txt"))
