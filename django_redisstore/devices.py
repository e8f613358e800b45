"""Device records: which browser, from where, last seen when; kept inside each session.

``device_of`` and ``Device`` are public (also importable from ``django_redisstore.middleware``);
the rest is private (no stable API).

``middleware.DeviceMiddleware`` (after ``SessionMiddleware`` and ``AuthenticationMiddleware``)
stores a small dict under the reserved session key ``_redisstore_device``: the user agent, the
client's IP address (read through ``REDISSTORE_TRUSTED_PROXIES``) and when it was last seen. It
never costs a round trip of its own:

* it looks only at sessions the request already read, and never creates one (an empty session
  stays empty);
* it changes the record only when the browser or the address changed, or when "last seen" is
  older than ``REDISSTORE_DEVICE_UPDATE_INTERVAL``; a request that changes nothing else then
  pays the one write, and every other read-only request stays at one round trip.
"""

from __future__ import annotations

import ipaddress
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from django.contrib.sessions.backends.base import SessionBase
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest

from .conf import conf

#: The session key under which the device record lives.
DEVICE_KEY = "_redisstore_device"
#: User agents are cut to this many characters: enough to recognise any browser.
USER_AGENT_MAX = 400

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Device:
    """A session's device record, as ``device_of`` reads it from the session data."""

    user_agent: str
    ip: str
    last_seen: datetime | None

    @property
    def label(self) -> str:
        """A short human name of the browser, like "Chrome on Linux"."""
        return describe_user_agent(self.user_agent)


def device_of(data: dict[str, Any]) -> Device | None:
    """The device record in a session's data (a dict), or None when it has none."""
    record = data.get(DEVICE_KEY)
    if not isinstance(record, dict):
        return None
    seen = record.get("seen")
    return Device(
        user_agent=str(record.get("ua", "")),
        ip=str(record.get("ip", "")),
        last_seen=datetime.fromtimestamp(seen, timezone.utc) if isinstance(seen, int) else None,
    )


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    try:
        return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)
    except ValueError as e:
        raise ImproperlyConfigured(f"REDISSTORE_TRUSTED_PROXIES: {e}") from e


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str:
    """The client's address: ``REMOTE_ADDR``, or the nearest untrusted hop of
    ``X-Forwarded-For`` when the request came through trusted proxies.

    The header is read from the right (the hop our own proxy appended) leftwards; everything
    left of the first untrusted address was written by the client and proves nothing.
    """
    remote = str(request.META.get("REMOTE_ADDR", ""))
    networks = _networks(tuple(conf.TRUSTED_PROXIES))
    client = _address(remote)
    if client is None or not networks:
        return remote
    hops = str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",")
    for hop in reversed(hops):
        if not any(client in net for net in networks):
            break
        address = _address(hop)
        if address is None:  # garbage from beyond the last trusted proxy: stop there
            break
        client = address
    return str(client)


def record_device(request: HttpRequest, now: float | None = None) -> None:
    """Update the device record of ``request.session`` if it is due (see the module doc)."""
    session: SessionBase | None = getattr(request, "session", None)
    if session is None or not session.accessed:
        return  # reading the session only for this would cost a round trip
    data = session._session  # type: ignore[attr-defined]  # loaded already: no I/O
    if not any(key != DEVICE_KEY for key in data):
        return  # an empty (or flushed) session: never create one for a device record
    now = int(time.time() if now is None else now)
    user_agent = str(request.META.get("HTTP_USER_AGENT", ""))[:USER_AGENT_MAX]
    ip = client_ip(request)
    current = data.get(DEVICE_KEY)
    if (
        isinstance(current, dict)
        and current.get("ua") == user_agent
        and current.get("ip") == ip
        and isinstance(current.get("seen"), int)
        and 0 <= now - current["seen"] < conf.DEVICE_UPDATE_INTERVAL
    ):
        return
    session[DEVICE_KEY] = {"ua": user_agent, "ip": ip, "seen": now}


_BROWSERS = (
    ("Edge", re.compile(r"Edg(?:e|A|iOS)?/")),
    ("Opera", re.compile(r"OPR/|Opera")),
    ("Firefox", re.compile(r"Firefox/|FxiOS/")),
    ("Chrome", re.compile(r"Chrome/|Chromium/|CriOS/")),
    ("Safari", re.compile(r"Safari/")),
    ("curl", re.compile(r"^curl/")),
)
_SYSTEMS = (
    ("Android", re.compile(r"Android")),
    ("iOS", re.compile(r"iPhone|iPad|iPod")),
    ("Windows", re.compile(r"Windows")),
    ("macOS", re.compile(r"Mac OS X|Macintosh")),
    ("ChromeOS", re.compile(r"CrOS")),
    ("Linux", re.compile(r"Linux|X11")),
)


def describe_user_agent(user_agent: str) -> str:
    """A rough name for a user agent ("Firefox on Windows"); good for a list, not for logic."""
    if not user_agent:
        return "Unknown device"
    browser = next((name for name, rx in _BROWSERS if rx.search(user_agent)), None)
    system = next((name for name, rx in _SYSTEMS if rx.search(user_agent)), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or user_agent[:40]
