"""The A/B tab as a user sees it, in headless Chromium against the fake OpenAI server: a blind round and a vote."""

import json
import re

import pytest
from playwright.sync_api import expect

from playground.chat.personas import persona_order
from playground.datasets.store import iter_examples
from tests.browser import SCREENSHOTS, open_app, open_tab, screenshot

SHOTS = "ab"


@pytest.fixture
def page(browser, app_url):
    page, foreign = open_app(browser, app_url)
    open_tab(page, "A/B")
    yield page
    assert foreign == [], foreign
    page.context.close()


def choose(tab, label: str, index: int, value: str) -> None:
    """Type a value into the index-th dropdown with this label (the dropdowns take custom values) and confirm."""
    box = tab.get_by_label(label, exact=True).nth(index)
    for _ in range(3):  # the page's load event re-sends the model lists; if it lands after us, type again
        box.click()
        box.fill(value)
        box.press("Enter")
        tab.page.wait_for_timeout(200)
        if value.partition(":")[2] in box.input_value():
            return
    raise AssertionError(f"the {label} dropdown shows {box.input_value()!r}, not {value!r}")


def panel(tab, slot: str):
    return tab.locator(f"#ab-chat-{slot.lower()}")


def test_a_blind_round_streams_both_columns_then_a_vote_reveals_them_and_ranks_them(page, services, fake_server):
    fake_server.token_delay = 0.05  # 40 words: two seconds of streaming
    tab = page.locator("#ab-tab")
    choose(tab, "Model", 0, "local:gpt-4o-mini")
    choose(tab, "Model", 1, "local:gpt-4o")
    tab.get_by_label("Message", exact=True).fill("Trains from Porto to Lisbon? [tokens=40]")
    tab.get_by_role("button", name="Send", exact=True).click()

    # Both replies grow at the same time: when A has a few words, B has some too and neither is finished.
    reply_a, reply_b = (panel(tab, s).locator("[data-testid='bot']") for s in "AB")
    expect(reply_a).to_contain_text("w4")
    expect(reply_b).to_contain_text("w2", timeout=1000)
    assert "w40" not in reply_a.inner_text() and "w40" not in reply_b.inner_text()
    screenshot(page, f"{SHOTS}/streaming")

    for reply in (reply_a, reply_b):
        expect(reply.locator("sub")).to_contain_text("tokens")
    expect(tab.locator("#ab-round")).to_contain_text("blind")
    for slot in "AB":  # names hidden: the panel labels and the metrics lines give nothing away
        assert "gpt-4o" not in panel(tab, slot).inner_text()
        expect(panel(tab, slot).get_by_test_id("block-label")).to_have_text(slot)
    screenshot(page, f"{SHOTS}/blind")

    tab.get_by_role("button", name="A is better", exact=True).click()
    expect(tab.locator("#ab-round")).to_contain_text("you voted A is better")
    expect(panel(tab, "A").get_by_test_id("block-label")).to_contain_text("local:gpt-4o")
    expect(panel(tab, "B").get_by_test_id("block-label")).to_contain_text("local:gpt-4o")
    expect(reply_a.locator("sub")).to_contain_text("gpt-4o")
    labels = [panel(tab, s).get_by_test_id("block-label").inner_text() for s in "AB"]
    assert sorted(label.split(" · ")[1] for label in labels) == ["Column 1", "Column 2"]
    screenshot(page, f"{SHOTS}/revealed")

    tab.get_by_role("tab", name="Leaderboard", exact=True).click()
    table = tab.locator("#ab-leaderboard-table")
    winner = labels[0].split(" · ", 2)[2]
    expect(table).to_contain_text("local:gpt-4o-mini")
    expect(table).to_contain_text("local:gpt-4o ·")
    # Row 0 is the header; the table's hidden sizing row is not a "row" to the accessibility tree.
    expect(table.get_by_role("row").nth(1)).to_contain_text(winner)
    expect(tab.locator("#ab-board-summary")).to_contain_text("1 battle between 2 setups")
    plot = tab.locator(".vega-embed")
    expect(plot.get_by_text("1. " + winner[:12])).to_be_visible()
    assert plot.bounding_box()["height"] < 600, "the plot keeps growing"
    # What the window shows, not a full-page capture: that resizes the window, and the plot redraws mid-capture.
    table.scroll_into_view_if_needed()
    SCREENSHOTS.joinpath(SHOTS).mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / SHOTS / "leaderboard.png"))


def test_a_fresh_tab_sends_at_once_to_two_different_served_setups(page, fake_server):
    # First run: no column starts without a model (the "pick a model" message is checked through the API in
    # test_ab_ui), and the two columns start on two different served models, so a first message just works.
    tab = page.locator("#ab-tab")
    models = tab.get_by_label("Model", exact=True)
    expect(models.nth(0)).to_have_value(re.compile("gpt-4o-mini"))
    expect(models.nth(1)).not_to_have_value("")
    assert models.nth(0).input_value() != models.nth(1).input_value()
    tab.get_by_label("Message", exact=True).fill("Anyone there?")
    tab.get_by_role("button", name="Send", exact=True).click()

    for slot in "AB":
        expect(panel(tab, slot).locator("[data-testid='bot'] sub")).to_contain_text("tokens")
    sent = sorted(r["body"]["model"] for r in fake_server.requests if r["path"].endswith("completions"))
    assert len(sent) == 2 and sent[0] != sent[1]
    screenshot(page, f"{SHOTS}/first-run")


