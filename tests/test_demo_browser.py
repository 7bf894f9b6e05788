"""Demo mode as a guest sees it in headless Chromium: a chat with the demo's personas, and nothing else."""

import pytest
from playwright.sync_api import expect

from playground.sharing.demo import DemoSettings
from tests.browser import (
    bot_messages,
    click_until,
    message_box,
    notice,
    open_app,
    screenshot,
    send,
    send_accepted,
    user_messages,
)

PROFESSOR = "Professor Ignatia Brack"
RUDE = "Rude Support Agent"


@pytest.fixture
def demo_page(browser, services):
    from playground.ui.app import build_app, launch, launch_options

    settings = DemoSettings(personas=[PROFESSOR, RUDE], models=["local:gpt-4o-mini"], max_tokens=8,
                            per_session_per_minute=2)
    app = build_app(services, demo=settings)
    _, url, _ = launch(app, prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **launch_options(services, demo=True))
    page, foreign = open_app(browser, url)
    yield page, foreign
    page.context.close()
    app.close()


def test_the_demo_is_only_a_chat_with_its_personas(demo_page, services):
    page, foreign = demo_page

    expect(page.get_by_role("tab")).to_have_count(0)
    for hidden in ("System prompt", "Variables", "Parameters", "Temperature", "Search"):
        expect(page.get_by_label(hidden, exact=True)).to_have_count(0)
    for hidden in ("Datasets", "Fine-tune", "History", "Templates", "Refresh models"):
        expect(page.get_by_text(hidden, exact=True)).to_have_count(0)
    expect(bot_messages(page).first).to_contain_text("Now then, now then!")  # the professor's greeting
    page.get_by_label("Persona", exact=True).click()
    expect(page.get_by_role("option")).to_have_count(2)
    expect(page.get_by_role("option", name=PROFESSOR)).to_be_visible()
    expect(page.get_by_role("option", name=RUDE)).to_be_visible()
    page.keyboard.press("Escape")
    screenshot(page, "demo/start")

    send(page, "Tell me about the lamp [tokens=30]")

    expect(bot_messages(page).last).to_have_text("w1 w2 w3 w4 w5 w6 w7 w8")  # capped at 8 tokens, no metrics line
    expect(message_box(page)).to_have_value("")
    [exchange] = services.store.exchanges()
    assert exchange["persona"] == PROFESSOR and exchange["reply"] == "w1 w2 w3 w4 w5 w6 w7 w8"
    assert foreign == []
    screenshot(page, "demo/reply")


def test_the_rate_limit_message_shows_and_the_text_stays(demo_page):
    page, _ = demo_page
    for text in ("first", "second"):
        send_accepted(page, text)
        expect(bot_messages(page).last).to_contain_text(f": {text}")  # the persona prefixes a speaker

    message_box(page).fill("third")
    # Refused sends send nothing, so clicking again (as a user would, if the first click came too early) is safe.
    click_until(page, "Send", notice(page), "Demo limit reached: 2 messages a minute per visitor. Try again in")
    expect(message_box(page)).to_have_value("third")
    expect(user_messages(page)).to_have_count(2)
    screenshot(page, "demo/rate-limited")


def test_enter_sends_and_shift_enter_adds_a_line(demo_page, services):
    page, _ = demo_page
    box = message_box(page)
    box.click()
    box.type("Tell me about the lamp")
    box.press("Shift+Enter")
    box.type("and the lens")
    expect(box).to_have_value("Tell me about the lamp\nand the lens")
    expect(user_messages(page)).to_have_count(0)

    box.press("Enter")
    expect(user_messages(page)).to_have_count(1)
    expect(box).to_have_value("")
    expect(bot_messages(page).last).to_contain_text("Echo: Tobin: Tell me about the lamp")  # capped at 8 tokens
