"""'Add to dataset' and the Datasets tab as a user sees them, in headless Chromium against the fake OpenAI server."""

import json
import re

import pytest
from playwright.sync_api import Page, expect

from playground.datasets.examples import Example
from playground.datasets.store import add_examples, create_dataset, get_dataset, iter_examples, list_datasets
from tests.browser import choose_model, choose_persona, open_app, open_tab, screenshot, send, wait_for_reply

BRACK = "Professor Ignatia Brack"
SHOTS = "datasets/"


@pytest.fixture
def page(browser, app_url):
    page, foreign = open_app(browser, app_url)
    yield page
    assert foreign == []
    page.context.close()


def chat_with_brack(page: Page, *texts: str) -> None:
    choose_persona(page, BRACK)
    choose_model(page, "local:gpt-4o-mini")
    for text in texts:
        send(page, text)
        wait_for_reply(page, f"Echo: Tobin: {text}")


def pick(scope, label: str, option: str) -> None:
    scope.get_by_label(label, exact=True).click()
    scope.page.get_by_role("option", name=option, exact=True).click()


def cell(scope, text: str):
    return scope.get_by_role("gridcell", name=text, exact=True)


def test_add_to_dataset_with_the_deploy_prompt_and_a_corrected_reply(page, services):
    deploy = services.personas[BRACK].deploy_prompt
    chat_with_brack(page, "What's that smell?", "And that bang?")

    page.get_by_text("Add to dataset", exact=True).click()
    panel = page.locator("#add-to-dataset")
    preview = panel.locator("#example-preview")
    expect(panel).to_contain_text("5 messages")  # the deploy prompt and the two exchanges; the greeting is left out
    expect(panel.get_by_label("Keep the greeting", exact=True)).not_to_be_checked()
    expect(preview).to_contain_text(deploy)
    expect(preview).not_to_contain_text("wildly eccentric")  # the long persona prompt is gone
    expect(preview).to_contain_text('"content": "Tobin: And that bang?"')

    panel.get_by_label("None", exact=True).check()
    expect(preview).not_to_contain_text(deploy)
    expect(panel).to_contain_text("4 messages")
    panel.get_by_label("Deploy prompt (the short one the fine-tune runs with)", exact=True).check()
    expect(preview).to_contain_text(deploy)

    pick(panel, "Up to reply", "up to message 3: Echo: Tobin: What's that smell?")
    expect(preview).not_to_contain_text("And that bang?")
    expect(panel.get_by_label("Corrected text", exact=True)).to_have_value("Echo: Tobin: What's that smell?")
    panel.get_by_label("Corrected text", exact=True).fill("Progress, Tobin! Open a window, would you?")
    expect(preview).to_contain_text("Progress, Tobin! Open a window")
    expect(panel).to_contain_text("1 corrected message")
    panel.get_by_label("New dataset", exact=True).fill("brack")
    screenshot(page, SHOTS + "add_to_dataset")
    panel.get_by_role("button", name="Save to dataset", exact=True).click()
    expect(panel).to_contain_text("Saved as example 1 in brack")

    [example] = iter_examples(services.store, "brack")
    assert [(m.role, m.content) for m in example.messages] == [
        ("system", deploy),
        ("user", "Tobin: What's that smell?"), ("assistant", "Progress, Tobin! Open a window, would you?")]
    assert example.source.persona == BRACK and len(example.source.exchange_ids) == 1

    # The Datasets tab, opened after the save, lists it with its counts.
    open_tab(page, "Datasets")
    listed = page.locator("#dataset-list")
    expect(cell(listed, "brack")).to_be_visible()
    info = get_dataset(services.store, "brack")
    for shown in ("1", "0", str(info.tokens)):  # examples, excluded, tokens
        expect(cell(listed, shown)).to_be_visible()
    examples = page.locator("#dataset-examples")
    expect(cell(examples, "Tobin: What's that smell?")).to_be_visible()
    deploy_box = page.locator("#dataset-picker").get_by_role("textbox", name=re.compile("^Deploy prompt"))
    expect(deploy_box).to_have_value(deploy)  # from the persona the examples came from
    screenshot(page, SHOTS + "datasets_tab")


