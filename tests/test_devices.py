"""DeviceMiddleware: user agent, client IP through trusted proxies, last seen, no extra trip."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client, RequestFactory

from django_redisstore.middleware import (
    DEVICE_KEY,
    client_ip,
    describe_user_agent,
    device_of,
    record_device,
)

from .redis_servers import RoundTrips

CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0"


@pytest.fixture(autouse=True)
def device_middleware(settings: Any) -> None:
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django_redisstore.middleware.DeviceMiddleware"]


def ip_of(settings: Any, remote: str, forwarded: str | None = None) -> str:
    meta = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return client_ip(RequestFactory().get("/", **meta))


# The client's address ------------------------------------------------------------------------


def test_without_trusted_proxies_the_forwarded_header_is_ignored(settings: Any) -> None:
    assert ip_of(settings, "203.0.113.5", "198.51.100.1") == "203.0.113.5"


def test_behind_a_trusted_proxy_the_forwarded_client_is_taken(settings: Any) -> None:
    settings.REDISSTORE_TRUSTED_PROXIES = ["10.0.0.1"]
    assert ip_of(settings, "10.0.0.1", "198.51.100.1") == "198.51.100.1"


def test_a_request_from_an_untrusted_peer_keeps_its_own_address(settings: Any) -> None:
    settings.REDISSTORE_TRUSTED_PROXIES = ["10.0.0.1"]
    assert ip_of(settings, "203.0.113.5", "198.51.100.1") == "203.0.113.5"


def test_a_spoofed_leftmost_hop_is_not_believed(settings: Any) -> None:
    settings.REDISSTORE_TRUSTED_PROXIES = ["10.0.0.0/8"]
    # The client wrote "1.2.3.4" itself; our two proxies appended the real hops.
    assert ip_of(settings, "10.0.0.2", "1.2.3.4, 198.51.100.7, 10.0.0.9") == "198.51.100.7"


def test_garbage_in_the_header_stops_at_the_last_trusted_hop(settings: Any) -> None:
    settings.REDISSTORE_TRUSTED_PROXIES = ["10.0.0.0/8", "::1"]
    assert ip_of(settings, "::1", "<script>, 10.1.2.3") == "10.1.2.3"


def test_a_chain_of_trusted_proxies_only_yields_the_leftmost(settings: Any) -> None:
    settings.REDISSTORE_TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert ip_of(settings, "10.0.0.2", "10.0.0.3, 10.0.0.4") == "10.0.0.3"


def test_bad_trusted_proxies_are_reported_by_checks(settings: Any) -> None:
    from django_redisstore.checks import check_timeouts

    settings.REDISSTORE_TRUSTED_PROXIES = ["10.0.0.0/8", "proxy.internal"]
    assert [m.id for m in check_timeouts()] == ["django_redisstore.E024"]
    settings.REDISSTORE_TRUSTED_PROXIES = "10.0.0.1"
    assert [m.id for m in check_timeouts()] == ["django_redisstore.E024"]
    settings.REDISSTORE_TRUSTED_PROXIES = ["10.0.0.1"]
    settings.REDISSTORE_DEVICE_UPDATE_INTERVAL = 0
    assert [m.id for m in check_timeouts()] == ["django_redisstore.E023"]


# The record, through the middleware ----------------------------------------------------------


def test_a_session_gets_its_device_record(client: Client) -> None:
    client.get("/write/?a=1", HTTP_USER_AGENT=CHROME, REMOTE_ADDR="198.51.100.1")
    data = client.get("/read/", HTTP_USER_AGENT=CHROME).json()
    device = device_of(data)
    assert device is not None
    assert (device.user_agent, device.ip, device.label) == (
        CHROME,
        "198.51.100.1",
        "Chrome on Linux",
    )
    assert device.last_seen is not None


def test_a_read_only_request_within_the_interval_stays_at_one_round_trip(
    client: Client, round_trips: RoundTrips
) -> None:
    client.get("/write/?a=1", HTTP_USER_AGENT=CHROME)
    round_trips.count = 0
    client.get("/read/", HTTP_USER_AGENT=CHROME)
    assert round_trips.count == 1


def test_a_request_that_writes_anyway_carries_the_record_in_its_own_write(
    client: Client, round_trips: RoundTrips
) -> None:
    client.get("/write/?a=1", HTTP_USER_AGENT=CHROME)
    round_trips.count = 0
    client.get("/write/?b=2", HTTP_USER_AGENT=FIREFOX)  # a new browser: the record changes too
    assert round_trips.count == 2  # read + write, as without the middleware
    assert device_of(client.get("/read/").json()).label == "Firefox on Windows"  # type: ignore[union-attr]


def test_last_seen_is_rewritten_once_the_interval_has_passed(
    client: Client, round_trips: RoundTrips, settings: Any
) -> None:
    settings.REDISSTORE_DEVICE_UPDATE_INTERVAL = 60
    client.get("/write/?a=1", HTTP_USER_AGENT=CHROME)
    first = client.get("/read/", HTTP_USER_AGENT=CHROME).json()[DEVICE_KEY]
    old = {**first, "seen": first["seen"] - 61}
    session = client.session
    session[DEVICE_KEY] = old
    session.save()
    round_trips.count = 0
    client.get("/read/", HTTP_USER_AGENT=CHROME)
    assert round_trips.count == 2  # the read, and the one write of "last seen"
    assert client.get("/read/").json()[DEVICE_KEY]["seen"] >= first["seen"]


def test_a_request_that_never_reads_the_session_costs_nothing(
    client: Client, round_trips: RoundTrips
) -> None:
    client.get("/write/?a=1", HTTP_USER_AGENT=CHROME)
    round_trips.count = 0
    client.get("/untouched/", HTTP_USER_AGENT=FIREFOX)
    assert round_trips.count == 0


def test_no_session_is_created_or_kept_for_a_device_record(
    client: Client, redis_client: Any, redisstore: str, settings: Any
) -> None:
    response = client.get("/read/", HTTP_USER_AGENT=CHROME)
    assert settings.SESSION_COOKIE_NAME not in response.cookies
    client.get("/write/?a=1", HTTP_USER_AGENT=CHROME)
    client.get("/logout/", HTTP_USER_AGENT=CHROME)  # flushed: empty, so left empty
    assert list(redis_client.scan_iter(f"{redisstore}:s:*")) == []


def test_record_device_skips_requests_without_a_session(round_trips: RoundTrips) -> None:
    request = RequestFactory().get("/", HTTP_USER_AGENT=CHROME)
    record_device(request)  # no SessionMiddleware: nothing to do, and no error
    assert not hasattr(request, "session")  # none made up for it
    assert round_trips.count == 0


@pytest.mark.parametrize(
    ("user_agent", "label"),
    [
        (CHROME, "Chrome on Linux"),
        (FIREFOX, "Firefox on Windows"),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
            "Safari on iOS",
        ),
        (CHROME.replace("Safari/537.36", "Safari/537.36 Edg/126.0"), "Edge on Linux"),
        ("curl/8.5.0", "curl"),
        ("", "Unknown device"),
    ],
)
def test_user_agents_get_short_names(user_agent: str, label: str) -> None:
    assert describe_user_agent(user_agent) == label
