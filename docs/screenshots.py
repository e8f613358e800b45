"""Take the README's screenshots of the demo: ``python docs/screenshots.py`` (from the checkout).

Starts a Redis server and the demo on free loopback ports, signs in from two "browsers" (the
second one a phone's user agent, so that the list has two devices) with Playwright driving
Debian's Chromium, and writes docs/login.png, docs/session.png, docs/sessions.png (the package's
"Your sessions" page in the demo's frame) and docs/admin.png (the user's change page in the
admin, at the sessions panel).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.demo_server import PASSWORD, USERNAME, DemoServer  # noqa: E402
from tests.redis_servers import RedisServer  # noqa: E402
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
SIZE = {"width": 960, "height": 560}


def sign_in(page, demo: DemoServer, remember: bool) -> None:  # type: ignore[no-untyped-def]
    page.goto(demo.url + "/accounts/login/")
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    if remember:
        page.check("input[name=remember_me]")
    page.click("button[type=submit]")
    page.wait_for_load_state()


def main() -> None:
    redis_server = RedisServer().start()
    demo = DemoServer(redis_server.url).start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            phone = browser.new_context(user_agent=PHONE, viewport=SIZE)
            sign_in(phone.new_page(), demo, remember=False)
            desk = browser.new_context(viewport=SIZE)
            page = desk.new_page()
            page.goto(demo.url + "/accounts/login/")
            page.fill("input[name=username]", USERNAME)
            page.check("input[name=remember_me]")
            page.screenshot(path=ROOT / "docs" / "login.png")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_load_state()
            page.goto(demo.url + "/")
            page.screenshot(path=ROOT / "docs" / "session.png", full_page=True)
            page.goto(demo.url + "/accounts/sessions/")
            page.screenshot(path=ROOT / "docs" / "sessions.png")
            page.goto(demo.url + "/admin/auth/user/")
            page.click(f"#result_list a:text-is('{USERNAME}')")
            page.wait_for_url("**/change/")
            # The panel at the bottom of the window, the change form's buttons above it.
            page.evaluate("document.getElementById('redisstore-sessions').scrollIntoView(false)")
            page.screenshot(path=ROOT / "docs" / "admin.png")
            browser.close()
    finally:
        demo.stop()
        redis_server.stop()


if __name__ == "__main__":
    main()
