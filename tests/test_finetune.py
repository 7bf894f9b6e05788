"""Fine-tuning end to end: the real openai SDK over HTTP to the loopback fine-tuning server, a real SQLite store."""

import base64
import json
from datetime import datetime, timedelta

import pytest

from playground.core.errors import PlaygroundError
from playground.core.messages import Message
from playground.core.params import SamplingParams
from playground.finetune import jobs as finetune
from playground.finetune.jobs import FineTuneSettings, NotReady, parse_result_csv
from playground.finetune.store import MetricPoint, get_job, list_jobs
from playground.providers import ProviderError
from playground.services import build_services
from tests.finetune_fixtures import add_dataset, ft_services, town_examples
from tests.openai_jobs_server import BLOCKED, FakeFineTuning


@pytest.fixture
def server():
    with FakeFineTuning(steps=4) as fake:
        yield fake


@pytest.fixture
def services(_home, server):
    built = ft_services(_home, server)
    add_dataset(built.store, "town", town_examples(15))
    return built


def settings(**changes) -> FineTuneSettings:
    return FineTuneSettings(**{"dataset": "town", "model": "local:gpt-4o-mini", "split": "80/20", "seed": 7,
                               "epochs": 2, "suffix": "town", **changes})


def run_to_end(services, job_id: str, limit: int = 20):
    for _ in range(limit):
        record = finetune.refresh(services, job_id)
        if record.finished:
            return record
    raise AssertionError(f"job {job_id} did not finish: {record.status}")


def uploads(server) -> list[list[dict]]:
    return [[json.loads(line) for line in server.contents[f].decode().splitlines()]
            for f, meta in server.files.items() if meta["purpose"] == "fine-tune"]


# --- success -------------------------------------------------------------------------------------------


def test_a_job_runs_to_success_and_its_model_joins_every_picker(services, server):
    record = finetune.start(services, settings())

    assert record.id.startswith("ftjob-") and record.status == "validating_files"
    train, validation = uploads(server)
    assert (len(train), len(validation)) == (12, 3)
    assert train[0]["messages"][0] == {"role": "system", "content": "Answer questions about Brindlecombe in a few words."}
    created = next(r["body"] for r in server.requests if r["path"] == "/v1/fine_tuning/jobs" and r["method"] == "POST")
    assert created["model"] == "gpt-4o-mini" and created["suffix"] == "town" and created["seed"] == 7
    assert created["method"] == {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}}
    assert (record.dataset, record.split, record.train_examples, record.validation_examples) == ("town", "80/20", 12, 3)

    done = run_to_end(services, record.id)

    assert done.status == "succeeded"
    assert done.fine_tuned_model.startswith("ft:gpt-4o-mini:acme:town:")
    assert done.hyperparameters["n_epochs"] == 2 and done.trained_tokens > 0
    shown = finetune.view(services, record.id)
    assert [p.step for p in shown.metrics] == [1, 2, 3, 4]
    assert all(p.train_loss and p.valid_loss and p.train_accuracy and p.valid_accuracy for p in shown.metrics)
    assert shown.metrics[0].train_loss > shown.metrics[-1].train_loss
    assert [c.step for c in shown.checkpoints] == [2, 4]
    assert shown.checkpoints[-1].model.endswith(":ckpt-step-4")
    assert shown.events[0].message == "The job has successfully completed"

    value = f"local:{done.fine_tuned_model}"
    labels = {v: label for label, v in services.registry.choices()}
    assert f"from dataset town, job {record.id}" in labels[value]
    services.registry.refresh()  # the server lists it now too: still one entry
    assert [v for _, v in services.registry.choices()].count(value) == 1
    provider, model = services.registry.resolve(value)
    reply = "".join(provider.stream_chat(model, [Message(role="user", content="Where is the chapel?")], SamplingParams()))
    assert reply == "Echo: Where is the chapel?"


def test_metrics_come_from_metric_events_while_the_job_runs(services, server):
    record = finetune.start(services, settings(epochs=None))
    for _ in range(4):  # queued, running, step 1, step 2
        record = finetune.refresh(services, record.id)

    assert record.status == "running"
    points = finetune.view(services, record.id).metrics
    assert [p.step for p in points] == [1, 2]
    sent = [e["data"] for e in reversed(server.job_events[record.id]) if e["type"] == "metrics"]
    assert points[0].train_loss == sent[-1]["train_loss"] and points[1].valid_loss == sent[-2]["valid_loss"]
    assert record.hyperparameters["n_epochs"] == 3  # auto, as the server settled it


