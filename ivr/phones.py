"""Phone numbers, parsed, validated and shown in one place (settings, the call flow, alerts,
texts and staff pages)."""

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


def phone(number: str | None) -> str:
    """National format for US numbers, international for the rest; odd values as they came."""
    if not number:
        return ""
    parsed = parse_valid(number)
    if parsed is None:
        return number
    formats = phonenumbers.PhoneNumberFormat
    us = region(parsed) == "US"
    return phonenumbers.format_number(parsed, formats.NATIONAL if us else formats.INTERNATIONAL)
