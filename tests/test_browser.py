"""The demo site in a real browser: Playwright driving Debian's Chromium (never a download).

The flows a user sees: a remembered sign-in survives closing the browser and an unremembered one
does not; "Sign out other sessions" signs out a second browser; the cookie expires when the
Redis key does. A browser drops cookies without an expiry when it exits, so "closing and
reopening" is a new browser context given the stored cookies minus those.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from playwright import sync_api  # a test dependency (noxfile.py); only Chromium may be absent

from .demo_server import PASSWORD, USERNAME, DemoServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Skipped without the browser, except on CI (``CI`` set), where tests/conftest.py fails a skip.
pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"the browser tests need Debian's Chromium at {CHROMIUM} (apt-get install chromium)",
)


@pytest.fixture(scope="module")
def demo(redis_server_url: str) -> Iterator[DemoServer]:
    server = DemoServer(redis_server_url).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def contexts(browser: Any) -> Iterator[list[Any]]:
    """Browser contexts the test opens ("browsers" of their own), closed after it."""
    opened: list[Any] = []
    yield opened
    for context in opened:
        context.close()


def open_browser(browser: Any, contexts: list[Any], cookies: list[Any] | None = None) -> Any:
    context = browser.new_context()
    contexts.append(context)
    if cookies:
        context.add_cookies(cookies)
    return context.new_page()


def sign_in(page: Any, demo: DemoServer, *, remember: bool, next_url: str = "") -> None:
    page.goto(demo.url + "/accounts/login/" + (f"?next={next_url}" if next_url else ""))
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    if remember:
        page.check("input[name=remember_me]")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert "/accounts/login/" not in page.url, page.content()


def close_and_reopen(browser: Any, contexts: list[Any], page: Any) -> Any:
    """What a browser restart leaves: the cookies that have an expiry."""
    kept = [cookie for cookie in page.context.cookies() if cookie["expires"] != -1]
    page.context.close()
    contexts.remove(page.context)
    return open_browser(browser, contexts, kept)


def is_signed_in(page: Any, demo: DemoServer) -> bool:
    page.goto(demo.url + "/accounts/sessions/")
    return bool(page.url == demo.url + "/accounts/sessions/")


def session_cookie(page: Any) -> Any:
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "sessionid"]
    return cookie


def test_a_signed_out_visitor_is_sent_to_sign_in_and_back(
    browser: Any, contexts: list[Any], demo: DemoServer
) -> None:
    page = open_browser(browser, contexts)
    page.goto(demo.url + "/")
    page.click("text=Your sessions")
    assert page.url == demo.url + "/accounts/login/?next=/accounts/sessions/"
    assert page.locator("a", has_text="Your sessions").count() == 1  # on every page
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(demo.url + "/accounts/sessions/")
    assert page.locator("tr.session.current").count() == 1


def test_a_remembered_sign_in_survives_closing_the_browser(
    browser: Any, contexts: list[Any], demo: DemoServer
) -> None:
    page = open_browser(browser, contexts)
    sign_in(page, demo, remember=True)
    assert session_cookie(page)["expires"] > time.time() + 13 * 86400
    page = close_and_reopen(browser, contexts, page)
    assert is_signed_in(page, demo)
    assert page.locator("tr.current", has_text="this session").count() == 1


def test_an_unremembered_sign_in_ends_with_the_browser(
    browser: Any, contexts: list[Any], demo: DemoServer
) -> None:
    page = open_browser(browser, contexts)
    sign_in(page, demo, remember=False)
    assert session_cookie(page)["expires"] == -1
    assert is_signed_in(page, demo)
    page = close_and_reopen(browser, contexts, page)
    assert not is_signed_in(page, demo)


def test_sign_out_other_sessions_signs_out_a_second_browser(
    browser: Any, contexts: list[Any], demo: DemoServer
) -> None:
    first = open_browser(browser, contexts)
    second = open_browser(browser, contexts)
    sign_in(first, demo, remember=True)
    sign_in(second, demo, remember=False)
    first.goto(demo.url + "/accounts/sessions/")
    assert first.locator("tr.session").count() >= 2
    first.click("text=Sign out other sessions")
    first.wait_for_load_state()
    assert first.locator(".message", has_text="Signed out").count() == 1
    assert first.locator("tr.session").count() == 1
    assert not is_signed_in(second, demo)
    assert is_signed_in(first, demo)


def test_signing_out_one_session_from_the_list_over_localhost(
    browser: Any, contexts: list[Any], demo: DemoServer
) -> None:
    demo = demo.on_host("localhost")  # the demo answers (and takes POSTs) on either name
    first = open_browser(browser, contexts)
    second = open_browser(browser, contexts)
    sign_in(second, demo, remember=False)
    other = session_cookie(second)["value"]
    sign_in(first, demo, remember=False)
    first.goto(demo.url + "/accounts/sessions/")
    from django_redisstore import keys

    row = first.locator(f"tr.session[data-id='{keys.session_id(other, secret=demo.secret)}']")
    row.locator("button", has_text="Sign out").click()
    first.wait_for_load_state()
    assert first.locator(".message", has_text="Signed out that session").count() == 1
    assert not is_signed_in(second, demo)
    assert is_signed_in(first, demo)


def test_the_cookie_expires_with_the_redis_key(
    browser: Any, contexts: list[Any], demo: DemoServer
) -> None:
    client = redis.Redis.from_url(demo.redis_url)
    try:
        page = open_browser(browser, contexts)
        sign_in(page, demo, remember=True)
        for path in ("/", "/accounts/sessions/"):  # after sign-in, then after sliding reads
            page.goto(demo.url + path)
            cookie = session_cookie(page)
            pttl = client.pttl(demo.session_name(cookie["value"]))
            assert pttl > 0
            assert abs(cookie["expires"] - (time.time() + pttl / 1000)) <= 2
    finally:
        client.close()


def test_the_admin_button_signs_a_user_out_everywhere_but_here(
    browser: Any, contexts: list[Any], demo: DemoServer
) -> None:
    elsewhere = open_browser(browser, contexts)
    sign_in(elsewhere, demo, remember=True)
    here = open_browser(browser, contexts)
    sign_in(here, demo, remember=False)  # the demo's user is a superuser: the admin, too
    here.goto(demo.url + "/admin/auth/user/")
    here.click(f"#result_list a:text-is('{USERNAME}')")
    here.wait_for_url("**/change/")
    panel = here.locator("#redisstore-sessions")
    assert panel.locator("tr.session").count() >= 2
    assert panel.locator("tr.current").count() == 1

    panel.locator("input[type=submit]", has_text="Sign out everywhere").click()
    here.wait_for_load_state()

    assert here.locator(".messagelist", has_text="out everywhere").count() == 1
    assert here.locator("#redisstore-sessions tr.session").count() == 1  # this one
    assert not is_signed_in(elsewhere, demo)
    assert is_signed_in(here, demo)