def test_a_completion_base_model_gets_prompt_completion_files(services, server):
    add_dataset(services.store, "plain", town_examples(15, system=False))

    finetune.start(services, settings(dataset="plain", model="local:davinci-002", suffix=None))

    train, validation = uploads(server)
    assert all(set(line) == {"prompt", "completion"} for line in train + validation)
    assert {"prompt": "Who founded the town?", "completion": "Answer 0."} in train + validation


def test_prepare_estimates_the_cost_and_sends_nothing(services, server):
    server.clear_requests()
    plan = finetune.prepare(services, settings(epochs=3))

    assert plan.ok
    assert plan.stats.examples == 12 and plan.stats.cost.epochs == 3
    assert plan.stats.cost.usd == pytest.approx(plan.stats.cost.billed_tokens * 3.0 / 1_000_000)
    assert {c.model for c in plan.costs} >= {"gpt-4o-mini", "gpt-3.5-turbo"}
    summary = "\n".join(plan.summary())
    assert "train 12, validation 3" in summary and "3 epochs" in summary and "estimated under $0.01" in summary
    assert server.requests == []


# --- refused before anything is sent -------------------------------------------------------------------


@pytest.mark.parametrize("examples, code", [
    (town_examples(15, answer=""), "missing_content"),
    (town_examples(9), "too_few_training_examples"),
])
def test_validation_errors_refuse_the_job_before_any_upload(services, server, examples, code):
    add_dataset(services.store, "broken", examples)

    with pytest.raises(NotReady) as refused:
        finetune.start(services, settings(dataset="broken"))

    assert code in {f.code for f in refused.value.plan.errors}
    assert "Not started" in str(refused.value)
    assert not [r for r in server.requests if r["path"].startswith(("/v1/files", "/v1/fine_tuning"))]
    assert list_jobs(services.store) == []


@pytest.mark.parametrize("changes", [{"epochs": 0}, {"suffix": "has:colon"}, {"suffix": "x" * 65},
                                     {"learning_rate_multiplier": 0}, {"batch_size": 1000}])
def test_out_of_range_settings_are_refused(changes):
    with pytest.raises(ValueError):
        settings(**changes)


def test_the_offline_lookup_cannot_be_fine_tuned(services):
    with pytest.raises(PlaygroundError, match="cannot be fine-tuned"):
        finetune.prepare(services, settings(model="offline:lookup"))


# --- failures ------------------------------------------------------------------------------------------


def test_a_job_that_fails_on_a_bad_file_says_why_and_adds_no_model(services, server):
    add_dataset(services.store, "flagged", town_examples(15, answer="Answer {i}. UNSAFE-CONTENT"))

    record = run_to_end(services, finetune.start(services, settings(dataset="flagged")).id)

    assert record.status == "failed" and record.error == BLOCKED
    assert record.fine_tuned_model is None
    assert finetune.view(services, record.id).events[0].level == "error"
    assert not [v for _, v in services.registry.choices() if v.startswith("local:ft:gpt-4o-mini:acme:town")]


def test_cancel_stops_a_running_job(services, server):
    record = finetune.start(services, settings())
    finetune.refresh(services, record.id)

    cancelled = finetune.cancel(services, record.id)

    assert cancelled.status == "cancelled" and cancelled.finished
    assert server.jobs[record.id]["status"] == "cancelled"
    assert finetune.view(services, record.id).events[0].message == "Fine-tuning job cancelled"
    with pytest.raises(PlaygroundError, match="already cancelled"):
        finetune.cancel(services, record.id)


@pytest.mark.parametrize("status", [403, 404])
def test_no_fine_tuning_access_says_so_and_points_to_the_exports(services, server, fake_server, status):
    if status == 403:
        server.finetuning_access = False
    else:  # an endpoint without the fine-tuning API at all, like a plain chat server
        services.registry.providers()[0].client.base_url = fake_server.base_url + "/"

    with pytest.raises(ProviderError) as refused:
        finetune.start(services, settings())

    assert refused.value.kind == "no_finetuning" and refused.value.status == status
    message = str(refused.value)
    assert "no fine-tuning access" in message and "TRL / Unsloth / Axolotl" in message
    assert list_jobs(services.store) == []


# --- restarts ------------------------------------------------------------------------------------------


def test_a_restart_in_the_middle_of_a_job_picks_it_up_and_finishes_it(_home, services, server):
    record = finetune.start(services, settings())
    for _ in range(3):
        finetune.refresh(services, record.id)
    assert get_job(services.store, record.id).status == "running"

    restarted = ft_services(_home, server)
    for _ in range(10):
        assert finetune.refresh_active(restarted) == {}

    done = get_job(restarted.store, record.id)
    assert done.status == "succeeded" and done.dataset == "town"
    shown = finetune.view(restarted, record.id)
    assert len(shown.events) == len(server.job_events[record.id])  # every event once, none lost or doubled
    assert [p.step for p in shown.metrics] == [1, 2, 3, 4]
    assert f"local:{done.fine_tuned_model}" in [v for _, v in restarted.registry.choices()]


