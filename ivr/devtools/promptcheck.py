"""Check the prompt files before a caller hears them: `ivr prompts check` and a test run this.

A missing translation or an empty file would break a call in one language only, and text such as
`<`, `&` or a URL is read out as noise: cheaper to catch at the desk than on the line.

It also lists every line marked `# approve: <why>` (the line below the mark awaits the firm's
approval; see docs/for-the-firm.md), so nobody ships one without knowing.
"""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from ivr.calls.prompts import LANGUAGES, spoken_text
from ivr.devtools.timing import MAX_TO_PERSON, TO_PERSON, WORDS_PER_MINUTE, seconds, too_late
from ivr.requests.sms import plain
from ivr.voice import MENUS, topics

# Prompts filled in by the code, with a sample of each field (the hours come from settings).
TEMPLATE_FIELDS: dict[str, dict[str, object]] = {
    "menu_option": {"label": "a topic", "key": 1},
    "office_hours": {
        "days": "Monday to Friday",
        "opens": "9 a.m.",
        "closes": "5 p.m.",
        "zone": "Central time",
    },
    "reopen": {"weekday": "Monday", "month": "December", "day": 28},
    "words/days_range": {"first": "Monday", "last": "Friday"},
    "words/days_one": {"day": "Monday"},
    **{f"words/time_{part}": {"time": "9"} for part in ("morning", "noon", "afternoon", "evening")},
    "sms/reference": {
        "reference": "123 456",
        "firm_number": "(312) 555-0100",
        "from_number": "(312) 555-0177",
        "hours": "de miercoles a sabado, de 10 a. m. a 6:30 p. m., hora del centro",
    },
    "sms/hours": {
        "days": "de miercoles a sabado",
        "opens": "10 a. m.",
        "closes": "6:30 p. m.",
        "zone": "hora del centro",
    },
}
REQUIRED_FIELDS = {
    "menu_option": {"key"},
    "sms/reference": {"reference"},
    "sms/hours": {"opens", "closes"},
}
# The text a caller may ask for (`ivr/sms.py`); `sms/hours` and `sms/always` are parts of it.
SMS = "sms/reference"
MAX_SEGMENTS = 2
# GSM 03.38: a text of these characters only is sent 160 to a segment (153 when it takes more
# than one); the extension characters count twice. Any other character (á, í, ó, ú, ...) makes
# the whole text UCS-2: 70 to a segment, 67 when it takes more than one.
GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENDED = set("^{}\\[~]|€\f")
MAX_SECONDS = 75
# A topic is chosen with ONE key press, and the menus keep their other keys for themselves (the
# tables in ivr/voice/topics.py): a topic file named for one of them would never be heard.
TOPIC_NAME = re.compile(r"(\d+)-([a-z0-9-]+)\.txt")


def reserved_keys() -> dict[str, str]:
    """The keys a topic cannot take, with what they do: the fixed keys of the main menu, where
    topics are chosen, and of the menu heard after a topic."""
    found: dict[str, str] = {}
    for menu in (topics.MAIN, topics.AFTER_TOPIC):
        for option in menu.options():
            if option.key.isdigit():
                found.setdefault(option.key, f"the key for {option.purpose}")
    return found


def topic_keys() -> list[int]:
    """The keys left for topics (1 to 6 today)."""
    return [n for n in range(1, 10) if str(n) not in reserved_keys()]


BAD_TEXT = [
    (re.compile(r"[<>]"), "'<' or '>' (read out, or taken for markup)"),
    (re.compile(r"&"), "'&' (write 'and' / 'y')"),
    (re.compile(r"https?://|www\.|\.(?:com|org|net|gov)\b", re.I), "a web address"),
    (re.compile("\ufffd"), "a replacement character (the file was not saved as UTF-8)"),
]


@dataclass(frozen=True)
class Problem:
    error: bool
    path: str  # e.g. "es/welcome.txt"
    message: str

    def __str__(self) -> str:
        return f"{'error' if self.error else 'warning'}: {self.path}: {self.message}"


def names(root: Path, lang: str) -> set[str]:
    base = root / lang
    return {str(p.relative_to(base).with_suffix("")) for p in base.rglob("*.txt")}


def braced(field: str) -> str:
    return "{" + field + "}"


__all__ = ["WORDS_PER_MINUTE", "seconds"]  # the speech estimate lives in timing.py


