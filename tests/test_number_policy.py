"""The number policy (`ivr/messaging/policy.py`): which numbers the hotline texts or calls, with
the numbers the security review used (security.md H1, M1) and the ones families really have."""

from __future__ import annotations

import pytest

from ivr.messaging import policy
from ivr.messaging.policy import Refusal
from ivr.settings import SettingsError, load

CALLS = frozenset({"US", "MX", "GT", "SV", "HN"})
TEXTS = frozenset({"US"})


@pytest.mark.parametrize(
    ("number", "country"),
    [
        ("+13125550123", "US"),  # Chicago
        ("+16175551234", "US"),
        ("+525512345678", "MX"),  # Mexico City
        ("+50223456789", "GT"),  # a Guatemalan landline
        ("+50370123456", "SV"),  # a Salvadoran mobile
        ("+50494123456", "HN"),
        ("+18005550100", "US"),  # toll-free: free to call
    ],
)
def test_ordinary_lines_in_allowed_countries_may_be_called(number, country):
    verdict = policy.call_verdict(number, CALLS)
    assert verdict.allowed and verdict.why == ""
    assert verdict.country == country and verdict.number == number


@pytest.mark.parametrize(
    ("number", "refusal", "words"),
    [
        ("+8821600001234", Refusal.SATELLITE, "satellite phone or international network"),
        ("+881612345678", Refusal.SATELLITE, "satellite"),  # Iridium-type GMSS
        ("+870772001234", Refusal.SATELLITE, "satellite"),  # Inmarsat
        ("+19002223333", Refusal.SPECIAL, "premium-rate"),  # U.S. 900
        ("+9607781234", Refusal.COUNTRY, "in Maldives, a country the hotline does not call"),
        ("+447400123456", Refusal.COUNTRY, "United Kingdom"),
        ("+18765551234", Refusal.COUNTRY, "Jamaica"),  # +1, but not the U.S.: one-ring fraud
        ("+97912345678", Refusal.INVALID, "not a valid phone number"),  # +979 premium, invalid
        ("Anonymous", Refusal.INVALID, "not a valid"),
        ("", Refusal.INVALID, "not a valid"),
        (None, Refusal.INVALID, "not a valid"),
        ("3125550123", Refusal.INVALID, "not a valid"),  # not E.164
    ],
)
def test_refused_for_calls_with_the_reason_staff_read(number, refusal, words):
    verdict = policy.call_verdict(number, CALLS)
    assert not verdict.allowed
    assert verdict.refusal is refusal
    assert words in verdict.why


def test_special_numbers_are_refused_even_in_an_allowed_country():
    everywhere = frozenset({"US", "GB", "FR", "MV"})
    assert policy.call_verdict("+19002223333", everywhere).refusal is Refusal.SPECIAL
    # A UK premium-rate (09) and personal (070) number.
    assert policy.call_verdict("+449098790000", everywhere).refusal is Refusal.SPECIAL
    assert policy.call_verdict("+447012345678", everywhere).refusal is Refusal.SPECIAL
    # A French shared-cost number (08 1x).
    assert policy.call_verdict("+33810123456", everywhere).refusal is Refusal.SPECIAL


def test_satellite_is_refused_whatever_the_country_list():
    assert policy.call_verdict("+8821600001234", frozenset({"001", "US"})).refusal is (
        Refusal.SATELLITE
    )


@pytest.mark.parametrize(
    ("number", "refusal"),
    [
        ("+13125550123", None),
        ("+525512345678", Refusal.COUNTRY),  # texts: the U.S. only, by default
        ("+18005550100", Refusal.NOT_MOBILE),  # toll-free cannot get texts
        ("+19002223333", Refusal.SPECIAL),
        ("+9607781234", Refusal.COUNTRY),
        ("+8821600001234", Refusal.SATELLITE),
    ],
)
def test_texts_only_to_mobiles_in_text_countries(number, refusal):
    assert policy.text_verdict(number, TEXTS).refusal is refusal


def test_a_landline_may_be_called_but_not_texted():
    landline = "+50223456789"  # Guatemala City: FIXED_LINE
    both = frozenset({"US", "GT"})
    assert policy.call_verdict(landline, both).allowed
    verdict = policy.text_verdict(landline, both)
    assert verdict.refusal is Refusal.NOT_MOBILE and "(landline)" in verdict.why


def test_every_refusal_names_a_prompt_in_both_languages(prompts_dir):
    for refusal in Refusal:
        for lang in ("en", "es"):
            assert (prompts_dir / lang / f"{refusal.prompt}.txt").is_file(), (refusal, lang)


def test_country_names_for_staff():
    assert policy.call_verdict("+525512345678", CALLS).country_name == "Mexico"
    assert policy.call_verdict("+19002223333", CALLS).country_name == "United States"
    assert policy.call_verdict("+8821600001234", CALLS).country_name.startswith("no country")


def required() -> dict[str, str]:
    return {
        "SECRET_KEY": "x" * 32,
        "TWILIO_AUTH_TOKEN": "t",
        "FIRM_PHONE_NUMBER": "+13125550100",
    }


def test_settings_default_to_the_us_and_central_america_for_calls_and_the_us_for_texts():
    config = load(required())
    assert config.callback_countries == {"US", "MX", "GT", "SV", "HN"}
    assert config.text_countries == {"US"}
    assert config.texts_per_day == 50 and config.alerts_per_hour == 10


def test_settings_take_lowercase_codes_and_refuse_unknown_ones():
    config = load({**required(), "TEXT_COUNTRIES": "us, pr"})
    assert config.text_countries == {"US", "PR"}
    with pytest.raises(SettingsError, match="CALLBACK_COUNTRIES.*XX: not a two-letter"):
        load({**required(), "CALLBACK_COUNTRIES": "US,XX"})
