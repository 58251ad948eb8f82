"""The fields' part of the signed string, built in one join, is twilio-python's own."""

from __future__ import annotations

import random

from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from ivr.signatures import signed_fields

PIECES = ["a", "B", "0", "+", " ", "é", "=", "&", "%", "Caller", "From", "Digits", "", "ñ"]


def word(rng: random.Random) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 4)))


def test_signed_fields_match_twilio_python_on_random_fields():
    rng = random.Random(7)
    validator = RequestValidator("token")
    url = "https://hotline.example.org/voice/es/menu/choice?fails=0"
    for _ in range(3000):
        names = [word(rng) for _ in range(rng.randint(0, 6))]
        pairs = [(rng.choice(names), word(rng)) for _ in range(rng.randint(0, 8))] if names else []
        expected = validator.compute_signature(url, MultiDict(pairs))
        assert validator.compute_signature(url + signed_fields(pairs), None) == expected, pairs