def check_text(name: str, text: str, lang: str) -> list[tuple[bool, str]]:
    """Problems of one piece of speech, as (is_error, message)."""
    found: list[tuple[bool, str]] = []
    controls = {c for c in text if unicodedata.category(c) in ("Cc", "Cf") and c not in "\n\t"}
    if controls:
        found.append((True, "control characters " + ", ".join(f"U+{ord(c):04X}" for c in controls)))
    for pattern, what in BAD_TEXT:
        if pattern.search(text):
            found.append((True, f"contains {what}"))
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
    except ValueError as exc:
        return found + [(True, f"unbalanced braces ({exc}); a literal brace breaks the prompt")]
    allowed = TEMPLATE_FIELDS.get(name, {})
    usable = ", ".join(braced(f) for f in allowed) or "no placeholders"
    for field in sorted(fields - set(allowed)):
        found.append((True, f"placeholder {braced(field)} is never filled ({usable} here)"))
    for field in sorted(REQUIRED_FIELDS.get(name, set()) - fields):
        found.append((True, f"must contain {braced(field)}"))
    if fields <= set(allowed):
        try:
            text.format(**allowed)
        except (IndexError, KeyError, ValueError) as exc:
            found.append((True, f"placeholders cannot be filled ({exc!r})"))
    estimate = seconds(text, lang)
    if estimate > MAX_SECONDS:
        found.append((False, f"about {estimate:.0f} s to listen to (over {MAX_SECONDS} s)"))
    return found


@dataclass(frozen=True)
class Segments:
    path: str
    count: int
    encoding: str  # "GSM-7" or "UCS-2"
    length: int  # characters as sent (septets, or UTF-16 code units)

    def __str__(self) -> str:
        unit = "segment" if self.count == 1 else "segments"
        return (
            f"{self.path}: {self.count} SMS {unit} ({self.encoding}, {self.length} "
            "characters with sample values)"
        )