def test_refresh_active_leaves_jobs_polled_moments_ago(services, server):
    record = finetune.start(services, settings())
    polled = datetime.fromisoformat(get_job(services.store, record.id).polled_at)
    retrieves = lambda: sum(r["path"] == f"/v1/fine_tuning/jobs/{record.id}" for r in server.requests)  # noqa: E731

    finetune.refresh_active(services, min_interval=30, clock=lambda: polled + timedelta(seconds=5))
    assert retrieves() == 0
    finetune.refresh_active(services, min_interval=30, clock=lambda: polled + timedelta(seconds=31))
    assert retrieves() == 1


def test_a_job_whose_endpoint_is_gone_says_which(_home, services):
    record = finetune.start(services, settings())
    (_home / "providers.json").unlink()
    gone = build_services(home=_home, environ={}, detect_local=False, discover=False)

    problems = finetune.refresh_active(gone)

    assert "'local'" in problems[record.id] and "not configured" in problems[record.id]
    assert get_job(gone.store, record.id).status == "validating_files"  # kept, to follow once it is back


# --- the result file -----------------------------------------------------------------------------------

CSV = "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n1,1.5,0.5,,\n2,1.0,0.6,1.2,0.55\n"


@pytest.mark.parametrize("text, expected", [
    (CSV, [MetricPoint(1, 1.5, 0.5, None, None), MetricPoint(2, 1.0, 0.6, 1.2, 0.55)]),
    (base64.b64encode(CSV.encode()).decode(), [MetricPoint(1, 1.5, 0.5, None, None), MetricPoint(2, 1.0, 0.6, 1.2, 0.55)]),
    ("step,train_loss,train_mean_token_accuracy\n3,0.9,0.7\n", [MetricPoint(3, 0.9, 0.7, None, None)]),
    ("not a csv at all", []),
    ("", []),
])
def test_result_files_are_read_plain_or_base64(text, expected):
    assert parse_result_csv(text) == expected


# --- does the endpoint fine-tune? ------------------------------------------------------------------------


class _BareServer:
    """A local server that answers every request with a bare 400 "bad json", as some local servers do."""

    def __init__(self):
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def _bad(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                self.send_response(400)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "8")
                self.end_headers()
                self.wfile.write(b"bad json")

            do_GET = do_POST = _bad

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_the_probe_says_a_fine_tuning_server_offers_it(services):
    known = finetune.probe_fine_tuning(services.registry.providers()[0])
    assert known.offered is True and known.endpoint.startswith("local (http://127.0.0.1:")


def test_a_chat_server_without_fine_tuning_is_explained_in_its_own_terms(tmp_path, fake_server):
    services = ft_services(tmp_path / "home", fake_server)
    provider = services.registry.providers()[0]
    cache = finetune.AvailabilityCache()

    known = cache.check(provider)
    assert known.offered is False
    assert f"local ({fake_server.base_url})" in known.message and "(404)" in known.message
    assert "TRL / Unsloth / Axolotl" in known.message and "OpenAI" not in known.message
    assert cache.check(provider) is known  # asked once per endpoint
    probes = [r for r in fake_server.requests if "fine_tuning/jobs" in r["path"]]
    assert len(probes) == 1 and probes[0]["method"] == "GET" and "limit=1" in probes[0]["path"]


def test_a_bare_400_from_a_local_server_is_explained_not_shown_raw(tmp_path):
    with _BareServer() as bare:
        services = ft_services(tmp_path / "home", bare)
        add_dataset(services.store, "town", town_examples(15))
        known = finetune.probe_fine_tuning(services.registry.providers()[0])
        with pytest.raises(ProviderError) as refused:
            finetune.start(services, settings(model="local:llama-3.1-8b"))

    assert known.offered is False
    for message in (known.message, str(refused.value)):
        assert f"local ({bare.base_url})" in message and "'bad json'" in message
        assert "not with a fine-tuning API's error" in message
        assert "TRL / Unsloth / Axolotl" in message and "OpenAI" not in message
    assert refused.value.kind == "no_finetuning"


def test_a_model_with_no_known_price_is_not_priced_with_openai_prices(services):
    plan = finetune.prepare(services, settings(model="local:llama-3.1-8b", epochs=None))
    assert plan.stats.cost.usd is None and plan.priced_costs == []
    assert "no training price known for this model" in plan.summary()[1]
    assert "the endpoint decides" in plan.summary()[1]
    known = finetune.prepare(services, settings())
    assert known.stats.cost.usd is not None and known.priced_costs
