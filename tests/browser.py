"""Helpers for driving the app in headless Chromium: what a user does, in the words the page shows."""

import re
from pathlib import Path
from urllib.parse import urlparse

from playwright.sync_api import Browser, Locator, Page, expect

CHROMIUM = "/usr/bin/chromium"  # the Debian package; `playwright install` cannot download here
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
SCREENSHOTS = Path("/tmp/screenshots")
TIMEOUT_MS = 15_000
# Assertions wait as long as actions do: on a loaded 2-core CI machine a streamed reply can take seconds to show.
expect.set_options(timeout=TIMEOUT_MS)


def launch(playwright) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def open_app(browser: Browser, url: str) -> tuple[Page, list[str]]:
    """A fresh context (own localStorage) on the app; the list collects every request to a non-local host."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    foreign: list[str] = []
    context.on("request", lambda request: _note_foreign(request.url, foreign))
    page = context.new_page()
    page.goto(url)
    message_box(page).wait_for()
    return page, foreign


def _note_foreign(url: str, foreign: list[str]) -> None:
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https", "ws", "wss") and parsed.hostname not in LOCAL_HOSTS:
        foreign.append(url)


def message_box(page: Page) -> Locator:
    return page.get_by_label("Message", exact=True)


def notice(page: Page) -> Locator:
    return page.locator("#chat-notice")


def bot_messages(page: Page) -> Locator:
    return page.locator("[data-testid='bot']")


def user_messages(page: Page) -> Locator:
    return page.locator("[data-testid='user']")


def choose_model(page: Page, value: str) -> None:
    """Type `provider:model` into the Model dropdown (it takes custom values) and confirm with Enter.

    The page's load event re-sends the model list with the initial value; if it lands after our choice it
    undoes it, so check the choice stuck and type it again if not.
    """
    box = page.get_by_label("Model", exact=True)
    model = value.partition(":")[2]
    for _ in range(3):
        box.click()
        box.fill(value)
        box.press("Enter")
        page.wait_for_timeout(200)
        if model in box.input_value():
            return
    raise AssertionError(f"the Model dropdown shows {box.input_value()!r}, not {value!r}")


def choose_persona(page: Page, name: str) -> None:
    page.get_by_label("Persona", exact=True).click()
    page.get_by_role("option", name=name, exact=True).click()


def send(page: Page, text: str) -> None:
    message_box(page).fill(text)
    page.get_by_role("button", name="Send", exact=True).click()


def send_accepted(page: Page, text: str, attempts: int = 20) -> None:
    """Send, clicking again only if the click was not taken: Gradio ignores a click while the previous event is
    still finishing, and a user would simply click again. A taken message shows up as a new user message."""
    shown = user_messages(page).count()
    message_box(page).fill(text)
    button = page.get_by_role("button", name="Send", exact=True)
    for _ in range(attempts):
        button.click()
        try:
            expect(user_messages(page)).to_have_count(shown + 1, timeout=2000)
            return
        except AssertionError:
            if message_box(page).input_value() != text:  # taken, only slow to show: never send it twice
                expect(user_messages(page)).to_have_count(shown + 1)
                return
    raise AssertionError(f"the app never took the message {text!r}")


def click_until(page: Page, button: str, shown: Locator, text: str, attempts: int = 20) -> None:
    """Click until `shown` holds `text`, for clicks that are safe to repeat (a refused send sends nothing)."""
    for _ in range(attempts):
        page.get_by_role("button", name=button, exact=True).click()
        try:
            expect(shown).to_contain_text(text, timeout=2000)
            return
        except AssertionError:
            continue
    expect(shown).to_contain_text(text)


def wait_for_reply(page: Page, text: str) -> Locator:
    """The last bot message once it holds `text` and its metrics line (the reply is finished)."""
    reply = bot_messages(page).last
    expect(reply).to_contain_text(text)
    expect(reply.locator("sub")).to_contain_text("tokens")
    return reply


def open_tab(page: Page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()
    expect(page.get_by_role("tab", name=name, exact=True)).to_have_attribute("aria-selected", "true")


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def words(text: str) -> list[str]:
    return re.findall(r"w\d+", text)