def segments(text: str) -> tuple[int, str, int]:
    """(segments, encoding, length) of an SMS body, as the carrier counts them."""
    if all(c in GSM_BASIC or c in GSM_EXTENDED for c in text):
        length = len(text) + sum(1 for c in text if c in GSM_EXTENDED)
        return (1 if length <= 160 else -(-length // 153)), "GSM-7", length
    length = len(text.encode("utf-16-le")) // 2
    return (1 if length <= 70 else -(-length // 67)), "UCS-2", length


def sms_text(root: Path, lang: str) -> str | None:
    """The text of `lang` filled with sample values: a reference, a phone number, and hours
    made as `sms.hours_text` makes them (Wednesday to Saturday, 10 am to 6:30 pm, the zone in
    words), with that language's own words."""

    def read(name: str) -> str:
        raw = (root / lang / f"{name}.txt").read_text(encoding="utf-8")
        return " ".join(spoken_text(raw).split())

    try:
        days = read("words/days_range").format(
            first=read("words/day_wed"), last=read("words/day_sat")
        )
        hours = read("sms/hours").format(
            days=days,
            opens="10 " + read("sms/am"),
            closes="6:30 " + read("sms/pm"),
            zone=read("sms/zone_los_angeles"),  # the longest zone name
        )
        return plain(
            read(SMS).format(
                reference="123 456",
                firm_number="(312) 555-0100",
                from_number="(312) 555-0177",
                hours=hours,
            )
        )
    except (OSError, UnicodeDecodeError, LookupError, ValueError):
        return None  # reported as a problem of the file itself


def sms_segments(root: Path) -> list[Segments]:
    """How many segments each language's text takes: `ivr prompts check` reports them."""
    found = []
    for lang in LANGUAGES:
        text = sms_text(root, lang)
        if text is not None:
            found.append(Segments(f"{lang}/{SMS}.txt", *segments(text)))
    return found


def check(root: Path) -> list[Problem]:
    """Every problem of the prompts under `root`, errors and warnings, in a stable order."""
    problems: list[Problem] = []
    all_names = {lang: names(root, lang) for lang in LANGUAGES}
    for lang in LANGUAGES:
        for other in LANGUAGES:
            for name in sorted(all_names[other] - all_names[lang]):
                problems.append(
                    Problem(
                        True, f"{lang}/{name}.txt", f"missing (exists in {other}/: translate it)"
                    )
                )
        for name in sorted(all_names[lang]):
            path = f"{lang}/{name}.txt"
            try:
                raw = (root / path).read_text(encoding="utf-8")
            except UnicodeDecodeError:
                problems.append(Problem(True, path, "not UTF-8 text"))
                continue
            raw = spoken_text(raw)
            checks: list[tuple[bool, str]]
            if name.startswith("topics/"):
                checks = check_topic(name, raw, lang)
            elif not raw.strip():
                checks = [(True, "empty")]
            else:
                checks = check_text(name, raw, lang)
            problems += [Problem(error, path, message) for error, message in checks]
        problems += same_key(lang, all_names[lang])
    problems += unsaid_keys(root)
    problems += [
        Problem(True, approval.path, "an '# approve:' note with no line below it to mark")
        for approval in approvals(root)
        if not approval.text
    ]
    problems += [
        Problem(
            False,
            count.path,
            f"{count.count} SMS segments (over {MAX_SEGMENTS}: "
            "each is billed, and a long text may arrive in pieces)",
        )
        for count in sms_segments(root)
        if count.count > MAX_SEGMENTS
    ]
    return problems


def late_person(lang: str, figures: dict[str, float]) -> list[Problem]:
    """An error when "press 0" (a person, now) is heard later than MAX_TO_PERSON seconds after
    the answer in `lang` (figures from `timing.timings`, which need the app's prompts)."""
    if not too_late(figures):
        return []
    return [
        Problem(
            True,
            f"{lang}/firm_first.txt",
            f'"press 0" is heard {figures[TO_PERSON]:.1f} s after the answer (over '
            f"{MAX_TO_PERSON:.0f} s): shorten the greeting, or say 0 earlier",
        )
    ]


def unsaid_keys(root: Path) -> list[Problem]:
    """Each option of every menu table (ivr/voice/) must say the key its table answers: a prompt
    saying "press 8" for an option on 7 sends callers to the wrong place. Digit keys only: * and
    # are said in words ("star", "asterisco")."""
    problems: list[Problem] = []
    seen: set[tuple[str, str, str]] = set()
    for menu in MENUS:
        for option in menu.options():
            if option.prompt is None or not option.key.isdigit():
                continue
            for lang in [option.lang] if option.lang else LANGUAGES:
                path = f"{lang}/{option.prompt}.txt"
                if (path, option.key, menu.name) in seen:
                    continue
                seen.add((path, option.key, menu.name))
                try:
                    text = spoken_text((root / path).read_text(encoding="utf-8"))
                except (OSError, UnicodeDecodeError):
                    continue  # missing or unreadable: reported as such
                if not re.search(rf"(?<!\d){option.key}(?!\d)", text):
                    problems.append(
                        Problem(
                            True,
                            path,
                            f"does not say its key {option.key} ({menu.name}: {option.purpose})",
                        )
                    )
    return problems


def same_key(lang: str, prompt_names: set[str]) -> list[Problem]:
    """Two topics numbered alike would share a key: the menu could offer only one of them."""
    by_key: dict[int, list[str]] = {}
    for name in sorted(prompt_names):
        file = name.removeprefix("topics/") + ".txt"
        if name.startswith("topics/") and topic_number_problem(file) is None:
            by_key.setdefault(int(file.partition("-")[0]), []).append(name)
    return [
        Problem(True, f"{lang}/{name}.txt", f"key {key} is also used by {lang}/{other}.txt")
        for key, same in sorted(by_key.items())
        if len(same) > 1
        for name in same
        for other in same
        if other != name
    ]


def topic_number_problem(file: str) -> str | None:
    """Why a file under topics/ cannot be a topic, or None when its name is right."""
    match = TOPIC_NAME.fullmatch(file)
    if not match:
        return "topic files are named <number>-<slug>.txt, e.g. 6-new-topic.txt"
    number, reserved, free = match[1], reserved_keys(), topic_keys()
    keys = f"topics are numbered {free[0]} to {free[-1]}"
    if number in reserved:
        return f"{number} is {reserved[number]}: {keys}"
    if len(number) > 1 or int(number) not in free:
        return f"{number} cannot be pressed as one key: {keys}"
    return None


def check_topic(name: str, raw: str, lang: str) -> list[tuple[bool, str]]:
    problem = topic_number_problem(name.removeprefix("topics/") + ".txt")
    if problem:
        return [(True, problem)]
    label, _, body = raw.strip().partition("\n")
    if not label.strip():
        return [(True, "empty")]
    if not body.strip():
        return [(True, "needs a label line, a blank line, then the text callers hear")]
    found = [(e, f"label: {m}") for e, m in check_text("topic_label", label, lang)]
    return found + check_text(name, body, lang)


APPROVE = re.compile(r"\s*#\s*approve:\s*(.*)", re.I)


@dataclass(frozen=True)
class Approval:
    """A line awaiting the firm's approval: where it is, why, and the words a caller would hear."""

    path: str
    why: str
    text: str

    def __str__(self) -> str:
        return f"approve: {self.path}: {self.text} ({self.why})"


def approvals(root: Path) -> list[Approval]:
    """Every `# approve:` mark under `root` with the spoken line below it, in a stable order."""
    found: list[Approval] = []
    for lang in LANGUAGES:
        for name in sorted(names(root, lang)):
            path = f"{lang}/{name}.txt"
            try:
                lines = (root / path).read_text(encoding="utf-8").splitlines()
            except UnicodeDecodeError:
                continue  # `check` reports it
            for i, line in enumerate(lines):
                mark = APPROVE.fullmatch(line)
                if not mark:
                    continue
                below = next(
                    (
                        rest
                        for rest in lines[i + 1 :]
                        if rest.strip() and not rest.lstrip().startswith("#")
                    ),
                    "",
                )
                found.append(Approval(path, mark[1].strip(), " ".join(below.split())))
    return found
