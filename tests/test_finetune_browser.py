"""The Fine-tune tab through its API (gradio_client) and as a user sees it (headless Chromium)."""

import re

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from playwright.sync_api import expect

from playground.finetune.store import list_jobs
from tests.browser import open_app, open_tab, screenshot
from tests.finetune_fixtures import add_dataset, ft_services, town_examples
from tests.openai_jobs_server import FakeFineTuning

FORM = {"name": "town", "ratios": "80/20", "model": "local:gpt-4o-mini", "n_epochs": 2, "batch": 0, "lr": 0,
        "name_suffix": "town", "shuffle_seed": 7}


@pytest.fixture
def server():
    with FakeFineTuning(steps=6) as fake:
        yield fake


@pytest.fixture
def ft_app(_home, server):
    from playground.ui.app import build_app, launch, launch_options

    services = ft_services(_home, server)
    add_dataset(services.store, "town", town_examples(15))
    app = build_app(services)
    _, url, _ = launch(app, prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **launch_options(services))
    yield url, services
    app.close()


def form(**changes):
    values = {**FORM, **changes}
    return tuple(values[k] for k in FORM)


# --- the API -------------------------------------------------------------------------------------------


def test_estimate_start_and_follow_a_job_through_the_api(ft_app, server):
    url, services = ft_app
    client = Client(url, verbose=False)

    report = client.predict(*form(), api_name="/finetune_estimate")
    assert "train 12, validation 3" in report and "ready to train" in report and "| gpt-4o-mini | 2 |" in report
    assert server.files == {}

    report, jobs, job_id, status, *_ = client.predict(*form(), api_name="/finetune_start")
    assert job_id.startswith("ftjob-") and f"Started **{job_id}**" in report
    assert jobs["data"][0][:2] == [job_id, "validating_files"]

    for _ in range(12):
        jobs, status, loss, accuracy, checkpoints, events = client.predict(job_id, api_name="/finetune_refresh")
        if "succeeded" in status:
            break
    model = list_jobs(services.store)[0].fine_tuned_model
    assert f"Fine-tuned model: `{model}` — now in every model picker" in status
    assert sorted((series, step) for step, _, series in loss["data"]) == sorted(
        (series, step) for series in ("train loss", "validation loss") for step in range(1, 7))
    assert {series for _, _, series in accuracy["data"]} == {"train token accuracy", "validation token accuracy"}
    assert "The job has successfully completed" in events.splitlines()[0]
    assert len([row for row in checkpoints["data"] if row[0] != ""]) == 2


def test_validation_errors_and_no_access_are_shown_plainly(ft_app, server):
    url, services = ft_app
    client = Client(url, verbose=False)
    add_dataset(services.store, "tiny", town_examples(8))

    report = client.predict(*form(name="tiny"), api_name="/finetune_start")[0]
    assert "Fix these before training" in report and "too_few_training_examples" in report

    server.finetuning_access = False
    report = client.predict(*form(), api_name="/finetune_start")[0]
    assert "No fine-tuning here" in report and "no fine-tuning access" in report
    assert "TRL / Unsloth / Axolotl" in report and "dataset export town --format trl-messages" in report

    with pytest.raises(AppError, match="less than minimum value 0"):
        client.predict(*form(n_epochs=-1), api_name="/finetune_estimate")
    assert "a split has 2 or 3 parts" in client.predict(*form(ratios="80"), api_name="/finetune_estimate")


# --- in the browser ------------------------------------------------------------------------------------


def choose(page, label: str, option: str) -> None:
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option).click()


