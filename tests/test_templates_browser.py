"""The Templates tab as a user sees it, in headless Chromium against the fake OpenAI server."""

import json
import re

import pytest
from gradio_client import Client
from playwright.sync_api import Page, expect

from playground.datasets.store import iter_examples
from tests.browser import SCREENSHOTS, choose_persona, open_app, open_tab
from tests.test_templates_ui import OUTPUTS

SHOTS = SCREENSHOTS / "templates"


@pytest.fixture
def project(project_copy):
    return project_copy


@pytest.fixture
def personas_dir(project_copy):
    return project_copy / "personas"


@pytest.fixture
def page(browser, app_url):
    page, foreign = open_app(browser, app_url)
    open_tab(page, "Templates")
    yield page
    assert foreign == []
    page.context.close()


def screenshot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def open_file(page: Page, key: str) -> None:
    page.get_by_label("File", exact=True).click()
    page.get_by_role("option", name=key, exact=True).click()
    expect(page.get_by_label("File", exact=True)).to_have_value(key)


def edit_cell(page: Page, table: str, row: int, column: int, text: str) -> None:
    page.locator(f"#{table} [data-testid='cell-{row}-{column}']").dblclick()
    page.keyboard.press("Control+A")
    page.keyboard.type(text)
    page.keyboard.press("Enter")


def token_count(page: Page) -> int:
    return int(re.search(r"(\d+) prompt tokens", page.locator("#template-tokens").inner_text()).group(1))


def status(page: Page):
    return page.locator("#template-status")


def test_edit_preview_save_reload_and_restore(page, project, services):
    open_file(page, "templates/translate.json")
    preview = page.locator("#template-preview")
    expect(preview).to_contain_text("The library closes early on Fridays")
    before = token_count(page)
    screenshot(page, "editor")

    edit_cell(page, "template-messages", 1, 1, "Translate {{text}} and explain every idiom in a footnote.")
    expect(preview).to_contain_text("explain every idiom in a footnote")
    expect(page.locator("#template-tokens")).not_to_contain_text(f"{before} prompt tokens")
    assert token_count(page) > before
    expect(page.locator("#template-json .cm-content")).to_contain_text("explain every idiom")
    screenshot(page, "edited")

    page.get_by_role("button", name="Save", exact=True).click()
    expect(status(page)).to_contain_text("Saved templates/translate.json as version 2")
    assert "explain every idiom" in (project / "templates" / "translate.json").read_text(encoding="utf-8")
    screenshot(page, "saved")

    page.reload()
    open_tab(page, "Templates")
    open_file(page, "templates/translate.json")
    expect(preview).to_contain_text("explain every idiom in a footnote")
    versions = page.locator("#template-versions")
    expect(versions.locator("[data-testid='cell-1-0']")).to_have_text("1")

    versions.locator("[data-testid='cell-1-0']").click()
    expect(page.locator("#template-diff .cm-content")).to_contain_text("careful translator")
    page.get_by_role("button", name="Restore this version", exact=True).click()
    expect(status(page)).to_contain_text("Restored version 1 as version 3")
    expect(preview).not_to_contain_text("explain every idiom")
    expect(preview).to_contain_text("The library closes early on Fridays")
    assert token_count(page) == before
    screenshot(page, "restored")


def test_bad_json_says_where_and_run_streams_the_reply(page, services):
    open_file(page, "templates/review_sentiment.json")
    editor = page.locator("#template-json .cm-content")
    editor.click()
    page.keyboard.press("Control+Home")
    page.keyboard.type("x")
    expect(status(page)).to_contain_text("line 1")
    expect(status(page)).to_contain_text("column 1")
    expect(status(page)).to_contain_text("not valid JSON")
    screenshot(page, "bad-json")
    page.keyboard.press("Control+Home")
    page.keyboard.press("Delete")
    expect(status(page)).to_be_empty()

    first_example = page.locator("#template-preview pre").nth(1)
    expect(first_example).to_have_text("The kettle boils fast and looks lovely on the counter. Best purchase this year.")
    page.locator("#template-messages [data-testid='cell-3-1']").click()  # the second example's user message
    page.get_by_role("button", name="Move pair up", exact=True).click()
    expect(first_example).to_have_text("It works, but the lid sticks and the handle gets warm. Fine for the price.")
    expect(page.locator("#template-preview pre").nth(2)).to_have_text("3")

    page.get_by_role("button", name="Zero-shot", exact=True).click()
    expect(page.locator("#template-preview")).not_to_contain_text("Best purchase this year")
    page.get_by_role("button", name="+ example pair", exact=True).click()
    expect(page.locator("#template-preview")).to_contain_text("Example input")

    expect(page.locator("#template-model").get_by_label("Model")).to_have_value(re.compile("gpt-4o-mini"))
    page.get_by_role("button", name="Run", exact=True).click()
    reply = page.locator("#template-reply")
    expect(reply).to_contain_text("Echo: Arrived with a dent")
    expect(reply).to_contain_text("tokens")
    screenshot(page, "run")
    [exchange] = services.store.exchanges()
    assert [m["content"] for m in exchange["request"]["messages"]][1:3] == ["Example input", "Example output"]


