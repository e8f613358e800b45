"""Fresh session keys: Django's alphabet and length, uniformly random, from one draw."""

from __future__ import annotations

from collections import Counter

from django.contrib.sessions.backends.base import VALID_KEY_CHARS

from django_redisstore import keys
from django_redisstore.session import SessionStore


def test_new_keys_have_djangos_length_and_alphabet() -> None:
    for _ in range(200):
        key = keys.new_session_key()
        assert len(key) == 32
        assert set(key) <= set(VALID_KEY_CHARS)
        assert keys.is_valid_session_key(key)


def test_new_keys_do_not_repeat() -> None:
    assert len({keys.new_session_key() for _ in range(5000)}) == 5000


def test_every_position_uses_the_whole_alphabet_evenly() -> None:
    # 2000 keys: each of the 36 characters is expected 55.6 times per position. A position
    # stuck on some characters (a bias of the base-36 writing) would leave others near 0.
    drawn = [keys.new_session_key() for _ in range(2000)]
    for position in (0, 15, 31):
        counts = Counter(key[position] for key in drawn)
        assert set(counts) == set(VALID_KEY_CHARS)
        assert min(counts.values()) > 20
        assert max(counts.values()) < 100


def test_the_store_draws_its_keys_there() -> None:
    assert keys.is_valid_session_key(SessionStore()._get_new_session_key())
