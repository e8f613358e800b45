"""The expiry arithmetic of ``django_redisstore.expiry``, without Redis: deadlines, caps, index
scores, backoff."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from django_redisstore import expiry

NOW = 1_700_000_000.5


def test_no_absolute_timeout_means_no_deadline() -> None:
    assert expiry.deadline(NOW, None) is None


def test_the_deadline_counts_from_the_whole_second_of_creation() -> None:
    assert expiry.deadline(NOW, 3600) == 1_700_000_000 + 3600


def test_an_age_is_cut_at_the_deadline_and_never_negative() -> None:
    assert expiry.cap_age(600, NOW, None) == 600
    assert expiry.cap_age(600, NOW, int(NOW) + 100) == 99
    assert expiry.cap_age(600, NOW, int(NOW) - 100) == 0


def test_a_date_is_cut_at_the_deadline_aware_or_naive() -> None:
    end = int(NOW) + 60
    later = datetime.fromtimestamp(NOW + 3600, timezone.utc)
    assert expiry.cap_date(later, end) == datetime.fromtimestamp(end, timezone.utc)
    assert expiry.cap_date(later, None) == later
    naive = datetime.fromtimestamp(NOW + 3600)
    assert expiry.cap_date(naive, end) == datetime.fromtimestamp(end)
    sooner = naive - timedelta(hours=2)
    assert expiry.cap_date(sooner, end) == sooner


@pytest.mark.parametrize(
    ("until", "end", "expected"),
    [(0, None, 0), (500, None, 500), (0, 900, 900), (500, 900, 500), (1000, 900, 900)],
)
def test_until_is_capped_by_the_deadline_and_zero_takes_it(
    until: float, end: int | None, expected: int
) -> None:
    assert expiry.cap_until(until, end) == expected


def test_an_index_entry_outlives_its_session_by_the_headroom_at_most_its_age() -> None:
    assert expiry.index_until(NOW, 600, 86400) == int(NOW) + 1 + 1200
    assert expiry.index_until(NOW, 7 * 86400, 86400) == int(NOW) + 1 + 8 * 86400


@pytest.mark.parametrize(
    ("data", "at_browser_close", "expected"),
    [
        ({}, False, True),
        ({}, True, False),
        ({"_session_expiry": 0}, False, False),
        ({"_session_expiry": 60}, True, True),
    ],
)
def test_a_cookie_is_persistent_unless_it_ends_with_the_browser(
    data: dict[str, int], at_browser_close: bool, expected: bool
) -> None:
    assert expiry.persistent(data, at_browser_close) is expected


def test_a_slide_extends_the_index_only_past_its_score_and_before_the_deadline() -> None:
    assert not expiry.slide_reaches_index(NOW + 1000, 600, NOW, None)
    assert expiry.slide_reaches_index(NOW + 100, 600, NOW, None)
    assert not expiry.slide_reaches_index(NOW + 100, 600, NOW, int(NOW) + 50)


def test_the_backoff_grows_and_is_capped() -> None:
    limits = [expiry.backoff_limit(n) for n in range(1, 12)]
    assert limits == sorted(limits)
    assert limits[0] == 0.001 and limits[-1] == 0.05