def test_generate_pairs_and_add_them_to_a_dataset(page, services, tmp_path):
    facts = tmp_path / "facts"
    facts.mkdir()
    # The fake model echoes the user message, so facts written as JSONL come back as the model's JSONL.
    (facts / "harbour.txt").write_text(
        '{"prompt": "When does the harbour open?", "completion": "At six in the morning."}\n'
        '{"prompt": "Who owns the harbour?", "completion": "I don\'t know."}\n'
        '{"prompt": "How deep is the', encoding="utf-8")
    open_tab(page, "Generate data")
    page.get_by_label("Folder of facts", exact=True).fill(str(facts))
    page.get_by_role("button", name="Read folder", exact=True).click()
    generation_status = page.locator("#generation-status")
    expect(generation_status).to_contain_text("1 chunk from 1 file")

    page.get_by_role("button", name="Generate", exact=True).click()
    expect(generation_status).to_contain_text("2 pairs")
    expect(generation_status).to_contain_text("broken JSON")
    expect(page.get_by_text("Who owns the harbour?")).to_be_visible()
    page.locator("#generation-dataset").get_by_label("Dataset").fill("harbour-qa")
    page.get_by_role("button", name="Add selected to dataset", exact=True).click()
    expect(generation_status).to_contain_text("Added 2 examples to the dataset 'harbour-qa'")
    page.get_by_role("button", name="Add selected to dataset", exact=True).click()  # pressed twice: nothing doubled
    expect(generation_status).to_contain_text("Nothing added to the dataset 'harbour-qa': all 2 are already in the dataset")
    screenshot(page, "generate")
    assert [e.messages[-1].content for e in iter_examples(services.store, "harbour-qa")] == [
        "At six in the morning.", "I don't know."]


NO_VALUES = {"headers": ["variable", "value"], "data": [["", ""]]}


def test_a_persona_saved_as_a_new_file_joins_the_chat_and_ab_lists(page, app_url, project):
    open_file(page, "personas/text_adventure.json")
    # Save as, through the API (typing a whole persona into the code editor is not what this test is about).
    client = Client(app_url, verbose=False)
    raw = json.loads((project / "personas" / "text_adventure.json").read_text(encoding="utf-8"))
    raw["name"] = "Gullstone Light: Night Shift"
    status = dict(zip(OUTPUTS, client.predict("personas", "night_shift", json.dumps(raw), NO_VALUES, "local:gpt-4o-mini",
                                              api_name="/template_save_as")))["status"]
    assert "Saved personas/night_shift.json" in status

    open_tab(page, "Chat")
    choose_persona(page, "Gullstone Light: Night Shift")
    expect(page.get_by_label("Persona", exact=True).first).to_have_value("Gullstone Light: Night Shift")
    open_tab(page, "A/B")
    tab = page.locator("#ab-tab")
    tab.get_by_label("Persona", exact=True).nth(1).click()
    expect(page.get_by_role("option", name="Gullstone Light: Night Shift", exact=True)).to_be_visible()


def test_a_page_opened_before_the_model_lists_are_in_starts_on_served_models(browser, _home, fake_server, personas_dir):
    from playground.services import build_services
    from playground.ui.app import LAUNCH_DEFAULTS, build_app, launch
    from tests.conftest import write_providers

    write_providers(_home, fake_server, timeout=2)
    # Just after startup: no model list has come back yet, so only lookup is known to answer.
    services = build_services(home=_home, personas_dir=personas_dir, environ={"LOCAL_KEY": "sk-test"},
                              detect_local=False, discover=False)
    services.registry.listed.clear()
    demo = build_app(services)
    _, url, _ = launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **LAUNCH_DEFAULTS)
    try:
        page, _ = open_app(browser, url)
        services.registry.refresh()  # the startup lists come in while the page loads
        open_tab(page, "Templates")
        editor_model = page.locator("#template-model").get_by_label("Model", exact=True)
        expect(editor_model).to_have_value(re.compile("gpt-4o-mini"))  # the template's own model, served
        open_tab(page, "Generate data")
        generation_model = page.locator("#generation-model").get_by_label("Model", exact=True)
        expect(generation_model).not_to_have_value(re.compile("lookup"))
        expect(generation_model).to_have_value(re.compile("gpt-4o-mini"))
        page.context.close()
    finally:
        demo.close()