def test_a_job_is_started_followed_and_plotted_in_the_tab(browser, ft_app, server):
    url, services = ft_app
    page, foreign = open_app(browser, url)
    open_tab(page, "Fine-tune")

    choose(page, "Dataset", "town  ·  15 examples")
    page.get_by_label("Epochs", exact=True).fill("2")
    page.get_by_label("Suffix").fill("town")  # a textbox's info text is part of its accessible name
    page.get_by_role("button", name="Validate & estimate", exact=True).click()
    report = page.locator("#finetune-report")
    expect(report).to_contain_text("train 12, validation 3")
    expect(report).to_contain_text("ready to train")
    screenshot(page, "finetune/estimate")

    page.get_by_role("button", name="Start fine-tuning", exact=True).click()
    expect(report).to_contain_text("Started ftjob-")
    job_id = list_jobs(services.store)[0].id
    for _ in range(4):  # queued, running, steps 1 and 2: as time would move it on
        server.advance(job_id)
    page.get_by_role("button", name="Refresh", exact=True).click()
    status = page.locator("#finetune-status")
    expect(status).to_contain_text("running")
    expect(status).to_contain_text("step 3: train loss")
    screenshot(page, "finetune/running")

    for _ in range(4):
        server.advance(job_id)
    page.get_by_role("button", name="Refresh", exact=True).click()
    expect(status).to_contain_text("succeeded")
    expect(status).to_contain_text("now in every model picker")
    expect(page.get_by_label("Events (newest first)")).to_have_value(re.compile("^.*The job has successfully completed"))
    for plot in ("#finetune-loss", "#finetune-accuracy"):  # a line and a legend entry per series
        expect(page.locator(f"{plot} .mark-line path")).to_have_count(2)
        expect(page.locator(f"{plot} .role-legend-label text")).to_have_count(2)
    page.wait_for_timeout(500)  # let the plots draw before the picture
    screenshot(page, "finetune/finished-job")
    assert foreign == []

    model = list_jobs(services.store)[0].fine_tuned_model
    page.reload()
    box = page.get_by_label("Model", exact=True)
    box.click()
    expect(page.get_by_role("option", name=f"{model}  ·  local  ·  from dataset town, job {job_id}")).to_be_visible()
    page.context.close()


def test_no_access_notice_in_the_tab(browser, ft_app, server):
    url, _ = ft_app
    server.finetuning_access = False
    page, _ = open_app(browser, url)
    open_tab(page, "Fine-tune")

    # Said up front, before any Start: the endpoint refuses fine-tuning, so Start is off.
    report = page.locator("#finetune-availability")
    expect(report).to_contain_text("No fine-tuning at local")
    expect(report).to_contain_text("TRL / Unsloth / Axolotl")
    expect(page.get_by_role("button", name="Start fine-tuning", exact=True)).to_be_disabled()
    screenshot(page, "finetune/no-access")
    page.context.close()


# --- an endpoint without fine-tuning ---------------------------------------------------------------------


@pytest.fixture
def chat_only_app(tmp_path, fake_server):
    """The app whose one endpoint is the plain chat server: no fine-tuning routes at all."""
    from playground.ui.app import build_app, launch, launch_options

    services = ft_services(tmp_path / "home", fake_server)
    add_dataset(services.store, "town", town_examples(15))
    app = build_app(services)
    _, url, _ = launch(app, prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **launch_options(services))
    yield url, services
    app.close()


def test_the_tab_says_up_front_when_the_endpoint_has_no_fine_tuning(chat_only_app, fake_server):
    url, _ = chat_only_app
    client = Client(url, verbose=False)

    # (Start's state is not an API output: the browser test below sees it disabled.)
    notice = client.predict("local:gpt-4o-mini", "town", api_name="/finetune_availability")
    assert f"No fine-tuning at local ({fake_server.base_url})" in notice and "(404)" in notice
    assert "TRL / Unsloth / Axolotl" in notice and "dataset export town --format trl-messages" in notice
    assert "OpenAI" not in notice and "is off for this endpoint" in notice

    client.predict("local:gpt-4o-mini", "town", api_name="/finetune_availability")
    assert len([r for r in fake_server.requests if "fine_tuning/jobs" in r["path"]]) == 1  # probed once

    report = client.predict(*form(model="local:llama-3.1-8b"), api_name="/finetune_estimate")
    assert "no training price known for this model" in report and "gpt-4o-mini" not in report


def test_a_fine_tuning_endpoint_keeps_start_on(ft_app):
    url, _ = ft_app
    notice = Client(url, verbose=False).predict("local:gpt-4o-mini", "town", api_name="/finetune_availability")
    assert "✅ local (" in notice and "offers fine-tuning" in notice


def test_no_fine_tuning_empty_state_in_the_tab(browser, chat_only_app, fake_server):
    url, _ = chat_only_app
    page, _ = open_app(browser, url)
    open_tab(page, "Fine-tune")

    notice = page.locator("#finetune-availability")
    expect(notice).to_contain_text(f"No fine-tuning at local ({fake_server.base_url})")
    expect(notice).to_contain_text("TRL / Unsloth / Axolotl")
    expect(page.get_by_role("button", name="Start fine-tuning", exact=True)).to_be_disabled()
    screenshot(page, "finetune/no-finetuning-endpoint")
    page.context.close()
