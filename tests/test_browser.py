"""The Chat and History tabs as a user sees them, in headless Chromium against the fake OpenAI server."""

import re
import time

import pytest
from playwright.sync_api import expect

from tests.browser import (
    bot_messages,
    choose_model,
    choose_persona,
    message_box,
    notice,
    open_app,
    open_tab,
    screenshot,
    send,
    send_accepted,
    user_messages,
    wait_for_reply,
    words,
)


@pytest.fixture
def app(browser, app_url):
    page, foreign = open_app(browser, app_url)
    yield page, foreign
    page.context.close()


def wait_until(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_reply_streams_in_with_its_metrics_and_is_logged(app, services):
    page, _ = app
    choose_model(page, "local:gpt-4o-mini")
    send(page, "When does the regatta start?")

    reply = wait_for_reply(page, "Echo: When does the regatta start?")
    metrics = reply.locator("sub")
    expect(metrics).to_be_visible()
    expect(metrics).to_contain_text("gpt-4o-mini")
    expect(metrics).to_contain_text("first token")
    assert metrics.bounding_box()["y"] > reply.get_by_text("Echo: When does").bounding_box()["y"]
    expect(message_box(page)).to_have_value("")
    screenshot(page, "chat")

    [exchange] = services.store.exchanges()
    assert exchange["model"] == "gpt-4o-mini" and exchange["reply"] == "Echo: When does the regatta start?"
    assert "When does the regatta start?" in exchange["request_text"]
    # The persona selected when the page opens (Location Extractor, the first chat persona) sends its own
    # parameters, not the bare defaults.
    request = exchange["request"]
    assert (request["temperature"], request["max_tokens"], request.get("stop")) == (0, 300, None)


def test_server_error_names_the_cause_and_keeps_the_typed_message(app, services, fake_server):
    page, _ = app
    choose_model(page, "local:fault-500")
    message_box(page).fill("Is the bridge open?")
    # On a busy machine the model's change event may still be finishing, and Gradio ignores a click meanwhile: click
    # again until the request is logged (it is logged as it is sent), as a user would.
    for _ in range(10):
        page.get_by_role("button", name="Send", exact=True).click()
        try:
            wait_until(lambda: services.store.exchanges(), timeout=3.0)
            break
        except AssertionError:
            continue

    expect(notice(page)).to_contain_text("server error (500)")
    expect(notice(page)).to_contain_text("Try again")
    expect(message_box(page)).to_have_value("Is the bridge open?")
    expect(user_messages(page)).to_have_count(0)
    screenshot(page, "error")
    assert services.store.exchanges()[0]["error"]

    # Sending the kept text again with a working model asks the question once, not twice.
    choose_model(page, "local:gpt-4o-mini")
    page.get_by_role("button", name="Send", exact=True).click()
    wait_for_reply(page, "Echo: Is the bridge open?")
    expect(notice(page)).to_be_empty()
    expect(user_messages(page)).to_have_count(1)
    assert services.store.exchanges()[0]["request_text"].count("Is the bridge open?") == 1


def test_broken_stream_keeps_the_partial_reply_marked_incomplete(app, services):
    page, _ = app
    choose_model(page, "local:fault-break")
    send(page, "Tell me about the mill")

    reply = bot_messages(page).last
    expect(reply).to_contain_text("Partial one two")
    expect(reply).to_contain_text("(incomplete)")
    expect(notice(page)).to_contain_text("broke off")
    expect(message_box(page)).to_have_value("Tell me about the mill")
    screenshot(page, "incomplete")
    [exchange] = services.store.exchanges()
    assert exchange["incomplete"] == 1 and exchange["reply"] == "Partial one two"


def test_like_rates_the_logged_exchange(app, services):
    page, _ = app
    choose_model(page, "local:gpt-4o-mini")
    send(page, "Who is the mayor?")
    wait_for_reply(page, "Echo: Who is the mayor?")

    page.get_by_role("button", name="Like", exact=True).last.click()
    wait_until(lambda: services.store.exchanges()[0]["rating"] == 1)


def test_a_draft_typed_while_a_reply_streams_is_kept(app, fake_server):
    page, _ = app
    fake_server.token_delay = 0.03
    choose_model(page, "local:gpt-4o-mini")
    send(page, "Count for me [tokens=40]")
    reply = bot_messages(page).last
    expect(reply).to_contain_text("w3")

    message_box(page).fill("and my next question")  # typed before the reply is done

    wait_for_reply(page, "w40")
    expect(message_box(page)).to_have_value("and my next question")


def test_stop_keeps_the_partial_reply_marked_incomplete(app, services, fake_server):
    page, _ = app
    fake_server.token_delay = 0.05
    choose_persona(page, "Location Extractor")
    choose_model(page, "local:gpt-4o-mini")
    send(page, "Count for me [tokens=200]")
    reply = bot_messages(page).last
    expect(reply).to_contain_text("w5")

    page.get_by_role("button", name="Stop", exact=True).click()
    expect(reply).to_contain_text("(incomplete)")
    expect(reply).to_contain_text("Stopped before the reply was finished")
    expect(reply.locator("sub")).to_contain_text("tokens")
    shown = words(reply.inner_text())
    page.wait_for_timeout(500)  # a stream that was not really stopped would add a word every 0.05 s
    assert words(reply.inner_text()) == shown, "the reply kept growing after Stop"
    expect(reply).to_contain_text("(incomplete)")
    screenshot(page, "stopped")

    [exchange] = services.store.exchanges()
    assert exchange["incomplete"] == 1
    assert words(exchange["reply"]) == shown, "the chat shows a different partial reply from the one logged"
    assert 5 <= len(shown) < 200

    # The stopped reply is a logged exchange like any other: it can be rated.
    page.get_by_role("button", name="Like", exact=True).last.click()
    wait_until(lambda: services.store.exchanges()[0]["rating"] == 1)


def test_stop_during_a_retry_shows_the_new_partial_reply(app, services, fake_server):
    page, _ = app
    choose_persona(page, "Location Extractor")
    choose_model(page, "local:gpt-4o-mini")
    send(page, "Count [tokens=150]")
    wait_for_reply(page, "w150")

    fake_server.token_delay = 0.05
    page.get_by_role("button", name="Retry", exact=True).last.click()
    reply = bot_messages(page).last
    expect(reply).not_to_contain_text("w150")
    expect(reply).to_contain_text("w3")
    page.get_by_role("button", name="Stop", exact=True).click()
    expect(reply).to_contain_text("(incomplete)")

    latest, first = services.store.exchanges()
    assert (latest["incomplete"], first["incomplete"]) == (1, 0)
    assert words(reply.inner_text()) == words(latest["reply"])
    expect(bot_messages(page)).to_have_count(1)


def test_message_shows_at_once_and_stop_works_before_the_first_token(app, services, fake_server):
    page, _ = app
    fake_server.first_token_delay = 1.5
    choose_model(page, "local:gpt-4o-mini")
    send(page, "Slow model, are you there?")

    expect(user_messages(page)).to_have_text(["Slow model, are you there?"], timeout=1000)
    expect(message_box(page)).to_have_value("", timeout=1000)
    expect(bot_messages(page)).to_have_text(["…"])
    screenshot(page, "waiting")
    page.get_by_role("button", name="Stop", exact=True).click()
    expect(bot_messages(page).last).to_contain_text("Stopped before the reply was finished")
    expect(user_messages(page)).to_have_count(1)
    [exchange] = services.store.exchanges()
    assert exchange["incomplete"] == 1


def test_retry_edit_and_undo(app, services):
    page, _ = app
    choose_model(page, "local:gpt-4o-mini")
    send(page, "Which river?")
    wait_for_reply(page, "Echo: Which river?")

    page.get_by_role("button", name="Retry", exact=True).last.click()
    wait_until(lambda: len(services.store.exchanges()) == 2)
    wait_for_reply(page, "Echo: Which river?")
    expect(user_messages(page)).to_have_text(["Which river?"])
    expect(bot_messages(page)).to_have_count(1)

    page.get_by_role("button", name="Edit", exact=True).last.click()
    page.locator("textarea.edit-textarea").fill("Which bridge?")
    page.get_by_role("button", name="Submit", exact=True).click()
    wait_for_reply(page, "Echo: Which bridge?")
    expect(user_messages(page)).to_have_text(["Which bridge?"])
    wait_until(lambda: len(services.store.exchanges()) == 3)
    assert "Which river?" not in services.store.exchanges()[0]["request_text"]

    page.get_by_role("button", name="Undo", exact=True).last.click()
    expect(message_box(page)).to_have_value("Which bridge?")
    expect(user_messages(page)).to_have_count(0)


def test_switching_persona_loads_its_system_prompt_and_variables(app):
    page, _ = app
    system_prompt = page.get_by_label("System prompt", exact=True)
    expect(system_prompt).to_have_value(re.compile("You are a location extractor"))  # the default persona

    choose_persona(page, "Rude Support Agent")
    expect(system_prompt).to_have_value(re.compile("smart kettles"))
    expect(page.get_by_label("Persona", exact=True)).to_have_value("Rude Support Agent")
    expect(page.get_by_role("gridcell", name="company", exact=True)).to_be_visible()
    expect(page.get_by_role("gridcell", name="Kettlebloom", exact=True)).to_be_visible()
    expect(bot_messages(page)).to_have_text(["Support. What's the kettle done this time?"])


def test_history_lists_the_conversation_and_reopens_it(app):
    page, _ = app
    choose_model(page, "local:gpt-4o-mini")
    send(page, "Where is the lighthouse?")
    wait_for_reply(page, "Echo: Where is the lighthouse?")
    choose_persona(page, "Rude Support Agent")  # a fresh chat with another persona
    expect(bot_messages(page)).to_have_text(["Support. What's the kettle done this time?"])

    open_tab(page, "History")
    title = page.get_by_role("gridcell", name="Where is the lighthouse?", exact=True)
    expect(title).to_be_visible()
    screenshot(page, "history")
    title.click()  # one click on its row opens it

    expect(page.get_by_role("tab", name="Chat", exact=True)).to_have_attribute("aria-selected", "true")
    expect(user_messages(page)).to_have_text(["Where is the lighthouse?"])
    wait_for_reply(page, "Echo: Where is the lighthouse?")
    expect(page.get_by_label("Persona", exact=True)).to_have_value("Location Extractor")  # the default persona
    expect(page.get_by_label("Model", exact=True)).to_have_value(re.compile("gpt-4o-mini"))
    page.wait_for_timeout(500)  # nothing that follows (the persona's change event, say) may undo the restore
    expect(user_messages(page)).to_have_text(["Where is the lighthouse?"])
    expect(page.get_by_label("Model", exact=True)).to_have_value(re.compile("gpt-4o-mini"))


def test_clear_button_starts_a_new_chat(app, services):
    page, _ = app
    choose_model(page, "local:gpt-4o-mini")
    send(page, "First question")
    wait_for_reply(page, "Echo: First question")
    page.get_by_role("button", name="Clear", exact=True).click()
    expect(user_messages(page)).to_have_count(0)

    send_accepted(page, "Second question")  # the Clear event may still be finishing, and a click then is ignored
    wait_for_reply(page, "Echo: Second question")
    expect(user_messages(page)).to_have_text(["Second question"])
    latest, first = services.store.exchanges()
    assert "First question" not in latest["request_text"]
    assert latest["conversation_id"] != first["conversation_id"]


def test_page_talks_only_to_the_app_and_keeps_no_key_in_the_browser(app):
    page, foreign = app
    choose_model(page, "local:gpt-4o-mini")
    send(page, "Anything")
    wait_for_reply(page, "Echo: Anything")
    open_tab(page, "History")

    assert foreign == []
    storage = page.evaluate("() => JSON.stringify(Object.assign({}, window.localStorage))")
    assert "sk-test" not in storage
    assert "sk-test" not in page.content()


def test_enter_sends_and_shift_enter_adds_a_line(app, services):
    page, _ = app
    choose_model(page, "local:gpt-4o-mini")
    box = message_box(page)
    box.click()
    box.type("Where is the pier?")
    box.press("Shift+Enter")
    box.type("And the lighthouse?")
    expect(box).to_have_value("Where is the pier?\nAnd the lighthouse?")
    expect(user_messages(page)).to_have_count(0)
    assert "Shift+Enter" in box.get_attribute("placeholder")

    box.press("Enter")
    wait_for_reply(page, "And the lighthouse?")
    expect(box).to_have_value("")
    [exchange] = services.store.exchanges()
    assert "Where is the pier?\nAnd the lighthouse?" in exchange["request_text"]


def test_a_picked_model_survives_a_persona_change_unless_the_persona_names_a_served_one(app, services):
    page, _ = app
    model = page.get_by_label("Model", exact=True)
    choose_model(page, "local:echo")
    choose_persona(page, "Rude Support Agent")  # its model, gpt-4o-mini, is served: the persona's own wins
    expect(page.get_by_label("System prompt", exact=True)).to_have_value(re.compile("smart kettles"))
    expect(model).to_have_value(re.compile("gpt-4o-mini"))

    brack = services.personas["Professor Ignatia Brack"]
    services.personas[brack.name] = brack.model_copy(update={"model": "llama-3-8b"})  # a model nothing serves
    choose_model(page, "local:gpt-4o")
    choose_persona(page, "Professor Ignatia Brack")
    expect(page.get_by_label("System prompt", exact=True)).to_have_value(re.compile("Brack"))
    expect(model).to_have_value(re.compile("gpt-4o  "))  # not the first served (echo)
    send(page, "Who keeps the lamp?")
    wait_for_reply(page, "Who keeps the lamp?")
    assert services.store.exchanges()[0]["model"] == "gpt-4o"


def test_the_speaker_is_shown_beside_the_message_box_and_an_edit_is_sent(app, services):
    page, _ = app
    speaker_box = page.locator("#chat-speaker")
    speaker = speaker_box.get_by_role("textbox")  # named "Speaking as" and the line that says what is sent
    expect(speaker).to_have_value("")  # the first persona speaks as no one
    choose_persona(page, "Professor Ignatia Brack")
    expect(speaker).to_have_value("Tobin")
    expect(speaker_box).to_contain_text('goes out as "Tobin: …"')
    choose_model(page, "local:gpt-4o-mini")
    screenshot(page, "speaker")

    send(page, "What's that noise?")
    wait_for_reply(page, "Echo: Tobin: What's that noise?")
    speaker.fill("Dez")
    expect(speaker_box).to_contain_text('goes out as "Dez: …"')
    send(page, "Is the extinguisher full?")
    wait_for_reply(page, "Echo: Dez: Is the extinguisher full?")
    speaker.fill("")
    expect(speaker_box).to_contain_text("with no name")
    send(page, "Hello?")
    wait_for_reply(page, "Echo: Hello?")

    latest = services.store.exchanges()[0]
    sent = [m["content"] for m in latest["request"]["messages"] if m["role"] == "user"][-3:]
    assert sent == ["Tobin: What's that noise?", "Dez: Is the extinguisher full?", "Hello?"]
    saved = services.store.conversation(latest["conversation_id"])
    assert saved["settings"]["speaker"] == ""
    expect(user_messages(page)).to_have_text(["What's that noise?", "Is the extinguisher full?", "Hello?"])


def test_one_click_on_a_history_row_opens_it_with_everything_above_the_chat(app, services):
    page, _ = app
    choose_persona(page, "Professor Ignatia Brack")
    speaker = page.locator("#chat-speaker").get_by_role("textbox")
    expect(speaker).to_have_value("Tobin")  # the persona's change has landed
    choose_model(page, "local:gpt-4o")
    speaker.fill("Dez")
    expect(page.locator("#chat-speaker")).to_contain_text('"Dez: …"')
    send(page, "Where is Euclid?")
    wait_for_reply(page, "Echo: Dez: Where is Euclid?")

    choose_persona(page, "Rude Support Agent")
    expect(page.get_by_label("System prompt", exact=True)).to_have_value(re.compile("smart kettles"))
    choose_model(page, "local:fault-500")
    send(page, "This one fails")
    expect(notice(page)).to_contain_text("server error (500)")
    expect(message_box(page)).to_have_value("This one fails")

    open_tab(page, "History")
    page.get_by_role("gridcell", name="Where is Euclid?", exact=True).click()

    expect(page.get_by_role("tab", name="Chat", exact=True)).to_have_attribute("aria-selected", "true")
    expect(user_messages(page)).to_have_text(["Where is Euclid?"])
    expect(page.get_by_label("Persona", exact=True)).to_have_value("Professor Ignatia Brack")
    brack = services.personas["Professor Ignatia Brack"]
    expect(page.get_by_text(brack.description, exact=True)).to_be_visible()  # the description follows the persona
    expect(page.get_by_text(services.personas["Rude Support Agent"].description, exact=True)).to_have_count(0)
    expect(page.get_by_label("Model", exact=True)).to_have_value(re.compile("gpt-4o  "))
    expect(page.get_by_label("System prompt", exact=True)).to_have_value(re.compile("Professor Ignatia Brack"))
    expect(speaker).to_have_value("Dez")
    expect(message_box(page)).to_have_value("")  # the failed message belonged to the other chat
    expect(notice(page)).to_be_empty()
