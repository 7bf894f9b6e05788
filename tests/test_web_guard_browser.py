"""In headless Chromium: the login page, and replies that name remote pictures fetch nothing."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect

from playground.sharing.demo import DemoSettings
from tests.browser import bot_messages, message_box, open_app, send
from tests.test_web_guard import LOGINS, launch

RUDE = "Rude Support Agent"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


class Counting:
    """A loopback HTTP server that counts every request, standing in for a site a reply points at."""

    def __init__(self):
        hits = self.hits = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                self.send_response(200)
                self.send_header("content-type", "image/png")
                self.end_headers()
                self.wfile.write(PNG)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site():
    counting = Counting()
    yield counting
    counting.close()


def images_settled(page) -> None:
    """Wait until the last reply's pictures are loaded or refused (a refused picture is `complete` too)."""
    expect(bot_messages(page).last.locator("img")).to_have_count(2)
    page.wait_for_function("() => [...document.querySelectorAll(\"[data-testid='bot'] img\")].every(i => i.complete)")


def remote_media(site: Counting) -> str:
    return (f"see ![pixel]({site.url}/pixel.png?q=secret) and <img src=\"{site.url}/img.png\"> "
            f"<video src=\"{site.url}/v.mp4\"></video> <iframe src=\"{site.url}/frame\"></iframe>")


def test_log_in_in_the_browser_then_chat_without_fetching_remote_media(browser, services, site):
    app, url = launch(services, demo=DemoSettings(personas=[RUDE], models=["local:gpt-4o-mini"]))
    context = browser.new_context()
    errors: list[str] = []
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(url)
        page.get_by_label("User").fill(LOGINS[0][0])
        page.get_by_label("Password").fill("wrong")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("alert")).to_contain_text("Wrong user or password")
        page.get_by_label("Password").fill(LOGINS[0][1])
        page.get_by_role("button", name="Log in").click()
        message_box(page).wait_for()

        send(page, remote_media(site))

        expect(bot_messages(page).last).to_contain_text("Echo: see")
        images_settled(page)
        assert site.hits == [] and errors == []
    finally:
        context.close()
        app.close()


@pytest.mark.parametrize("allowed", [False, True])
def test_chat_replies_fetch_remote_media_only_when_the_host_allows_it(browser, services, site, allowed):
    from tests.browser import choose_model

    app, url = launch(services, auth=None, remote_media=allowed)
    try:
        page, _ = open_app(browser, url)
        choose_model(page, "local:gpt-4o-mini")
        send(page, remote_media(site))
        expect(bot_messages(page).last).to_contain_text("Echo: see")
        images_settled(page)
        if allowed:  # the control: the same page does fetch them when the policy is off
            assert "/pixel.png?q=secret" in site.hits
        else:
            assert site.hits == []
        page.context.close()
    finally:
        app.close()
