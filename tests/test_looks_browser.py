"""How the app looks at 1280 and 1920 pixels wide, in headless Chromium: every tab and view is opened and the page
is searched for text a user cannot read whole (a clipped label, dropdown value, button or table header; a header
broken inside a word; colliding axis labels; a label drawn over chat messages) and for empty components that
shout (a drop zone in an empty table, an empty download box). Screenshots go to SCREENSHOTS/looks."""

import json
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from playground.ab.votes import ReplyRecord, RoundRecord, VoteRecord, save_round, save_vote
from playground.datasets.examples import Example, TrainingMessage
from playground.datasets.store import add_examples, create_dataset
from tests.browser import SCREENSHOTS, TIMEOUT_MS, open_tab

SHOTS = SCREENSHOTS / "looks"
WIDTHS = [1280, 1920]
CHECKS = (Path(__file__).parent / "looks.js").read_text(encoding="utf-8")


def add_votes(services) -> None:
    """Enough blind votes between three setups for the leaderboard's plot to have an axis of four-digit scores."""
    names = ["local:gpt-4o-mini", "local:gpt-4o", "lookup:Rude Support Agent"]
    for n in range(12):
        a, b = names[n % 3], names[(n + 1) % 3]
        round_id = f"r{n}"
        save_round(services.store, RoundRecord(
            id=round_id, comparison_id=f"c{n}", number=1, prompt="Is it on?", blind=True, anonymous=True, seed=1,
            display_order=[0, 1], created_at="2025-03-10T12:00:00.000+00:00",
            replies=[ReplyRecord(column_index=i, slot="AB"[i], contestant=name, model=name,
                                 persona="Rude Support Agent", conversation_id=f"{round_id}-{i}")
                     for i, name in enumerate((a, b))]))
        save_vote(services.store, VoteRecord(round_id=round_id, outcome="better", winner_column=0 if n % 4 else 1,
                                             created_at="2025-03-10T12:01:00.000+00:00"))


def add_dataset(services) -> None:
    create_dataset(services.store, "support")
    chats = [("Where is my parcel?", "In the van."), ("Where is my parcel?", "In the van."),
             ("Can I pay by card?", "Yes.")]
    add_examples(services.store, "support", [Example(messages=[TrainingMessage(role="user", content=q),
                                                               TrainingMessage(role="assistant", content=a)])
                                             for q, a in chats])


@pytest.fixture
def seeded(services):
    add_votes(services)
    add_dataset(services)
    return services


@pytest.fixture(params=WIDTHS, ids=[f"{w}px" for w in WIDTHS])
def page(request, browser, seeded, app_url):
    context = browser.new_context(viewport={"width": request.param, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(app_url)
    page.get_by_label("Message", exact=True).first.wait_for()
    page.width = request.param
    yield page
    context.close()


def problems(page: Page, view: str) -> list[str]:
    page.wait_for_timeout(300)  # nothing to wait for: the page has settled, give the layout a frame to finish
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{view}-{page.width}.png"), full_page=True)
    return [f"{view}: {p}" for p in page.evaluate(CHECKS)]


def sub_tab(page: Page, name: str, index: int = 0) -> None:
    tab = page.get_by_role("tab", name=name, exact=True).nth(index)
    tab.click()
    expect(tab).to_have_attribute("aria-selected", "true")


def choose(page: Page, label: str, value: str, index: int = 0) -> None:
    """Pick a dropdown option by the words it shows."""
    page.get_by_label(label, exact=True).nth(index).click()
    page.get_by_role("option", name=value).first.click()


def prompt_set(tmp_path) -> Path:
    path = tmp_path / "capitals.jsonl"
    rows = [{"id": f"q{i}", "messages": [{"role": "user", "content": f"Capital number {i}? [tokens=30]"}],
             "expected": "Paris is the capital", "check": {"kind": "contains"}} for i in range(3)]
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    return path


def test_no_text_is_cut_off_or_broken_anywhere(page, tmp_path):
    found = problems(page, "chat")
    choose(page, "Model", "lookup")
    page.get_by_label("Message", exact=True).fill("Where is my parcel? " * 30)
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.locator("[data-testid='bot']").last).to_be_visible()
    found += problems(page, "chat-lookup")

    open_tab(page, "A/B")
    found += problems(page, "ab-compare")
    sub_tab(page, "Leaderboard")
    expect(page.locator("#ab-leaderboard-table")).to_contain_text("gpt-4o-mini")
    expect(page.locator(".vega-embed .role-axis-label").first).to_be_visible()
    found += problems(page, "ab-leaderboard")
    sub_tab(page, "Batch")
    found += problems(page, "ab-batch")
    page.get_by_label("or a path on this machine", exact=True).fill(str(prompt_set(tmp_path)))
    page.get_by_role("button", name="Run batch", exact=True).click()
    expect(page.locator("#ab-batch-status")).to_contain_text("Done")
    found += problems(page, "ab-batch-done")

    open_tab(page, "Templates")
    found += problems(page, "templates-editor")
    choose(page, "File", "personas/rude_support.json")
    found += problems(page, "templates-persona")
    sub_tab(page, "Generate data")
    found += problems(page, "templates-generate")

    open_tab(page, "Datasets")
    found += problems(page, "datasets-examples")
    for view in ("Review the log", "Validate", "Stats & cost", "Export", "Import"):
        sub_tab(page, view)
        found += problems(page, "datasets-" + view.lower().replace(" ", "-").replace("&", "and"))
        if view in ("Validate", "Export"):
            page.locator(f"#dataset-{view.lower()}").get_by_role("button", name=view, exact=True).click()
            expect(page.locator(f"#dataset-{view.lower()}")).to_contain_text("duplicate")
            found += problems(page, f"datasets-{view.lower()}-done")

    open_tab(page, "Fine-tune")
    found += problems(page, "finetune")
    open_tab(page, "History")
    found += problems(page, "history")
    assert found == [], "\n".join(found)


def test_the_ab_column_setup_folds_away_on_the_leaderboard_and_batch_and_opens_on_compare(page):
    open_tab(page, "A/B")
    setup = page.locator("#ab-column-setup").get_by_label("Label", exact=True).first
    expect(setup).to_be_visible()
    for view in ("Leaderboard", "Batch"):
        sub_tab(page, view)
        expect(setup).to_be_hidden()
        problems(page, f"ab-{view.lower()}-folded")
    # Still one click away on Batch, which runs the setups.
    page.locator("#ab-column-setup").get_by_text("Column setup", exact=True).click()
    expect(setup).to_be_visible()
    sub_tab(page, "Compare")
    expect(setup).to_be_visible()
    sub_tab(page, "Leaderboard")
    expect(setup).to_be_hidden()
    sub_tab(page, "Compare")
    expect(setup).to_be_visible()