def test_a_voted_column_and_the_votes_go_to_datasets(page, services, fake_server):
    tab = page.locator("#ab-tab")
    persona = persona_order(services.personas)[0]
    choose(tab, "Model", 0, "local:gpt-4o-mini")
    choose(tab, "Model", 1, "local:gpt-4o")
    tab.get_by_text("Parameters", exact=True).nth(1).click()  # column 2 answers in two tokens
    # A closed accordion's controls are not drawn, so the only "Max tokens" is column 2's.
    max_tokens = tab.get_by_label("Max tokens", exact=True)
    max_tokens.fill("2")
    max_tokens.press("Tab")  # a number is taken when the box is left
    tab.get_by_label("Message", exact=True).fill("Ferries to Skye?")
    tab.get_by_role("button", name="Send", exact=True).click()
    for slot in "AB":
        expect(panel(tab, slot).locator("[data-testid='bot'] sub")).to_contain_text("tokens")
    # Opening the parameters sets no seed: the request is the one the settings describe.
    sent = [r["body"] for r in fake_server.requests if r["path"].endswith("completions")]
    assert sorted(b["max_tokens"] for b in sent) == [2, services.personas[persona].params.max_tokens] and not any("seed" in b for b in sent)

    tab.get_by_text("Add to dataset", exact=True).click()
    adder = tab.locator("#ab-add-to-dataset")
    expect(adder).to_contain_text("Vote first")  # the example would name the model of a blind column
    tab.get_by_role("button", name="A is better", exact=True).click()
    expect(tab.locator("#ab-round")).to_contain_text("you voted A is better")
    preview = adder.locator("#ab-example-preview")
    expect(preview).to_contain_text(json.dumps(services.personas[persona].deploy_prompt))  # shown as JSON
    adder.get_by_label("B", exact=True).check()
    label_b = panel(tab, "B").get_by_test_id("block-label").inner_text()  # "B · Column n · model · persona …"
    model_b = label_b.split(" · ")[2]
    expect(preview).to_contain_text(f'"model": "{model_b}"')
    adder.get_by_label("New dataset", exact=True).fill("ab picks")
    screenshot(page, f"{SHOTS}/add-to-dataset")
    adder.get_by_role("button", name="Save to dataset", exact=True).click()
    expect(adder).to_contain_text("Saved as example 1 in ab picks")
    [example] = iter_examples(services.store, "ab picks")
    assert example.source.model == model_b and example.messages[-1].role == "assistant"

    tab.get_by_role("tab", name="Leaderboard", exact=True).click()
    tab.get_by_text("Save votes as a preference (DPO) dataset", exact=True).click()
    votes = tab.locator("#ab-votes-to-dataset")
    votes.get_by_label("New dataset", exact=True).fill("ab prefs")
    votes.get_by_role("button", name="Add the votes' pairs to the dataset").click()
    expect(votes).to_contain_text("Added 1 preference pair to ab prefs from 1 vote.")
    screenshot(page, f"{SHOTS}/votes-to-dataset")
    [pair] = iter_examples(services.store, "ab prefs")
    assert pair.messages[-1].content == "Ferries to Skye?"
    assert {pair.chosen, pair.rejected} <= {"Echo: Ferries to Skye?", "Echo: Ferries"}


def test_enter_sends_to_every_column_and_shift_enter_adds_a_line(page, fake_server):
    tab = page.locator("#ab-tab")
    choose(tab, "Model", 0, "local:gpt-4o-mini")
    choose(tab, "Model", 1, "local:gpt-4o")
    box = tab.get_by_label("Message", exact=True)
    box.click()
    box.type("Ferries to Oslo?")
    box.press("Shift+Enter")
    box.type("And back?")
    expect(box).to_have_value("Ferries to Oslo?\nAnd back?")
    expect(tab.locator("[data-testid='user']")).to_have_count(0)

    box.press("Enter")
    for slot in "AB":
        expect(panel(tab, slot).locator("[data-testid='bot'] sub")).to_contain_text("tokens")
        expect(panel(tab, slot).locator("[data-testid='user']")).to_contain_text("And back?")
    expect(box).to_have_value("")


def test_a_columns_picked_model_survives_a_persona_change(page, services, fake_server):
    rude = services.personas["Rude Support Agent"]
    services.personas[rude.name] = rude.model_copy(update={"model": "llama-3-8b"})  # a model nothing serves
    tab = page.locator("#ab-tab")
    choose(tab, "Model", 1, "local:gpt-4o")
    persona = tab.get_by_label("Persona", exact=True).nth(1)
    persona.click()
    page.get_by_role("option", name="Rude Support Agent", exact=True).click()
    # The prompt and the model come back in one update: once the prompt shows, the model is final.
    expect(tab.get_by_label("System prompt", exact=True).nth(1)).to_have_value(re.compile("smart kettles"))
    expect(tab.get_by_label("Model", exact=True).nth(1)).to_have_value(re.compile("gpt-4o  "))  # not the first served (echo)
