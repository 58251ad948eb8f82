"""Load what callers hear from the text files under `prompts/<lang>/`.

Prompts are data that staff edit, so they are read from disk on use, cached by modification time:
an edit is heard without a restart. The web app checks a file at most once every `recheck` seconds
(PROMPT_RECHECK_SECONDS, 1 by default), not on every line of every webhook, and keeps a built menu
as long (`kept`), so an edit is heard by calls that start within two such windows.

A topic is a file under `topics/` named `<number>-<slug>.txt`: its first line is the menu label,
the rest is what the caller hears, so adding a topic file adds a menu option.

A line starting with `#` is a note for the people who edit prompts and is never spoken; the
one kind the tools read is `# approve: <why>`, which marks the line below it as awaiting the
firm's approval (`ivr prompts check` lists them; see docs/for-the-firm.md).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Sequence
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
    """One piece of speech: its language, its text and the prompt it came from.

    A named tuple rather than a frozen dataclass: lines are made and hashed (as keys of the TwiML
    cache) a dozen times per webhook, and a tuple is cheaper to make and to hash.
    """

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
    """Read prompt files for a language, checking each file's modification time on use.

    A file (or a language's topic folder) checked less than `recheck` seconds ago is not checked
    again: a menu is a dozen files, and a dozen `stat` calls on every webhook are a real part of
    what a caller waits for. `recheck=0` checks on every read (the command line and tests).
    """

    def __init__(self, root: Path, recheck: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.root = Path(root)
        self.recheck = recheck
        self._clock = clock
        self._base = str(self.root)
        self._cache: dict[str, tuple[int, str]] = {}  # path: (mtime, text)
        self._lines: dict[tuple[str, str], tuple[Line, float]] = {}  # (lang, name): (line, checked)
        self._topics: dict[str, tuple[tuple, list[Topic], float]] = {}
        self._filled: dict[tuple, Line] = {}
        self._kept: dict[tuple, tuple[tuple[Line, ...], float]] = {}
        self._lock = threading.Lock()

    def text(self, lang: str, name: str) -> str:
        """Return the prompt's text, stripped; raise PromptError when it is missing or empty."""
        return self._plain(lang, name).text

    def line(self, lang: str, name: str, **fields: object) -> Line:
        """Return a prompt as a Line, filling `{placeholders}` from `fields`."""
        line = self._plain(lang, name)
        if not fields:
            return line
        # Only menu options have fields (a topic's label and key): few, and the same on every
        # call, so each filled line is kept, keyed by its template's current text.
        key = (line, tuple(fields.items()))
        filled = self._filled.get(key)
        if filled is None:
            filled = Line(lang, line.text.format(**fields), name)
            if len(self._filled) >= 1024:
                self._filled.clear()  # edits left old entries behind: start again
            self._filled[key] = filled
        return filled

    def _plain(self, lang: str, name: str) -> Line:
        """The prompt as a Line with its whitespace normalised, kept until its next check.

        The same Line object comes back while the text is unchanged, so its strings' hashes are
        computed once (lines are keys of the TwiML cache).
        """
        now = self._clock()
        entry = self._lines.get((lang, name))
        if entry is not None and now - entry[1] < self.recheck:
            return entry[0]
        if lang not in LANGUAGES:
            raise PromptError(f"unknown language {lang!r}")
        try:
            text = " ".join(spoken_text(self._read(f"{self._base}/{lang}/{name}.txt")).split())
        except FileNotFoundError:
            raise PromptError(f"missing prompt {lang}/{name}.txt") from None
        if not text:
            raise PromptError(f"empty prompt {lang}/{name}.txt")
        line = entry[0] if entry is not None and entry[0].text == text else Line(lang, text, name)
        with self._lock:
            self._lines[(lang, name)] = (line, now)
        return line

    def _read(self, path: str) -> str:
        """The file's text, read again only when its modification time changed."""
        mtime = os.stat(path).st_mtime_ns
        cached = self._cache.get(path)
        if cached and cached[0] == mtime:
            return cached[1]
        with open(path, encoding="utf-8") as file:
            text = file.read()
        with self._lock:
            self._cache[path] = (mtime, text)
        return text

    def kept(self, key: tuple, build: Callable[[], Sequence[Line]]) -> list[Line]:
        """`build()`, kept for `recheck` seconds under `key`: for menus made of a dozen prompts.

        `key` must hold everything the lines depend on besides the prompt files (the language,
        whether the office is open, ...). The files behind kept lines are looked at again when the
        entry expires, so an edit is heard within two `recheck` windows.
        """
        now = self._clock()
        entry = self._kept.get(key)
        if entry is None or now - entry[1] >= self.recheck:
            entry = (tuple(build()), now)
            with self._lock:
                self._kept[key] = entry
        return list(entry[0])

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
        """Return the topics for `lang`, ordered by their number (re-read when a file changes)."""
        now = self._clock()
        cached = self._topics.get(lang)
        if cached and now - cached[2] < self.recheck:
            return cached[1]
        folder = f"{self._base}/{lang}/topics"
        try:
            entries = sorted(e for e in os.listdir(folder) if TOPIC_FILE.fullmatch(e))
        except FileNotFoundError:
            return []
        stamp = tuple((e, os.stat(f"{folder}/{e}").st_mtime_ns) for e in entries)
        if cached and cached[0] == stamp:
            with self._lock:
                self._topics[lang] = (stamp, cached[1], now)
            return cached[1]
        topics = []
        for entry in entries:
            raw = spoken_text(self._read(f"{folder}/{entry}")).strip()
            label, _, body = raw.partition("\n")
            number = int(TOPIC_FILE.fullmatch(entry)[1])
            name = f"topics/{entry[:-4]}"
            topics.append(Topic(number, name, label.strip(), " ".join(body.split())))
        topics.sort(key=lambda t: t.number)
        with self._lock:
            self._topics[lang] = (stamp, topics, now)
        return topics

    def topic(self, lang: str, number: int) -> Topic | None:
        return next((t for t in self.topics(lang) if t.number == number), None)

    def names(self, lang: str) -> list[str]:
        """Every prompt name under `lang`, topics included, e.g. 'welcome', 'topics/1-why'."""
        base = self.root / lang
        return sorted(
            str(path.relative_to(base).with_suffix("")) for path in base.rglob("*.txt")
        )
