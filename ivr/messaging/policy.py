"""Which numbers the hotline will text or call: one policy, asked before every text and call.

Anyone can call a public number and set the caller ID they like, and any caller can type a
callback number. Without a policy that is enough to make the firm pay for texts to premium and
far-away numbers (SMS pumping) and to have staff dial a satellite number (toll fraud): the review
(security.md H1, M1) did both. So a number is texted or called only when `phonenumbers` says it
is valid, its country is in the allowed list for that use (CALLBACK_COUNTRIES, TEXT_COUNTRIES),
and its type is an ordinary line: never premium-rate, shared-cost, personal, UAN, VoIP or pager
numbers, nor the international networks and satellite phones of +870 to +888 (no country at
all). Texts go only to mobiles (or numbers that may be one: U.S. numbers do not say).

The answer is a `Verdict`: allowed, or refused with a `Refusal` that says why in words staff read
on the request (`staff_text`) and the prompt a caller hears (`prompt`), with the number's
country. The lists are passed in (or read from the app's settings by `for_calls`/`for_texts`),
so the rules are pure and tested without an app.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberType as T
from phonenumbers import geocoder

from ivr.phones import e164, parse_valid, region
from ivr.settings import settings

# Ordinary lines a family may be called back on. Toll-free is free to call from the U.S.
CALLABLE = frozenset({T.FIXED_LINE, T.MOBILE, T.FIXED_LINE_OR_MOBILE, T.TOLL_FREE})
# A text reaches a mobile; U.S. and Canadian numbers are all FIXED_LINE_OR_MOBILE.
TEXTABLE = frozenset({T.MOBILE, T.FIXED_LINE_OR_MOBILE})
# Special services that charge the caller, share the cost, or forward anywhere: the numbers
# revenue-sharing fraud rents. Named apart from "unusual" types for a plainer reason.
SPECIAL = frozenset({T.PREMIUM_RATE, T.SHARED_COST, T.PERSONAL_NUMBER, T.UAN, T.VOIP, T.PAGER})
# International networks and satellite phones (ITU-T E.164: +870 Inmarsat, +881 GMSS, +882/+883
# international networks, +888 ...): no country's tariff, the dearest minutes, favoured by fraud.
SATELLITE_CODES = range(870, 889)


class Refusal(enum.Enum):
    """Why a number is refused: (words for staff, prompt the caller hears)."""

    INVALID = ("not a valid phone number", "number_invalid")
    SATELLITE = ("a satellite phone or international network (+870 to +888)", "number_refused_far")
    SPECIAL = ("a premium-rate or other special-service number", "number_refused_special")
    COUNTRY = ("in {country}, a country the hotline does not {use}", "number_refused_country")
    NOT_MOBILE = ("not a mobile number, so it cannot get texts", "number_refused_special")

    def __init__(self, staff: str, prompt: str) -> None:
        self.staff = staff  # completed with the number's country and use in `Verdict.why`
        self.prompt = prompt


NUMBER_TYPES = {
    T.FIXED_LINE: "landline",
    T.MOBILE: "mobile",
    T.FIXED_LINE_OR_MOBILE: "landline or mobile",
    T.TOLL_FREE: "toll-free",
    T.PREMIUM_RATE: "premium-rate",
    T.SHARED_COST: "shared-cost",
    T.VOIP: "VoIP",
    T.PERSONAL_NUMBER: "personal number",
    T.PAGER: "pager",
    T.UAN: "UAN (company number)",
    T.VOICEMAIL: "voicemail",
}


@dataclass(frozen=True)
class Verdict:
    """The policy's answer about one number for one use ("call" or "text")."""

    number: str | None  # E.164 when the number is valid
    country: str | None  # ISO code, e.g. "MX"; None when it has none (or is invalid)
    country_name: str  # in English, for staff pages: "Mexico", or what stands in for one
    number_type: int | None
    use: str
    refusal: Refusal | None = None

    @property
    def allowed(self) -> bool:
        return self.refusal is None

    @property
    def why(self) -> str:
        """Why staff cannot call (or the hotline cannot text) it, in plain words; '' if allowed."""
        if self.refusal is None:
            return ""
        kind = NUMBER_TYPES.get(self.number_type) if self.number_type is not None else None
        text = self.refusal.staff.format(use=self.use, country=self.country_name)
        if self.refusal in (Refusal.SPECIAL, Refusal.NOT_MOBILE) and kind:
            text += f" ({kind})"
        return f"{self.number or 'The number'} is {text}."


def judge(
    number: str | None, countries: Collection[str], use: str, types: Collection[int]
) -> Verdict:
    """Whether `number` (E.164) may be used for `use` ("call" or "text")."""
    parsed = parse_valid(number or "") if (number or "").startswith("+") else None
    if parsed is None:
        return Verdict(None, None, "unknown", None, use, Refusal.INVALID)
    kind = phonenumbers.number_type(parsed)
    code = region(parsed)
    country = code if code and code not in (phonenumbers.UNKNOWN_REGION, "001") else None
    name = country_of(country) if country else "no country (international network)"
    refusal = None
    if parsed.country_code in SATELLITE_CODES or country is None:
        refusal = Refusal.SATELLITE
    elif kind in SPECIAL or kind not in CALLABLE:
        refusal = Refusal.SPECIAL
    elif country not in countries:
        refusal = Refusal.COUNTRY
    elif kind not in types:
        refusal = Refusal.NOT_MOBILE
    return Verdict(e164(parsed), country, name, kind, use, refusal)


def country_of(code: str) -> str:
    """A region's English name from phonenumbers' own geocoder data ("MX" -> "Mexico"); asked of
    the region's example number, since special numbers (+1 900) have no place of their own."""
    example = phonenumbers.example_number(code)
    return (example and geocoder.country_name_for_number(example, "en")) or code


def call_verdict(number: str | None, countries: Collection[str]) -> Verdict:
    return judge(number, countries, "call", CALLABLE)


def text_verdict(number: str | None, countries: Collection[str]) -> Verdict:
    return judge(number, countries, "text", TEXTABLE)


def for_calls(number: str | None) -> Verdict:
    """May staff (through the hotline) call `number` back? Lists from CALLBACK_COUNTRIES."""
    return call_verdict(number, settings().callback_countries)


def for_texts(number: str | None) -> Verdict:
    """May the hotline text `number`? Lists from TEXT_COUNTRIES."""
    return text_verdict(number, settings().text_countries)
