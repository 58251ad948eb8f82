"""Phone numbers, parsed and validated in one place (settings, the call flow, staff pages)."""

from __future__ import annotations

import phonenumbers
from phonenumbers import PhoneNumber


def parse_valid(text: str, region: str | None = None) -> PhoneNumber | None:
    """The number `text` names when it is a real, valid one; None for 'Anonymous', typos, etc."""
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return parsed if phonenumbers.is_valid_number(parsed) else None


def e164(number: PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def region(number: PhoneNumber) -> str | None:
    return phonenumbers.region_code_for_number(number)
