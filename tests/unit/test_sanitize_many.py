"""The sanitizer with a key per device: the same text as trying every secret, at the cost
of the few whose start occurs in the text.

With 10,000 per-device API keys, sorting and trying all of them took about 2 ms per log
line, per transition's snapshot and per status document; a large tuple passed again is
looked up by prefix instead.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterable

import pytest

from reconciler import sanitize
from reconciler.sanitize import REDACTED, redact


def naive(text: str, secrets: Iterable[str]) -> str:
    """Every secret tried, longest first (what redact does for a few secrets)."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=lambda s: (-len(s), s)):
        text = text.replace(secret, REDACTED)
    return text


def test_the_same_text_as_trying_every_secret() -> None:
    rng = random.Random(11)
    alphabet = "ab*"  # few letters: secrets overlap, contain one another and stars
    secrets = tuple(
        {"".join(rng.choices(alphabet, k=rng.randint(4, 9))) for _ in range(200)}
        | {"".join(rng.choices(string.ascii_letters, k=20)) for _ in range(200)}
    )
    assert len(secrets) >= sanitize._INDEXED_FROM
    for _ in range(300):
        words = [rng.choice(secrets) if rng.random() < 0.3 else rng.choice(alphabet * 3)
                 for _ in range(rng.randint(1, 12))]  # fmt: skip
        text = "".join(words)
        # Only the secret replacement is compared: the patterns after it do not apply here.
        assert redact(text, secrets) == naive(text, secrets), text


def test_a_line_tries_only_the_secrets_that_can_occur_in_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(12)
    keys = tuple("".join(rng.choices(string.ascii_letters, k=32)) for _ in range(10_000))
    tried: list[int] = []
    real = sanitize._replace

    def replace(text: str, secrets: Iterable[str]) -> str:
        listed = list(secrets)
        tried.append(len(listed))
        return real(text, listed)

    monkeypatch.setattr(sanitize, "_replace", replace)
    line = f'{{"device": "r01234", "msg": "r01234: precheck -> backup with {keys[77]}"}}'
    assert redact(line, keys) == line.replace(keys[77], REDACTED)
    assert redact(line, keys) == line.replace(keys[77], REDACTED)
    assert tried[0] < 10 and tried[1] < 10, tried  # not 10,000