def test_export_gives_a_file_that_imports_back(page, services, tmp_path):
    create_dataset(services.store, "town")
    add_examples(services.store, "town", [Example.model_validate({"messages": [
        {"role": "system", "content": "Answer about Brindlecombe."}, {"role": "user", "content": f"Question {i}?"},
        {"role": "assistant", "content": f"Answer {i}."}]}) for i in range(12)])
    open_tab(page, "Datasets")
    pick(page.locator("#dataset-picker"), "Dataset", "town")
    expect(cell(page.locator("#dataset-examples"), "Question 11?")).to_be_visible()

    page.get_by_role("tab", name="Export", exact=True).click()
    export = page.locator("#dataset-export")
    split = export.get_by_role("textbox", name=re.compile("^Split"))
    split.fill("")  # one file
    split.press("Tab")  # the box's change is sent before Export is pressed, even on a busy machine
    expect(split).to_have_value("")
    export.get_by_role("button", name="Export", exact=True).click()
    expect(export).to_contain_text("Exported town.jsonl (12 examples) as openai-chat")
    link = export.get_by_role("row", name=re.compile(r"^town\.jsonl")).get_by_role("link")
    expect(link).to_be_visible()
    screenshot(page, SHOTS + "export")
    with page.expect_download() as download:
        link.click()
    saved = tmp_path / "town.jsonl"
    download.value.save_as(saved)
    assert [json.loads(line)["messages"][1]["content"] for line in saved.read_text().splitlines()] == [
        f"Question {i}?" for i in range(12)]

    page.get_by_role("tab", name="Import", exact=True).click()
    importer = page.locator("#dataset-import")
    importer.locator("input[type=file][accept*=jsonl]").set_input_files(str(saved))
    expect(importer.get_by_label("New dataset name", exact=True)).to_have_value("town")
    importer.get_by_label("New dataset name", exact=True).fill("town again")
    importer.get_by_role("button", name="Import", exact=True).click()
    expect(importer).to_contain_text("Imported 12 examples into town again (detected: 12 openai-chat)")
    screenshot(page, SHOTS + "import")
    assert [e.messages for e in iter_examples(services.store, "town again")] == [
        e.messages for e in iter_examples(services.store, "town")]


def test_a_bad_file_lists_its_bad_lines_and_imports_nothing(page, services, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}\n'
                    '[1, 2]\n{"messages": "no"}\n', encoding="utf-8")
    open_tab(page, "Datasets")
    page.get_by_role("tab", name="Import", exact=True).click()
    importer = page.locator("#dataset-import")
    importer.locator("input[type=file][accept*=jsonl]").set_input_files(str(path))
    expect(importer.get_by_label("New dataset name", exact=True)).to_have_value("bad")  # uploaded
    importer.get_by_role("button", name="Import", exact=True).click()
    expect(importer).to_contain_text("2 bad lines: nothing was imported")
    expect(cell(importer, "data_type")).to_be_visible()
    expect(cell(importer, "missing_messages_list")).to_be_visible()
    screenshot(page, SHOTS + "import_bad_lines")
    assert list_datasets(services.store) == []


def test_review_the_log_and_add_ticked_exchanges(page, services):
    chat_with_brack(page, "Is Euclid laying?")
    page.get_by_role("button", name="Dislike", exact=True).last.click()
    open_tab(page, "Datasets")
    page.get_by_role("tab", name="Review the log", exact=True).click()
    review = page.locator("#log-review")
    expect(cell(review, "Echo: Tobin: Is Euclid laying?")).to_be_visible()
    pick(review, "Rating", "disliked")
    review.get_by_role("button", name="Search", exact=True).click()
    expect(cell(review, "disliked")).to_be_visible()

    review.get_by_role("button", name="Tick all", exact=True).click()
    review.get_by_label("New dataset", exact=True).fill("from the log")
    review.get_by_label("Weight 0 on disliked replies", exact=True).uncheck()
    review.get_by_role("button", name="Add ticked to dataset", exact=True).click()
    expect(review).to_contain_text("Added 1 example to from the log")
    screenshot(page, SHOTS + "log_review")
    [example] = iter_examples(services.store, "from the log")
    assert example.messages[0].content == services.personas[BRACK].deploy_prompt
    assert example.messages[-1].content == "Echo: Tobin: Is Euclid laying?" and example.messages[-1].weight is None


def test_validate_lists_findings_by_example_and_stats_show_the_cost(page, services):
    create_dataset(services.store, "short")
    [first, copy] = add_examples(services.store, "short", [Example.model_validate({"messages": [
        {"role": "user", "content": "Who built the mill?"}, {"role": "assistant", "content": "Adelaide Crouch."}]})] * 2)
    open_tab(page, "Datasets")
    pick(page.locator("#dataset-picker"), "Dataset", "short")
    page.get_by_role("tab", name="Validate", exact=True).click()
    validate = page.locator("#dataset-validate")
    validate.get_by_role("button", name="Validate", exact=True).click()
    expect(validate).to_contain_text("0 errors, 4 warnings")
    expect(cell(validate, f"example {copy}").first).to_be_visible()
    expect(cell(validate, "duplicate_example")).to_be_visible()
    screenshot(page, SHOTS + "validate")

    page.get_by_role("tab", name="Stats & cost", exact=True).click()
    stats = page.locator("#dataset-stats")
    stats.get_by_role("button", name="Compute", exact=True).click()
    expect(stats).to_contain_text("2 examples")
    expect(stats).to_contain_text("Epochs: 25")  # OpenAI's default for a tiny set
    expect(cell(stats, "gpt-3.5-turbo").last).to_be_visible()
    screenshot(page, SHOTS + "stats")
